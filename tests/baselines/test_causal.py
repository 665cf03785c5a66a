"""Causally-informed baseline: PC1 per column (real tigramite), aggregation, phases."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from pcm.analysis.scoring import mean_driver_scores
from pcm.baselines.causal import (
    CAUSAL_MASKS,
    aggregate_links,
    discover_column,
    discover_columns,
    link_assumptions,
    select_columns,
)
from pcm.io import read_json
from pcm.params.config import CausalConfig


def toy_var(n_time: int = 400, n_in: int = 6, n_out: int = 3, *, seed: int = 0,
            lag: int = 1, phi: float = 0.8):
    """AR(1) inputs; outputs driven by known inputs at ``t - lag``; returns x, y, truth."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n_time, n_in))
    for t in range(1, n_time):
        x[t] = phi * x[t - 1] + rng.normal(size=n_in)
    truth = np.zeros((n_out, n_in), dtype=bool)
    truth[0, [0, 2]] = True
    truth[1, 1] = True
    truth[2, [3, 4, 5]] = True
    weights = np.where(truth, rng.choice([-1.0, 1.0], size=truth.shape), 0.0)
    y = np.zeros((n_time, n_out))
    y[lag:] = x[:n_time - lag] @ weights.T + 0.5 * rng.normal(size=(n_time - lag, n_out))
    return x, y, truth


def test_link_assumptions_only_inputs_at_lag_one():
    la = link_assumptions(3, 2)
    assert la[0] == la[1] == la[2] == {}
    assert la[3] == {(0, -1): "-?>", (1, -1): "-?>", (2, -1): "-?>"}
    assert set(la) == {0, 1, 2, 3, 4}


def test_discover_column_recovers_lag1_links():
    x, y, truth = toy_var()
    result = discover_column(x, y, pc_alpha=0.01)
    assert result.found.shape == result.tested.shape == (3, 6)
    assert result.tested.all()
    np.testing.assert_array_equal(result.found, truth)


def test_fast_parcorr_equals_tigramite_parcorr():
    # the numpy correlation / t-test shortcut must not change a single decision
    x, y, _ = toy_var(n_time=150, seed=3)
    x[:, 5] = x[:, 4] + 0.05 * x[:, 3]  # collinear inputs: many conditional tests
    for alpha in (0.01, 0.2):
        fast = discover_column(x, y, pc_alpha=alpha, fast=True)
        stock = discover_column(x, y, pc_alpha=alpha, fast=False)
        np.testing.assert_array_equal(fast.found, stock.found)


def test_discover_column_finds_same_step_drivers_of_smooth_inputs():
    # the CBRAIN pairing: outputs at t depend on inputs at t; smooth (AR) inputs at t-1
    # stand in for them
    x, y, truth = toy_var(lag=0, phi=0.95, seed=1)
    scores = mean_driver_scores(discover_column(x, y, pc_alpha=0.01).found, truth)
    assert scores["recall"] == 1.0
    assert scores["precision"] == 1.0


def test_constant_output_and_input_do_not_crash():
    x, y, truth = toy_var(n_time=300)
    x[:, 1] = 3.0  # constant input: driver of output 1, untestable here
    y[:, 2] = 0.0  # constant output (e.g. a tendency that is zero in this column)
    result = discover_column(x, y, pc_alpha=0.01)
    assert not result.found[2].any() and not result.tested[2].any()
    assert not result.tested[:, 1].any() and not result.found[:, 1].any()
    np.testing.assert_array_equal(result.found[0], truth[0])


def test_all_constant_and_too_short_columns():
    result = discover_column(np.ones((50, 4)), np.zeros((50, 2)))
    assert not result.found.any() and not result.tested.any()
    x, y, _ = toy_var(n_time=8)
    short = discover_column(x, y)
    assert not short.found.any() and not short.tested.any()


