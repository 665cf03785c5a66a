"""Step 5 of the method: R² of every trained model kind on the control and ±4K test sets.

A thin step: it reads the run directory, calls the pure functions of
:mod:`pcm.analysis.r2` and writes ``r2.nc``; its wall seconds go to
``RUN/seconds.json["r2"]``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import xarray as xr

from pcm.analysis.r2 import r2_dataset
from pcm.data.cbrain import sample_grid
from pcm.data.datasets import load_split
from pcm.data.normalization import Normalization
from pcm.data.streaming import DiskSplit, choose_in_memory
from pcm.errors import DataError, ParameterError
from pcm.io import write_netcdf
from pcm.params.config import EvaluationConfig
from pcm.run.rundir import MODEL_KINDS, RunDir
from pcm.variables import SPCAM

__all__ = ["CLIMATES", "run_r2", "predict", "r2_on_split"]

#: Climate name -> data split holding it.
CLIMATES = {"control": "test", "plus4K": "plus4K", "minus4K": "minus4K"}


def predict(model, x: np.ndarray, *, n_outputs: int = SPCAM.n_outputs,
            batch_size: int = 4096) -> np.ndarray:
    """Normalised predictions of all outputs, ``[n, n_outputs]`` (NaN where no network).

    Network ``n`` of the stacked model fills column ``model.targets[n]``;
    ``n_outputs`` is the catalogue's (SPCAM: 65).
    """
    out = np.full((len(x), int(n_outputs)), np.nan, dtype=np.float64)
    targets = np.asarray(model.targets, dtype=int)
    for i in range(0, len(x), batch_size):
        out[i:i + batch_size, targets] = np.asarray(model(x[i:i + batch_size]), dtype=np.float64)
    return out


def evaluation_steps(n_steps: int, per_step: int, n_columns: int, in_memory: str,
                     memory_budget_mb: float) -> np.ndarray:
    """Time steps R² is computed on: all of them, or evenly spaced ones within the budget.

    The test arrays take about ``per_step * (4 * n_inputs + 28 * n_outputs)`` bytes a
    step (float32 inputs and outputs, float64 truth and prediction); bounded here by
    ``n_columns * 32`` bytes a sample. When all steps do not fit (``data.in_memory``
    auto) or streaming is asked for (false), the steps kept are evenly spaced over
    the split, at least one.
    """
    need = n_steps * per_step * n_columns * 32
    if choose_in_memory(in_memory, need, memory_budget_mb):
        return np.arange(n_steps)
    fit = int(float(memory_budget_mb) * 2**20 // (per_step * n_columns * 32))
    if fit >= n_steps:
        return np.arange(n_steps)
    return np.unique(np.linspace(0, n_steps - 1, max(1, fit)).round().astype(np.int64))


def r2_on_split(models: dict, path: Path, norm: Normalization, max_samples: int | None,
                batch_size: int = 4096, *, in_memory: str = "auto",
                memory_budget_mb: float = 8192.0) -> list[xr.Dataset]:
    """R² of every model on one CBRAIN file: one ``r2_dataset`` per model, ``model`` dim added.

    ``max_samples`` is rounded down to whole time steps (None: all samples). A split
    larger than the memory budget is scored on evenly spaced whole time steps
    (:func:`evaluation_steps`), read step by step; each result's attribute
    ``time_steps`` says how many were used.
    """
    grid = sample_grid(path)
    columns = bool(grid.get("unstructured"))
    per_step = len(grid["lat"]) if columns else len(grid["lat"]) * len(grid["lon"])
    n_avail = grid["n_time"] * per_step
    n = n_avail if max_samples is None else min(n_avail, int(max_samples))
    n = (n // per_step) * per_step
    if n < per_step:
        raise ParameterError("eval_samples", f"must cover at least one time step "
                             f"({per_step} samples on this grid), got {max_samples}")
    catalogue = norm.catalogue
    steps = evaluation_steps(n // per_step, per_step, catalogue.n_inputs + catalogue.n_outputs,
                             in_memory, memory_budget_mb)
    if len(steps) == n // per_step:
        x, y = load_split(path, norm, max_samples=n)
    else:
        split = DiskSplit(path, norm, max_samples=n)
        parts = [split.read(int(t) * per_step, (int(t) + 1) * per_step) for t in steps]
        split.close()
        x, y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        del parts
    y_true = norm.denormalize_outputs(y, dtype="float64")
    out = []
    for kind, model in models.items():
        y_pred = norm.denormalize_outputs(
            predict(model, x, n_outputs=catalogue.n_outputs, batch_size=batch_size),
            dtype="float64")
        ds = r2_dataset(y_true, y_pred, grid["lat"], grid["lon"], catalogue=catalogue,
                        area=grid["area"] if columns else None)
        out.append(ds.expand_dims(model=[kind]).assign_attrs(time_steps=len(steps)))
    return out


def run_r2(run: RunDir | str | os.PathLike, config: EvaluationConfig, *,
           kinds: tuple[str, ...] = MODEL_KINDS, batch_size: int = 4096) -> xr.Dataset:
    """R² of every trained model kind on the control test set and on ±4K -> ``RUN/r2.nc``.

    Parameters
    ----------
    run : RunDir or path-like
        Run directory with data manifest and ``models/<kind>.keras``.
    config : EvaluationConfig
        ``eval_samples``: use at most this many samples of each split (rounded down
        to whole time steps, taken from the start so the (time, lat, lon) layout
        holds); None: all.
    kinds : tuple of str
        Model kinds to evaluate (missing models are skipped).
    batch_size : int
        Prediction batch size.

    Returns
    -------
    xr.Dataset
        ``r2(model, climate, output)``, ``r2_pointwise_mean(model, climate, output)``,
        ``r2_zonal(model, climate, output, lat)``, ``r2_map(model, climate, output,
        lat, lon)`` (unstructured grids: ``r2_map(model, climate, output, ncol)``; see
        :mod:`pcm.analysis.r2` for the definitions); predictions in physical units.
    """
    run = RunDir.of(run)
    max_samples = config.eval_samples
    start = time.perf_counter()
    models = run.load_models(kinds)
    if not models:
        raise DataError(f"no trained model of kinds {kinds} in {run.root / 'models'}; "
                        "run the training notebooks first", path=run.root / "models")
    norm = run.norm()
    climates = []
    steps_used: dict[str, int] = {}
    for climate, split in CLIMATES.items():
        path = run.data_path(split)
        if path is None:
            continue
        parts = r2_on_split(models, path, norm, max_samples, batch_size,
                            in_memory=config.data_in_memory,
                            memory_budget_mb=config.data_memory_budget_mb)
        steps_used[climate] = int(parts[0].attrs["time_steps"])
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
                              "MSE / space-time variance (cos-lat weights, column areas on an "
                              "unstructured grid; reference "
                              "ModelDiagnostics.compute_stats); r2_zonal: pooled over time "
                              "and longitude; zero variance -> NaN",
                "max_samples": -1 if max_samples is None else int(max_samples),
                **{f"time_steps_{c}": k for c, k in steps_used.items()}}
    write_netcdf(ds, run.artefact("r2.nc"))
    run.record_seconds(r2=time.perf_counter() - start)
    return ds


