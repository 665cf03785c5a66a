"""Scoring recovered drivers against the known physical drivers.

The synthetic data know which inputs drive each output (``drivers.nc``). A
binary mask (PCMasking's ``masks.nc``, or a causal model's mask) is scored per
output by precision (how many selected inputs are true drivers), recall (how
many true drivers were selected) and F1. SHAP attributions are scored by the
share of their mass (mean |SHAP|) that falls on non-drivers.

Degenerate outputs — those without any true driver (PHQ above 140 hPa) —
have no recall to score; they are flagged (``degenerate``) and left out of the
means. An empty mask of an output that has drivers is a real miss: recall 0,
F1 0 (precision undefined, skipped by the precision mean). Means are macro
averages over the non-degenerate outputs. Per input group
(QBP, TBP, VBP, 2-D) the scores use only that group's inputs; a group without
true drivers or selections for an output gives NaN there, skipped by the mean.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from pcm.errors import DataError
from pcm.variables import OUTPUT_VARIABLES, input_groups, input_labels, variable_of_label

__all__ = ["driver_scores", "nondriver_share", "mean_scores", "mean_driver_scores", "align"]

_METRICS = ("precision", "recall", "f1")


def align(a: xr.DataArray, b: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """Restrict two ``(output, input)`` arrays to their common labels, in ``a``'s order."""
    for da, name in ((a, "first"), (b, "second")):
        if "output" not in da.dims or "input" not in da.dims:
            raise DataError(f"{name} array has dims {da.dims}, expected ('output', 'input') "
                            f"with feature-label coordinates")
    outputs = [o for o in a["output"].values if o in set(b["output"].values)]
    inputs = [i for i in a["input"].values if i in set(b["input"].values)]
    if not outputs or not inputs:
        raise DataError("mask/attributions and drivers share no output or input labels")
    return (a.sel(output=outputs, input=inputs).transpose("output", "input"),
            b.sel(output=outputs, input=inputs).transpose("output", "input"))


