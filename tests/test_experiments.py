"""The experiments chapter's functions on a tiny finished run (pcm.experiments)."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from pcm.analysis import experiment_figures  # noqa: E402
from pcm.errors import ParameterError  # noqa: E402
from pcm.experiments import shift_test, sparsity_validation, threshold_strategies  # noqa: E402
from pcm.rundir import RunDir  # noqa: E402
from pcm.sweep import run_sweep  # noqa: E402

TINY = ["data.steps=24", "data.n_lat=2", "data.n_lon=4", "hidden_layers=1", "hidden_units=4",
        "epochs=2", "finetune_epochs=1", "batch_size=64", "n_thresholds=3", "causal=false",
        "shap_background=4", "shap_samples=4", "l1=0.05"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    run_sweep(preset="ci", grid={"seed": [0]}, out=out, overrides=TINY)
    return RunDir(out / "points" / "seed-0")


def test_threshold_strategies(run):
    table = threshold_strategies(run, percentiles=(50.0, 95.0), tolerances=(0.05,))
    names = list(table["strategy"].values)
    assert names == ["val_loss", "val_loss + tolerance 0.05", "train_loss",
                     "train_loss + tolerance 0.05", "proxy", "proxy + tolerance 0.05",
                     "percentile 50", "percentile 95"]
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
    from pcm.experiments import stability_selection

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
