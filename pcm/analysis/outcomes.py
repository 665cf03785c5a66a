"""What a run measured, in sentences: the generated summaries of the book's notebooks.

Every function reads artefacts of a run (``summary.json``, histories, ``thresholds.nc``,
sweep and shift tables) and returns Markdown whose numbers and whose words of
direction ("rises", "below") come from those artefacts, so that a notebook's Summary
is true for the run that executed it, including where PCMasking loses.
:func:`require` is the other half: a sentence the book writes by hand states a
direction, and the notebook fails (and with it ``make book``) when the run
contradicts it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from pcm.analysis.scoring import driver_scores, mean_scores

__all__ = ["StatementError", "require", "training_outcome", "threshold_outcome",
           "skill_outcome", "driver_outcome", "r2_by_variable", "sweep_outcome", "shift_outcome",
           "selection_comparison", "LOSS_MARGIN", "SELECTION_LABELS"]

#: How the book names the masks of each model kind that selects inputs.
SELECTION_LABELS = {"pcmasking": "this run's selection", "paper_rule": "the paper's rule",
                    "causal": "causally-informed (PCMCI)"}

#: R² differences smaller than this are "about the same" in the generated sentences.
LOSS_MARGIN = 0.01


class StatementError(AssertionError):
    """A sentence of the book contradicts the run that executed it."""


def require(condition: bool, statement: str) -> None:
    """Fail the notebook when a hand-written ``statement`` is false for this run.

    Raises
    ------
    StatementError
        ``condition`` is false: the message quotes the statement.
    """
    if not bool(condition):
        raise StatementError(f"the book states {statement!r}, which this run contradicts")


def _f(value: Any, spec: str = ".2f") -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    return format(float(value), spec)


def _direction(first: float, last: float, margin: float = LOSS_MARGIN) -> str:
    if last > first + margin:
        return "rises"
    if last < first - margin:
        return "falls"
    return "stays about level"


def training_outcome(histories: Mapping[str, xr.Dataset]) -> str:
    """One bullet per training phase: epochs, final mean losses, and what the
    validation loss did from the first to the last epoch (mean over networks)."""
    lines = []
    for name, history in histories.items():
        loss = history["loss"].mean("network").values
        text = (f"- **{name}**: {loss.size} epochs; mean training loss "
                f"{_f(loss[0], '.3g')} → {_f(loss[-1], '.3g')}")
        if "val_loss" in history:
            val = history["val_loss"].mean("network").values
            change = (val[-1] - val[0]) / val[0] if val[0] else float("nan")
            trend = "fell" if change < 0 else "rose"
            text += (f", validation loss {_f(val[0], '.3g')} → {_f(val[-1], '.3g')} "
                     f"({trend} {_f(abs(100 * change), '.0f')} %)")
        lines.append(text + ".")
    return "\n".join(lines) + "\n"


def threshold_outcome(thresholds: xr.Dataset, masks: xr.DataArray,
                      selection: str) -> str:
    """What the threshold search chose and how much the loss told the candidates apart.

    Parameters
    ----------
    thresholds : xr.Dataset
        ``thresholds.nc``.
    masks : xr.DataArray
        ``masks.nc``'s ``mask(output, input)``.
    selection : str
        The selection criterion of the run.
    """
    kept = masks.sum("input").values
    n_out, n_in = masks.sizes["output"], masks.sizes["input"]
    lines = [f"- Masks keep a median of {int(np.median(kept))} of {n_in} inputs per output "
             f"(min {int(kept.min())}, max {int(kept.max())})."]
    loss = thresholds["loss"].values if "loss" in thresholds else np.full((n_out, 1), np.nan)
    searched = np.isfinite(loss).sum(axis=1) > 1
    if searched.any():
        rows = loss[searched]
        spread = (np.nanmax(rows, axis=1) - np.nanmin(rows, axis=1)) / np.nanmin(rows, axis=1)
        chosen = thresholds["chosen_index"].values[searched]
        n_cand = np.isfinite(rows).sum(axis=1)
        largest = int((chosen == n_cand - 1).sum())
        smallest = int((chosen == 0).sum())
        flat = int((spread < 0.01).sum())
        lines.append(
            f"- `{selection}` picks the candidate with the lowest loss. Over the "
            f"{int(searched.sum())} searched outputs the loss of the best and the worst "
            f"candidate differ by a median of {_f(100 * np.median(spread), '.1f')} %; for "
            f"{flat} of them by less than 1 %, where the choice rests on small differences.")
        lines.append(f"- The choice fell on the largest candidate for {largest} outputs and on "
                     f"the smallest for {smallest}.")
    else:
        lines.append(f"- `{selection}`: no loss was searched (one candidate per output).")
    screen = thresholds.attrs.get("screen", "none")
    if screen != "none" and "n_inputs_kept" in thresholds:
        chosen = thresholds["chosen_index"].values
        above = thresholds["n_inputs_kept"].values[np.arange(len(chosen)), chosen]
        lines.append(f"- Then the `{screen}` screen: of a median of {int(np.nanmedian(above))} "
                     f"inputs above the threshold it kept {int(np.median(kept))}; the mask "
                     "is the screen's choice, not the inputs above the line.")
    return "\n".join(lines) + "\n"


def selection_comparison(masks: Mapping[str, xr.DataArray], drivers: xr.DataArray | None,
                         strength: xr.DataArray | None = None) -> str:
    """Masks of several selections side by side: inputs kept per output and, where the
    true drivers are known, mean precision, recall and F1 (strong drivers too where
    ``strength`` is given; :func:`pcm.analysis.scoring.driver_scores`)."""
    head = "| selection | inputs kept per output (median) |"
    if drivers is not None:
        head += " precision | recall | F1 |" + (" strong-driver F1 |" if strength is not None
                                                 else "")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for kind, mask in masks.items():
        row = (f"| {SELECTION_LABELS.get(kind, kind)} (`{kind}`) | "
               f"{int(mask.sum('input').median())} of {mask.sizes['input']} |")
        if drivers is not None:
            means = mean_scores(driver_scores(mask, drivers, strength))
            row += "".join(f" {_f(means[k])} |" for k in ("precision", "recall", "f1"))
            if strength is not None:
                row += f" {_f(means.get('strong', {}).get('f1'))} |"
        lines.append(row)
    return "\n".join(lines) + "\n"


def r2_by_variable(summary: Mapping[str, Any], model: str, climate: str) -> dict[str, float]:
    """Mean R² per variable of ``model`` in ``climate`` (``summary.json``), finite only."""
    return {k: float(v) for k, v in summary.get("r2", {}).get(model, {}).get(climate, {}).items()
            if v is not None and np.isfinite(v)}


def skill_outcome(summary: Mapping[str, Any], *, model: str = "pcmasking",
                  baseline: str = "unconstrained", margin: float = LOSS_MARGIN) -> str:
    """Per climate, the variables where ``model`` is below / above ``baseline`` (mean R²
    per variable, ``summary.json``), with both numbers."""
    r2 = summary.get("r2", {})
    if model not in r2 or baseline not in r2:
        return f"_No R² of both {model} and {baseline} in this run._\n"
    lines = []
    for climate in r2[model]:
        ours = r2_by_variable(summary, model, climate)
        theirs = r2_by_variable(summary, baseline, climate)
        common = [v for v in ours if v in theirs]
        worse = [f"{v} {_f(ours[v])} vs {_f(theirs[v])}" for v in common
                 if ours[v] < theirs[v] - margin]
        better = [f"{v} {_f(ours[v])} vs {_f(theirs[v])}" for v in common
                  if ours[v] > theirs[v] + margin]
        mean_ours = np.mean([ours[v] for v in common]) if common else float("nan")
        mean_theirs = np.mean([theirs[v] for v in common]) if common else float("nan")
        text = (f"- **{climate}**: mean over variables {model} {_f(mean_ours)}, {baseline} "
                f"{_f(mean_theirs)}. ")
        text += (f"{model} is **below** {baseline} for {', '.join(worse)}" if worse
                 else f"{model} is nowhere below {baseline} by more than {margin}")
        text += (f"; above for {', '.join(better)}." if better else "; above nowhere.")
        lines.append(text)
    return "\n".join(lines) + "\n"


def driver_outcome(summary: Mapping[str, Any]) -> str:
    """Precision, recall, F1 of each model's masks and its SHAP share on non-drivers, with
    the comparisons these numbers support (``summary.json``)."""
    drivers = summary.get("drivers", {})
    share = summary.get("shap_nondriver_share", {})
    if not drivers and not share:
        return "_No true drivers for these data: the masks and SHAP values are not scored._\n"
    lines = []
    for model in dict.fromkeys([*drivers, *share]):
        scores = drivers.get(model, {})
        text = f"- **{model}**: "
        if scores:
            text += (f"precision {_f(scores.get('precision'))}, recall "
                     f"{_f(scores.get('recall'))}, F1 {_f(scores.get('f1'))}; ")
            p, r = scores.get("precision"), scores.get("recall")
            if p is not None and r is not None:
                text += ("recall above precision: its masks err more by keeping "
                         "non-drivers than by dropping drivers; " if r > p else
                         "precision above recall: its masks err more by dropping drivers "
                         "than by keeping non-drivers; ")
        if model in share and share[model] is not None:
            text += f"{_f(100 * share[model], '.0f')} % of its mean |SHAP| on non-drivers."
        lines.append(text.rstrip("; ") + ("" if text.endswith(".") else "."))
    masked = {"pcmasking": "PCMasking", "paper_rule": "PCMasking with the paper's rule"}
    for kind, name in masked.items():
        if kind in share and "unconstrained" in share:
            ours, theirs = share[kind], share["unconstrained"]
            verdict = ("less" if ours < theirs - LOSS_MARGIN else
                       "more" if ours > theirs + LOSS_MARGIN else "about as much")
            lines.append(f"- {name} puts {verdict} of its SHAP mass on non-drivers than the "
                         f"unconstrained network ({_f(ours)} against {_f(theirs)}).")
    return "\n".join(lines) + "\n"


def sweep_outcome(table: xr.Dataset, key: str,
                  columns: Sequence[str] = ("f1", "strong_f1", "r2_pcmasking_mean"),
                  *, broken_r2: float = 0.3) -> str:
    """How each score moves from the smallest to the largest value of a sweep's grid key,
    and whether the sweep's unconstrained networks are good enough to compare skill."""
    values = np.asarray(table[key].values, dtype=float)
    order = np.argsort(values)
    lo, hi = values[order[0]], values[order[-1]]
    lines = []
    for column in columns:
        if column not in table:
            continue
        col = np.asarray(table[column].values, dtype=float)[order]
        lines.append(f"- `{column}` {_direction(col[0], col[-1])} from {key} = {lo:g} to "
                     f"{key} = {hi:g}: {_f(col[0])} → {_f(col[-1])} (best {_f(np.nanmax(col))} "
                     f"at {key} = {values[order][int(np.nanargmax(col))]:g}).")
    if "r2_unconstrained_mean" in table:
        base = np.asarray(table["r2_unconstrained_mean"].values, dtype=float)
        if np.nanmax(base) < broken_r2:
            lines.append(f"- The sweep's unconstrained networks reach a mean R² of at most "
                         f"{_f(np.nanmax(base))}: too poorly trained at this size for the "
                         "skill columns to compare PCMasking with them.")
    return "\n".join(lines) + "\n"