def test_aggregation_is_area_weighted_and_skips_untested_columns():
    found = np.zeros((3, 1, 2), dtype=bool)
    tested = np.ones((3, 1, 2), dtype=bool)
    found[:, 0, 0] = [True, False, True]  # share (1 + 2) / (1 + 1 + 2) = 0.75
    found[:, 0, 1] = [True, True, False]  # share 2 / 4 = 0.5 ...
    weights = np.array([1.0, 1.0, 2.0])
    mask, share = aggregate_links(found, tested, weights, share=0.59)
    np.testing.assert_allclose(share, [[0.75, 0.5]])
    np.testing.assert_array_equal(mask, [[True, False]])
    tested[2, 0, 1] = False  # ... but 2 / 2 = 1 if the heavy column cannot test it
    mask, share = aggregate_links(found, tested, weights, share=0.59)
    np.testing.assert_allclose(share, [[0.75, 1.0]])
    assert mask.all()
    mask, share = aggregate_links(found, np.zeros_like(tested), weights)
    assert not mask.any() and not share.any()
    assert aggregate_links(found, tested, weights, share=0.75)[0][0, 0]  # >= is inclusive


def test_select_columns_spread_unique_and_deterministic():
    cols = select_columns(8, 16, 8)
    assert cols.shape == (8, 2)
    np.testing.assert_array_equal(np.sort(cols[:, 0]), np.arange(8))  # every latitude once
    assert len(set(cols[:, 1].tolist())) > 1  # not one meridian
    np.testing.assert_array_equal(cols, select_columns(8, 16, 8))
    assert not np.array_equal(cols, select_columns(8, 16, 8, seed=1))
    many = select_columns(4, 4, 12)
    assert len({tuple(c) for c in many.tolist()}) == 12
    flat = many[:, 0] * 4 + many[:, 1]
    assert np.all(np.diff(flat) > 0)  # CBRAIN sample order
    assert select_columns(4, 4, None).shape == (16, 2)


def _columns(seeds, n_time=200):
    cols = [toy_var(n_time=n_time, seed=s) for s in seeds]
    return np.stack([c[0] for c in cols], axis=1), np.stack([c[1] for c in cols], axis=1)


def _assert_same(a, b):
    assert len(a) == len(b)
    for ra, rb in zip(a, b, strict=True):
        np.testing.assert_array_equal(ra.found, rb.found)
        np.testing.assert_array_equal(ra.tested, rb.tested)


@pytest.mark.slow
def test_dask_cluster_equals_serial_and_is_deterministic():
    x, y = _columns(range(5))
    y[:, 1, 0] = 0.0  # a constant output in one column
    serial = discover_columns(x, y, pc_alpha=0.05, n_jobs=1)
    again = discover_columns(x, y, pc_alpha=0.05, n_jobs=1, batch_columns=1)
    parallel = discover_columns(x, y, pc_alpha=0.05, n_jobs=2, batch_columns=2)
    _assert_same(serial, again)
    _assert_same(serial, parallel)
    assert not serial[1].found[0].any()
    assert any(r.found.any() for r in serial)


@pytest.mark.slow
def test_discovery_resumes_from_stored_batches(tmp_path, monkeypatch):
    import pcm.baselines.causal.discovery as discovery

    x, y = _columns((6, 7, 8), n_time=120)
    reference = discover_columns(x, y, n_jobs=1)
    first = discover_columns(x, y, n_jobs=2, batch_columns=1, checkpoint_dir=tmp_path)
    _assert_same(reference, first)
    files = sorted(tmp_path.glob("batch_*.npz"))
    assert [f.name for f in files] == ["batch_000000-000001.npz", "batch_000001-000002.npz",
                                       "batch_000002-000003.npz"]
    files[1].unlink()  # an interruption after two of the three batches
    calls = []
    original = discovery.discover_column

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(discovery, "discover_column", counting)
    resumed = discover_columns(x, y, n_jobs=1, batch_columns=1, checkpoint_dir=tmp_path)
    assert len(calls) == 1  # only the missing batch is recomputed
    _assert_same(reference, resumed)
    discover_columns(x, y, n_jobs=1, batch_columns=1, checkpoint_dir=tmp_path)
    assert len(calls) == 1  # everything stored: nothing recomputed
    # other settings (here pc_alpha) do not reuse the stored batches
    discover_columns(x, y, pc_alpha=0.2, n_jobs=1, batch_columns=1, checkpoint_dir=tmp_path)
    assert len(calls) == 4


