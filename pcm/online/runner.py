"""``pcm online``: train the networks on truth runs, couple them to the testbed, score them.

:func:`run_online` trains, per seed, the network kinds of
:mod:`pcm.online.training` on a truth run of that seed, couples each (and the truth
physics and a zero parameterization) to the same 64-column online period in three
scenarios (:data:`pcm.online.testbed.SCENARIOS`: control; the proxy decorrelated;
the SST shifted) and writes, under ``RUN/online/``:

* ``stability.nc``: ``blow_up_day(model, scenario, seed, column)`` (NaN: stable to
  the end), ``first_blow_up_day`` and ``failed_share`` (model, scenario, seed);
* ``drift.nc``: ``t_rmse``, ``q_rmse`` (model, scenario, seed, time, lev): RMSE over
  the live columns against the truth run, and their totals ``t_rmse_total``,
  ``q_rmse_total`` (model, scenario, seed);
* ``diagnostics.nc``: precipitation mean, 99th percentile and wet share, and the
  mean absolute energy (W/m2) and moisture (mm/day) budget residuals (model,
  scenario, seed);
* ``online.json``: the configuration and wall seconds.

:func:`run_notebook` executes ``notebooks/09_online.ipynb`` on the result.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from pcm import variables as V
from pcm.book.pages import copy_notebooks
from pcm.errors import DataError, ParameterError
from pcm.io import read_json, write_json, write_netcdf
from pcm.online import metrics
from pcm.online.coupling import NetworkPhysics, Trajectory, simulate, truth_physics, zero_physics
from pcm.online.testbed import (
    DT,
    I_PROXY,
    I_PROXY_DRIVER,
    NL,
    SCENARIOS,
    Forcing,
    forcing_from_fields,
    truth_fields,
)
from pcm.online.training import NETWORK_KINDS, TrainingPlan, train_models
from pcm.run.pipeline import NotebookError, declared_parameters, execute_notebook, failure_message
from pcm.run.rundir import RunDir
from pcm.run.steps import NOTEBOOK_DIR

__all__ = ["OnlineConfig", "run_online", "ONLINE_DIR", "NOTEBOOK", "run_notebook",
           "REFERENCE_MODELS"]

#: Folder of the online artefacts inside a run directory.
ONLINE_DIR = "online"
#: The online notebook (repository checkout).
NOTEBOOK = NOTEBOOK_DIR / "09_online.ipynb"
#: Parameterizations coupled besides the networks.
REFERENCE_MODELS = ("truth", "zero")
#: Seed of the online period (the same for every training seed).
ONLINE_SEED = 1000


@dataclass(frozen=True)
class OnlineConfig:
    """Size of ``pcm online``.

    Parameters
    ----------
    seeds : tuple of int
        Training seeds (truth run and network initialisation).
    n_lat, n_lon : int
        Columns (of the T42 grid; 8 x 8 = 64).
    days : float
        Simulated days online.
    train_steps : int
        Half-hourly steps of each training truth run.
    sst_shift : float
        SST shift (K) of the ``sst`` scenario.
    causal : bool
        Also train and couple the causally-informed networks.
    overrides : dict
        Run parameters of the networks over :data:`pcm.online.training.ONLINE_TRAINING`.
    """

    seeds: tuple[int, ...] = (0, 1, 2)
    n_lat: int = 8
    n_lon: int = 8
    days: float = 30.0
    train_steps: int = 72
    sst_shift: float = 4.0
    causal: bool = False
    overrides: dict[str, Any] = field(default_factory=lambda: {
        "epochs": 10, "batch_size": 32, "lr_every": 4, "l1": 0.01, "finetune_epochs": 3,
        "search_epochs": 2})

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ParameterError("seeds", "give at least one seed")
        if self.days <= 0:
            raise ParameterError("days", f"must be > 0, got {self.days}")
        if self.train_steps < 24:
            raise ParameterError("train_steps", f"must be >= 24, got {self.train_steps}")

    @property
    def steps(self) -> int:
        """Online steps."""
        return int(round(self.days * 86400.0 / DT))

    @property
    def kinds(self) -> tuple[str, ...]:
        """Network kinds coupled."""
        return tuple(k for k in NETWORK_KINDS if self.causal or k != "causal")


def _scenario_forcings(config: OnlineConfig) -> tuple[dict[str, Forcing], Any]:
    """The online period's forcing in each scenario, and the proxy relation (fit on it)."""
    shape = {"n_lat": config.n_lat, "n_lon": config.n_lon}
    control, proxy = truth_fields(config.steps + 1, seed=ONLINE_SEED, **shape)
    shifted, _ = truth_fields(config.steps + 1, seed=ONLINE_SEED, sst_shift=config.sst_shift,
                              proxy=proxy, **shape)
    base = forcing_from_fields(control, proxy)
    return {"control": base,
            "proxy": forcing_from_fields(control, proxy, proxy_coupled=False),
            "sst": forcing_from_fields(shifted, proxy)}, proxy


