"""Each ranking and selection of step 3 on a hand-made run whose answer is known.

Every output is ``sin(x0) + 0.5 x1 ** 2`` plus noise; input 2 is a copy of input 0
at r = 0.95 (a proxy that drives nothing); the other 91 inputs are independent noise.
A good selection keeps inputs 0 and 1 and drops input 2.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from fake_runs import fake_run

from pcm.errors import ParameterError
from pcm.method.masking import compute_masking_vectors, search_thresholds
from pcm.method.premask import run_premask
from pcm.params.config import PremaskConfig, SearchConfig

#: Trains pre-masking, stability, knockoff and screen networks: not in make test-fast.
pytestmark = pytest.mark.slow

N_IN, N_OUT = 94, 65


def _split(split: str, n: int):
    rng = np.random.default_rng({"train": 0, "valid": 1}[split])
    x = rng.standard_normal((n, N_IN))
    x[:, 2] = 0.95 * x[:, 0] + np.sqrt(1 - 0.95 ** 2) * rng.standard_normal(n)
    y = np.sin(x[:, 0]) + 0.5 * x[:, 1] ** 2
    y = y[:, None] + 0.1 * rng.standard_normal((n, N_OUT))
    return x.astype("float32"), y.astype("float32")


@pytest.fixture(scope="module")
def copy_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("copy")
    patch = pytest.MonkeyPatch()
    run = fake_run(root, _split, {"train": 3000, "valid": 1000}, patch)
    common = dict(hidden_layers=1, hidden_units=16, batch_size=100, seed=0,
                  learning_rate=3e-3, lr_every=4)
    run_premask(run, PremaskConfig.from_parameters(dict(epochs=8, l1=20.0, **common)),
                progress=False)
    yield run, common
    patch.undo()


def _search(run, common, **params):
    keys = set(SearchConfig.parameter_names())
    config = SearchConfig.from_parameters({**{k: v for k, v in common.items() if k in keys},
                                           **params})
    thresholds = search_thresholds(run, config, progress=False)
    return thresholds, run.mask("pcmasking").values


def _ranks(vectors: np.ndarray) -> np.ndarray:
    """Rank (0 = first) of inputs 0, 1, 2 in each output's vector."""
    order = np.argsort(-vectors, axis=1, kind="stable")
    return np.argsort(order, axis=1)[:, :3]


@pytest.mark.parametrize("ranking", ["row_norm", "gradient_input", "integrated_gradients",
                                     "adaptive_l1", "screen"])
def test_rankings_put_the_drivers_first(copy_run, ranking):
    run, common = copy_run
    config = SearchConfig.from_parameters({"ranking": ranking, "ranking_samples": 500,
                                           "ranking_steps": 8, "batch_size": 100,
                                           "screen_samples": 2000})
    vectors = compute_masking_vectors(run, config)
    assert vectors.attrs["ranking"] == ranking
    ranks = _ranks(vectors.values)
    assert np.all(ranks[:, :2] <= 2)  # both drivers among the top three
    if ranking == "screen":  # the drivers are the last out; given them the copy adds
        # nothing and leaves among the noise inputs
        assert np.all(ranks[:, :2] <= 1) and np.median(ranks[:, 2]) > 3
    if ranking == "adaptive_l1":  # reweighting pushes the proxy far below the driver
        v, first = vectors.values, run.load_model("premask").masking_vectors()
        ratio, first_ratio = np.median(v[:, 2] / v[:, 0]), np.median(first[:, 2] / first[:, 0])
        print("proxy/driver ratio: row norm", first_ratio, "adaptive", ratio)
        assert ratio < 0.8 * first_ratio


def test_stability_selection_keeps_the_drivers_and_drops_the_copy(copy_run):
    run, common = copy_run
    ds, masks = _search(run, common, ranking="stability", selection="stability",
                        stability_runs=4, stability_share=0.75, selection_ratio=0.3)
    frequency = run.masking_vectors().values
    assert run.masking_vectors().attrs["ranking"] == "stability"
    assert np.all((frequency >= 0) & (frequency <= 1))
    assert masks[:, :2].mean() > 0.95 and masks[:, 2].mean() < 0.05
    assert masks[:, 3:].sum() == 0
    assert ds.attrs["criterion"] == "stability"
    with pytest.raises(ParameterError, match="ranking: stability"):
        _search(run, common, ranking="row_norm", selection="stability")


def test_screen_drops_the_copy_that_a_loose_cut_kept(copy_run):
    run, common = copy_run
    _, loose = _search(run, common, selection="relative", selection_ratio=0.0)
    assert loose[:, 2].all()  # every input with a positive entry is kept
    ds, masks = _search(run, common, selection="relative", selection_ratio=0.0,
                        screen="partial_correlation", screen_samples=2000)
    assert masks[:, :2].all()
    # the copy, like the noise inputs, survives only at about the test's level
    assert masks[:, 2].mean() < 0.05 and masks[:, 3:].mean() < 0.05
    with xr.open_dataset(run.artefact("masks.nc")) as on_disk:
        assert "partial_correlation" in on_disk.attrs["rule"]
    assert "screen_pvalue" in ds


@pytest.mark.xfail(strict=True, reason="knockoffs control the false-discovery rate over the data "
                   "and the knockoff draw together (test_knockoff_fdr), not the fate of one proxy "
                   "in one data sample. On this fixture's training sample the copy's statistic is "
                   "positive in 92 % of the outputs over 12 knockoff draws (at least 80 % in 11 of "
                   "them; measured), so "
                   "derandomising over draws keeps it too; a lasso statistic on six data samples "
                   "(10 draws each) favours the copy in some samples and its knockoff in others. "
                   "Knockoff+ at q = 0.2 also selects nothing in 82 % of the outputs: 2 drivers "
                   "are fewer than the 1/q selections it needs")
def test_knockoff_selection_drops_the_copy(copy_run):
    run, common = copy_run
    ds, masks = _search(run, common, selection="knockoff", knockoff_fdr=0.2,
                        knockoff_plus=False)
    assert masks[:, 2].mean() < 0.1 and masks[:, 3:].mean() < 0.02
    assert masks[:, 0].mean() > 0.9 and masks[:, 1].mean() > 0.9
    w = ds.knockoff_statistic.values
    np.testing.assert_array_equal(masks, w >= ds.knockoff_threshold.values[:, None])
    assert np.isnan(ds.threshold.values).all()
