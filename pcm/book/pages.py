"""The book's generated pages: executed notebooks and the results chapter's tables.

After a run, :func:`write_book` copies the executed notebooks into the book
folder (timing metadata removed, :func:`clean_notebook`) and renders
``results_tables.md`` from ``summary.json`` (:func:`render_results_markdown`) and
``parameters_table.md`` from :data:`pcm.params.presets.PARAMETERS`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import nbformat

from pcm.analysis.outcomes import SELECTION_LABELS, r2_by_variable
from pcm.io import read_json
from pcm.params.presets import PAPER_RULE, parameters_markdown
from pcm.variables import grid_shape

__all__ = ["clean_notebook", "copy_notebooks", "drop_cells", "render_results_markdown",
           "claims", "claims_markdown", "write_book", "CLIMSIM_TAG", "SKILL_MARGIN",
           "SPURIOUS_SHARE", "COST_RATIO_HOLDS", "CLAIM_MODELS", "selection_description"]

#: Tag of the real-data chapter's cells that show ClimSim results: a build without a
#: ClimSim run drops them, so that the chapter shows nothing about ClimSim but how to add it.
CLIMSIM_TAG = "climsim"

_NOISY_METADATA = ("papermill", "execution", "ExecuteTime", "collapsed", "scrolled")


def clean_notebook(nb: Any) -> Any:
    """Remove timing metadata that papermill/Jupyter add (in place; returns ``nb``).

    Cell ``execution_count`` values and outputs are kept (nbval compares outputs).
    """
    nb.metadata.pop("papermill", None)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for key in _NOISY_METADATA:
            cell.metadata.pop(key, None)
    return nb


def drop_cells(nb: Any, tag: str) -> Any:
    """Remove every cell tagged ``tag`` (in place; returns ``nb``)."""
    nb.cells = [c for c in nb.cells if tag not in c.metadata.get("tags", [])]
    return nb


def _fmt(value: Any, spec: str = ".2f") -> str:
    """A number for a table; None or NaN as an en dash."""
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    return format(value, spec)


def _configuration_line(params: Mapping[str, Any], preset: str | None) -> str:
    """One sentence describing the size of a run (for the results chapter)."""
    parts = [f"preset `{preset}`"] if preset else []
    if params.get("data.source", "synthetic") == "synthetic":
        n_lat, n_lon = grid_shape(params.get("data.n_lat"), params.get("data.n_lon"))
        grid = f"{n_lat} x {n_lon} grid"
        parts.append(f"synthetic aquaplanet, {grid}, {params.get('data.steps')} time steps")
    else:
        parts.append("user SPCAM data")
    parts.append(f"networks {params.get('hidden_layers')} x {params.get('hidden_units')}")
    parts.append(f"{params.get('epochs')} pre-masking + {params.get('finetune_epochs')} "
                 "fine-tuning epochs")
    parts.append(selection_description(params))
    if params.get("paper_rule"):
        parts.append("beside it the paper's rule (" + selection_description(
            {**params, **PAPER_RULE}) + ")")
    parts.append(f"λ = {_fmt(params.get('l1'), 'g')}")
    return "**Configuration of this run**: " + "; ".join(parts) + ".\n"


def selection_description(params: Mapping[str, Any]) -> str:
    """How a run's parameters (dotted keys) select the masks, in words."""
    ranking = params.get("ranking", "row_norm")
    if params.get("selection") == "relative":
        text = (f"inputs ranked by `{ranking}`, those above {_fmt(params.get('selection_ratio'), 'g')}"
                " of the output's largest entry kept")
    else:
        text = (f"{params.get('n_thresholds')} candidate thresholds on `{ranking}` up to the "
                f"{_fmt(params.get('threshold_percentile'), 'g')}th percentile, selected by "
                f"`{params.get('selection')}`")
    if params.get("screen", "none") != "none":
        text += (f", then the `{params['screen']}` screen (alpha "
                 f"{_fmt(params.get('screen_alpha'), 'g')}, minimum share "
                 f"{_fmt(params.get('screen_min_share'), 'g')})")
    return text


def _prf_cells(scores: Mapping[str, Any]) -> str:
    """``precision | recall | F1`` cells of a table row."""
    return " | ".join(_fmt(scores.get(key)) for key in ("precision", "recall", "f1"))


