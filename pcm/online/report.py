"""Reading a finished ``pcm online`` and the tables and statements of its chapter.

Everything the chapter says is computed here from the artefacts of ``RUN/online``
(:mod:`pcm.online.runner`), so the notebook only prints it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from pcm.errors import DataError
from pcm.io import read_json
from pcm.online.runner import ONLINE_DIR, OnlineConfig, run_online
from pcm.run.rundir import read_mask_file

__all__ = ["OnlineResult", "open_online", "lifetime", "early_rmse", "stability_table",
           "masks_help", "verdict", "proxy_in_masks", "diagnostics_table", "online_outcome",
           "EARLY_DAYS", "SCRATCH", "SCRATCH_CONFIG"]

#: Time (days) at which drift is compared between models (before most columns are lost).
EARLY_DAYS = 0.5
#: The run a notebook opened on its own reads (and fills once, at a small size).
SCRATCH = Path("runs") / "scratch-online"
SCRATCH_CONFIG = OnlineConfig(seeds=(0,), days=5.0, train_steps=48)

_NETWORKS = ("unconstrained", "pcmasking_paper", "pcmasking_relative", "causal")
_MASKED = ("pcmasking_paper", "pcmasking_relative", "causal")


@dataclass(frozen=True)
class OnlineResult:
    """The artefacts of one ``pcm online``."""

    folder: Path
    stability: xr.Dataset
    drift: xr.Dataset
    diagnostics: xr.Dataset
    record: dict[str, Any]

    @property
    def days(self) -> float:
        """Simulated days."""
        return float(self.record["config"]["days"])

    @property
    def networks(self) -> list[str]:
        """The network kinds coupled."""
        return [m for m in self.stability["model"].values.tolist() if m in _NETWORKS]


def open_online(run_dir: str | os.PathLike | None) -> OnlineResult:
    """The artefacts of ``RUN/online``; with ``run_dir`` None the scratch run (filled at
    :data:`SCRATCH_CONFIG` size when empty)."""
    if run_dir is None:
        run_dir = SCRATCH
        if not (Path(run_dir) / ONLINE_DIR / "online.json").is_file():
            run_online(run_dir, SCRATCH_CONFIG)
    folder = Path(run_dir) / ONLINE_DIR
    if not (folder / "online.json").is_file():
        raise DataError("no finished online run (no online.json): run `pcm online` first",
                        path=folder)
    data = {}
    for name in ("stability", "drift", "diagnostics"):
        with xr.open_dataset(folder / f"{name}.nc") as ds:
            data[name] = ds.load()
    return OnlineResult(folder=folder, record=read_json(folder / "online.json"), **data)


def lifetime(result: OnlineResult) -> xr.DataArray:
    """Mean over columns of the days each column stayed physical (``days`` if it never
    blew up), ``(model, scenario, seed)``."""
    days = result.stability["blow_up_day"].fillna(result.days)
    return days.mean("column").assign_attrs(long_name="mean column lifetime", units="day")


def early_rmse(result: OnlineResult, variable: str = "t") -> xr.DataArray:
    """RMSE over levels and live columns at :data:`EARLY_DAYS`, ``(model, scenario, seed)``."""
    da = result.drift[f"{variable}_rmse"].sel(time=EARLY_DAYS, method="nearest")
    return np.sqrt((da**2).mean("lev")).assign_attrs(
        long_name=f"{variable} RMSE at day {EARLY_DAYS:g}", units=da.attrs.get("units", ""))


def stability_table(result: OnlineResult, scenario: str = "control") -> pd.DataFrame:
    """One row per model and seed: first blow-up day, share of columns failed, mean
    column lifetime, drift RMSE at :data:`EARLY_DAYS` and over the whole run."""
    st, dr = result.stability.sel(scenario=scenario), result.drift.sel(scenario=scenario)
    life = lifetime(result).sel(scenario=scenario)
    t_early, q_early = (early_rmse(result, v).sel(scenario=scenario) for v in ("t", "q"))
    rows = []
    for model in st["model"].values.tolist():
        for seed in st["seed"].values.tolist():
            first = float(st["first_blow_up_day"].sel(model=model, seed=seed))
            rows.append({
                "model": model, "seed": seed,
                "first blow-up (day)": (f"none in {result.days:g}" if np.isnan(first)
                                        else f"{first:.2f}"),
                "columns failed": float(st["failed_share"].sel(model=model, seed=seed)),
                "mean lifetime (day)": float(life.sel(model=model, seed=seed)),
                f"T RMSE day {EARLY_DAYS:g} (K)": float(t_early.sel(model=model, seed=seed)),
                f"q RMSE day {EARLY_DAYS:g} (g/kg)": float(q_early.sel(model=model,
                                                                         seed=seed)),
                "T RMSE all (K)": float(dr["t_rmse_total"].sel(model=model, seed=seed)),
                "q RMSE all (g/kg)": float(dr["q_rmse_total"].sel(model=model, seed=seed)),
            })
    return pd.DataFrame(rows).set_index(["model", "seed"])


def masks_help(result: OnlineResult) -> pd.DataFrame:
    """Per masked kind and scenario: in how many seeds it beats the unconstrained network
    on mean column lifetime and on T drift at :data:`EARLY_DAYS`, and the mean gains."""
    life = lifetime(result)
    t_early = early_rmse(result, "t")
    n = life.sizes["seed"]
    rows = []
    for kind in (k for k in _MASKED if k in life["model"].values):
        for scenario in life["scenario"].values.tolist():
            a = life.sel(model=kind, scenario=scenario).values
            b = life.sel(model="unconstrained", scenario=scenario).values
            ta = t_early.sel(model=kind, scenario=scenario).values
            tb = t_early.sel(model="unconstrained", scenario=scenario).values
            rows.append({"model": kind, "scenario": scenario, "seeds": n,
                         "longer lifetime (seeds)": int(np.sum(a > b)),
                         "lifetime gain (day)": float(np.mean(a - b)),
                         "lower T drift (seeds)": int(np.sum(ta < tb)),
                         "T drift change (K)": float(np.mean(ta - tb))})
    return pd.DataFrame(rows).set_index(["model", "scenario"])


def verdict(help_table: pd.DataFrame) -> list[str]:
    """One sentence per masked kind: does masking help online, over the seeds."""
    lines = []
    for kind, part in help_table.groupby(level="model"):
        n = int(part["seeds"].iloc[0])
        wins = int(part["longer lifetime (seeds)"].sum())
        total = n * len(part)
        gain = float(part["lifetime gain (day)"].mean())
        word = ("helps" if wins > total / 2 and gain > 0
                else "does not help" if wins < total / 2 or gain <= 0 else "is undecided")
        lines.append(f"{kind}: longer mean column lifetime than the unconstrained network in "
                     f"{wins} of {total} (seed, scenario) pairs, mean gain {gain:+.2f} days: "
                     f"masking {word} online here.")
    return lines


def proxy_in_masks(result: OnlineResult) -> pd.DataFrame:
    """Per masked kind and seed: share of the outputs whose mask keeps the proxy
    (``vbp-992.56``) and the driver it copies (``qbp-976.33``)."""
    rows = []
    for seed in result.stability["seed"].values.tolist():
        run = result.folder / f"seed_{seed}"
        for kind, name in (("pcmasking_paper", "masks_pcmasking_paper.nc"),
                           ("pcmasking_relative", "masks_pcmasking_relative.nc"),
                           ("causal", "causal_masks.nc")):
            if not (run / name).is_file():
                continue
            mask = read_mask_file(run / name, missing="")
            rows.append({"model": kind, "seed": seed,
                         "outputs keeping the proxy": float(mask.sel(input="vbp-992.56").mean()),
                         "outputs keeping the driver": float(
                             mask.sel(input="qbp-976.33").mean()),
                         "inputs kept (mean)": float(mask.sum("input").mean())})
    return pd.DataFrame(rows).set_index(["model", "seed"])


def diagnostics_table(result: OnlineResult, scenario: str = "control") -> pd.DataFrame:
    """Budget closure and precipitation statistics per model, mean over the seeds, over
    the samples of the live columns."""
    diag = result.diagnostics.sel(scenario=scenario).mean("seed")
    names = {"energy_residual": "energy residual (W/m²)",
             "moisture_residual": "moisture residual (mm/day)",
             "prect_mean": "mean precipitation (mm/day)",
             "prect_p99": "99th percentile (mm/day)", "wet_share": "wet share"}
    table = diag[list(names)].to_dataframe()[list(names)].rename(columns=names)
    return table.rename_axis("model")


def online_outcome(result: OnlineResult) -> str:
    """The chapter's Summary: one bullet per network kind with its lifetime and first
    blow-up over every seed and scenario, the forcing-only reference, the verdicts."""
    life = lifetime(result)
    first = result.stability["first_blow_up_day"]
    n_col = result.stability.sizes["column"]
    n_seed = result.stability.sizes["seed"]

    def when(model: str) -> str:
        values = first.sel(model=model).values
        if np.isnan(values).all():
            return f"no column blew up in {result.days:g} days"
        failed = float(result.stability["failed_share"].sel(model=model).mean())
        return (f"first column lost after {np.nanmin(values):.2f} days, "
                f"{100 * failed:.0f} % of the columns lost by day {result.days:g}")

    lines = [f"- {n_col} columns, {result.days:g} simulated days, {n_seed} training seeds, "
             "three scenarios (control, proxy decorrelated, SST shifted)."]
    for model in ["truth", "zero", *result.networks]:
        label = {"truth": "The truth physics", "zero": "Zero tendencies (forcing only)"}.get(
            model, f"`{model}`")
        lines.append(f"- {label}: mean column lifetime "
                     f"{float(life.sel(model=model).mean()):.1f} days "
                     f"(range {float(life.sel(model=model).min()):.1f}-"
                     f"{float(life.sel(model=model).max()):.1f} over seeds and scenarios); "
                     f"{when(model)}.")
    zero = float(life.sel(model="zero").mean())
    shorter = [m for m in result.networks if float(life.sel(model=m).mean()) < zero]
    if shorter:
        lines.append(f"- {len(shorter)} of {len(result.networks)} networks keep their columns "
                     "alive for a shorter time than no physics at all (zero tendencies): "
                     f"{', '.join(f'`{m}`' for m in shorter)}.")
    lines += [f"- {line}" for line in verdict(masks_help(result))]
    return "\n".join(lines)
