"""``pcm worlds``: methods over many synthetic worlds, as one tidy table and a figure.

A *method* is a named set of run-parameter overrides (``paper``, ``relative`` below, or
``--method name:key=value,key=value``). :func:`run_worlds` runs every method on every
world (``data.world``, :mod:`pcm.data.synthetic.worlds`) through the machinery of
:mod:`pcm.experiments.sweep` (:func:`pcm.experiments.sweep.run_points`): each world's data
are written once; methods that differ only after the pre-masking phase (threshold rule,
selection, screen, fine-tuning) share that world's pre-masking networks and its unconstrained
network; methods that differ only in λ train as one stack. Worlds do not stack with
each other: the networks of a stack share their mini-batches, and two worlds have
different data.

Outputs in ``OUT``: ``worlds.nc`` and ``worlds.csv`` (dimension ``row``, one per
world and method: ``world``, ``split``, ``method``; ranking AUC, oracle F1, selected F1
of all and of strong drivers, precision, recall, the SHAP share on non-drivers, R² of
PCMasking and of the unconstrained network and their gap, inputs kept, seconds, and why
the ranking misses: strong drivers left unused, non-drivers and proxies ranked ahead,
:func:`world_diagnosis`) and
``worlds.png`` (the distribution over worlds, :func:`pcm.analysis.world_figures.world_strips`).
Per-point run directories are under ``OUT/points/world-W_METHOD``.

World seeds 0-99 are development worlds, 100-199 held-out worlds
(:func:`pcm.data.synthetic.worlds.world_split`): choose methods and defaults on the
first, report the second.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from pcm.analysis.world_figures import world_strips
from pcm.data.synthetic.worlds import MAX_WORLD, world_split
from pcm.errors import ParameterError, PCMError
from pcm.experiments.chapter import ranking_diagnosis
from pcm.experiments.sweep import run_points
from pcm.io import output_dir, read_json, write_netcdf
from pcm.params.presets import METHODS, PARAMETERS, preset, validate
from pcm.params.run_parameters import parse_override, resolve_parameters, user_keys
from pcm.run.rundir import RunDir, run_lock

__all__ = ["GOAL", "parse_worlds", "parse_method", "run_worlds", "worlds_table",
           "world_medians", "median_table", "choice_outcome", "COLUMNS", "DIAGNOSIS",
           "world_diagnosis", "RECORDED_EVALUATION", "record_evaluation",
           "recorded_evaluation", "evaluation_provenance", "chosen_method", "goal_outcome",
           "world_rows", "default_outcome", "development_only_outcome",
           "RECORDED_AT_TUTORIAL_SIZE", "evaluation_size", "size_outcome",
           "worlds_base_parameters"]

#: The goal over held-out worlds (medians): ranking AUC, strong-driver F1, precision,
#: non-driver SHAP share, and R² gap to the unconstrained network.
GOAL = {"auc": (">=", 0.95), "strong_f1": (">=", 0.85), "precision": (">=", 0.8),
        "shap_nondriver_share": ("<=", 0.05), "r2_gap": ("<=", 0.02)}

#: Table columns: name -> (column of the sweep row, long name).
COLUMNS = {
    "auc": ("auc", "ROC AUC of the masking vectors (drivers vs non-drivers)"),
    "oracle_f1": ("oracle_f1", "best F1 any threshold on the masking vectors could reach"),
    "f1": ("f1", "F1 of the selected masks against all true drivers"),
    "strong_f1": ("strong_f1", "F1 of the selected masks for strong drivers (>= 1 % of "
                  "variance)"),
    "precision": ("precision", "precision of the selected masks against all true drivers"),
    "recall": ("recall", "recall of the selected masks over all true drivers"),
    "strong_recall": ("strong_recall", "recall of the selected masks over strong drivers"),
    "shap_nondriver_share": ("shap_nondriver_share_pcmasking",
                             "share of PCMasking's mean |SHAP| on non-drivers"),
    "r2_pcmasking": ("r2_pcmasking_mean", "mean R² of PCMasking (test split)"),
    "r2_unconstrained": ("r2_unconstrained_mean", "mean R² of the unconstrained network "
                         "(test split)"),
    "inputs_kept": ("inputs_kept", "mean number of inputs kept per output"),
    "seconds": ("seconds", "wall seconds of the point (a shared pre-masking stack and "
                "unconstrained network count 1/k)"),
}

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.+-]*$")


def parse_worlds(specs: Iterable[str | int]) -> list[int]:
    """``["0-9", "100,101"]`` -> ``[0, ..., 9, 100, 101]`` (order kept, duplicates dropped).

    Raises
    ------
    ParameterError
        A part that is not an integer or a range ``A-B`` of worlds 0-199.
    """
    worlds: list[int] = []
    for spec in specs:
        for part in str(spec).split(","):
            part = part.strip()
            if not part:
                continue
            lo, sep, hi = part.partition("-")
            try:
                first, last = int(lo), int(hi) if sep else int(lo)
            except ValueError:
                raise ParameterError("--worlds", f"expected integers or ranges A-B, got "
                                     f"{part!r}") from None
            if not 0 <= first <= last <= MAX_WORLD:
                raise ParameterError("--worlds", f"worlds run from 0 to {MAX_WORLD} "
                                     f"(ranges ascending), got {part!r}")
            worlds.extend(range(first, last + 1))
    if not worlds:
        raise ParameterError("--worlds", "give at least one world, e.g. --worlds 100-119")
    return list(dict.fromkeys(worlds))


def parse_method(spec: str) -> tuple[str, dict[str, Any]]:
    """``"name"`` (a built-in of :data:`METHODS`) or ``"name:key=value,key=value"``.

    A built-in name with overrides starts from the built-in set. Values are read as
    YAML (as ``--set`` values are).

    Raises
    ------
    ParameterError
        A bad name, an unknown built-in, an unknown parameter or a malformed pair.
    """
    name, sep, rest = spec.partition(":")
    name = name.strip()
    if not _NAME.match(name):
        raise ParameterError("--method", f"expected NAME or NAME:key=value,... with a name of "
                             f"letters, digits and _.+-, got {spec!r}")
    if not sep and name not in METHODS:
        raise ParameterError("--method", f"unknown method {name!r}; built-in: "
                             f"{', '.join(METHODS)} (or NAME:key=value,...)")
    overrides = dict(METHODS.get(name, {}))
    for pair in filter(None, (p.strip() for p in rest.split(","))):
        key, value = parse_override(pair)
        if key not in PARAMETERS:
            raise ParameterError(key, f"not a run parameter, in --method {spec!r}")
        if key == "data.world":
            raise ParameterError(key, "set by --worlds, not by a method")
        overrides[key] = value
    return name, overrides


def _methods(methods: Mapping[str, Mapping[str, Any]] | Iterable[str] | None
             ) -> dict[str, dict[str, Any]]:
    if methods is None:
        return {name: dict(METHODS[name]) for name in ("paper", "relative")}
    if isinstance(methods, Mapping):
        return {str(k): dict(v) for k, v in methods.items()}
    parsed = [parse_method(m) for m in methods]
    names = [n for n, _ in parsed]
    if len(set(names)) != len(names):
        raise ParameterError("--method", "each method needs its own name")
    return dict(parsed)


def worlds_base_parameters(preset: str = "ci", params_file: str | os.PathLike | None = None,
                           overrides: Iterable[str] = ()) -> dict[str, Any]:
    """The parameters every ``pcm worlds`` point starts from, as for ``pcm run``, with
    ``paper_rule`` off unless the user set it.

    Here the paper's rule is a method of its own (``paper``) on the same pre-masking stack;
    beside every point (the ``tutorial`` preset sets ``paper_rule: true``) it would add a
    threshold search and a fine-tuning to each point that no column of the table reports.
    """
    overrides = list(overrides)
    base = resolve_parameters(preset, params_file, overrides)
    if "paper_rule" not in user_keys(params_file, overrides):
        base["paper_rule"] = False
    return base


def run_worlds(*, worlds: Iterable[int | str], methods: Mapping[str, Mapping[str, Any]] |
               Iterable[str] | None = None, out: str | os.PathLike, preset: str = "ci",
               params_file: str | os.PathLike | None = None, overrides: Iterable[str] = (),
               progress: bool = False, figure: bool = True) -> xr.Dataset:
    """Run every method on every world; write ``worlds.nc``, ``worlds.csv``, ``worlds.png``.

    Parameters
    ----------
    worlds : iterable of int or str
        World seeds, or ``--worlds`` strings (``"100-119"``).
    methods : mapping, iterable of str, optional
        ``{name: {key: value}}`` or ``--method`` strings; default ``paper`` and
        ``relative``.
    out : path-like
        The worlds directory (a sweep directory: data, stacks, points).
    preset, params_file, overrides
        As for ``pcm run`` (default preset ``ci``), ``paper_rule`` off unless set
        (:func:`worlds_base_parameters`); every point starts from them, then its method's
        overrides, then its world.
    figure : bool
        Also write ``worlds.png``.

    Returns
    -------
    xarray.Dataset
        The table (:func:`worlds_table`).

    Raises
    ------
    ParameterError
        Before anything runs: a bad world, method, or parameter at any point.
    """
    worlds = parse_worlds(worlds)
    methods = _methods(methods)
    base = worlds_base_parameters(preset, params_file, overrides)
    if base.get("data.source", "synthetic") != "synthetic":
        raise ParameterError("data.source", "pcm worlds needs synthetic data (the worlds "
                             "are drawn by the synthetic generator)")
    points, params, ids = [], [], []
    for world in worlds:
        for name, changes in methods.items():
            points.append({"world": world, "method": name})
            params.append(validate({**base, **changes, "data.world": world}))
            ids.append(f"world-{world}_{name}")
    out = output_dir(out)
    with run_lock(out):
        records = run_points(out, points, params, ids=ids, progress=progress)
        summaries = [_training(RunDir(out / "points" / i)) for i in ids]
        diagnoses = [world_diagnosis(RunDir(out / "points" / i)) for i in ids]
        table = worlds_table(records, summaries, diagnoses)
        table.attrs.update(preset=preset, methods=json.dumps(methods, default=str),
                           overrides=json.dumps(list(overrides)))
        write_netcdf(table, out / "worlds.nc")
        table.to_dataframe().to_csv(out / "worlds.csv")
        if figure:
            fig = world_strips(table)
            fig.savefig(out / "worlds.png", dpi=110, bbox_inches="tight")
    print(f"worlds table: {out / 'worlds.nc'} and {out / 'worlds.csv'}", flush=True)
    return table


def _training(run: RunDir) -> dict[str, Any]:
    """The ``training`` record of a point's summary (converged shares; empty if absent)."""
    try:
        return dict(read_json(run.artefact("summary.json")).get("training", {}))
    except (OSError, ValueError):
        return {}


