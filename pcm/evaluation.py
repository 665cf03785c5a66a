"""Evaluation phases of the pipeline: R² (notebook 5), SHAP and drivers (notebook 6).

Thin wrappers that read a run directory, call the pure functions of
:mod:`pcm.r2`, :mod:`pcm.attribution` and :mod:`pcm.scoring`, and write the
artefacts ``r2.nc`` and ``shap.nc`` (the summary is :mod:`pcm.summary`).
Each phase adds its wall seconds to ``RUN/seconds.json``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import xarray as xr

from pcm.errors import DataError, ParameterError
from pcm.io import write_netcdf
from pcm.rundir import MODEL_KINDS, RunDir
from pcm.variables import input_labels, output_labels

__all__ = [
    "CLIMATES",
    "SHAP_METHODS",
    "run_r2",
    "run_shap",
    "load_models",
    "predict",
    "load_drivers",
    "load_masks",
    "driver_tables",
]

#: Climate name -> data split holding it.
CLIMATES = {"control": "test", "plus4K": "plus4K", "minus4K": "minus4K"}

#: Attribution methods of :func:`run_shap`.
SHAP_METHODS = ("deep", "deepexplainer", "gradient_input")


def load_models(run: RunDir | str | os.PathLike,
                kinds: tuple[str, ...] = MODEL_KINDS) -> dict:
    """Models of a run that exist, in :data:`~pcm.rundir.MODEL_KINDS` order."""
    from pcm.training import load_stacked

    run = RunDir.of(run)
    return {kind: load_stacked(run.model(kind)) for kind in kinds if run.model(kind).exists()}


def predict(model, x: np.ndarray, *, batch_size: int = 4096) -> np.ndarray:
    """Normalised predictions of all 65 outputs, ``[n, 65]`` (NaN where no network).

    Network ``n`` of the stacked model fills column ``model.targets[n]``.
    """
    out = np.full((len(x), len(output_labels())), np.nan, dtype=np.float64)
    targets = np.asarray(model.targets, dtype=int)
    for i in range(0, len(x), batch_size):
        out[i:i + batch_size, targets] = np.asarray(model(x[i:i + batch_size]), dtype=np.float64)
    return out


def _norm(run: RunDir):
    from pcm.normalization import Normalization

    path = run.data_path("norm")
    if path is None:
        raise DataError("the data manifest names no 'norm' file", path=run.manifest_path)
    return Normalization.from_file(path, warn=False)


def _r2_one_split(models: dict, path: Path, norm, max_samples: int | None,
                  batch_size: int) -> list[xr.Dataset]:
    from pcm.cbrain import sample_grid
    from pcm.datasets import load_split
    from pcm.r2 import r2_dataset

    grid = sample_grid(path)
    per_step = len(grid["lat"]) * len(grid["lon"])
    n_avail = grid["n_time"] * per_step
    n = n_avail if max_samples is None else min(n_avail, int(max_samples))
    n = (n // per_step) * per_step
    if n < per_step:
        raise ParameterError("max_samples", f"must cover at least one time step "
                             f"({per_step} samples on this grid), got {max_samples}")
    x, y = load_split(path, norm, max_samples=n)
    y_true = norm.denormalize_outputs(y, dtype="float64")
    out = []
    for kind, model in models.items():
        y_pred = norm.denormalize_outputs(predict(model, x, batch_size=batch_size),
                                          dtype="float64")
        ds = r2_dataset(y_true, y_pred, grid["lat"], grid["lon"])
        out.append(ds.expand_dims(model=[kind]))
    return out


def run_r2(run: RunDir | str | os.PathLike, *, max_samples: int | None = None,
           kinds: tuple[str, ...] = MODEL_KINDS, batch_size: int = 4096) -> xr.Dataset:
    """R² of every trained model kind on the control test set and on ±4K -> ``RUN/r2.nc``.

    Parameters
    ----------
    run : RunDir or path-like
        Run directory with data manifest and ``models/<kind>.keras``.
    max_samples : int, optional
        Use at most this many samples of each split (rounded down to whole time
        steps, taken from the start so the (time, lat, lon) layout holds).
    kinds : tuple of str
        Model kinds to evaluate (missing models are skipped).
    batch_size : int
        Prediction batch size.

    Returns
    -------
    xr.Dataset
        ``r2(model, climate, output)``, ``r2_pointwise_mean(model, climate, output)``,
        ``r2_zonal(model, climate, output, lat)``, ``r2_map(model, climate, output,
        lat, lon)`` (see :mod:`pcm.r2` for the definitions); predictions in
        physical units.
    """
    run = RunDir.of(run)
    start = time.perf_counter()
    models = load_models(run, kinds)
    if not models:
        raise DataError(f"no trained model of kinds {kinds} in {run.root / 'models'}; "
                        "run the training notebooks first", path=run.root / "models")
    norm = _norm(run)
    climates = []
    for climate, split in CLIMATES.items():
        path = run.data_path(split)
        if path is None:
            continue
        parts = _r2_one_split(models, path, norm, max_samples, batch_size)
        climates.append(xr.concat(parts, dim="model").expand_dims(climate=[climate]))
    if not climates:
        raise DataError("the data manifest names no test split", path=run.manifest_path)
    ds = xr.concat(climates, dim="climate", join="outer").transpose("model", "climate", ...)
    for name in ("r2", "r2_pointwise_mean", "r2_zonal", "r2_map"):
        ds[name].attrs = climates[0][name].attrs
    ds["model"].attrs = {"long_name": "model kind"}
    ds["climate"].attrs = {"long_name": "climate of the test data (control = test split)"}
    ds.attrs = {"title": "R2 of the predicted tendencies and fluxes (physical units)",
                "definition": "map: 1 - MSE/Var over time per grid point; r2: 1 - area-mean "
                              "MSE / space-time variance (cos-lat weights, reference "
                              "ModelDiagnostics.compute_stats); r2_zonal: pooled over time "
                              "and longitude; zero variance -> NaN",
                "max_samples": -1 if max_samples is None else int(max_samples)}
    write_netcdf(ds, run.artefact("r2.nc"))
    run.record_seconds(r2=time.perf_counter() - start)
    return ds


def _attributions(model, x_explain, x_background, method: str) -> np.ndarray:
    from pcm import attribution

    if method == "deep":
        return attribution.deep_shap(model, x_explain, x_background)
    if method == "gradient_input":
        return attribution.gradient_input(model, x_explain, x_background)
    return np.stack([attribution.deep_explainer_shap(model.export_network(n), x_explain,
                                                     x_background, check_additivity=False)
                     for n in range(model.n_networks)])


def _inputs(run: RunDir, split: str, norm, max_samples: int | None) -> np.ndarray:
    from pcm.datasets import load_split

    path = run.data_path(split)
    if path is None:
        raise DataError(f"the data manifest names no {split!r} file", path=run.manifest_path)
    return load_split(path, norm, max_samples=max_samples)[0]


def _sample(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    n = min(int(n), len(x))
    return x[np.sort(rng.choice(len(x), size=n, replace=False))]


def run_shap(run: RunDir | str | os.PathLike, *, method: str = "deep",
             n_background: int = 1000, n_explain: int = 1000, seed: int = 0,
             max_samples: int | None = None,
             kinds: tuple[str, ...] = MODEL_KINDS) -> xr.Dataset:
    """Mean |SHAP| of every trained model kind -> ``RUN/shap.nc``.

    Background samples are drawn from the training split, explained samples
    from the test split, both without replacement with ``seed``.

    Parameters
    ----------
    run : RunDir or path-like
        Run directory.
    method : {"deep", "deepexplainer", "gradient_input"}
        Batched DeepSHAP (:func:`pcm.attribution.deep_shap`), the reference
        ``shap.DeepExplainer`` network by network (slow), or gradient x input.
    n_background, n_explain : int
        Number of background and explained samples.
    seed : int
        Seed of the sample draws.
    max_samples : int, optional
        Read at most this many samples of each split before drawing.
    kinds : tuple of str
        Model kinds (missing models are skipped).

    Returns
    -------
    xr.Dataset
        ``shap(model, output, input)``: mean over explained samples of |SHAP|,
        inputs normalised, outputs in energy units (W/kg for TPHYSTND and PHQ;
        the normalised network outputs). NaN for outputs without a network.
    """
    if method not in SHAP_METHODS:
        raise ParameterError("method", f"expected one of {SHAP_METHODS}, got {method!r}")
    for key, value in (("n_background", n_background), ("n_explain", n_explain)):
        if int(value) < 1:
            raise ParameterError(key, f"must be a positive number of samples, got {value}")
    run = RunDir.of(run)
    start = time.perf_counter()
    models = load_models(run, kinds)
    if not models:
        raise DataError(f"no trained model of kinds {kinds}; run the training notebooks first",
                        path=run.root / "models")
    rng = np.random.default_rng(seed)
    norm = _norm(run)
    x_background = _sample(_inputs(run, "train", norm, max_samples), n_background, rng)
    x_explain = _sample(_inputs(run, "test", norm, max_samples), n_explain, rng)
    n_out, n_in = len(output_labels()), len(input_labels())
    values = np.full((len(models), n_out, n_in), np.nan)
    for m, model in enumerate(models.values()):
        phi = _attributions(model, x_explain, x_background, method)
        values[m, np.asarray(model.targets, dtype=int)] = np.abs(phi).mean(axis=1)
    ds = xr.Dataset(
        {"shap": (("model", "output", "input"), values, {
            "long_name": "mean absolute SHAP value over the explained test samples "
                         "(inputs normalised, outputs in energy units)",
            "units": "normalised output units: W/kg for TPHYSTND and PHQ, kW/m2 for "
                     "FSNT FSNS FLNT FLNS, m/s x 1.728e6 for PRECT"})},
        coords={"model": list(models), "output": output_labels(), "input": input_labels()},
        attrs={"method": method, "n_background": len(x_background),
               "n_explain": len(x_explain), "seed": int(seed),
               "background": "train split", "explained": "test split"})
    seconds = time.perf_counter() - start
    ds.attrs["seconds"] = seconds
    write_netcdf(ds, run.artefact("shap.nc"))
    run.record_seconds(shap=seconds)
    return ds


def load_drivers(run: RunDir | str | os.PathLike) -> xr.DataArray | None:
    """True drivers ``drivers(output, input)`` of a synthetic run, None if unknown."""
    run = RunDir.of(run)
    path = run.data_path("drivers")
    if path is None or not Path(path).exists():
        return None
    with xr.open_dataset(path) as ds:
        if "drivers" not in ds:
            raise DataError("no 'drivers' variable", path=path, variable="drivers")
        return ds["drivers"].load().astype(bool)


def load_masks(run: RunDir | str | os.PathLike) -> dict[str, xr.DataArray]:
    """Binary masks ``(output, input)`` per model kind that selects inputs.

    ``pcmasking`` from ``masks.nc``, ``causal`` from ``causal_masks.nc``.
    """
    from pcm.masking import read_mask_file

    run = RunDir.of(run)
    files = {"causal": run.artefact("causal_masks.nc"), "pcmasking": run.artefact("masks.nc")}
    return {kind: read_mask_file(path, missing="") for kind, path in files.items()
            if path.exists()}


def driver_tables(run: RunDir | str | os.PathLike) -> dict:
    """Driver scores of a run: ``{"masks": {kind: Dataset}, "shap": Dataset | None}``.

    Empty when the run has no ground truth (real SPCAM data). Masks are scored
    with :func:`pcm.scoring.driver_scores`, ``shap.nc`` with
    :func:`pcm.scoring.nondriver_share`.
    """
    from pcm.scoring import driver_scores, nondriver_share

    run = RunDir.of(run)
    drivers = load_drivers(run)
    if drivers is None:
        return {}
    tables: dict = {"masks": {k: driver_scores(m, drivers) for k, m in load_masks(run).items()},
                    "shap": None}
    path = run.artefact("shap.nc")
    if path.exists():
        with xr.open_dataset(path) as ds:
            tables["shap"] = nondriver_share(ds["shap"].load(), drivers)
    return tables
