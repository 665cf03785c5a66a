"""The experiments chapter's functions on a tiny finished run (pcm.experiments.chapter)."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

from pcm.analysis import experiment_figures  # noqa: E402
from pcm.errors import ParameterError  # noqa: E402
from pcm.experiments.chapter import (  # noqa: E402
    goal_check,
    ranking_diagnosis,
    shift_test,
    sparsity_validation,
    threshold_strategies,
)
from pcm.experiments.sweep import run_sweep, run_table  # noqa: E402
from pcm.run.rundir import RunDir  # noqa: E402

#: A tiny sweep and run trained for the whole module: not in make test-fast.
pytestmark = pytest.mark.slow

TINY = ["data.steps=24", "data.n_lat=2", "data.n_lon=4", "hidden_layers=1", "hidden_units=4",
        "epochs=2", "finetune_epochs=1", "batch_size=64", "n_thresholds=3", "causal=false",
        "shap_background=4", "shap_samples=4", "l1=0.05"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    run_sweep(preset="ci", grid={"seed": [0]}, out=out, overrides=TINY)
    return RunDir(out / "points" / "seed-0")


def test_threshold_strategies(run):
    table = threshold_strategies(run, percentiles=(50.0, 95.0), tolerances=(0.05,),
                                 ratios=(0.0, 0.5))
    names = list(table["strategy"].values)
    assert names == ["val_loss", "val_loss + tolerance 0.05", "train_loss",
                     "train_loss + tolerance 0.05", "proxy", "proxy + tolerance 0.05",
                     "percentile 50", "percentile 95", "relative 0", "relative 0.5"]
    # ratio 0 keeps every input with a positive entry; a larger ratio keeps fewer
    vectors = run.masking_vectors().values
    assert table["inputs_kept"].sel(strategy="relative 0") == pytest.approx(
        (vectors > 0).sum(axis=1).mean())
    assert (table["inputs_kept"].sel(strategy="relative 0.5")
            < table["inputs_kept"].sel(strategy="relative 0"))
    # the run's own rule (val_loss, tolerance 0) gives the run's own masks
    kept = run.mask("pcmasking").values.sum(axis=1).mean()
    assert table["inputs_kept"].sel(strategy="val_loss") == pytest.approx(kept)
    # fixed percentiles keep the share of inputs above them (ties aside)
    assert table["inputs_kept"].sel(strategy="percentile 50") == pytest.approx(47, abs=1)
    assert table["inputs_kept"].sel(strategy="percentile 95") == pytest.approx(5, abs=1)
    assert (table["f1"] >= 0).all() and (table["f1"] <= 1).all()
    # a tolerance can only pick a sparser (or the same) mask
    assert (table["inputs_kept"].sel(strategy="proxy + tolerance 0.05")
            <= table["inputs_kept"].sel(strategy="proxy"))
    experiment_figures.strategy_bars(table)


def test_sparsity_validation(run):
    ds = sparsity_validation(run)
    assert list(ds["group"].values) == ["driver", "non-driver", "untrained"]
    # untrained vectors: RandomNormal(0, 0.01) rows of 94 -> norm ~ 0.01 * sqrt(94)
    assert ds["quantile"].sel(group="untrained", q=0.5) == pytest.approx(0.097, rel=0.1)
    assert not np.allclose(ds["untrained"].values, ds["masking_vector"].values)
    assert int(ds["drivers"].sum()) == 458
    experiment_figures.sparsity_histograms(ds)


def test_shift_test(run):
    ds = shift_test(run, (-4.0, 0.0, 4.0), steps=2)
    assert list(ds["model"].values) == ["unconstrained", "pcmasking"]
    assert ds["r2"].dims == ("model", "shift", "var") and ds.sizes["shift"] == 3
    assert ds["shift"].attrs["units"] == "K"
    assert (run.root / "experiments" / "shift_r2.nc").exists()
    assert (run.root / "experiments" / "sst_+4K.nc").exists()
    # the shifted climate is a different test set: its R² differs from the control's
    assert not np.allclose(ds["r2_mean"].sel(shift=4.0), ds["r2_mean"].sel(shift=0.0))
    experiment_figures.shift_curves(ds)
    with pytest.raises(ParameterError, match="shifts"):
        shift_test(run, ())


def test_stability_selection(run):
    from pcm.experiments.chapter import stability_selection

    ds = stability_selection(run, runs=3, share=0.6)
    assert list(ds["rule"].values) == ["single run", "stability"]
    freq = ds["selection_frequency"].values
    assert set(np.unique(freq)) <= {0.0, 1 / 3, 2 / 3, 1.0}
    # kept = selected by at least 2 of 3 runs
    np.testing.assert_array_equal(ds["stable_mask"].values, freq >= 0.6)
    # each run keeps as many inputs per output as the single-run mask
    kept = run.mask("pcmasking").values.sum(axis=1)
    np.testing.assert_allclose(freq.sum(axis=1), kept)
    assert ds["inputs_kept"].sel(rule="single run") == pytest.approx(kept.mean())
    assert ds.attrs["seconds"] > 0 and (run.root / "experiments" / "stability").is_dir()
    with pytest.raises(ParameterError, match="share"):
        stability_selection(run, share=0.0)


def test_cli_experiments_checks_parameters_and_run_before_executing(tmp_path, capsys):
    from pcm.cli import main

    status = main(["experiments", "--run", str(tmp_path), "--set", "lambda=[1]"])
    err = capsys.readouterr().err
    assert status == 2 and "lambda" in err and "lambdas" in err  # names the declared ones
    status = main(["experiments", "--run", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert status == 2 and "not a finished run" in err and "nowhere" in err


def test_goal_check_needs_all_three_targets():
    def column(values):
        return ("point", np.asarray(values, dtype=float))
    # point 0 meets all targets; 1 misses F1; 2 misses the SHAP share; 3 loses R²
    table = xr.Dataset({
        "strong_f1": column([0.92, 0.85, 0.95, 0.95]),
        "oracle_strong_f1": column([0.95, 0.9, 0.97, 0.97]),
        "shap_nondriver_share_pcmasking": column([0.04, 0.01, 0.08, 0.01]),
        "r2_unconstrained_mean": column([0.80, 0.80, 0.80, 0.80]),
        "r2_pcmasking_mean": column([0.79, 0.85, 0.80, 0.77]),
    }, coords={"point": ["a", "b", "c", "d"]})
    goal = goal_check(table)
    assert goal["meets_goal"].values.tolist() == [True, False, False, False]
    np.testing.assert_allclose(goal["r2_gap"].values, [0.01, -0.05, 0.0, 0.03], atol=1e-12)


def test_run_table_has_the_sweep_columns(run):
    table = run_table(run)
    assert table.sizes["point"] == 1
    assert {"strong_f1", "oracle_strong_f1", "shap_nondriver_share_pcmasking",
            "r2_pcmasking_mean", "r2_unconstrained_mean"} <= set(table.data_vars)
    assert bool(np.isfinite(goal_check(table)["r2_gap"]).all())


def test_ranking_diagnosis_sums_per_variable(run):
    per_output, per_variable = ranking_diagnosis(run, samples=500)
    assert list(per_variable["variable"].values)[:2] == ["TPHYSTND", "PHQ"]
    for name in ("n_strong", "n_ahead", "n_proxy_ahead", "n_strong_unused",
                 "n_unused_stand_in"):
        assert int(per_variable[name].sum()) == int(per_output[name].sum())
    assert int(per_variable["outputs"].sum()) == per_output.sizes["output"]
    assert (per_output["n_proxy_ahead"] <= per_output["n_ahead"]).all()
    assert (per_output["n_strong_unused"] <= per_output["n_strong"]).all()
    assert (per_output["n_unused_stand_in"] <= per_output["n_strong_unused"]).all()