#: Why a point's ranking misses (:func:`world_diagnosis`): name -> long name.
DIAGNOSIS = {
    "strong_unused": "share of the strong drivers that the pre-masking networks left unused "
                     "(entry at or below the median non-driver entry)",
    "ahead": "non-drivers ranked above the weakest used strong driver, per output with "
             "strong drivers",
    "proxy_ahead": "of those, proxies of the output's true drivers (R2 on them >= "
                   "pcm.analysis.diagnosis.PROXY_CUT), per output with strong drivers",
}


def world_diagnosis(run: RunDir) -> dict[str, float]:
    """Why a point's masking vectors miss, in three numbers (:data:`DIAGNOSIS`).

    Sums of :func:`pcm.experiments.chapter.ranking_diagnosis` over the outputs with strong
    drivers: unused strong drivers as a share of the strong drivers, and non-drivers
    (and proxies among them) ranked ahead of a used strong driver, per output.
    """
    per_output, _ = ranking_diagnosis(run)
    outputs = max(int(per_output.sizes["output"]), 1)
    strong = float(per_output["n_strong"].sum())
    return {"strong_unused": float(per_output["n_strong_unused"].sum()) / strong
            if strong else math.nan,
            "ahead": float(per_output["n_ahead"].sum()) / outputs,
            "proxy_ahead": float(per_output["n_proxy_ahead"].sum()) / outputs}


