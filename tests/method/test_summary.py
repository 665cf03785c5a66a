"""Evaluation phases on a tiny run directory: r2.nc, shap.nc and summary.json."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

from pcm.errors import ParameterError  # noqa: E402
from pcm.io import write_json, write_netcdf  # noqa: E402
from pcm.params.config import EvaluationConfig, ShapConfig  # noqa: E402
from pcm.run.rundir import RunDir  # noqa: E402
from pcm.variables import (  # noqa: E402
    INPUT_VARIABLES,
    LEVELS_HPA,
    OUTPUT_VARIABLES,
    VARIABLES,
    gaussian_grid,
    input_labels,
    output_labels,
)

N_LAT, N_LON = 3, 4


def _fields(rng, n_time: int, shift: float = 0.0) -> xr.Dataset:
    grid = gaussian_grid(N_LAT, N_LON)
    data = {}
    for name in INPUT_VARIABLES + OUTPUT_VARIABLES:
        three_d = VARIABLES[name].three_d
        shape = (n_time, 30, N_LAT, N_LON) if three_d else (n_time, N_LAT, N_LON)
        dims = ("time", "lev", "lat", "lon") if three_d else ("time", "lat", "lon")
        data[name] = (dims, rng.normal(size=shape) + shift)
    data["FSNT"] = (("time", "lat", "lon"), np.full((n_time, N_LAT, N_LON), 240.0))
    return xr.Dataset(data, coords={"time": np.arange(n_time) * 1800.0, "lev": LEVELS_HPA,
                                    "lat": grid["lat"], "lon": grid["lon"]})


def _make_run(root, *, drivers: bool) -> RunDir:
    from pcm.data.cbrain_write import write_cbrain
    from pcm.data.normalization import compute_norm, write_norm
    from pcm.nn.networks import StackedMLP

    rng = np.random.default_rng(0)
    run = RunDir(root)
    files = {}
    for split, steps, shift in (("train", 6, 0.0), ("test", 4, 0.0), ("plus4K", 3, 0.5)):
        files[split] = write_cbrain(_fields(rng, steps, shift), run.data_dir / f"{split}.nc")
    files["valid"] = files["test"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        files["norm"] = write_norm(compute_norm(files["train"]), run.data_dir / "norm.nc")
    truth = rng.uniform(size=(65, 94)) > 0.8
    truth[64] = False  # PRECT: no true driver (degenerate)
    if drivers:
        files["drivers"] = write_netcdf(
            xr.Dataset({"drivers": (("output", "input"), truth)},
                       coords={"output": output_labels(), "input": input_labels()}),
            run.data_dir / "drivers.nc")
    run.write_manifest(files, source="synthetic" if drivers else "spcam")
    run.model("x").parent.mkdir(parents=True, exist_ok=True)
    StackedMLP(65, (8,), seed=1).save(run.model("unconstrained"))
    mask = rng.uniform(size=(65, 94)) > 0.5
    masked = StackedMLP(65, (8,), seed=2)
    masked.set_mask(mask)
    masked.save(run.model("pcmasking"))
    write_netcdf(xr.Dataset({"mask": (("output", "input"), mask)},
                            coords={"output": output_labels(), "input": input_labels()}),
                 run.artefact("masks.nc"))
    write_json({"premask": 1.5}, run.artefact("seconds.json"))
    return run


def _shap(background: int, explained: int, seed: int) -> ShapConfig:
    return ShapConfig(seed=seed, shap_background=background, shap_samples=explained)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from pcm.method.evaluate import run_r2
    from pcm.method.explain import run_shap

    run = _make_run(tmp_path_factory.mktemp("run"), drivers=True)
    run_r2(run, EvaluationConfig.from_parameters({}))
    run_shap(run, _shap(8, 5, 0))
    return run


def test_r2_artefact(run):
    with xr.open_dataset(run.artefact("r2.nc")) as ds:
        assert list(ds["model"].values) == ["unconstrained", "pcmasking"]
        assert list(ds["climate"].values) == ["control", "plus4K"]  # no minus4K file
        assert ds["r2_map"].dims == ("model", "climate", "output", "lat", "lon")
        assert ds["r2_map"].shape == (2, 2, 65, N_LAT, N_LON)
        assert ds["r2"].attrs["units"] == "1" and "long_name" in ds["r2"].attrs
        assert np.isnan(ds["r2"].sel(output="fsnt")).all()  # constant output
        assert np.isfinite(ds["r2"].sel(output="prect")).all()
        r2 = ds["r2"].sel(model="unconstrained", climate="control").values
    # same numbers as the pure function on the same data, in physical units
    from pcm.analysis.r2 import r2_dataset
    from pcm.data.datasets import load_split
    from pcm.data.normalization import Normalization
    from pcm.method.evaluate import predict

    norm = Normalization.from_file(run.data_path("norm"), warn=False)
    x, y = load_split(run.data_path("test"), norm)
    pred = predict(run.load_model("unconstrained"), x)
    grid = gaussian_grid(N_LAT, N_LON)
    direct = r2_dataset(norm.denormalize_outputs(y, dtype="float64"),
                        norm.denormalize_outputs(pred, dtype="float64"),
                        grid["lat"], grid["lon"])
    np.testing.assert_allclose(r2, direct["r2"].values, rtol=1e-6)


def test_r2_max_samples(tmp_path):
    from pcm.method.evaluate import run_r2

    small = _make_run(tmp_path / "small", drivers=False)
    ds = run_r2(small, EvaluationConfig(eval_samples=2 * N_LAT * N_LON + 5),
                kinds=("pcmasking",))
    assert list(ds["model"].values) == ["pcmasking"]
    with pytest.raises(ParameterError, match="eval_samples"):
        run_r2(small, EvaluationConfig(eval_samples=N_LAT * N_LON - 1))


def test_shap_artefact(run):
    with xr.open_dataset(run.artefact("shap.nc")) as ds:
        assert ds["shap"].dims == ("model", "output", "input")
        assert ds["shap"].shape == (2, 65, 94)
        assert ds.attrs["method"] == "deep" and ds.attrs["n_explain"] == 5
        assert (ds["shap"].values >= 0).all()
        mask = xr.open_dataset(run.artefact("masks.nc"))["mask"].values
        assert (ds["shap"].sel(model="pcmasking").values[~mask] == 0).all()
        assert "units" in ds["shap"].attrs


@pytest.mark.slow
def test_shap_methods_and_seed(tmp_path):
    from pcm.method.explain import run_shap

    small = _make_run(tmp_path / "small", drivers=False)
    config = _shap(4, 3, 5)
    a = run_shap(small, config, method="gradient_input")
    b = run_shap(small, config, method="gradient_input")
    np.testing.assert_array_equal(a["shap"].values, b["shap"].values)
    deep = run_shap(small, config, method="deep", kinds=("pcmasking",))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = run_shap(small, config, method="deepexplainer", kinds=("pcmasking",))
    np.testing.assert_allclose(deep["shap"].values, ref["shap"].values, rtol=1e-4, atol=1e-7)
    with pytest.raises(ParameterError, match="method"):
        run_shap(small, config, method="kernel")


def test_summary_keys_and_values(run):
    from pcm.method.summary import write_summary

    summary = write_summary(run)
    text = run.artefact("summary.json").read_text()
    assert "NaN" not in text
    assert json.loads(text) == summary
    assert set(summary) >= {"r2", "drivers", "shap_nondriver_share", "seconds"}
    assert list(summary["r2"]) == ["unconstrained", "pcmasking"]
    control = summary["r2"]["pcmasking"]["control"]
    assert list(control) == list(OUTPUT_VARIABLES)
    assert control["FSNT"] is None  # zero variance -> NaN -> null
    assert isinstance(control["TPHYSTND"], float)
    assert set(summary["r2"]["unconstrained"]) == {"control", "plus4K"}
    assert list(summary["drivers"]) == ["pcmasking"]  # only kinds with masks
    assert set(summary["drivers"]["pcmasking"]) == {"precision", "recall", "f1"}
    assert 0 <= summary["drivers"]["pcmasking"]["precision"] <= 1
    assert set(summary["drivers_by_variable"]["pcmasking"]) == set(OUTPUT_VARIABLES)
    assert set(summary["shap_nondriver_share"]) == {"unconstrained", "pcmasking"}
    assert 0 < summary["shap_nondriver_share"]["unconstrained"] < 1
    assert summary["seconds"]["premask"] == 1.5  # merged, not overwritten
    assert summary["seconds"]["r2"] > 0 and summary["seconds"]["shap"] > 0


def test_summary_without_ground_truth(tmp_path):
    from pcm.method.evaluate import run_r2
    from pcm.method.summary import write_summary

    real = _make_run(tmp_path / "real", drivers=False)
    run_r2(real, EvaluationConfig.from_parameters({}), kinds=("unconstrained",))
    summary = write_summary(real)
    assert summary["drivers"] == {} and summary["shap_nondriver_share"] == {}
    assert list(summary["r2"]) == ["unconstrained"]


def test_cost_comparison_ratio_and_extrapolation():
    from pcm.method.summary import cost_comparison

    seconds = {"premask": 60.0, "masking_vectors": 0.0, "threshold_search": 30.0,
               "finetune": 10.0, "causal_discovery": 20.0, "causal_training": 30.0, "r2": 5.0}
    cost = cost_comparison(seconds, {"n_columns": 64, "grid_columns": 512})
    assert cost["pcmasking_s"] == 100.0 and cost["causal_s"] == 50.0
    assert cost["ratio"] == 0.5
    assert cost["ratio_all_columns"] == (20.0 * 8 + 30.0) / 100.0
    every = cost_comparison(seconds, {"n_columns": 512, "grid_columns": 512})
    assert every["ratio"] == 0.5 and "ratio_all_columns" not in every  # measured, not scaled
    assert every["causal_columns"] == every["grid_columns"] == 512
    assert cost_comparison({"premask": 1.0, "finetune": 1.0}) is None  # no causal run
    assert "paper_rule_s" not in cost
    beside = cost_comparison({**seconds, "paper_rule_search": 15.0, "paper_rule_finetune": 25.0},
                             {"n_columns": 64, "grid_columns": 512})
    assert beside["pcmasking_s"] == 100.0  # the paper's rule is not the run's own cost
    assert beside["paper_rule_s"] == 100.0 and beside["ratio_paper_rule"] == 0.5
    assert beside["ratio_paper_rule_all_columns"] == (20.0 * 8 + 30.0) / 100.0


def test_summary_strong_drivers_and_ranking(tmp_path):
    from pcm.book.pages import render_results_markdown
    from pcm.method.summary import write_summary

    run = _make_run(tmp_path / "run", drivers=True)
    path = run.data_path("drivers")
    with xr.open_dataset(path) as ds:
        ds = ds.load()
    truth = ds["drivers"].values.astype(bool)
    rng = np.random.default_rng(3)
    ds["driver_strength"] = (("output", "input"), np.where(truth, rng.uniform(0, 0.05,
                                                                              truth.shape), 0.0))
    write_netcdf(ds, path)
    vectors = rng.uniform(size=truth.shape) + truth  # drivers rank high
    write_netcdf(xr.Dataset({"masking_vector": (("output", "input"), vectors)},
                            coords={"output": output_labels(), "input": input_labels()}),
                 run.artefact("masking_vectors.nc"))
    summary = write_summary(run)
    assert set(summary["drivers"]["pcmasking"]) == {"precision", "recall", "f1"}  # unchanged
    strong = summary["drivers_strong"]["pcmasking"]
    assert strong["cut"] == 0.01 and 0 < strong["n_scored"] <= 64
    # precision counts every true driver, so it can only be >= the all-driver precision
    assert strong["precision"] >= summary["drivers"]["pcmasking"]["precision"] - 1e-12
    ranking = summary["masking_vector_ranking"]
    assert ranking["auc"] > 0.9  # the vectors were made to rank drivers first
    assert ranking["selected_f1"] == pytest.approx(summary["drivers"]["pcmasking"]["f1"])
    assert ranking["oracle_f1"] >= ranking["selected_f1"]
    assert set(summary["masking_vector_ranking_by_variable"]) == set(OUTPUT_VARIABLES)
    text = render_results_markdown(summary)
    assert "**Strong drivers** (at least 1 %" in text
    assert "| mean | " in text and "oracle F1 (strong)" in text
