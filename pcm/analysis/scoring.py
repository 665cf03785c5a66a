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

Strong drivers: with the generator's driver strength (``driver_strength(output,
input)`` in ``drivers.nc``: the share of the output's deterministic variance the
input explains) the same rule is applied with recall counting only the *strong*
drivers (strength >= ``strong_cut``, default 1 %) while precision counts every
true driver as correct — keeping a weak true driver is not a false positive.
Outputs without strong drivers are left out of the strong means.

Ranking (:func:`ranking_scores`): how well a continuous score (a masking vector)
orders drivers before non-drivers, independent of any threshold: ROC AUC per
output, and the oracle F1 — the best F1 any threshold on that vector could reach,
to compare with the F1 the selection rule reached.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.stats import rankdata

from pcm.errors import DataError, ParameterError
from pcm.variables import OUTPUT_VARIABLES, input_groups, input_labels, variable_of_label

__all__ = ["driver_scores", "nondriver_share", "mean_scores", "mask_scores",
           "mean_driver_scores", "align", "strong_drivers", "ranking_scores",
           "mean_ranking_scores", "STRONG_CUT"]

_METRICS = ("precision", "recall", "f1")

#: Default share of an output's deterministic variance that makes a driver "strong".
STRONG_CUT = 0.01



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


def _prf(sel: np.ndarray, truth: np.ndarray,
         relevant: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Precision, recall, F1 along the last axis; NaN where undefined.

    Precision counts a selected input as correct when it is in ``truth``; recall
    counts the ``relevant`` inputs (default ``truth``) that were selected. F1 is the
    harmonic mean of precision and recall where both exist (``2 tp / (n_selected +
    n_true)`` when ``relevant`` is ``truth``), 0 for an empty mask of an output that
    has relevant inputs or for a non-empty mask of one that has none, and NaN only
    when there is nothing to select and nothing was selected.
    """
    relevant = truth if relevant is None else relevant
    tp = np.sum(sel & truth, axis=-1).astype(float)
    tp_rel = np.sum(sel & relevant, axis=-1).astype(float)
    n_sel = np.sum(sel, axis=-1).astype(float)
    n_true = np.sum(relevant, axis=-1).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(n_sel > 0, tp / np.maximum(n_sel, 1), np.nan)
        recall = np.where(n_true > 0, tp_rel / np.maximum(n_true, 1), np.nan)
        both = (n_sel > 0) & (n_true > 0)
        p, r = np.where(both, precision, 0.0), np.where(both, recall, 0.0)
        f1 = np.where(p + r > 0, 2 * p * r / np.where(p + r > 0, p + r, 1.0), 0.0)
        f1 = np.where(n_sel + n_true > 0, f1, np.nan)
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp,
            "n_selected": n_sel, "n_true": n_true}


def strong_drivers(drivers: xr.DataArray, strength: xr.DataArray,
                   cut: float = STRONG_CUT) -> xr.DataArray:
    """True drivers whose strength (share of deterministic variance) is at least ``cut``.

    Parameters
    ----------
    drivers, strength : xr.DataArray ``(output, input)``
        True drivers and their strength (``drivers.nc``); aligned by label.
    cut : float
        Smallest strength of a strong driver (0.01: 1 % of the variance).
    """
    if not 0 <= float(cut) < 1:
        raise ParameterError("strong_cut", f"must lie in [0, 1), got {cut!r}")
    drivers, strength = align(drivers, strength)
    return (drivers.astype(bool) & (strength >= float(cut))).rename("strong_drivers")


def _groups(inputs: np.ndarray) -> dict[str, np.ndarray]:
    labels = input_labels()
    out = {}
    for group, idx in input_groups().items():
        members = {labels[i] for i in idx}
        out[group] = np.array([i in members for i in inputs])
    return out


def driver_scores(mask: xr.DataArray, drivers: xr.DataArray,
                  strength: xr.DataArray | None = None,
                  strong_cut: float = STRONG_CUT) -> xr.Dataset:
    """Per-output precision, recall and F1 of a binary mask against the true drivers.

    Parameters
    ----------
    mask : xr.DataArray, bool ``(output, input)``
        Selected inputs of each output.
    drivers : xr.DataArray, bool ``(output, input)``
        True drivers (``drivers.nc``).
    strength : xr.DataArray ``(output, input)``, optional
        Driver strength (``drivers.nc``); adds the strong-driver scores.
    strong_cut : float
        Smallest strength of a strong driver.

    Returns
    -------
    xr.Dataset
        ``precision recall f1 (output)``, ``tp n_selected n_true (output)``,
        ``degenerate (output)`` and the same three scores per input group,
        ``group_precision group_recall group_f1 (output, group)``. With
        ``strength``: ``strong_precision strong_recall strong_f1 n_strong (output)``
        (recall over strong drivers, precision over all true drivers) and
        ``strong_degenerate (output)`` (no strong driver; excluded from means).
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
    if strength is not None:
        strong = strong_drivers(drivers, strength, strong_cut).values
        res_strong = _prf(sel, truth, strong)
        for m in _METRICS:
            ds[f"strong_{m}"] = ("output", res_strong[m], {
                "long_name": f"{m} of the mask, recall over strong drivers (strength >= "
                             f"{strong_cut:g}), precision over all true drivers",
                "units": "1"})
        ds["n_strong"] = ("output", res_strong["n_true"],
                          {"long_name": "number of strong drivers", "units": "1"})
        ds["strong_degenerate"] = ("output", res_strong["n_true"] == 0, {
            "long_name": "output without strong drivers (excluded from strong means)",
            "units": "1"})
        ds.attrs["strong_cut"] = float(strong_cut)
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
        when asked. With strong-driver scores also ``"strong": {"precision",
        "recall", "f1", "n_scored", "cut"}`` (over outputs with strong drivers) and,
        when asked, ``"strong_by_variable"``. NaN where nothing could be scored.
    """
    keep = ~scores["degenerate"].values
    out: dict = {m: _nanmean(scores[m].values[keep]) for m in _METRICS}
    out["n_scored"] = int(keep.sum())
    out["n_degenerate"] = int((~keep).sum())
    strong = "strong_f1" in scores
    keep_strong = ~scores["strong_degenerate"].values if strong else None
    if strong:
        out["strong"] = {m: _nanmean(scores[f"strong_{m}"].values[keep_strong])
                         for m in _METRICS}
        out["strong"].update(n_scored=int(keep_strong.sum()),
                             cut=float(scores.attrs.get("strong_cut", STRONG_CUT)))
    if by_variable:
        variables = np.array([variable_of_label(o) for o in scores["output"].values])
        out["by_variable"] = {}
        if strong:
            out["strong_by_variable"] = {}
        for var in OUTPUT_VARIABLES:
            rows = keep & (variables == var)
            if (variables == var).any():
                out["by_variable"][var] = {m: _nanmean(scores[m].values[rows]) for m in _METRICS}
                if strong:
                    rows = keep_strong & (variables == var)
                    out["strong_by_variable"][var] = {
                        m: _nanmean(scores[f"strong_{m}"].values[rows]) for m in _METRICS}
        out["by_input_group"] = {
            str(g): {m: _nanmean(scores[f"group_{m}"].sel(group=g).values[keep])
                     for m in _METRICS}
            for g in scores["group"].values}
    return out


def mask_scores(mask: xr.DataArray, drivers: xr.DataArray,
                strength: xr.DataArray | None = None) -> dict[str, float]:
    """One row of a mask's scores: ``precision recall f1`` against the true drivers and
    ``strong_precision strong_recall strong_f1`` against the strong ones (macro means,
    :func:`mean_scores`; NaN without ``strength``), and ``inputs_kept`` (mean per output).
    """
    means = mean_scores(driver_scores(mask, drivers, strength))
    row = {m: means[m] for m in _METRICS}
    strong = means.get("strong", {})
    row.update({f"strong_{m}": strong.get(m, np.nan) for m in _METRICS})
    row["inputs_kept"] = float(mask.values.sum(axis=1).mean())
    return row


def _auc(score: np.ndarray, positive: np.ndarray, negative: np.ndarray) -> float:
    """ROC AUC of ``score`` separating ``positive`` from ``negative`` entries (ties: 1/2)."""
    pos, neg = score[positive], score[negative]
    if not pos.size or not neg.size:
        return float("nan")
    ranks = rankdata(np.concatenate([pos, neg]))  # average ranks for ties
    return float((ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2)
                 / (pos.size * neg.size))


def _threshold_masks(score: np.ndarray) -> np.ndarray:
    """Every mask ``score > t`` a threshold can make, ``[n_masks, n_inputs]`` (empty included)."""
    levels = np.unique(score)
    cuts = np.concatenate([[levels[0] - 1.0], levels])  # below the minimum: keep everything
    return score[None, :] > cuts[:, None]


def ranking_scores(vectors: xr.DataArray, drivers: xr.DataArray,
                   strength: xr.DataArray | None = None,
                   strong_cut: float = STRONG_CUT) -> xr.Dataset:
    """Threshold-free quality of continuous per-input scores (masking vectors).

    Parameters
    ----------
    vectors : xr.DataArray ``(output, input)``
        Larger means "more likely a driver" (``masking_vectors.nc``).
    drivers : xr.DataArray, bool ``(output, input)``
        True drivers.
    strength : xr.DataArray ``(output, input)``, optional
        Driver strength; adds the strong-driver ranking scores.
    strong_cut : float
        Smallest strength of a strong driver.

    Returns
    -------
    xr.Dataset
        ``auc (output)``: probability that a random true driver scores above a
        random non-driver (ties count 1/2; NaN when an output has no driver or no
        non-driver); ``oracle_f1 (output)``: the best F1 (the rule of
        :func:`driver_scores`) over every mask ``vector > t`` any threshold ``t``
        gives, the empty and the full mask included; ``oracle_n_selected``: the
        size of that best mask. With ``strength``: ``strong_auc`` (strong drivers
        against non-drivers, weak drivers left out) and ``oracle_strong_f1``.
        ``degenerate``/``strong_degenerate`` flag outputs without (strong) drivers.
    """
    vectors, drivers = align(vectors, drivers)
    values = np.asarray(vectors.values, dtype=np.float64)
    truth = drivers.values.astype(bool)
    strong = (strong_drivers(drivers, strength, strong_cut).values
              if strength is not None else None)
    n_out = values.shape[0]
    res = {k: np.full(n_out, np.nan) for k in ("auc", "oracle_f1", "oracle_n_selected",
                                                "strong_auc", "oracle_strong_f1")}
    for i in range(n_out):
        finite = np.isfinite(values[i])
        if not finite.any():
            continue
        score, t = values[i, finite], truth[i, finite]
        res["auc"][i] = _auc(score, t, ~t)
        masks = _threshold_masks(score)
        f1 = _prf(masks, np.broadcast_to(t, masks.shape))["f1"]
        if np.isfinite(f1).any() and t.any():
            best = int(np.nanargmax(f1))
            res["oracle_f1"][i] = f1[best]
            res["oracle_n_selected"][i] = masks[best].sum()
        if strong is not None:
            s = strong[i, finite]
            res["strong_auc"][i] = _auc(score, s, ~t)
            if s.any():
                res["oracle_strong_f1"][i] = np.nanmax(_prf(
                    masks, np.broadcast_to(t, masks.shape), np.broadcast_to(s, masks.shape))["f1"])
    names = {"auc": "ROC AUC of the masking vector: true drivers against non-drivers",
             "oracle_f1": "best F1 over all thresholds on the masking vector",
             "oracle_n_selected": "inputs kept by the threshold of the best F1",
             "strong_auc": f"ROC AUC: strong drivers (strength >= {strong_cut:g}) against "
                           "non-drivers",
             "oracle_strong_f1": "best strong-driver F1 over all thresholds"}
    keys = list(names) if strong is not None else ["auc", "oracle_f1", "oracle_n_selected"]
    ds = xr.Dataset({k: ("output", res[k], {"long_name": names[k], "units": "1"}) for k in keys},
                    coords={"output": vectors["output"].values})
    ds["degenerate"] = ("output", truth.sum(axis=1) == 0,
                        {"long_name": "output without true drivers (excluded from means)",
                         "units": "1"})
    if strong is not None:
        ds["strong_degenerate"] = ("output", strong.sum(axis=1) == 0, {
            "long_name": "output without strong drivers (excluded from strong means)",
            "units": "1"})
        ds.attrs["strong_cut"] = float(strong_cut)
    return ds


def mean_ranking_scores(ranking: xr.Dataset, scores: xr.Dataset | None = None, *,
                        by_variable: bool = False) -> dict:
    """Macro means of :func:`ranking_scores`, next to the selected mask's F1.

    Parameters
    ----------
    ranking : xr.Dataset
        From :func:`ranking_scores`.
    scores : xr.Dataset, optional
        :func:`driver_scores` of the mask the selection rule chose (same outputs):
        adds ``selected_f1`` (and ``selected_strong_f1``).
    by_variable : bool
        Also return the means per output variable (``"by_variable": {VAR: {...}}``).

    Returns
    -------
    dict
        ``auc oracle_f1 [selected_f1]`` over outputs with drivers, and
        ``strong_auc oracle_strong_f1 [selected_strong_f1]`` over outputs with strong
        drivers where the strength is known. NaN where nothing could be scored.
    """
    columns: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    keep = ~ranking["degenerate"].values
    columns["auc"] = (ranking["auc"].values, keep)
    columns["oracle_f1"] = (ranking["oracle_f1"].values, keep)
    if scores is not None:
        columns["selected_f1"] = (scores["f1"].sel(output=ranking["output"]).values, keep)
    if "strong_auc" in ranking:
        keep_s = ~ranking["strong_degenerate"].values
        columns["strong_auc"] = (ranking["strong_auc"].values, keep_s)
        columns["oracle_strong_f1"] = (ranking["oracle_strong_f1"].values, keep_s)
        if scores is not None and "strong_f1" in scores:
            columns["selected_strong_f1"] = (
                scores["strong_f1"].sel(output=ranking["output"]).values, keep_s)
    out: dict = {k: _nanmean(v[rows]) for k, (v, rows) in columns.items()}
    if by_variable:
        variables = np.array([variable_of_label(o) for o in ranking["output"].values])
        out["by_variable"] = {
            var: {k: _nanmean(v[rows & (variables == var)]) for k, (v, rows) in columns.items()}
            for var in OUTPUT_VARIABLES if (variables == var).any()}
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