def worlds_table(records: Sequence[Mapping[str, Any]],
                 training: Sequence[Mapping[str, Any]] | None = None,
                 diagnosis: Sequence[Mapping[str, float]] | None = None) -> xr.Dataset:
    """The tidy table: dimension ``row`` (one per world and method).

    Parameters
    ----------
    records : sequence of mapping
        :func:`pcm.experiments.sweep.run_points` records whose ``point`` holds ``world`` and
        ``method``.
    training : sequence of mapping, optional
        Each point's ``summary.json`` ``training`` entry (``converged_share`` per phase).
    diagnosis : sequence of mapping, optional
        Each point's :func:`world_diagnosis` (columns :data:`DIAGNOSIS`).
    """
    if not records:
        raise PCMError("no finished world to tabulate")
    world = np.array([int(r["point"]["world"]) for r in records], dtype=np.int64)
    coords = {
        "world": ("row", world, {"long_name": "world seed (data.world)"}),
        "split": ("row", np.array([world_split(int(w)) for w in world]),
                  {"long_name": "development (0-99) or held-out (100-199) world"}),
        "method": ("row", np.array([str(r["point"]["method"]) for r in records]),
                   {"long_name": "method: a named set of run-parameter overrides"}),
    }
    data = {}
    for name, (column, long_name) in COLUMNS.items():
        values = np.array([r["row"].get(column, math.nan) for r in records], dtype=float)
        data[name] = ("row", values, {"long_name": long_name,
                                      "units": "s" if name == "seconds" else "1"})
    gap = data["r2_unconstrained"][1] - data["r2_pcmasking"][1]
    data["r2_gap"] = ("row", gap, {"long_name": "mean R² of the unconstrained network minus "
                                   "PCMasking's", "units": "1"})
    if training is not None:
        for phase in ("unconstrained", "premask", "finetune"):
            share = [float(t.get(phase, {}).get("converged_share", math.nan))
                     if isinstance(t.get(phase), Mapping) else math.nan for t in training]
            if np.isfinite(share).any():
                data[f"converged_{phase}"] = ("row", np.array(share), {
                    "long_name": f"share of the {phase} networks that converged", "units": "1"})
    if diagnosis is not None:
        for name, long_name in DIAGNOSIS.items():
            data[name] = ("row", np.array([d.get(name, math.nan) for d in diagnosis],
                                          dtype=float), {"long_name": long_name, "units": "1"})
    return xr.Dataset(data, coords=coords)


