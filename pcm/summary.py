"""Headline numbers of a run -> ``RUN/summary.json``.

Keys (DESIGN.md): ``r2[model][climate][VAR]`` (mean over the variable's
outputs of the global R², ``r2.nc``), ``drivers[model]`` with ``precision
recall f1`` (macro means over non-degenerate outputs; only where ground truth
is known), ``shap_nondriver_share[model]`` (mean over outputs with drivers of
the share of mean |SHAP| on non-drivers), ``seconds[phase]`` (from
``RUN/seconds.json``). Extra breakdowns: ``drivers_by_variable[model][VAR]``,
``drivers_by_input_group[model][group]`` and
``shap_nondriver_share_by_input_group[model][group]``. NaN is written as null.
"""

from __future__ import annotations

import math
import os

import numpy as np
import xarray as xr

from pcm.io import read_json, write_json
from pcm.rundir import RunDir

__all__ = ["write_summary", "build_summary"]


def _clean(value):
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python, recursively."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


def _r2_section(ds: xr.Dataset) -> dict:
    from pcm.r2 import variable_means

    means = variable_means(ds["r2"]).transpose("model", "climate", "var")
    out: dict = {}
    for model in means["model"].values:
        out[str(model)] = {}
        for climate in means["climate"].values:
            row = means.sel(model=model, climate=climate)
            out[str(model)][str(climate)] = {str(v): float(row.sel(var=v))
                                             for v in row["var"].values}
    return out


def _mean_share(share: xr.DataArray, keep: np.ndarray) -> float:
    values = np.asarray(share.values, dtype=float)[keep]
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else float("nan")


def build_summary(run: RunDir | str | os.PathLike) -> dict:
    """The summary dictionary of a run (see the module docstring); nothing written."""
    from pcm.evaluation import driver_tables
    from pcm.scoring import mean_scores

    run = run if isinstance(run, RunDir) else RunDir(run)
    summary: dict = {"r2": {}, "drivers": {}, "shap_nondriver_share": {}, "seconds": {}}
    r2_path = run.artefact("r2.nc")
    if r2_path.exists():
        with xr.open_dataset(r2_path) as ds:
            summary["r2"] = _r2_section(ds[["r2"]].load())
    tables = driver_tables(run) if run.manifest_path.exists() else {}
    by_var, by_group, shap_groups = {}, {}, {}
    for kind, scores in tables.get("masks", {}).items():
        means = mean_scores(scores, by_variable=True)
        summary["drivers"][kind] = {k: means[k] for k in ("precision", "recall", "f1")}
        by_var[kind] = means["by_variable"]
        by_group[kind] = means["by_input_group"]
    share = tables.get("shap")
    if share is not None:
        keep = ~share["degenerate"].values
        for model in share["model"].values:
            row = share.sel(model=model)
            summary["shap_nondriver_share"][str(model)] = _mean_share(row["share"], keep)
            shap_groups[str(model)] = {str(g): _mean_share(row["group_share"].sel(group=g), keep)
                                       for g in row["group"].values}
    seconds_path = run.artefact("seconds.json")
    if seconds_path.exists():
        summary["seconds"] = dict(read_json(seconds_path))
    if by_var:
        summary["drivers_by_variable"] = by_var
        summary["drivers_by_input_group"] = by_group
    if shap_groups:
        summary["shap_nondriver_share_by_input_group"] = shap_groups
    return _clean(summary)


def write_summary(run: RunDir | str | os.PathLike) -> dict:
    """Build the summary of a run and write it to ``RUN/summary.json``.

    Returns
    -------
    dict
        What was written (NaN as None).
    """
    run = run if isinstance(run, RunDir) else RunDir(run)
    summary = build_summary(run)
    write_json(summary, run.artefact("summary.json"))
    return summary
