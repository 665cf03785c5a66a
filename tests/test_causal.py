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
from pcm.config import CausalConfig
from pcm.io import read_json


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


def test_parallel_equals_serial_and_is_deterministic():
    cols = [toy_var(n_time=200, seed=s) for s in range(3)]
    x = np.stack([c[0] for c in cols], axis=1)
    y = np.stack([c[1] for c in cols], axis=1)
    y[:, 1, 0] = 0.0  # a constant output in one column
    serial = discover_columns(x, y, pc_alpha=0.05, n_jobs=1)
    again = discover_columns(x, y, pc_alpha=0.05, n_jobs=1)
    parallel = discover_columns(x, y, pc_alpha=0.05, n_jobs=2)
    for a, b, c in zip(serial, again, parallel, strict=True):
        np.testing.assert_array_equal(a.found, b.found)
        np.testing.assert_array_equal(a.found, c.found)
        np.testing.assert_array_equal(a.tested, c.tested)
    assert not serial[1].found[0].any()


def test_spawned_workers_give_the_same_links(monkeypatch):
    # a process that has imported TensorFlow spawns its workers instead of forking
    from multiprocessing import get_context

    import pcm.baselines.causal.discovery as discovery

    cols = [toy_var(n_time=120, seed=s) for s in (4, 5)]
    x = np.stack([c[0] for c in cols], axis=1)
    y = np.stack([c[1] for c in cols], axis=1)
    serial = discover_columns(x, y, n_jobs=1)
    monkeypatch.setattr(discovery, "_mp_context", lambda: get_context("spawn"))
    spawned = discover_columns(x, y, n_jobs=2)
    for a, b in zip(serial, spawned, strict=True):
        np.testing.assert_array_equal(a.found, b.found)


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
    datasets = pytest.importorskip("pcm.data.datasets")
    pytest.importorskip("pcm.data.synthetic")
    from pcm.rundir import RunDir

    run = RunDir(tmp_path_factory.mktemp("run"))
    files = datasets.write_synthetic_dataset(run.data_dir, steps=72, seed=0, n_lat=4, n_lon=4)
    run.write_manifest({k: v for k, v in files.items()}, source="synthetic")
    return run


def test_run_discovery_writes_masks(synthetic_run):
    from pcm.baselines.causal import run_discovery

    config = CausalConfig.from_parameters(dict(causal_columns=3, causal_pc_alpha=0.01,
                                               causal_share=0.5))
    ds = run_discovery(synthetic_run, config, n_steps=32, n_jobs=1)
    with xr.open_dataset(synthetic_run.artefact(CAUSAL_MASKS)) as saved:
        assert saved["mask"].dtype == bool
        assert saved["mask"].dims == ("output", "input")
        assert saved["mask"].shape == (65, 94)
        assert saved.attrs["n_columns"] == 3 and saved.attrs["share"] == 0.5
        assert saved.attrs["n_steps"] == 32
        np.testing.assert_array_equal(saved["mask"].values, ds["mask"].values)
        assert saved["output"].values[0] == "tphystnd-3.64"
        assert saved["input"].values[-1] == "lhflx"
        assert np.all((saved["link_share"] >= 0) & (saved["link_share"] <= 1))
        for name in ("mask", "link_share", "column_seconds"):
            assert "units" in saved[name].attrs and "long_name" in saved[name].attrs
    assert ds["mask"].values.any()
    assert "causal_discovery" in read_json(synthetic_run.artefact("seconds.json"))


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


def test_run_causal_training_uses_causal_mask(synthetic_run):
    from pcm.baselines.causal import run_causal_training, run_discovery

    if not synthetic_run.artefact(CAUSAL_MASKS).exists():
        run_discovery(synthetic_run, CausalConfig.from_parameters({"causal_columns": 2}),
                      n_jobs=1)
    config = CausalConfig.from_parameters(dict(hidden_layers=1, hidden_units=4, epochs=1,
                                               batch_size=64, max_samples=256))
    history = run_causal_training(synthetic_run, config, progress=False)
    assert history.sizes["network"] == 65
    model = synthetic_run.load_model("causal")
    assert not model.has_input_layer
    np.testing.assert_array_equal(model.get_mask(), synthetic_run.mask("causal").values)
    assert "causal_training" in read_json(synthetic_run.artefact("seconds.json"))