def _scores(traj: Trajectory, forcing: Forcing) -> dict[str, Any]:
    """Metrics of one trajectory of one scenario."""
    every = int(round((traj.time_days[1] - traj.time_days[0]) * 86400.0 / DT))
    truth = forcing.x[:traj.steps + 1:every, :, :2 * NL]
    q, t = traj.state[..., :NL], traj.state[..., NL:]
    live = np.isfinite(traj.outputs).all(axis=-1) & np.isfinite(traj.inputs).all(axis=-1)
    x, y = traj.inputs[live], traj.outputs[live]
    prec = metrics.precipitation_stats(y[:, 64])
    return {
        "blow_up_day": metrics.blow_up_days(traj.blow_up_step, DT),
        "t_rmse": metrics.drift_rmse(t, truth[..., NL:]),
        "q_rmse": metrics.drift_rmse(q * 1e3, truth[..., :NL] * 1e3),
        "t_rmse_total": metrics.total_rmse(t, truth[..., NL:]),
        "q_rmse_total": metrics.total_rmse(q * 1e3, truth[..., :NL] * 1e3),
        "prect_mean": prec["mean"], "prect_p99": prec["p99"], "wet_share": prec["wet_share"],
        "energy_residual": float(np.mean(np.abs(metrics.energy_residual(x, y))))
        if len(x) else np.nan,
        "moisture_residual": float(np.mean(np.abs(metrics.moisture_residual(x, y))))
        if len(x) else np.nan,
    }


def _couple(physics, forcings: dict[str, Forcing], steps: int) -> dict[str, dict[str, Any]]:
    """Run every scenario as one batch of columns; score each."""
    names = list(forcings)
    n = forcings[names[0]].n_columns
    traj = simulate(Forcing.concat([forcings[s] for s in names]), physics, steps=steps)
    out = {}
    for i, name in enumerate(names):
        cols = slice(i * n, (i + 1) * n)
        part = Trajectory(state=traj.state[:, cols], outputs=traj.outputs[:, cols],
                          inputs=traj.inputs[:, cols], time_days=traj.time_days,
                          blow_up_step=traj.blow_up_step[cols], steps=traj.steps)
        out[name] = _scores(part, forcings[name])
    return out


_ATTRS = {
    "blow_up_day": ("day of the column's first non-physical state (NaN: stable to the end)",
                    "day"),
    "first_blow_up_day": ("first blow-up day over the columns (NaN: none)", "day"),
    "failed_share": ("share of the columns that blew up", "1"),
    "t_rmse": ("RMSE of temperature against the truth run over the live columns", "K"),
    "q_rmse": ("RMSE of specific humidity against the truth run over the live columns",
               "g/kg"),
    "t_rmse_total": ("RMSE of temperature over time, live columns and levels", "K"),
    "q_rmse_total": ("RMSE of specific humidity over time, live columns and levels", "g/kg"),
    "prect_mean": ("mean precipitation of the parameterization", "mm/day"),
    "prect_p99": ("99th percentile of precipitation", "mm/day"),
    "wet_share": (f"share of samples with precipitation above {metrics.WET_THRESHOLD:g} "
                  "mm/day", "1"),
    "energy_residual": ("mean absolute column energy budget residual", "W/m2"),
    "moisture_residual": ("mean absolute column moisture budget residual", "mm/day"),
}


def _datasets(results: dict, models: list[str], seeds: list[int], time_days: np.ndarray,
              n_col: int) -> tuple[xr.Dataset, xr.Dataset, xr.Dataset]:
    def stack(key: str) -> np.ndarray:
        return np.array([[[results[m][s][sd][key] for sd in seeds] for s in SCENARIOS]
                         for m in models], dtype=float)

    dims3 = ("model", "scenario", "seed")
    coords = {"model": models, "scenario": list(SCENARIOS), "seed": seeds}
    blow = stack("blow_up_day")
    with np.errstate(all="ignore"):
        first = np.where(np.isfinite(blow).any(-1), np.nanmin(np.where(np.isfinite(blow), blow,
                                                                       np.inf), axis=-1), np.nan)
    stability = xr.Dataset({
        "blow_up_day": (dims3 + ("column",), blow),
        "first_blow_up_day": (dims3, first),
        "failed_share": (dims3, np.isfinite(blow).mean(axis=-1)),
    }, coords={**coords, "column": np.arange(n_col)})
    drift = xr.Dataset({k: (dims3 + ("time", "lev"), stack(k)) for k in ("t_rmse", "q_rmse")}
                       | {k: (dims3, stack(k)) for k in ("t_rmse_total", "q_rmse_total")},
                       coords={**coords, "time": time_days, "lev": V.LEVELS_HPA.copy()})
    drift["time"].attrs = {"units": "day", "long_name": "time since the start of the coupled "
                                                        "run"}
    drift["lev"].attrs = {"units": "hPa", "long_name": "mid-level pressure for PS = 1000 hPa"}
    diag = xr.Dataset({k: (dims3, stack(k)) for k in ("prect_mean", "prect_p99", "wet_share",
                                                      "energy_residual",
                                                      "moisture_residual")}, coords=coords)
    for ds in (stability, drift, diag):
        for name, var in ds.data_vars.items():
            var.attrs = {"long_name": _ATTRS[name][0], "units": _ATTRS[name][1]}
        ds["scenario"].attrs = {"long_name": "control; proxy decorrelated; SST shifted"}
    return stability, drift, diag