def world_rows(table: xr.Dataset, split: str, method: str | None = None) -> xr.Dataset:
    """The rows of the worlds of ``split`` (``development`` or ``held-out``), of one
    ``method`` or of all."""
    keep = table["split"] == split
    if method is not None:
        keep = keep & (table["method"] == method)
    return table.where(keep, drop=True)


def world_medians(table: xr.Dataset, split: str = "held-out") -> xr.Dataset:
    """Per method: median and worst world of every goal score over the worlds of ``split``.

    Returns
    -------
    xarray.Dataset
        ``median_<score>``, ``worst_<score>`` (the worst world's value: the smallest for
        scores to raise, the largest for those to lower) and ``worst_world_<score>`` on
        dimension ``method``; ``worlds`` (how many), ``meets_goal`` (every median on the
        right side of :data:`GOAL`).
    """
    sub = world_rows(table, split)
    if sub.sizes.get("row", 0) == 0:
        raise PCMError(f"no {split} world in the table")
    methods = list(dict.fromkeys(sub["method"].values.tolist()))
    out: dict[str, tuple] = {}
    rows = {m: world_rows(sub, split, m) for m in methods}
    out["worlds"] = ("method", np.array([rows[m].sizes["row"] for m in methods]),
                     {"long_name": f"{split} worlds", "units": "1"})
    meets = np.ones(len(methods), dtype=bool)
    for score, (sense, target) in GOAL.items():
        med, worst, worst_world = [], [], []
        for m in methods:
            values = rows[m][score].values
            worlds = rows[m]["world"].values
            finite = np.isfinite(values)
            if not finite.any():
                med.append(math.nan)
                worst.append(math.nan)
                worst_world.append(-1)
                continue
            med.append(float(np.median(values[finite])))
            pick = np.nanargmin(values) if sense == ">=" else np.nanargmax(values)
            worst.append(float(values[pick]))
            worst_world.append(int(worlds[pick]))
        med_a = np.array(med)
        meets &= (med_a >= target) if sense == ">=" else (med_a <= target)
        long = table[score].attrs.get("long_name", score)
        out[f"median_{score}"] = ("method", med_a, {"long_name": f"median over worlds: {long}",
                                                    "units": "1", "goal": f"{sense} {target}"})
        out[f"worst_{score}"] = ("method", np.array(worst), {"long_name": f"worst world: {long}",
                                                             "units": "1"})
        out[f"worst_world_{score}"] = ("method", np.array(worst_world), {
            "long_name": f"world with the worst {score}"})
    out["meets_goal"] = ("method", meets, {"long_name": "every median meets its goal"})
    return xr.Dataset(out, coords={"method": methods}).assign_attrs(split=split)