def render_results_markdown(summary: Mapping[str, Any], params: Mapping[str, Any] | None = None,
                            preset: str | None = None) -> str:
    """Markdown tables of a run's ``summary.json`` (for the book's results chapter).

    Parameters
    ----------
    summary : mapping
        The content of ``RUN/summary.json``.
    params : mapping, optional
        The run's parameters (dotted keys); adds a line describing the run.
    preset : str, optional
        Name of the preset, for that line.
    """
    lines: list[str] = [_configuration_line(params, preset)] if params else []
    r2 = summary.get("r2", {})
    if r2:
        models = list(r2)
        climates = sorted({c for m in models for c in r2[m]},
                          key=lambda c: ("control", "plus4K", "minus4K").index(c)
                          if c in ("control", "plus4K", "minus4K") else 9)
        variables = list(dict.fromkeys(v for m in models for c in r2[m] for v in r2[m][c]))
        for climate in climates:
            lines += [f"**Mean R² — {climate}**", "",
                      "| variable | " + " | ".join(models) + " |",
                      "|---|" + "---:|" * len(models)]
            for var in variables:
                cells = []
                for m in models:
                    value = r2[m].get(climate, {}).get(var)
                    cells.append(_fmt(value))
                lines.append(f"| {var} | " + " | ".join(cells) + " |")
            lines.append("")
    drivers = summary.get("drivers", {})
    if drivers or summary.get("shap_nondriver_share"):
        lines += ["**Recovery of the true drivers**", "",
                  "| model | precision | recall | F1 | SHAP share on non-drivers |",
                  "|---|---:|---:|---:|---:|"]
        share = summary.get("shap_nondriver_share", {})
        for model in dict.fromkeys([*drivers, *share]):
            scores = drivers.get(model, {})
            s = share.get(model)
            lines.append(f"| {model} | {_prf_cells(scores)} | {_fmt(s)} |")
        lines.append("")
    strong = summary.get("drivers_strong", {})
    if strong:
        cut = next(iter(strong.values())).get("cut")
        lines += [f"**Strong drivers** (at least {_fmt(100 * cut if cut else None, 'g')} % of "
                  "the output's deterministic variance): recall over strong drivers only, "
                  "precision counts every true driver as correct", "",
                  "| model | precision | recall | F1 | outputs scored |",
                  "|---|---:|---:|---:|---:|"]
        for model, scores in strong.items():
            lines.append(f"| {model} | {_prf_cells(scores)} | {scores.get('n_scored', '–')} |")
        lines.append("")
    ranking = summary.get("masking_vector_ranking_by_variable", {})
    if ranking:
        mean = summary.get("masking_vector_ranking", {})
        cols = [c for c in ("auc", "oracle_f1", "selected_f1", "strong_auc", "oracle_strong_f1",
                            "selected_strong_f1") if c in mean]
        names = {"auc": "AUC", "oracle_f1": "oracle F1", "selected_f1": "selected F1",
                 "strong_auc": "AUC (strong)", "oracle_strong_f1": "oracle F1 (strong)",
                 "selected_strong_f1": "selected F1 (strong)"}
        ranked_by = f" (ranking `{params.get('ranking', 'row_norm')}`)" if params else ""
        lines += [f"**Ranking of the masking vectors**{ranked_by} (threshold-free ROC AUC; "
                  "oracle F1: the best any threshold could reach; selected F1: the selected "
                  "mask)", "",
                  "| variable | " + " | ".join(names[c] for c in cols) + " |",
                  "|---|" + "---:|" * len(cols)]
        for var, row in [*ranking.items(), ("mean", mean)]:
            lines.append(f"| {var} | " + " | ".join(_fmt(row.get(c)) for c in cols) + " |")
        lines.append("")
    seconds = summary.get("seconds", {})
    if seconds:
        lines += ["**Wall-clock seconds per phase** (machine dependent)", "",
                  "| phase | seconds |", "|---|---:|"]
        lines += [f"| {phase} | {value:.0f} |" for phase, value in seconds.items()]
        lines.append("")
    cost = summary.get("cost")
    if cost:
        lines += ["**Cost: causally-informed ÷ PCMasking** (wall seconds; the paper: "
                  "PCMasking costs about a third, i.e. a ratio of about 3)", "",
                  "| | PCMasking | causally-informed | ratio |", "|---|---:|---:|---:|",
                  f"| this run | {_fmt(cost.get('pcmasking_s'), '.0f')} | "
                  f"{_fmt(cost.get('causal_s'), '.0f')} | {_fmt(cost.get('ratio'))} |"]
        if cost.get("ratio_all_columns") is not None:
            lines.append(f"| discovery on all {cost['grid_columns']} columns "
                         f"(extrapolated from {cost['causal_columns']}) | | | "
                         f"{_fmt(cost['ratio_all_columns'])} |")
        lines.append("")
    return "\n".join(lines) if lines else "_The summary of this run is empty._\n"


