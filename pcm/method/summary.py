"""Step 6 of the method, last part: the headline numbers of a run -> ``RUN/summary.json``.

Keys (``docs/architecture.md``): ``r2[model][climate][VAR]`` (mean over the variable's
outputs of the global R², ``r2.nc``), ``drivers[model]`` with ``precision
recall f1`` (macro means over non-degenerate outputs; only where ground truth
is known), ``shap_nondriver_share[model]`` (mean over outputs with drivers of
the share of mean |SHAP| on non-drivers), ``seconds[phase]`` (from
``RUN/seconds.json``). Extra breakdowns: ``drivers_by_variable[model][VAR]``,
``drivers_by_input_group[model][group]``,
``shap_nondriver_share_by_input_group[model][group]`` and ``cost`` (wall seconds
of the whole PCMasking and causally-informed pipelines, their ratio, and the
ratio with causal discovery extrapolated to every grid column; where both ran).
Where ``drivers.nc`` holds the driver strength: ``drivers_strong[model]``
(``precision recall f1 n_scored cut``: recall over strong drivers, precision over
all true drivers) and ``drivers_strong_by_variable[model][VAR]``. Where masking
vectors exist: ``masking_vector_ranking`` (``auc oracle_f1 selected_f1`` and,
with strength, ``strong_auc oracle_strong_f1 selected_strong_f1``) and
``masking_vector_ranking_by_variable[VAR]`` — threshold-free ranking quality of the
vectors next to the F1 of the selected PCMasking mask. ``training[phase]``
(:func:`training_section`): schedule, epochs trained and cap, share of the phase's
networks that converged and whether all did.
NaN is written as null.
"""

from __future__ import annotations

import math
import os

import numpy as np
import xarray as xr

from pcm.analysis.r2 import variable_means
from pcm.analysis.scoring import mean_ranking_scores, mean_scores
from pcm.io import read_json, write_json
from pcm.method.explain import driver_tables
from pcm.run.rundir import RunDir

__all__ = ["write_summary", "build_summary", "cost_comparison", "training_section"]

#: Phases of each pipeline whose wall seconds make up its cost: PCMasking with the run's
#: own selection, with the paper's rule beside it (``paper_rule``), causally-informed.
PCMASKING_PHASES = ("premask", "masking_vectors", "threshold_search", "finetune")
PAPER_RULE_PHASES = ("premask", "paper_rule_search", "paper_rule_finetune")
CAUSAL_PHASES = ("causal_discovery", "causal_training")


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


def cost_comparison(seconds: dict, causal_attrs: dict | None = None) -> dict | None:
    """PCMasking against the causally-informed pipeline, in wall seconds.

    Parameters
    ----------
    seconds : dict
        Wall seconds per phase (``seconds.json``).
    causal_attrs : dict, optional
        Attributes of ``causal_masks.nc``: ``n_columns`` analysed out of
        ``grid_columns``. Discovery cost grows linearly with the columns, so
        ``ratio_all_columns`` scales the discovery seconds to the whole grid, as
        the reference setup runs it (an extrapolation, labelled as such).

    Returns
    -------
    dict or None
        ``pcmasking_s``, ``causal_s``, ``ratio`` (causal / PCMasking) and, with
        ``causal_attrs``, ``causal_columns``, ``grid_columns``,
        ``ratio_all_columns`` (only where discovery ran on part of the grid: where it
        ran on every column, ``ratio`` is the side-by-side measurement); where the
        paper's rule ran beside (``paper_rule``), ``paper_rule_s``, ``ratio_paper_rule``
        and ``ratio_paper_rule_all_columns`` the same way; None unless both pipelines ran.
    """
    if not all(p in seconds for p in ("premask", "finetune", *CAUSAL_PHASES)):
        return None
    pcmasking = sum(seconds.get(p, 0.0) for p in PCMASKING_PHASES)
    causal = sum(seconds[p] for p in CAUSAL_PHASES)
    cost = {"pcmasking_s": pcmasking, "causal_s": causal, "ratio": causal / pcmasking}
    paper_rule = None
    if all(p in seconds for p in PAPER_RULE_PHASES):
        paper_rule = sum(seconds[p] for p in PAPER_RULE_PHASES)
        cost.update(paper_rule_s=paper_rule, ratio_paper_rule=causal / paper_rule)
    if causal_attrs and causal_attrs.get("grid_columns"):
        analysed, grid = int(causal_attrs["n_columns"]), int(causal_attrs["grid_columns"])
        cost.update(causal_columns=analysed, grid_columns=grid)
        if analysed < grid:  # measured on part of the grid: extrapolate, labelled
            full = seconds["causal_discovery"] * grid / analysed + seconds["causal_training"]
            cost["ratio_all_columns"] = full / pcmasking
            if paper_rule is not None:
                cost["ratio_paper_rule_all_columns"] = full / paper_rule
    return cost