def table_path(out: str | os.PathLike) -> Path:
    """``OUT/worlds.nc``."""
    return Path(out) / "worlds.nc"


def median_table(table: xr.Dataset, split: str = "held-out"):
    """:func:`world_medians` as a table: one row per method, the number of worlds, the
    median and the worst world's value of every goal score (rounded for reading)."""
    med = world_medians(table, split).to_dataframe()
    keep = [c for c in med.columns if c.startswith(("median_", "worst_"))
            and not c.startswith("worst_world_")]
    return med[["worlds", *keep]].round(3)


def evaluation_size(table: xr.Dataset) -> str:
    """The data size of a ``pcm worlds`` table's runs, from its preset and overrides:
    ``"600 steps on 8 × 4 columns"``."""
    params = resolve_parameters(str(table.attrs.get("preset", "ci")), None,
                                json.loads(table.attrs.get("overrides", "[]")))
    return (f"{params['data.steps']} steps on {params['data.n_lat']} × {params['data.n_lon']} "
            "columns")


def size_outcome(smaller: xr.Dataset, larger: xr.Dataset, method: str,
                 split: str = "development") -> str:
    """How ``method``'s goal medians over the ``split`` worlds change from one evaluation
    to another of larger data (the same worlds and settings but the size)."""
    a = world_medians(smaller, split).sel({"method": method})
    b = world_medians(larger, split).sel({"method": method})
    moves = "; ".join(f"{score.replace('_', ' ')} {float(a[f'median_{score}']):.3f} → "
                      f"{float(b[f'median_{score}']):.3f}" for score in GOAL)
    auc = [world_rows(t, split, method).to_dataframe().set_index("world")["auc"]
           for t in (smaller, larger)]
    both = auc[0].index.intersection(auc[1].index)
    higher = int((auc[1][both] > auc[0][both]).sum())
    return (f"`{method}` over the {split} worlds, median at {evaluation_size(smaller)} "
            f"({int(a['worlds'])} worlds) → at {evaluation_size(larger)} "
            f"({int(b['worlds'])} worlds): {moves}. The ranking AUC is higher at the second "
            f"size in {higher} of the {len(both)} worlds run at both.")