#: R² within this of the reference counts as "like" it in the claims table.
SKILL_MARGIN = 0.02
#: A non-driver SHAP share at or below this counts as spurious links removed.
SPURIOUS_SHARE = 0.05


#: A cost ratio (causally-informed ÷ PCMasking) of at least this is "about three times".
COST_RATIO_HOLDS = 2.5


def _mean_r2(summary: Mapping[str, Any], model: str, climate: str = "control") -> float | None:
    values = list(r2_by_variable(summary, model, climate).values())
    return sum(values) / len(values) if values else None


def _skill_verdict(ours: float | None, reference: float | None) -> str:
    if ours is None or reference is None:
        return "not measured"
    if ours >= reference - SKILL_MARGIN:
        return "holds" if ours <= reference + SKILL_MARGIN else "holds (PCMasking higher)"
    return f"does not hold (more than {SKILL_MARGIN:g} below)"


#: Model kinds the claims table checks (named by :data:`pcm.analysis.outcomes.SELECTION_LABELS`).
CLAIM_MODELS = ("pcmasking", "paper_rule")


def _unconverged(summary: Mapping[str, Any], phase: str) -> str:
    """A caveat where the summary records that a reference network had not converged."""
    training = summary.get("training", {}).get(phase)
    if not training or training.get("converged", True):
        return ""
    share = training.get("converged_share")
    return (f"; the {'unconstrained' if phase == 'unconstrained' else 'causally-informed'} "
            f"networks had not converged (`schedule: {training.get('schedule')}`, "
            f"{_fmt(100 * share if share is not None else None, '.0f')} % converged), so "
            "their skill may be understated")


def claims(summary: Mapping[str, Any], model: str = "pcmasking") -> list[dict[str, str]]:
    """The paper's claims against a run's ``summary.json``: what was measured, the
    numbers and a verdict computed from them (one dict per claim), for the PCMasking
    networks of ``model`` (``pcmasking``: the run's own selection; ``paper_rule``: the
    paper's rule beside it)."""
    rows = []
    pcm, unc, causal = (_mean_r2(summary, m) for m in (model, "unconstrained", "causal"))
    rows.append({"claim": "skill like unconstrained networks",
                 "measured": "mean control R² over the variables, PCMasking vs unconstrained",
                 "this run": f"{_fmt(pcm)} vs {_fmt(unc)}",
                 "verdict": _skill_verdict(pcm, unc) + _unconverged(summary, "unconstrained")})
    shifted = {c: (_mean_r2(summary, model, c), _mean_r2(summary, "unconstrained", c))
               for c in ("plus4K", "minus4K")}
    measured = {c: v for c, v in shifted.items() if None not in v}
    if measured:
        worst = {c: _skill_verdict(*v) for c, v in measured.items()}
        verdict = ("holds on the mean" if all(w.startswith("holds") for w in worst.values())
                   else "does not hold at " + ", ".join(c for c, w in worst.items()
                                                        if not w.startswith("holds")))
        losses = []
        for c in measured:
            ours = r2_by_variable(summary, model, c)
            theirs = r2_by_variable(summary, "unconstrained", c)
            losses += [f"{var} at {c}" for var in ours
                       if var in theirs and ours[var] < theirs[var] - SKILL_MARGIN]
        if losses:
            verdict += f"; below by more than {SKILL_MARGIN:g} on {', '.join(losses)}"
        verdict += _unconverged(summary, "unconstrained")
        rows.append({"claim": "robust at ±4 K",
                     "measured": "mean R² in the shifted climates, PCMasking vs unconstrained",
                     "this run": "; ".join(f"{c}: {_fmt(a)} vs {_fmt(b)}"
                                           for c, (a, b) in measured.items()),
                     "verdict": verdict})
    share = summary.get("shap_nondriver_share", {})
    precision = summary.get("drivers", {}).get(model, {}).get("precision")
    s_pcm, s_unc = share.get(model), share.get("unconstrained")
    if s_pcm is None or s_unc is None:
        verdict = "not measured (no true drivers)"
    elif s_pcm <= SPURIOUS_SHARE:
        verdict = "holds"
    elif s_pcm < s_unc:
        verdict = f"partly: reduced, not removed (share above {SPURIOUS_SHARE:g})"
    else:
        verdict = "does not hold"
    rows.append({"claim": "spurious links removed",
                 "measured": "SHAP share on non-drivers, PCMasking vs unconstrained; mask "
                             "precision",
                 "this run": f"{_fmt(s_pcm)} vs {_fmt(s_unc)}; precision {_fmt(precision)}",
                 "verdict": verdict})
    rows.append({"claim": "skill of the causally-informed networks",
                 "measured": "mean control R², PCMasking vs causally-informed",
                 "this run": f"{_fmt(pcm)} vs {_fmt(causal)}",
                 "verdict": _skill_verdict(pcm, causal) + _unconverged(summary, "causal")})
    cost = summary.get("cost") or {}
    suffix = "" if model == "pcmasking" else f"_{model}"
    ratio, ratio_all = cost.get(f"ratio{suffix}"), cost.get(f"ratio{suffix}_all_columns")
    if ratio is None:
        rows.append({"claim": "about a third of the cost", "measured": "cost ratio",
                     "this run": "–", "verdict": "not measured"})
    else:
        every = ratio_all is None
        decisive = ratio if ratio_all is None else ratio_all
        columns = f"all {cost['grid_columns']}" if "grid_columns" in cost else "every"
        text = (f"{_fmt(ratio)} side by side (discovery on {columns} columns)" if every else
                f"{_fmt(ratio)} with discovery on {cost['causal_columns']} of "
                f"{cost['grid_columns']} columns; {_fmt(ratio_all)} extrapolated to every "
                "column")
        verdict = ("holds" if decisive >= COST_RATIO_HOLDS else
                   "partly: cheaper, not three times" if decisive > 1.0 else "does not hold")
        rows.append({"claim": "about a third of the cost (ratio about 3)",
                     "measured": "wall seconds, causally-informed ÷ PCMasking",
                     "this run": text,
                     "verdict": verdict + ("" if every else " (on the extrapolated ratio)")})
    return rows