#: Training phases whose convergence the summary reports (``training[phase]``).
TRAINING_PHASES = ("premask", "unconstrained", "finetune", "paper_rule_finetune", "causal")


def training_section(run: RunDir) -> dict:
    """Per trained phase: ``schedule``, ``epochs``, ``converged_share`` and ``converged``.

    ``converged`` is true when every network of the phase converged (history variable
    ``converged``; the causally-informed phase counts its candidate networks). Phases
    without a history, or with one written before the convergence record, are left out.
    """
    out = {}
    for phase in TRAINING_PHASES:
        path = run.artefact(f"history_{phase}.nc")
        if not path.exists():
            continue
        with xr.open_dataset(path) as ds:
            if "converged" not in ds:
                continue
            converged = ds["converged"].values.astype(bool)
            out[phase] = {"schedule": str(ds.attrs.get("schedule", "step")),
                          "epochs": int(ds.sizes["epoch"]),
                          "epochs_cap": int(ds.attrs.get("epochs_requested", -1)),
                          "converged_share": float(converged.mean()),
                          "converged": bool(converged.all())}
    return out


def build_summary(run: RunDir | str | os.PathLike) -> dict:
    """The summary dictionary of a run (see the module docstring); nothing written."""
    run = RunDir.of(run)
    summary: dict = {"r2": {}, "drivers": {}, "shap_nondriver_share": {}, "seconds": {}}
    r2_path = run.artefact("r2.nc")
    if r2_path.exists():
        with xr.open_dataset(r2_path) as ds:
            summary["r2"] = _r2_section(ds[["r2"]].load())
    tables = driver_tables(run) if run.manifest_path.exists() else {}
    by_var, by_group, shap_groups = {}, {}, {}
    strong, strong_by_var = {}, {}
    for kind, scores in tables.get("masks", {}).items():
        means = mean_scores(scores, by_variable=True)
        summary["drivers"][kind] = {k: means[k] for k in ("precision", "recall", "f1")}
        by_var[kind] = means["by_variable"]
        by_group[kind] = means["by_input_group"]
        if "strong" in means:
            strong[kind] = means["strong"]
            strong_by_var[kind] = means["strong_by_variable"]
    ranking = tables.get("ranking")
    if ranking is not None:
        selected = tables["masks"].get("pcmasking")
        ranking_means = mean_ranking_scores(ranking, selected, by_variable=True)
        by_variable_ranking = ranking_means.pop("by_variable")
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
        causal_path = run.artefact("causal_masks.nc")
        attrs = None
        if causal_path.exists():
            with xr.open_dataset(causal_path) as ds:
                attrs = dict(ds.attrs)
        cost = cost_comparison(summary["seconds"], attrs)
        if cost is not None:
            summary["cost"] = cost
    if by_var:
        summary["drivers_by_variable"] = by_var
        summary["drivers_by_input_group"] = by_group
    if shap_groups:
        summary["shap_nondriver_share_by_input_group"] = shap_groups
    if strong:
        summary["drivers_strong"] = strong
        summary["drivers_strong_by_variable"] = strong_by_var
    training = training_section(run)
    if training:
        summary["training"] = training
    if ranking is not None:
        summary["masking_vector_ranking"] = ranking_means
        summary["masking_vector_ranking_by_variable"] = by_variable_ranking
    return _clean(summary)


def write_summary(run: RunDir | str | os.PathLike) -> dict:
    """Build the summary of a run and write it to ``RUN/summary.json``.

    Returns
    -------
    dict
        What was written (NaN as None).
    """
    run = RunDir.of(run)
    summary = build_summary(run)
    write_json(summary, run.artefact("summary.json"))
    return summary