def choice_outcome(table: xr.Dataset, score: str = "median_strong_f1") -> str:
    """Which method the development worlds choose by ``score``, and what it scores on the
    held-out worlds next to the paper's rule.

    The choice is made on the development worlds alone; the held-out worlds only say
    whether it holds up.
    """
    development = world_medians(table, "development")[score].to_series()
    heldout = world_medians(table, "held-out")[score].to_series()
    best = chosen_method(table, score)
    holds = "also" if str(heldout.idxmax()) == best else "not"
    name = score.removeprefix("median_").replace("_", " ")
    return (f"Chosen on the development worlds by median {name}: `{best}` "
            f"({development[best]:.2f}; the paper's rule {development['paper']:.2f}). On the "
            f"held-out worlds, evaluated only, `{best}` reaches {heldout[best]:.2f} (paper's "
            f"rule {heldout['paper']:.2f}); it is {holds} the best there. Defaults are chosen "
            "on development worlds only.")


def default_outcome(table: xr.Dataset, score: str = "median_strong_f1") -> str:
    """Whether the ``tutorial`` preset selects with the chosen method (:func:`chosen_method`),
    and whether the held-out worlds allow it: the method best on the development worlds
    becomes the default only if it is also the best on the held-out worlds."""
    best = chosen_method(table, score)
    holds = str(world_medians(table, "held-out")[score].to_series().idxmax()) == best
    tutorial = preset("tutorial")
    default = best in METHODS and all(tutorial.get(k) == v for k, v in METHODS[best].items())
    beside = " with the paper's rule beside it (`paper_rule: true`)" if tutorial.get(
        "paper_rule") else ""
    if default:
        return (f"The `tutorial` preset selects with `{best}`{beside}" +
                (": it won on the development worlds and held on the held-out ones." if holds
                 else ", although it is not the best on the held-out worlds."))
    return (f"The `tutorial` preset does not select with `{best}`" +
            (", although it won on the development worlds and held on the held-out ones."
             if holds else ": it is not the best on the held-out worlds."))


def development_only_outcome(table: xr.Dataset, score: str = "median_strong_f1") -> str:
    """The methods of ``table`` run on the development worlds only, with their medians of
    ``score`` next to the chosen method's (empty when every method has held-out rows)."""
    development = world_medians(table, "development")[score].to_series()
    held = set(world_rows(table, "held-out")["method"].values.tolist())
    only = [str(m) for m in development.index if m not in held]
    if not only:
        return ""
    best = chosen_method(table, score)
    name = score.removeprefix("median_").replace("_", " ")
    if best in only:
        return (f"`{best}`, the best on the development worlds by median {name} "
                f"({development[best]:.2f}), has not been evaluated on the held-out worlds.")
    listed = ", ".join(f"`{m}` {development[m]:.2f}" for m in only)
    return (f"Run on the development worlds only (median {name}): {listed}, none above "
            f"`{best}` ({development[best]:.2f}); a method that loses there is not evaluated "
            "on the held-out worlds.")


def chosen_method(table: xr.Dataset, score: str = "median_strong_f1") -> str:
    """The method with the best development-world median of ``score``."""
    return str(world_medians(table, "development")[score].to_series().idxmax())


def goal_outcome(table: xr.Dataset, method: str, split: str = "held-out") -> str:
    """Which goal medians (:data:`GOAL`) ``method`` meets over the worlds of ``split``."""
    med = world_medians(table, split).sel({"method": method})  # not sel(method=): a keyword
    met, missed, absent = [], [], []
    for score, (sense, target) in GOAL.items():
        value = float(med[f"median_{score}"])
        name = score.replace("_", " ")
        if not math.isfinite(value):
            absent.append(name)
        elif value >= target if sense == ">=" else value <= target:
            met.append(f"{name} {value:.3g} {sense} {target:g}")
        else:
            missed.append(f"{name} {value:.3g}, goal {sense} {target:g}")
    text = f"Over the {int(med['worlds'])} {split} worlds, `{method}` "
    if not missed and not absent:
        return text + f"meets every goal median: {'; '.join(met)}."
    text += f"meets the goal medians of {'; '.join(met)}" if met else "meets no goal median"
    text += f"; it misses {'; '.join(missed)}" if missed else ""
    return text + (f"; not measured: {', '.join(absent)}." if absent else ".")