def claims_markdown(summary: Mapping[str, Any]) -> str:
    """:func:`claims` as a Markdown table, after the rules its verdicts follow: one row per
    claim and selection (the run's own, and the paper's rule where it ran beside it)."""
    lines = [f"Skill holds within {SKILL_MARGIN:g} R² of the reference; spurious links count "
             f"as removed at a SHAP share on non-drivers of at most {SPURIOUS_SHARE:g}; "
             f"\"about a third of the cost\" needs a ratio of at least {COST_RATIO_HOLDS:g}. "
             "A verdict says so where the networks it compares with had not converged.",
             "", "| the paper's claim | measured | masks | this run | verdict |",
             "|---|---|---|---|---|"]
    models = [m for m in CLAIM_MODELS if m == "pcmasking" or m in summary.get("r2", {})]
    rows = {m: claims(summary, m) for m in models}
    for i, row in enumerate(rows["pcmasking"]):
        for m in models:
            r = rows[m][i]
            lines.append(f"| {row['claim']} | {row['measured']} | {SELECTION_LABELS[m]} | "
                         f"{r['this run']} | {r['verdict']} |")
    return "\n".join(lines) + "\n"


def copy_notebooks(book_dir: Path, notebooks: Sequence[Path]) -> None:
    """Copy executed notebooks into the book folder, timing metadata removed
    (missing ones are skipped)."""
    book_dir.mkdir(parents=True, exist_ok=True)
    for src in notebooks:
        if src.exists():
            nb = nbformat.read(src, as_version=4)
            nbformat.write(clean_notebook(nb), book_dir / src.name)


def write_book(book_dir: Path, notebooks: Sequence[Path], summary: Path,
               state: Mapping[str, Any]) -> None:
    """Copy executed notebooks and write the generated tables into the book folder.

    Parameters
    ----------
    book_dir : Path
        The book's folder of generated pages (``book/notebooks``).
    notebooks : sequence of Path
        Executed notebooks of the run, in order (missing ones are skipped).
    summary : Path
        ``RUN/summary.json`` (absent: the results chapter says so).
    state : mapping
        The run's pipeline state (``params`` and ``preset`` describe the run).
    """
    copy_notebooks(book_dir, notebooks)
    missing = "_No summary: the pipeline has not finished._\n"
    record = read_json(summary) if summary.exists() else None
    (book_dir / "results_tables.md").write_text(
        missing if record is None
        else render_results_markdown(record, state.get("params"), state.get("preset")))
    (book_dir / "claims_table.md").write_text(
        missing if record is None else claims_markdown(record))
    (book_dir / "parameters_table.md").write_text(parameters_markdown())


