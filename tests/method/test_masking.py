"""Tests of masking vectors, the threshold search and the phase functions (tiny fake run)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import xarray as xr
from fake_runs import fake_run as make_fake_run

from pcm.data.published import read_masking_vector_files
from pcm.errors import DataError, ParameterError
from pcm.io import read_json, write_netcdf
from pcm.method.finetune import run_finetune
from pcm.method.masking import (
    compute_masking_vectors,
    l1_masking_vectors,
    loss_search,
    search_paper_rule,
    search_thresholds,
)
from pcm.method.premask import run_premask, run_unconstrained
from pcm.method.thresholds import (
    better_half,
    choose_thresholds,
    halving_rounds,
    masks_from_thresholds,
    relative_thresholds,
    threshold_grid,
)
from pcm.nn.engine import predict_stacked
from pcm.nn.saving import export_networks
from pcm.params.config import FinetuneConfig, PremaskConfig, SearchConfig
from pcm.params.presets import PAPER_RULE
from pcm.variables import input_labels, output_labels

N_IN, N_OUT = 94, 65


def test_threshold_grid_follows_reference():
    vector = np.linspace(0.0, 0.05, 94)
    grid = threshold_grid(vector)  # defaults: 20 thresholds, 70th percentile
    expected = np.round(np.linspace(1e-4, np.percentile(vector, 70), 20, endpoint=False), 4)
    np.testing.assert_array_equal(grid, np.unique(expected))
    # tiny vectors: every candidate rounds to 1e-4 or 0 -> a single threshold 1e-4
    np.testing.assert_array_equal(threshold_grid(np.full(94, 1e-6)), [1e-4])
    # duplicates after rounding are dropped
    small = threshold_grid(np.full(94, 0.0006), n_thresholds=20, percentile=70)
    assert len(small) == len(np.unique(small)) < 20
    with pytest.raises(ParameterError, match="percentile"):
        threshold_grid(vector, percentile=120)


def test_choose_thresholds_tolerance_prefers_sparser_masks():
    values = np.array([[1e-4, 0.02, 0.04, 0.06]])
    loss = np.array([[1.00, 1.01, 1.04, 1.30]])
    np.testing.assert_array_equal(choose_thresholds(loss, values), [0])
    np.testing.assert_array_equal(choose_thresholds(loss, values, 0.02), [1])
    np.testing.assert_array_equal(choose_thresholds(loss, values, 0.05), [2])
    with pytest.raises(ParameterError, match="selection_tolerance"):
        choose_thresholds(loss, values, -0.1)


def test_choose_thresholds_ties_to_larger_and_skips_unused_slots():
    values = np.array([[0.1, 0.2, 0.3], [0.1, 0.2, np.nan]])
    loss = np.array([[1.0, 0.5, 0.5], [2.0, 3.0, 0.0]])
    np.testing.assert_array_equal(choose_thresholds(loss, values), [2, 0])


def test_halving_rounds_and_better_half():

    assert halving_rounds(20, 9) == [1, 2, 2, 2, 2]  # ceil(log2 20) = 5 rounds, short first
    assert halving_rounds(10, 4) == [1, 1, 1, 1]
    assert halving_rounds(20, 2) == [1, 1]  # never more rounds than epochs
    assert halving_rounds(1, 3) == [3]
    outputs = np.array([0, 0, 0, 1, 1, 1, 1])
    thresholds = np.array([0.1, 0.2, 0.3, 0.1, 0.2, 0.3, 0.4])
    loss = np.array([3.0, 1.0, 1.0, np.nan, 0.5, 0.7, 0.2])
    # output 0: 2 of 3 kept, the tie at 1.0 both kept; output 1: 2 of 4, NaN is worst
    np.testing.assert_array_equal(better_half(outputs, thresholds, loss), [1, 2, 4, 6])
    # ties beyond the cut go to the larger threshold
    np.testing.assert_array_equal(better_half([0, 0], [0.1, 0.2], [1.0, 1.0]), [1])


def test_masks_are_strictly_above_threshold():
    vectors = xr.DataArray(np.array([[0.1, 0.2, 0.3], [0.5, 0.5, 0.0]]),
                           dims=("output", "input"),
                           coords={"output": ["a", "b"], "input": ["x", "y", "z"]})
    mask = masks_from_thresholds(vectors, [0.2, 0.5])
    np.testing.assert_array_equal(mask.values, [[False, False, True], [False, False, False]])


def test_relative_thresholds_scale_with_each_outputs_largest_entry():
    vectors = np.array([[0.1, 0.4, 0.02], [2.0, 0.5, 1.0]])
    np.testing.assert_allclose(relative_thresholds(vectors, 0.3), [0.12, 0.6])
    # the rule does not depend on the scale of the vectors
    np.testing.assert_allclose(relative_thresholds(10 * vectors, 0.3),
                               10 * relative_thresholds(vectors, 0.3))
    with pytest.raises(ParameterError, match="selection_ratio"):
        relative_thresholds(vectors, 1.5)


def test_reference_masking_vector_files(tmp_path):
    rng = np.random.default_rng(0)
    table = rng.random((N_OUT, N_IN))
    for label, row in zip(output_labels(), table, strict=True):
        np.save(tmp_path / f"masking_vector_{label}.npy", row)
    da = read_masking_vector_files(tmp_path)
    assert da.dims == ("output", "input")
    np.testing.assert_array_equal(da.sel(output="tphystnd-691.39").values,
                                  table[output_labels().index("tphystnd-691.39")])
    assert list(da.input.values) == input_labels()

    np.save(tmp_path / "masking_vector_prect.npy", np.ones(93))
    with pytest.raises(DataError, match="94"):
        read_masking_vector_files(tmp_path)
    (tmp_path / "masking_vector_prect.npy").unlink()
    (tmp_path / "masking_vector_fsnt.npy").unlink()
    with pytest.raises(DataError, match="fsnt, prect|prect.*fsnt|fsnt.*prect"):
        read_masking_vector_files(tmp_path)


# ---------------------------------------------------------------------------
# the phases on a tiny fake run (data loader replaced by in-memory arrays)
# ---------------------------------------------------------------------------
def _fake_split(split: str, n: int):
    """Outputs depend on 3 inputs each; output 33 has zero variance (like PHQ at the top)."""
    rng = np.random.default_rng({"train": 0, "valid": 1}[split])
    x = rng.standard_normal((n, N_IN)).astype("float32")
    drivers = np.random.default_rng(9).integers(0, N_IN, size=(N_OUT, 3))
    y = np.stack([np.tanh(x[:, d].sum(axis=1) / 2) for d in drivers], axis=1)
    y[:, 33] = 0.0
    return x, (y + 0.05 * rng.standard_normal(y.shape)).astype("float32")


@pytest.fixture
def fake_run(tmp_path, monkeypatch):
    return make_fake_run(tmp_path, _fake_split, {"train": 600, "valid": 300}, monkeypatch)


@pytest.mark.slow
def test_phases_end_to_end(fake_run):
    run = fake_run
    common = dict(hidden_layers=1, hidden_units=8, batch_size=128, seed=0)
    hist = run_premask(run, PremaskConfig.from_parameters(dict(epochs=2, l1=1.0, **common)),
                       progress=False)
    assert hist.sizes == {"epoch": 2, "network": N_OUT}
    assert np.isfinite(hist.loss.values).all()
    saved = run.history("premask")
    assert saved.loss.attrs["units"] and saved.val_loss.attrs["long_name"]
    premask = run.load_model("premask")
    assert premask.has_input_layer

    run_unconstrained(run, PremaskConfig.from_parameters(dict(epochs=1, **common)),
                      progress=False)
    unconstrained = run.load_model("unconstrained")
    assert not unconstrained.has_input_layer and unconstrained.get_mask().all()

    vectors = compute_masking_vectors(run)
    np.testing.assert_allclose(vectors.values, premask.masking_vectors())
    assert xr.open_dataset(run.artefact("masking_vectors.nc")).masking_vector.dims == \
        ("output", "input")

    search = dict(n_thresholds=3, threshold_percentile=70, batch_size=128, seed=0)

    def searched(**params):
        return search_thresholds(run, SearchConfig.from_parameters({**search, **params}),
                                 progress=False)

    proxy = searched(selection="proxy")
    assert proxy.attrs["criterion"] == "proxy"
    assert np.isnan(proxy.train_loss).all() and np.isfinite(proxy.threshold).all()

    relative = searched(selection="relative", selection_ratio=0.25)
    np.testing.assert_allclose(relative.threshold.values, 0.25 * vectors.values.max(axis=1))
    assert relative.sizes["threshold_index"] == 1 and np.isnan(relative.loss).all()
    np.testing.assert_array_equal(run.mask("pcmasking").values,
                                  vectors.values > relative.threshold.values[:, None])

    ds = searched(selection="val_loss", search_epochs=1)
    stack = run.checkpoints("threshold_search") / "stack_000"
    assert (stack / "history.nc").exists() and not (stack / "state.npz").exists()
    again = searched(selection="val_loss", search_epochs=1)  # cached
    np.testing.assert_array_equal(again.val_loss.values, ds.val_loss.values)
    stacks = searched(selection="val_loss", search_epochs=1, search_stack=50)
    np.testing.assert_allclose(stacks.val_loss.values, ds.val_loss.values, rtol=1e-5)
    chosen = ds.chosen_index.values
    rows = np.arange(N_OUT)
    loss = np.where(np.isnan(ds.threshold_value), np.inf, ds.loss.values)
    np.testing.assert_array_equal(loss[rows, chosen], loss.min(axis=1))
    masks = run.mask("pcmasking").values
    np.testing.assert_array_equal(masks, vectors.values > ds.threshold.values[:, None])
    on_disk = xr.open_dataset(run.artefact("thresholds.nc"))
    assert set(on_disk.loss.dims) == {"output", "threshold_index"}
    assert on_disk.attrs["criterion"] == "val_loss"

    # successive halving: 3 candidates, 2 epochs -> rounds [1, 1]; the better 2 of 3
    # continue; round 1 is the 1-epoch full search (same start, same batches)
    half = searched(selection="val_loss", search_epochs=2, search_halving=True)
    trained = half.epochs_trained.values
    valid = ~np.isnan(half.threshold_value.values)
    n_cand = valid.sum(axis=1)
    np.testing.assert_array_equal((trained == 2).sum(axis=1), np.ceil(n_cand / 2))
    stopped = trained == 1
    np.testing.assert_allclose(half.val_loss.values[stopped], ds.val_loss.values[stopped],
                               rtol=1e-5)
    assert np.all(trained[rows, half.chosen_index.values] == 2)  # chosen among survivors
    assert half.attrs["successive_halving"] == 1
    assert not list(stack.glob("round_*"))  # round checkpoints removed when done
    again = searched(selection="val_loss", search_epochs=2, search_halving=True)  # cached
    np.testing.assert_array_equal(again.val_loss.values, half.val_loss.values)
    # search_final: the chosen search networks are kept and become the final networks
    with pytest.raises(ParameterError, match="search_final"):
        searched(selection="val_loss", search_epochs=2, search_halving=True, search_final=True)
    kept = searched(selection="train_loss", search_epochs=1, search_final=True)
    assert (stack / "state.npz").exists()  # weights kept for a repeated search
    final = run.load_model("search_final")
    np.testing.assert_array_equal(final.get_mask(), run.mask("pcmasking").values)
    searched_net = premask.to_masking(run.mask("pcmasking").values)  # untrained start
    assert not np.allclose(np.asarray(final.dense[0].kernel),
                           np.asarray(searched_net.dense[0].kernel))
    x_val, y_val = _fake_split("valid", 300)
    err = ((predict_stacked(final, x_val) - y_val) ** 2).mean(axis=0)
    k = kept.chosen_index.values
    np.testing.assert_allclose(err, kept.val_loss.values[rows, k], rtol=1e-3, atol=1e-6)
    adopted = run_finetune(run, FinetuneConfig.from_parameters(dict(search_final=True)),
                           progress=False)
    assert adopted.attrs["no_retraining"] == 1 and adopted.sizes["network"] == N_OUT
    np.testing.assert_array_equal(np.asarray(run.load_model("pcmasking").dense[0].kernel),
                                  np.asarray(final.dense[0].kernel))
    again = searched(selection="train_loss", search_epochs=1, search_final=True)  # reloads
    np.testing.assert_array_equal(np.asarray(run.load_model("search_final").dense[1].kernel),
                                  np.asarray(final.dense[1].kernel))
    np.testing.assert_array_equal(again.threshold.values, kept.threshold.values)

    ds = searched(selection="val_loss", search_epochs=1)  # the masks of the full search
    masks = run.mask("pcmasking").values

    hist = run_finetune(run, FinetuneConfig.from_parameters(dict(finetune_epochs=1,
                                                                 batch_size=128)),
                        progress=False)
    assert np.isfinite(hist.loss.values).all()
    model = run.load_model("pcmasking")
    np.testing.assert_array_equal(model.get_mask(), masks)
    # masked-out inputs have no influence on the fine-tuned networks
    x, _ = _fake_split("valid", 64)
    noisy = x + 5.0 * (~masks[0])[None, :] * np.random.default_rng(3).standard_normal(x.shape)
    a = predict_stacked(model, x)[:, 0]
    b = predict_stacked(model, noisy.astype("float32"))[:, 0]
    np.testing.assert_allclose(a, b, atol=1e-5)
    # the fine-tuned net started from the pre-masking hidden weights, not afresh
    assert np.corrcoef(np.asarray(model.dense[0].kernel).ravel(),
                       np.asarray(premask.dense[1].kernel).ravel())[0, 1] > 0.9

    seconds = read_json(run.artefact("seconds.json"))
    assert {"premask", "unconstrained", "masking_vectors", "threshold_search",
            "finetune"} <= set(seconds)
    net = keras.saving.load_model(
        export_networks(model, run.root / "export")[-1], safe_mode=True)
    assert net.output_shape == (None, 1)

    # the paper's rule beside a run's own selection: the same masks as a run that selects
    # by the paper's rule itself, while the run's own artefacts stay untouched
    own = dict(search, selection="relative", selection_ratio=0.25, search_epochs=1)
    searched(**own)
    before = {name: run.artefact(name).read_bytes()
              for name in ("masking_vectors.nc", "thresholds.nc", "masks.nc")}
    beside = search_paper_rule(run, SearchConfig.from_parameters(own), progress=False)
    assert {name: run.artefact(name).read_bytes() for name in before} == before
    assert beside.attrs["criterion"] == "train_loss" and beside.attrs["percentile"] == 70
    assert (run.checkpoints("paper_rule_search") / "stack_000" / "history.nc").exists()
    paper_masks = run.mask("paper_rule").values
    itself = searched(**{**own, **PAPER_RULE})
    np.testing.assert_array_equal(paper_masks, run.mask("pcmasking").values)
    np.testing.assert_array_equal(beside.threshold.values, itself.threshold.values)
    assert set(run.masks()) == {"pcmasking", "paper_rule"}
    paper_hist = run_finetune(run, FinetuneConfig.from_parameters(
        dict(finetune_epochs=1, batch_size=128)), kind="paper_rule", progress=False)
    np.testing.assert_array_equal(run.load_model("paper_rule").get_mask(), paper_masks)
    assert run.history("paper_rule_finetune").sizes == paper_hist.sizes
    assert {"paper_rule_search", "paper_rule_finetune"} <= set(
        read_json(run.artefact("seconds.json")))
    with pytest.raises(ParameterError, match="ranking"):
        search_thresholds(run, SearchConfig.from_parameters({**own, "ranking": "screen"}),
                          kind="paper_rule", progress=False)
    # the L1 vectors and their loss search, whatever the run ranks by
    assert loss_search(run).attrs["criterion"] == "train_loss"  # thresholds.nc: row norms
    write_netcdf(vectors.assign_attrs(ranking="screen").to_dataset(),
                 run.artefact("masking_vectors.nc"))
    write_netcdf(itself.assign_attrs(ranking="screen", criterion="relative"),
                 run.artefact("thresholds.nc"))
    np.testing.assert_allclose(l1_masking_vectors(run).values, premask.masking_vectors())
    np.testing.assert_array_equal(loss_search(run).threshold.values, beside.threshold.values)
    run.artefact("paper_rule_thresholds.nc").unlink()
    with pytest.raises(DataError, match="paper_rule: true"):
        loss_search(run)


def test_finetune_needs_masks(fake_run):
    with pytest.raises(DataError, match="premask|masks"):
        run_finetune(fake_run, FinetuneConfig.from_parameters({"finetune_epochs": 1}),
                     progress=False)
    with pytest.raises(ParameterError, match="criterion"):
        search_thresholds(fake_run, SearchConfig.from_parameters({"selection": "best"}))
