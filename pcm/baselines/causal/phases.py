"""Phase functions of the causally-informed baseline, reading/writing a run directory.

1. :func:`run_discovery`: PC1 per grid column on the (unshuffled) train split,
   aggregated over columns -> ``RUN/causal_masks.nc``.
2. :func:`run_causal_training`: the masking network of PCMasking (no input
   layer) with the causal masks, trained from scratch -> ``RUN/models/causal.keras``.

Both add their wall seconds to ``RUN/seconds.json`` (keys
``causal_discovery`` and ``causal_training``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import xarray as xr

from pcm.baselines.causal.data import (
    lag1_autocorrelation,
    read_column_series,
    series_problem,
)
from pcm.baselines.causal.discovery import aggregate_links, discover_columns, select_columns
from pcm.config import CausalConfig
from pcm.data.cbrain import sample_grid
from pcm.errors import DataError, ParameterError
from pcm.io import write_netcdf
from pcm.phase import train_phase
from pcm.rundir import RunDir
from pcm.variables import input_labels, output_labels

__all__ = [
    "CAUSAL_MASKS",
    "SECONDS",
    "run_discovery",
    "run_causal_training",
    "discovery_dataset",
    "lag1_autocorrelation",
]

#: Artefact of the discovery phase.
CAUSAL_MASKS = "causal_masks.nc"

#: Wall seconds per phase, merged by every phase that records them.
SECONDS = "seconds.json"


def discovery_dataset(found: np.ndarray, tested: np.ndarray, *, lat: np.ndarray,
                      lon: np.ndarray, weights: np.ndarray, seconds: np.ndarray,
                      pc_alpha: float, share: float, n_steps: int,
                      cpu_seconds: np.ndarray | None = None) -> xr.Dataset:
    """Aggregate per-column links into the ``causal_masks.nc`` dataset.

    Parameters
    ----------
    found, tested : np.ndarray
        bool ``[column, 65, 94]`` from :func:`pcm.baselines.causal.discovery.discover_columns`.
    lat, lon, weights, seconds : np.ndarray
        Per column: latitude, longitude (degrees), area weight, tigramite wall
        seconds.
    pc_alpha, share : float
        Significance level and aggregation threshold.
    n_steps : int
        Time steps per column.
    cpu_seconds : np.ndarray, optional
        Per column: tigramite CPU seconds (default: the wall seconds).

    Returns
    -------
    xr.Dataset
        ``mask(output, input)`` bool, ``link_share(output, input)``,
        ``tested_share(output, input)``, per-column ``column_lat``, ``column_lon``,
        ``column_weight``, ``column_seconds``, ``column_cpu_seconds``,
        ``column_links``.
    """
    if cpu_seconds is None:
        cpu_seconds = seconds
    mask, link_share = aggregate_links(found, tested, weights, share)
    w = np.asarray(weights, dtype=np.float64)
    tested_share = np.einsum("c,coi->oi", w, tested.astype(np.float64)) / max(w.sum(), 1e-300)
    outputs, inputs = output_labels(), input_labels()
    ds = xr.Dataset(
        {
            "mask": (("output", "input"), mask, {
                "long_name": "causal mask: input (t-1) is a PC1 parent of output (t) in at "
                             "least `share` of the area-weighted columns",
                "units": "1"}),
            "link_share": (("output", "input"), link_share, {
                "long_name": "area-weighted share of tested columns where the link was found",
                "units": "1"}),
            "tested_share": (("output", "input"), tested_share, {
                "long_name": "area-weighted share of columns where output and input vary "
                             "(link testable)", "units": "1"}),
            "column_lat": ("column", np.asarray(lat, dtype=np.float64),
                           {"long_name": "latitude of the column", "units": "degrees_north"}),
            "column_lon": ("column", np.asarray(lon, dtype=np.float64),
                           {"long_name": "longitude of the column", "units": "degrees_east"}),
            "column_weight": ("column", w, {"long_name": "area (Gaussian) weight of the column",
                                            "units": "1"}),
            "column_seconds": ("column", np.asarray(seconds, dtype=np.float64), {
                "long_name": "wall seconds of the tigramite PC1 call of the column",
                "units": "s"}),
            "column_cpu_seconds": ("column", np.asarray(cpu_seconds, dtype=np.float64), {
                "long_name": "CPU seconds of the tigramite PC1 call of the column",
                "units": "s"}),
            "column_links": ("column", (found & tested).sum(axis=(1, 2)).astype(np.int32),
                             {"long_name": "links found in the column", "units": "1"}),
        },
        coords={"output": outputs, "input": inputs, "column": np.arange(found.shape[0])},
        attrs={
            "title": "Causal masks from PCMCI's PC1 stage (tigramite, ParCorr), per column, "
                     "aggregated over columns",
            "method": "PC-stable (PC1), ParCorr; candidate parents: the 94 inputs at lag 1 "
                      "(tau_min = tau_max = 1); area-weighted share of columns >= share",
            "pc_alpha": float(pc_alpha),
            "share": float(share),
            "n_columns": int(found.shape[0]),
            "n_steps": int(n_steps),
        },
    )
    return ds


def run_discovery(run: RunDir | str | os.PathLike, config: CausalConfig, *,
                  n_steps: int | None = None, n_jobs: int | None = None,
                  path: str | os.PathLike | None = None,
                  progress: bool = False) -> xr.Dataset:
    """Causal discovery phase: PC1 per column, aggregated -> ``RUN/causal_masks.nc``.

    Parameters
    ----------
    run : RunDir or path-like
        Run directory with a data manifest.
    config : CausalConfig
        ``causal_pc_alpha``: significance level of PC1's partial-correlation tests
        (reference 0.01); ``causal_share``: keep a link found in at least this
        area-weighted share of the columns (reference 0.59); ``causal_columns``:
        columns analysed, evenly spread over the grid (deterministic), None: all
        columns (the reference setup; slow); ``seed`` rotates the longitudes of
        the column subset (same seed, same columns).
    n_steps : int, optional
        Leading time steps per column; None: all of the train split.
    n_jobs : int, optional
        Worker processes (None: ``os.cpu_count()``). Results do not depend on it.
    path : path-like, optional
        Unshuffled CBRAIN file to analyse instead of the train split.
    progress : bool
        Show a progress bar.

    Returns
    -------
    xr.Dataset
        The written ``causal_masks.nc`` (see :func:`discovery_dataset`); attrs
        also hold ``seconds`` (wall), ``seconds_per_column``,
        ``cpu_seconds_per_column`` (tigramite only), ``n_jobs`` and ``source``.
    """
    run = RunDir.of(run)
    pc_alpha, share = config.causal_pc_alpha, config.causal_share
    n_columns, seed = config.causal_columns, config.seed
    if not 0.0 < pc_alpha < 1.0:
        raise ParameterError("causal_pc_alpha", f"must lie in (0, 1), got {pc_alpha}")
    if not 0.0 <= share <= 1.0:
        raise ParameterError("causal_share", f"must lie in [0, 1], got {share}")
    if n_columns is not None and n_columns < 1:
        raise ParameterError("causal_columns", f"must be >= 1 or null (all), got {n_columns}")
    if n_steps is not None and n_steps < 12:
        raise ParameterError("n_steps", f"must be >= 12 time steps or null (all), got {n_steps}")
    start = time.perf_counter()
    source = Path(path) if path is not None else run.data_path("train")
    if source is None:
        raise DataError("the manifest names no train split", path=run.manifest_path)
    grid = sample_grid(source)
    n_lat, n_lon = len(grid["lat"]), len(grid["lon"])
    columns = select_columns(n_lat, n_lon, n_columns, seed=seed)
    x, y, grid = read_column_series(source, columns, n_steps=n_steps)
    problem = series_problem(x)
    if problem:
        raise DataError(f"{problem} (pass one as path=...)", path=source)
    n_jobs = (os.cpu_count() or 1) if n_jobs is None else int(n_jobs)
    results = discover_columns(x, y, pc_alpha=pc_alpha, n_jobs=n_jobs, progress=progress)
    found = np.stack([r.found for r in results])
    tested = np.stack([r.tested for r in results])
    col_seconds = np.array([r.seconds for r in results])
    col_cpu = np.array([r.cpu_seconds for r in results])
    ds = discovery_dataset(found, tested, lat=grid["lat"][columns[:, 0]],
                           lon=grid["lon"][columns[:, 1]],
                           weights=np.asarray(grid["gw"])[columns[:, 0]], seconds=col_seconds,
                           pc_alpha=pc_alpha, share=share, n_steps=x.shape[0],
                           cpu_seconds=col_cpu)
    seconds = time.perf_counter() - start
    ds.attrs.update({"source": str(source), "seconds": seconds, "n_jobs": n_jobs,
                     "seconds_per_column": float(col_seconds.mean()),
                     "cpu_seconds_per_column": float(col_cpu.mean()),
                     "grid_columns": int(n_lat * n_lon)})
    write_netcdf(ds, run.artefact(CAUSAL_MASKS))
    run.record_seconds(causal_discovery=seconds)
    return ds


def run_causal_training(run: RunDir | str | os.PathLike, config: CausalConfig, *,
                        progress: bool = True) -> xr.Dataset:
    """Train the causally-informed networks -> ``RUN/models/causal.keras``.

    The network of every output is PCMasking's masking network (no input
    layer, ``hidden_layers x hidden_units`` hidden layers), its inputs
    multiplied by the causal mask of ``causal_masks.nc``, trained from a fresh
    ``seed`` initialisation on the same data with the same trainer as the other
    model kinds (:func:`pcm.phase.train_phase`). An output without causal
    parents gets an all-zero mask and learns a constant.

    Writes ``models/causal.keras``, ``history_causal.nc`` and
    ``seconds.json["causal_training"]``; resumes from ``checkpoints/causal``.

    Returns
    -------
    xr.Dataset
        The training history (loss / val_loss per epoch and network).
    """
    from pcm.nn.networks import StackedMLP

    run = RunDir.of(run)
    start = time.perf_counter()
    mask = run.mask("causal")
    train = config.train_config(hidden_units=config.hidden, epochs=config.epochs)
    model = StackedMLP(mask.shape[0], train.hidden_units, n_inputs=mask.shape[1],
                       input_layer=False, seed=int(config.seed), dtype=train.dtype_policy)
    model.set_mask(mask.values)
    return train_phase(run, "causal", "causal", model, train, l1=0.0, progress=progress,
                       t0=start, attrs={"n_causal_links": int(mask.values.sum())},
                       seconds_key="causal_training")