def _prf(sel: np.ndarray, truth: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 along the last axis; NaN where undefined.

    F1 is ``2 tp / (n_selected + n_true)``: the harmonic mean of precision and
    recall where both exist, 0 for an empty mask of an output that has drivers, and
    NaN only when there is nothing to select and nothing was selected.
    """
    tp = np.sum(sel & truth, axis=-1).astype(float)
    n_sel = np.sum(sel, axis=-1).astype(float)
    n_true = np.sum(truth, axis=-1).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(n_sel > 0, tp / np.maximum(n_sel, 1), np.nan)
        recall = np.where(n_true > 0, tp / np.maximum(n_true, 1), np.nan)
        total = n_sel + n_true
        f1 = np.where(total > 0, 2 * tp / np.maximum(total, 1), np.nan)
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp,
            "n_selected": n_sel, "n_true": n_true}


def _groups(inputs: np.ndarray) -> dict[str, np.ndarray]:
    labels = input_labels()
    out = {}
    for group, idx in input_groups().items():
        members = {labels[i] for i in idx}
        out[group] = np.array([i in members for i in inputs])
    return out


def driver_scores(mask: xr.DataArray, drivers: xr.DataArray) -> xr.Dataset:
    """Per-output precision, recall and F1 of a binary mask against the true drivers.

    Parameters
    ----------
    mask : xr.DataArray, bool ``(output, input)``
        Selected inputs of each output.
    drivers : xr.DataArray, bool ``(output, input)``
        True drivers (``drivers.nc``).

    Returns
    -------
    xr.Dataset
        ``precision recall f1 (output)``, ``tp n_selected n_true (output)``,
        ``degenerate (output)`` and the same three scores per input group,
        ``group_precision group_recall group_f1 (output, group)``.
    """
    mask, drivers = align(mask, drivers)
    sel = mask.values.astype(bool)
    truth = drivers.values.astype(bool)
    res = _prf(sel, truth)
    degenerate = res["n_true"] == 0
    groups = _groups(mask["input"].values)
    per_group = {g: _prf(sel[:, cols], truth[:, cols]) for g, cols in groups.items()}
    coords = {"output": mask["output"].values, "group": list(groups)}
    ds = xr.Dataset(coords=coords)
    for key, value in res.items():
        ds[key] = ("output", value)
    ds["degenerate"] = ("output", degenerate)
    for m in _METRICS:
        ds[f"group_{m}"] = (("output", "group"),
                            np.stack([per_group[g][m] for g in groups], axis=-1))
    for name in [*res, "degenerate", *(f"group_{m}" for m in _METRICS)]:
        ds[name].attrs = {"long_name": name.replace("_", " ") + " of the mask against the "
                          "true drivers", "units": "1"}
    ds["degenerate"].attrs["long_name"] = ("output without true drivers "
                                           "(excluded from means)")
    return ds


def nondriver_share(attributions: xr.DataArray, drivers: xr.DataArray) -> xr.Dataset:
    """Share of attribution mass (|values|) on inputs that are not true drivers.

    Parameters
    ----------
    attributions : xr.DataArray ``(..., output, input)``
        Mean |SHAP| (``shap.nc``), any leading dimensions (e.g. ``model``).
    drivers : xr.DataArray, bool ``(output, input)``
        True drivers.

    Returns
    -------
    xr.Dataset
        ``share (..., output)`` (total mass on non-drivers / total mass),
        ``group_share (..., output, group)`` (a group's non-driver mass / total
        mass; groups sum to ``share``) and ``degenerate (output)`` (no true
        drivers; excluded from means). Zero total mass gives NaN.
    """
    inputs = [i for i in attributions["input"].values if i in set(drivers["input"].values)]
    outputs = [o for o in attributions["output"].values if o in set(drivers["output"].values)]
    if not inputs or not outputs:
        raise DataError("attributions and drivers share no output or input labels")
    att = np.abs(attributions.sel(output=outputs, input=inputs)
                 .transpose(..., "output", "input"))
    truth = drivers.sel(output=outputs, input=inputs).transpose("output", "input").values
    values = att.values
    total = np.nansum(values, axis=-1)
    non = ~truth.astype(bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = total > 0
        share = np.where(ok, np.nansum(values * non, axis=-1) / np.where(ok, total, 1), np.nan)
        groups = _groups(np.asarray(inputs))
        gshare = np.stack([np.where(ok, np.nansum(values * (non & cols), axis=-1)
                                    / np.where(ok, total, 1), np.nan)
                           for cols in groups.values()], axis=-1)
    lead = list(att.dims[:-2])
    coords = {d: att[d].values for d in lead if d in att.coords}
    ds = xr.Dataset(coords={**coords, "output": outputs, "group": list(groups)})
    ds["share"] = ([*lead, "output"], share)
    ds["group_share"] = ([*lead, "output", "group"], gshare)
    ds["degenerate"] = ("output", truth.sum(axis=-1) == 0)
    ds["share"].attrs = {"long_name": "share of mean |SHAP| on inputs that are not true drivers",
                         "units": "1"}
    ds["group_share"].attrs = {"long_name": "share of mean |SHAP| on non-driver inputs of each "
                               "group (of the total)", "units": "1"}
    ds["degenerate"].attrs = {"long_name": "output without true drivers (excluded from means)",
                              "units": "1"}
    return ds


def _nanmean(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else float("nan")


def mean_scores(scores: xr.Dataset, *, by_variable: bool = False) -> dict:
    """Macro means of :func:`driver_scores` over non-degenerate outputs.

    Parameters
    ----------
    scores : xr.Dataset
        From :func:`driver_scores`.
    by_variable : bool
        Also return means per output variable (``TPHYSTND``, ...) and per
        input group.

    Returns
    -------
    dict
        ``{"precision", "recall", "f1", "n_scored", "n_degenerate"}``, plus
        ``"by_variable": {VAR: {...}}`` and ``"by_input_group": {group: {...}}``
        when asked. NaN where nothing could be scored.
    """
    keep = ~scores["degenerate"].values
    out: dict = {m: _nanmean(scores[m].values[keep]) for m in _METRICS}
    out["n_scored"] = int(keep.sum())
    out["n_degenerate"] = int((~keep).sum())
    if by_variable:
        variables = np.array([variable_of_label(o) for o in scores["output"].values])
        out["by_variable"] = {}
        for var in OUTPUT_VARIABLES:
            rows = keep & (variables == var)
            if (variables == var).any():
                out["by_variable"][var] = {m: _nanmean(scores[m].values[rows]) for m in _METRICS}
        out["by_input_group"] = {
            str(g): {m: _nanmean(scores[f"group_{m}"].sel(group=g).values[keep])
                     for m in _METRICS}
            for g in scores["group"].values}
    return out


def mean_driver_scores(mask: np.ndarray | xr.DataArray,
                       truth: np.ndarray | xr.DataArray) -> dict[str, float]:
    """Macro-mean precision, recall and F1 of a mask, for arrays with or without labels.

    The same rule as ``mean_scores(driver_scores(mask, truth))`` (scores per output,
    averaged over the outputs that have true drivers), for plain ``[output, input]``
    arrays as well (DataArrays are aligned by label first).

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1`` (NaN where nothing could be scored) and
        ``n_scored``, the number of outputs with true drivers.
    """
    if isinstance(mask, xr.DataArray) and isinstance(truth, xr.DataArray):
        mask, truth = align(mask, truth)
    sel, true = np.asarray(mask, dtype=bool), np.asarray(truth, dtype=bool)
    if sel.shape != true.shape or sel.ndim != 2:
        raise DataError(f"mask {sel.shape} and truth {true.shape} must be equal 2-D shapes "
                        "(output, input)")
    res = _prf(sel, true)
    keep = res["n_true"] > 0
    out: dict = {m: _nanmean(res[m][keep]) for m in _METRICS}
    out["n_scored"] = int(keep.sum())
    return out