def shift_outcome(shift: xr.Dataset, *, model: str = "pcmasking",
                  baseline: str = "unconstrained", margin: float = LOSS_MARGIN) -> str:
    """Per shifted climate, the variables where ``model`` loses to ``baseline`` (R²),
    from :func:`pcm.experiments.chapter.shift_test`'s table."""
    models = [str(m) for m in shift["model"].values]
    if model not in models or baseline not in models:
        return f"_No shift test of both {model} and {baseline}._\n"
    diff = shift["r2"].sel(model=model) - shift["r2"].sel(model=baseline)
    lines = []
    for s in shift["shift"].values:
        if float(s) == 0:
            continue
        row = diff.sel(shift=s)
        losses = [f"{v} {_f(shift['r2'].sel(model=model, shift=s, var=v))} vs "
                  f"{_f(shift['r2'].sel(model=baseline, shift=s, var=v))}"
                  for v in row["var"].values if float(row.sel(var=v)) < -margin]
        mean = (f"mean {_f(shift['r2_mean'].sel(model=model, shift=s))} vs "
                f"{_f(shift['r2_mean'].sel(model=baseline, shift=s))}")
        lines.append(f"- **{float(s):+g} K** ({mean}): "
                     + (f"{model} below {baseline} for {', '.join(losses)}." if losses
                        else f"{model} nowhere below {baseline} by more than {margin}."))
    return "\n".join(lines) + "\n"