def _boxcox_mle_z(shares):
    """Box-Cox z-scores with the parameter found by a plain grid search of the profile
    log-likelihood (independent of scipy.stats.boxcox)."""
    logs = np.log(shares)
    best, best_llf = None, -np.inf
    for lam in np.linspace(-3, 3, 60001):
        t = logs if abs(lam) < 1e-12 else (shares ** lam - 1) / lam
        llf = (lam - 1) * logs.sum() - len(shares) / 2 * np.log(t.var())
        if llf > best_llf:
            best, best_llf = t, llf
    return (best - best.mean()) / best.std()


def test_quantile_rule_on_a_two_level_share_vector():
    # 10 inputs found in 60 % of the columns, 84 never (floored to 1e-5). Any monotone
    # transform of two values standardises to z = sqrt(84/10) = 2.898 and
    # -sqrt(10/84) = -0.345, whatever the Box-Cox parameter; the threshold is -ppf(1-q):
    # q=0.3 -> -0.524 (all 94 kept), q=0.4 -> -0.253 and q=0.95 -> 1.645 (the 10 kept).
    from pcm.baselines.causal import quantile_parents

    shares = np.r_[np.zeros(84), np.full(10, 0.6)]
    high = np.r_[np.zeros(84, dtype=bool), np.ones(10, dtype=bool)]
    assert quantile_parents(shares, 0.0).all()  # threshold -inf
    assert quantile_parents(shares, 0.3).all()
    np.testing.assert_array_equal(quantile_parents(shares, 0.4), high)
    np.testing.assert_array_equal(quantile_parents(shares, 0.95), high)
    assert not quantile_parents(np.zeros(94), 0.0).any()  # no link anywhere: no parents


def test_quantile_rule_matches_an_independent_computation():
    from scipy import stats

    from pcm.baselines.causal import quantile_masks, quantile_parents

    rng = np.random.default_rng(0)
    shares = np.r_[rng.beta(0.5, 4.0, size=80), rng.uniform(0.5, 1.0, size=14)]
    shares[:7] = 0.0  # never found: raised to the floor 1e-5
    z = _boxcox_mle_z(np.maximum(shares, 1e-5))
    for q, limit in ((0.05, -1.6448536), (0.25, -0.6744898), (0.5, 0.0),
                     (0.75, 0.6744898), (0.95, 1.6448536)):
        assert -stats.norm.ppf(1 - q) == pytest.approx(limit, abs=1e-6)
        expected = z > limit
        np.testing.assert_array_equal(quantile_parents(shares, q), expected)
    counts = [quantile_parents(shares, q).sum() for q in (0.05, 0.5, 0.95)]
    assert counts[0] > counts[1] > counts[2] > 0  # a larger q keeps fewer parents
    masks = quantile_masks(np.stack([shares, shares[::-1]]), [0.05, 0.5, 0.95])
    assert masks.shape == (2, 3, 94)
    np.testing.assert_array_equal(masks[1, 1], quantile_parents(shares[::-1], 0.5))


def test_link_shares_count_untested_columns_as_no_link():
    from pcm.baselines.causal import link_shares

    found = np.zeros((4, 1, 3), dtype=bool)
    tested = np.ones((4, 1, 3), dtype=bool)
    found[:, 0, 0] = [True, True, False, False]
    found[:, 0, 1] = [True, False, False, False]
    tested[1:, 0, 1] = False  # testable in one column only: still 1/4, not 1/1
    np.testing.assert_allclose(link_shares(found, tested), [[0.5, 0.25, 1e-5]])


def test_log_precipitation_only_touches_prect():
    from pcm.baselines.causal.data import PRECT_LOG_OFFSET, log_precipitation

    y = np.ones((3, 65), dtype=np.float32)
    y[:, 64] = [0.0, 1e-8, 2e-7]
    out = log_precipitation(y)
    np.testing.assert_array_equal(out[:, :64], y[:, :64])
    np.testing.assert_allclose(out[:, 64], np.log(np.array([0.0, 1e-8, 2e-7]) +
                                                  PRECT_LOG_OFFSET), rtol=1e-6)
    assert np.all(np.isfinite(out)) and y[0, 64] == 0.0  # a copy