def run_online(run_dir: str | os.PathLike, config: OnlineConfig | None = None, *,
               progress: bool = False) -> Path:
    """Train, couple and score; write the artefacts into ``RUN/online/``.

    Parameters
    ----------
    run_dir : path-like
        The run directory (created); the online folder goes inside it.
    config : OnlineConfig, optional
        Size (default: the book's).
    progress : bool
        Per-epoch training lines.

    Returns
    -------
    Path
        ``RUN/online``.
    """
    config = config or OnlineConfig()
    start = time.perf_counter()
    folder = Path(run_dir) / ONLINE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, Any] = {}
    t0 = time.perf_counter()
    forcings, proxy = _scenario_forcings(config)
    seconds["truth_runs"] = time.perf_counter() - t0
    results: dict[str, dict[str, dict[int, dict]]] = {}
    t0 = time.perf_counter()
    for name, physics in (("truth", truth_physics), ("zero", zero_physics)):
        scored = _couple(physics, forcings, config.steps)
        results[name] = {s: {sd: scored[s] for sd in config.seeds} for s in SCENARIOS}
    seconds["couple_references"] = time.perf_counter() - t0
    training: dict[str, dict[str, float]] = {}
    for kind in config.kinds:
        results[kind] = {s: {} for s in SCENARIOS}
    for seed in config.seeds:
        run = RunDir(folder / f"seed_{seed}")
        plan = TrainingPlan(seed=seed, steps=config.train_steps, n_lat=config.n_lat,
                            n_lon=config.n_lon, causal=config.causal,
                            overrides=dict(config.overrides))
        print(f"[online] seed {seed}: training {', '.join(config.kinds)} ...", flush=True)
        training[str(seed)] = train_models(run, plan, proxy, progress=progress)
        t0 = time.perf_counter()
        norm = run.norm()
        for kind in config.kinds:
            scored = _couple(NetworkPhysics(run.load_model(kind), norm), forcings, config.steps)
            for s in SCENARIOS:
                results[kind][s][seed] = scored[s]
        training[str(seed)]["couple"] = time.perf_counter() - t0
    models = list(REFERENCE_MODELS) + list(config.kinds)
    time_days = np.arange(config.steps // 6 + 1) * 6 * DT / 86400.0
    stability, drift, diag = _datasets(results, models, list(config.seeds), time_days,
                                       forcings["control"].n_columns)
    attrs = {"days": config.days, "columns": forcings["control"].n_columns,
             "seeds": list(config.seeds), "sst_shift": config.sst_shift,
             "proxy": "vbp-992.56 copies qbp-976.33 in training (corr "
                      f"{_proxy_correlation(forcings['control']):.2f}); decorrelated in "
                      "scenario proxy"}
    for name, ds in (("stability", stability), ("drift", drift), ("diagnostics", diag)):
        ds.attrs.update({k: str(v) if isinstance(v, list) else v for k, v in attrs.items()})
        write_netcdf(ds, folder / f"{name}.nc")
    seconds["training"] = training
    seconds["total"] = time.perf_counter() - start
    write_json({"config": asdict(config), "seconds": seconds,
                "proxy": {"slope": proxy.slope, "offset": proxy.offset,
                          "driver_mean": proxy.driver_mean, "noise": proxy.noise},
                "causal_included": config.causal}, folder / "online.json")
    print(f"[online] done in {seconds['total']:.0f} s: {folder}", flush=True)
    return folder


def _proxy_correlation(forcing: Forcing) -> float:
    """Correlation of the proxy with the driver it copies in a truth run."""
    x = forcing.x.reshape(-1, forcing.x.shape[-1])
    return float(np.corrcoef(x[:, I_PROXY], x[:, I_PROXY_DRIVER])[0, 1])


def run_notebook(run_dir: str | os.PathLike, dst: str | os.PathLike,
                 book_dir: str | os.PathLike | None = None,
                 src: str | os.PathLike = NOTEBOOK) -> Path:
    """Execute the online chapter (papermill) on ``RUN/online`` and copy it to the book.

    Raises
    ------
    DataError
        ``RUN/online`` holds no finished online run.
    NotebookError
        The notebook failed (names the cell; the partial output is kept).
    """
    folder = Path(run_dir) / ONLINE_DIR
    if not (folder / "online.json").is_file():
        raise DataError("no finished online run (no online.json): run `pcm online` first",
                        path=folder)
    read_json(folder / "online.json")
    declared = declared_parameters(src)
    parameters = {"run_dir": str(run_dir)} if "run_dir" in declared else {}
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        execute_notebook(Path(src), dst, parameters, Path.cwd())
    except Exception as err:  # papermill, kernel death, ...
        raise NotebookError(failure_message(Path(src).name, err, dst)) from None
    if book_dir is not None:
        copy_notebooks(Path(book_dir), [dst])
    return dst