#: The evaluation shipped with the package: a ``pcm worlds`` table over development and
#: held-out worlds, with the command that made it, the commit, the date and the machine
#: as attributes (:func:`record_evaluation`). The book shows it beside the worlds it
#: runs itself; the command re-creates it.
RECORDED_EVALUATION = Path(__file__).with_name("recorded") / "worlds_evaluation.nc"

#: The same evaluation's settings on the ``tutorial`` preset's data size (600 steps on 8 x 4
#: columns, 13,440 training samples, against 48 steps on 8 x 16): ``paper`` and
#: ``screen_all`` on fresh held-out worlds 140-159, evaluated once. The size was chosen on
#: development worlds alone (docs/architecture.md, "Selections across worlds").
RECORDED_AT_TUTORIAL_SIZE = RECORDED_EVALUATION.with_name("worlds_evaluation_tutorial_size.nc")


def _commit() -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=False, cwd=Path(__file__).parent)
    except OSError:
        return "unknown"
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def record_evaluation(table: xr.Dataset, command: str, *, seconds: float,
                      commit: str | None = None,
                      path: str | os.PathLike = RECORDED_EVALUATION) -> Path:
    """Write a ``pcm worlds`` table with its provenance (the recorded evaluation).

    Parameters
    ----------
    table : xr.Dataset
        :func:`run_worlds`' table (``worlds.nc``).
    command : str
        The ``pcm worlds`` command that made it.
    seconds : float
        Its wall-clock time (summed over the runs that filled it: ``pcm worlds`` resumes).
    commit : str, optional
        The commit(s) of the code that ran it (default: this checkout's ``HEAD``; a table
        filled by runs of several commits names each).
    path : path-like
        Where to write (default :data:`RECORDED_EVALUATION`).
    """
    cpu = platform.processor() or platform.machine()
    try:
        names = [line.split(":", 1)[1].strip() for line in
                 Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    attrs = {"command": command, "commit": commit or _commit(),
             "recorded": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
             "machine": f"{cpu}, {os.cpu_count()} cores", "seconds": float(seconds)}
    return write_netcdf(table.assign_attrs(attrs), path)


def recorded_evaluation(path: str | os.PathLike = RECORDED_EVALUATION) -> xr.Dataset:
    """The recorded evaluation (:data:`RECORDED_EVALUATION`).

    Raises
    ------
    PCMError
        The file is missing or is not a recorded ``pcm worlds`` table.
    """
    path = Path(path)
    if not path.exists():
        raise PCMError(f"{path}: no recorded evaluation (it ships with pcm; re-create it "
                       "with the command in docs/architecture.md, 'Selections across worlds')")
    table = xr.load_dataset(path)
    missing = [k for k in ("command", "commit", "recorded") if k not in table.attrs]
    if missing or "method" not in table:
        raise PCMError(f"{path}: not a recorded pcm worlds table (missing "
                       f"{', '.join(missing) or 'method'})")
    return table


def evaluation_provenance(table: xr.Dataset) -> str:
    """One Markdown paragraph: how many worlds of each split, the command, commit and date."""
    split = table["split"].values
    worlds = [f"{len(set(table['world'].values[split == s].tolist()))} {s}"
              for s in ("development", "held-out") if (split == s).any()]
    minutes = float(table.attrs.get("seconds", math.nan)) / 60
    methods = ", ".join(f"`{m}`" for m in dict.fromkeys(table["method"].values.tolist()))
    return (f"Recorded {table.attrs['recorded']} at commit `{table.attrs['commit']}` on "
            f"{table.attrs.get('machine', 'an unnamed machine')} in {minutes:.0f} min of wall "
            f"time over the runs that filled it: {' and '.join(worlds)} worlds, methods "
            f"{methods}. The commands:\n\n"
            f"```bash\n"
            f"{table.attrs['command']}\n```")