def test_causal_masks_are_scored_by_the_one_rule():
    # per output, then averaged over outputs with drivers (not pooled over all links):
    # output 0 P=R=F1=1/2, output 1 P=R=F1=1, output 2 has no drivers (not scored)
    truth = np.array([[True, False, True], [False, False, True], [False, False, False]])
    mask = np.array([[True, True, False], [False, False, True], [True, False, False]])
    s = mean_driver_scores(mask, truth)
    assert s["n_scored"] == 2
    assert s["precision"] == pytest.approx(0.75) and s["recall"] == pytest.approx(0.75)
    assert s["f1"] == pytest.approx(0.75)


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    from pcm.data import datasets
    from pcm.run.rundir import RunDir

    run = RunDir(tmp_path_factory.mktemp("run"))
    files = datasets.write_synthetic_dataset(run.data_dir, steps=72, seed=0, n_lat=4, n_lon=4)
    run.write_manifest({k: v for k, v in files.items()}, source="synthetic")
    return run


@pytest.mark.slow
def test_run_discovery_writes_masks(synthetic_run):
    from pcm.baselines.causal import run_discovery

    config = CausalConfig.from_parameters(dict(causal_columns=3, causal_pc_alpha=0.01,
                                               causal_share=0.5, causal_rule="share"))
    ds = run_discovery(synthetic_run, config, n_steps=32, n_jobs=1)
    with xr.open_dataset(synthetic_run.artefact(CAUSAL_MASKS)) as saved:
        assert saved["mask"].dtype == bool
        assert saved["mask"].dims == ("output", "input")
        assert saved["mask"].shape == (65, 94)
        assert saved.attrs["n_columns"] == 3 and saved.attrs["share"] == 0.5
        assert saved.attrs["n_steps"] == 32 and saved.attrs["rule"] == "share"
        np.testing.assert_array_equal(saved["mask"].values, ds["mask"].values)
        assert saved["output"].values[0] == "tphystnd-3.64"
        assert saved["input"].values[-1] == "lhflx"
        assert np.all((saved["link_share"] >= 0) & (saved["link_share"] <= 1))
        for name in ("mask", "link_share", "column_seconds"):
            assert "units" in saved[name].attrs and "long_name" in saved[name].attrs
    assert ds["mask"].values.any()
    assert "causal_discovery" in read_json(synthetic_run.artefact("seconds.json"))
    assert len(list(synthetic_run.checkpoints("causal_discovery").glob("batch_*.npz"))) == 1


@pytest.mark.slow
def test_run_discovery_quantile_rule_gives_candidates_per_q(synthetic_run):
    from pcm.baselines.causal import quantile_masks, run_discovery

    config = CausalConfig.from_parameters(dict(causal_columns=3, causal_quantiles=4))
    ds = run_discovery(synthetic_run, config, n_steps=32, n_jobs=1)
    assert ds.attrs["rule"] == "quantile" and "mask" not in ds  # chosen by the q search
    np.testing.assert_allclose(ds["quantile"].values, [0.0, 0.25, 0.5, 0.75])
    cand = ds["candidate_mask"].values
    assert cand.shape == (65, 4, 94)
    np.testing.assert_array_equal(cand, quantile_masks(ds["link_share"].values,
                                                       [0.0, 0.25, 0.5, 0.75]))
    assert ds["link_share"].values.min() == pytest.approx(1e-5)
    # q = 0 keeps every input of an output with any link; larger q never keeps more
    assert np.all(cand.sum(axis=2)[:, :-1] >= cand.sum(axis=2)[:, 1:])
    linked = ds["link_share"].values.max(axis=1) > 1e-5
    assert cand[linked, 0].all() and not cand[~linked].any()


def test_run_discovery_rejects_bad_parameters(synthetic_run):
    from pcm.baselines.causal import run_discovery
    from pcm.errors import ParameterError

    with pytest.raises(ParameterError, match="share"):
        run_discovery(synthetic_run, CausalConfig.from_parameters({"causal_share": 1.5}))
    with pytest.raises(ParameterError, match="pc_alpha"):
        run_discovery(synthetic_run, CausalConfig.from_parameters({"causal_pc_alpha": 0.0}))


def test_shuffled_series_look_shuffled():
    from pcm.baselines.causal.phases import lag1_autocorrelation

    x, _, _ = toy_var(n_time=200, phi=0.9)
    series = x[:, None, :]
    assert lag1_autocorrelation(series) > 0.7
    shuffled = series[np.random.default_rng(0).permutation(200)]
    assert abs(lag1_autocorrelation(shuffled)) < 0.1


def test_non_finite_series_is_rejected():
    x, y, _ = toy_var(n_time=50)
    x[3, 2] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        discover_column(x, y)


def test_parents_only_init_gives_the_parents_only_glorot_scale():
    from pcm.baselines.causal.phases import parents_only_init
    from pcm.nn.networks import StackedMLP, glorot_limit

    masks = np.zeros((2, 94), dtype=bool)
    masks[0, :4] = True
    masks[1] = True
    model = StackedMLP(2, (64,), input_layer=False, seed=3)
    before = np.asarray(model.dense[0].kernel).copy()
    parents_only_init(model, masks)
    after = np.asarray(model.dense[0].kernel)
    np.testing.assert_allclose(after[1], before[1])  # 94 parents: unchanged
    ratio = glorot_limit(4, 64) / glorot_limit(94, 64)
    np.testing.assert_allclose(after[0], before[0] * ratio, rtol=1e-6)
    assert np.abs(after[0]).max() <= glorot_limit(4, 64)
    assert np.abs(after[0]).max() > 0.9 * glorot_limit(4, 64)


@pytest.mark.slow
def test_run_causal_training_searches_q_per_output(synthetic_run):
    from pcm.baselines.causal import run_causal_training, run_discovery

    run_discovery(synthetic_run, CausalConfig.from_parameters(
        {"causal_columns": 3, "causal_quantiles": 4}), n_steps=32, n_jobs=1)
    with xr.open_dataset(synthetic_run.artefact(CAUSAL_MASKS)) as ds:
        cand = ds["candidate_mask"].values
    distinct = sum(len(np.unique(c, axis=0)) for c in cand)
    config = CausalConfig.from_parameters(dict(hidden_layers=1, hidden_units=4,
                                               causal_epochs=1, batch_size=64,
                                               max_samples=256))
    history = run_causal_training(synthetic_run, config, progress=False)
    assert history.sizes["network"] == distinct  # one network per distinct parent set
    model = synthetic_run.load_model("causal")
    assert model.n_networks == 65 and list(model.targets) == list(range(65))
    assert not model.has_input_layer
    with xr.open_dataset(synthetic_run.artefact(CAUSAL_MASKS)) as ds:
        mask = ds["mask"].values.astype(bool)
        q = ds["quantile_chosen"].values
        loss = ds["candidate_val_loss"].values
        np.testing.assert_array_equal(ds["n_parents"].values, mask.sum(axis=1))
    np.testing.assert_array_equal(model.get_mask(), mask)
    np.testing.assert_array_equal(synthetic_run.mask("causal").values, mask)
    for o in range(65):
        k = int(np.flatnonzero(np.isclose([0.0, 0.25, 0.5, 0.75], q[o]))[0])
        np.testing.assert_array_equal(mask[o], cand[o, k])  # parents of the chosen q
        assert loss[o, k] == np.nanmin(loss[o])  # ... which has the lowest loss
    assert "causal_training" in read_json(synthetic_run.artefact("seconds.json"))


def test_paper_preset_is_the_published_configuration():
    from pcm.params.presets import preset

    paper = preset("paper")
    assert (paper["selection"], paper["threshold_percentile"], paper["n_thresholds"],
            paper["search_epochs"], paper["search_final"]) == ("train_loss", 70.0, 20, 9, True)
    assert (paper["causal_columns"], paper["causal_rule"], paper["causal_quantiles"],
            paper["causal_epochs"], paper["causal_pc_alpha"]) == (None, "quantile", 20, 18, 0.01)
    assert (paper["hidden_layers"], paper["hidden_units"], paper["epochs"]) == (9, 256, 9)
    # the published per-output q (causalnn_published) lie on 0, 0.05, ..., 0.95
    from pcm.baselines.causal import quantile_grid

    np.testing.assert_allclose(quantile_grid(paper["causal_quantiles"]),
                               np.arange(20) * 0.05, atol=1e-12)
