"""``pcm sweep``: the method over a grid of parameter values, as one tidy table.

:func:`run_sweep` expands ``--grid key=v1,v2,...`` options into the cartesian
product of grid points over a preset (plus ``--params`` and ``--set``, as in
``pcm run``), runs the steps of the method for every point by calling
:mod:`pcm.method` directly (no notebooks), and writes ``OUT/sweep.nc`` and
``OUT/sweep.csv``: one row per point, its grid values, then R² per variable and
climate, driver precision/recall/F1 (all and strong drivers), the ranking quality
of the masking vectors, the SHAP share on non-drivers, inputs kept and seconds.

Sharing (the costly parts run once):

* points with the same data parameters share one data set (``OUT/data/<key>``);
* points whose data and pre-masking parameters (:class:`~pcm.params.config.DataConfig`,
  :class:`~pcm.params.config.PremaskConfig`) differ only in values that change the loss
  (:data:`LOSS_ONLY`: λ) share one pre-masking training: k λ values x n outputs
  train as ONE stack of n k networks (:meth:`pcm.nn.networks.StackedMLP.repeat` and
  a per-network L1 weight; every copy starts from the weights a separate run would
  start from, so the result equals k separate runs), and one unconstrained baseline;
  ``OUT/stacks/<key>`` holds them. Every network is sized by the data's catalogue
  (:attr:`pcm.run.rundir.RunDir.catalogue`: n inputs and outputs, SPCAM 94 and 65, ClimSim
  184 and 128). Points that differ only after the pre-masking
  phase (threshold rule, fine-tuning, evaluation) use the same trained copy. Seeds
  are not stacked: the seed also orders the mini-batches, which one stack shares.

Each point is a run directory ``OUT/points/<id>`` with the artefacts of ``pcm run``
(masks, models, ``summary.json``). Resume: a point whose ``sweep_point.json`` records
the same parameters is not recomputed, and the training phases resume from their
checkpoints, so an interrupted sweep continues where it stopped. (Unlike ``pcm
run``, a change of the ``pcm`` code alone does not invalidate finished points.)
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import re
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from pcm.baselines.causal.phases import run_causal_training, run_discovery
from pcm.errors import ParameterError, PCMError
from pcm.io import output_dir, read_json, write_json, write_netcdf
from pcm.method.evaluate import run_r2
from pcm.method.explain import run_shap
from pcm.method.finetune import run_finetune
from pcm.method.masking import compute_masking_vectors, search_thresholds
from pcm.method.premask import run_unconstrained
from pcm.method.prepare import prepare_data
from pcm.method.summary import PCMASKING_PHASES, write_summary
from pcm.nn.saving import save_stacked
from pcm.params.config import (
    CausalConfig,
    DataConfig,
    EvaluationConfig,
    FinetuneConfig,
    PremaskConfig,
    SearchConfig,
    ShapConfig,
)
from pcm.params.presets import PARAMETERS, validate
from pcm.params.run_parameters import parse_override, resolve_parameters
from pcm.run.phase import train_phase
from pcm.run.rundir import RunDir, run_lock

__all__ = ["LOSS_ONLY", "parse_grid", "grid_points", "point_id", "run_sweep", "run_points",
           "sweep_table",
           "run_table", "stack_seconds"]

#: Parameters that change only the loss of the pre-masking phase: points that differ in
#: nothing else train as one stack.
LOSS_ONLY = ("l1",)

#: Record of a finished point inside its run directory.
POINT_FILE = "sweep_point.json"

#: Scores of ``summary.json`` copied into the table (column -> path in the summary).
_SCORES = {
    "precision": ("drivers", "pcmasking", "precision"),
    "recall": ("drivers", "pcmasking", "recall"),
    "f1": ("drivers", "pcmasking", "f1"),
    "strong_precision": ("drivers_strong", "pcmasking", "precision"),
    "strong_recall": ("drivers_strong", "pcmasking", "recall"),
    "strong_f1": ("drivers_strong", "pcmasking", "f1"),
    "auc": ("masking_vector_ranking", "auc"),
    "oracle_f1": ("masking_vector_ranking", "oracle_f1"),
    "strong_auc": ("masking_vector_ranking", "strong_auc"),
    "oracle_strong_f1": ("masking_vector_ranking", "oracle_strong_f1"),
    "causal_f1": ("drivers", "causal", "f1"),
}

_UNITS_ONE = "1"


def parse_grid(specs: Iterable[str]) -> dict[str, list[Any]]:
    """``["l1=1,0.1", "hidden_layers=2,3"]`` -> ``{"l1": [1, 0.1], "hidden_layers": [2, 3]}``.

    Values are read as YAML one by one (as ``--set`` values are).

    Raises
    ------
    ParameterError
        An unknown parameter, a key given twice, or no value.
    """
    grid: dict[str, list[Any]] = {}
    for spec in specs:
        key, sep, raw = spec.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ParameterError(key or spec, f"expected KEY=V1,V2,... in --grid, got {spec!r}")
        if key not in PARAMETERS:
            raise ParameterError(key, "not a run parameter (see pcm.params.presets.PARAMETERS)")
        if key in grid:
            raise ParameterError(key, "given twice in --grid")
        values = [parse_override(f"{key}={v}")[1] for v in raw.split(",") if v.strip()]
        if not values:
            raise ParameterError(key, f"no values in --grid {spec!r}")
        grid[key] = values
    return grid


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """The cartesian product of the grid, first key slowest."""
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*grid.values())]


def point_id(point: Mapping[str, Any]) -> str:
    """A readable folder name of a grid point, e.g. ``l1-0.1_hidden_layers-2``."""
    if not point:
        return "default"
    parts = [f"{k}-{v}" for k, v in point.items()]
    return re.sub(r"[^A-Za-z0-9.+_-]", "-", "_".join(parts))


def _key(values: Mapping[str, Any]) -> str:
    text = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _get(tree: Any, path: tuple[str, ...]) -> float:
    for part in path:
        if not isinstance(tree, Mapping) or part not in tree:
            return math.nan
        tree = tree[part]
    return math.nan if tree is None else float(tree)


def _mean(values: Iterable[Any]) -> float:
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return float(np.mean(finite)) if finite else math.nan


def _row(run: RunDir) -> dict[str, float]:
    """The table columns of one finished point (from its ``summary.json`` and masks)."""
    summary = read_json(run.artefact("summary.json"))
    outputs = run.catalogue.outputs
    row: dict[str, float] = {}
    for model, climates in summary.get("r2", {}).items():
        for climate, by_var in climates.items():
            suffix = "" if climate == "control" else f"_{climate}"
            for var in outputs:
                value = by_var.get(var)
                row[f"r2_{model}_{var}{suffix}"] = math.nan if value is None else float(value)
            row[f"r2_{model}_mean{suffix}"] = _mean(by_var.get(v) for v in outputs)
    for column, path in _SCORES.items():
        row[column] = _get(summary, path)
    for model, share in summary.get("shap_nondriver_share", {}).items():
        row[f"shap_nondriver_share_{model}"] = math.nan if share is None else float(share)
    row["inputs_kept"] = float(run.mask("pcmasking").values.sum(axis=1).mean())
    seconds = summary.get("seconds", {})
    row["seconds_pcmasking"] = float(sum(seconds.get(p, 0.0) for p in PCMASKING_PHASES))
    row["seconds"] = float(sum(seconds.values()))
    return row


def _prepare(out: Path, params: Mapping[str, Any]) -> RunDir:
    """The data of these parameters, written once per distinct data configuration."""
    config = DataConfig.from_parameters(params)
    data = RunDir(out / "data" / _key(asdict(config)))
    done = data.artefact("prepared.json")
    if not (done.exists() and read_json(done) == json.loads(json.dumps(asdict(config)))):
        prepare_data(data, config)
        write_json(asdict(config), done)
    return data


def _use_data(run: RunDir, data: RunDir) -> None:
    """Point ``run`` at the data of ``data``, catalogue included (it sizes the networks)."""
    manifest = data.manifest()
    run.write_manifest(manifest["files"], source=manifest["source"],
                       catalogue=data.catalogue.name)


def _premask_key(params: Mapping[str, Any]) -> str:
    """Key of the pre-masking stack of a point: its data and pre-masking parameters but λ."""
    shared = {**asdict(DataConfig.from_parameters(params)),
              **asdict(PremaskConfig.from_parameters(params))}
    return _key({k: v for k, v in shared.items() if k not in LOSS_ONLY})


def _group_lambdas(group: Sequence[Mapping[str, Any]]) -> list[float]:
    """The distinct λ values of a group, in the order of their first point."""
    return list(dict.fromkeys(float(p["l1"]) for p in group))


def _train_group(out: Path, data: RunDir, group: Sequence[Mapping[str, Any]], *,
                 progress: bool) -> tuple[RunDir, Any, xr.Dataset]:
    """Pre-masking networks of every λ of a group as ONE stack, and the unconstrained net."""
    from pcm.nn.networks import StackedMLP

    first = group[0]
    stack_run = RunDir(out / "stacks" / _premask_key(first))
    _use_data(stack_run, data)
    config = PremaskConfig.from_parameters(first)
    lambdas = np.array(_group_lambdas(group))
    catalogue = stack_run.catalogue
    n_out = catalogue.n_outputs
    t0 = time.perf_counter()
    train = config.train_config(hidden_units=config.hidden, epochs=config.epochs,
                                l1=tuple(np.repeat(lambdas, n_out)))
    model = StackedMLP(n_out, train.hidden_units, n_inputs=catalogue.n_inputs,
                       input_layer=True, seed=config.seed,
                       dtype=train.dtype_policy).repeat(len(lambdas))
    hist = train_phase(stack_run, "premask", "premask_stack", model, train,
                       l1=train.l1, progress=progress, t0=t0,
                       attrs={"lambdas": lambdas, "networks_per_lambda": n_out})
    if not stack_run.model("unconstrained").exists():
        run_unconstrained(stack_run, config, progress=progress)
    return stack_run, model, hist


def _split_into(run: RunDir, stack_run: RunDir, model, hist: xr.Dataset, j: int,
                lam: float, sharing: int) -> None:
    """Copy number ``j`` of the stack becomes this point's pre-masking model.

    ``sharing`` points use the stack: each is charged that share of its cost.
    """
    n_out = run.catalogue.n_outputs
    rows = np.arange(j * n_out, (j + 1) * n_out)
    run.model("premask").parent.mkdir(parents=True, exist_ok=True)
    save_stacked(model.select(rows), run.model("premask"))
    part = hist.isel(network=rows).assign_coords(network=np.arange(n_out))
    part.attrs.update(l1=lam, stacked_with=int(np.size(hist.attrs["lambdas"])),
                      stack_seconds=float(hist.attrs["phase_seconds"]),
                      model_file=str(run.model("premask")))
    part.attrs.pop("lambdas", None)
    write_netcdf(part, run.artefact("history_premask.nc"))
    shutil.copy2(stack_run.model("unconstrained"), run.model("unconstrained"))
    shutil.copy2(stack_run.artefact("history_unconstrained.nc"),
                 run.artefact("history_unconstrained.nc"))
    stack_seconds = read_json(stack_run.artefact("seconds.json"))
    run.record_seconds(premask=hist.attrs["phase_seconds"] / sharing,
                       unconstrained=stack_seconds["unconstrained"])


def _finish_point(run: RunDir, params: Mapping[str, Any], *, progress: bool) -> None:
    """Steps 3-6 of the method on a point whose pre-masking model is in place."""
    compute_masking_vectors(run)
    search_thresholds(run, SearchConfig.from_parameters(params), progress=progress)
    run_finetune(run, FinetuneConfig.from_parameters(params), progress=progress)
    causal = CausalConfig.from_parameters(params)
    if causal.causal:
        run_discovery(run, causal)
        run_causal_training(run, causal, progress=progress)
    run_r2(run, EvaluationConfig.from_parameters(params))
    run_shap(run, ShapConfig.from_parameters(params))
    write_summary(run)


def _comparable(params: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(dict(params), default=str))


def _is_done(run: RunDir, params: Mapping[str, Any]) -> bool:
    """Whether the point finished with these parameters.

    A parameter that ``pcm`` gained after the point finished, set to its default, is
    ignored: the default keeps the earlier behaviour, so the point's results stand.
    """
    path = run.artefact(POINT_FILE)
    if not path.exists():
        return False
    try:
        record = read_json(path)
    except (OSError, json.JSONDecodeError):
        return False
    recorded, current = record.get("params"), _comparable(params)
    if not isinstance(recorded, dict) or "row" not in record:
        return False
    added = [k for k in current if k not in recorded and k in PARAMETERS
             and current[k] == _comparable({k: PARAMETERS[k].default})[k]]
    return {k: v for k, v in current.items() if k not in added} == recorded


def run_sweep(*, preset: str, grid: Mapping[str, Sequence[Any]] | Iterable[str],
              out: str | os.PathLike, params_file: str | os.PathLike | None = None,
              overrides: Iterable[str] = (), progress: bool = False) -> xr.Dataset:
    """Run the method at every grid point and write ``OUT/sweep.nc`` and ``OUT/sweep.csv``.

    Parameters
    ----------
    preset : str
        A preset of ``pcm run`` (``ci``, ``tutorial``, ``paper``; ``climsim`` with
        ``data.dir`` among the overrides).
    grid : mapping or iterable of str
        ``{key: [values]}``, or ``--grid`` strings (``"l1=1,0.1"``).
    out : path-like
        Sweep directory.
    params_file, overrides
        As for ``pcm run``; applied to every point before its grid values.
    progress : bool
        Per-epoch lines on stderr.

    Returns
    -------
    xarray.Dataset
        The table (:func:`sweep_table`).

    Raises
    ------
    ParameterError
        Before anything runs: an unknown grid key or an invalid value at any point.
    """
    if not isinstance(grid, Mapping):
        grid = parse_grid(grid)
    base = resolve_parameters(preset, params_file, list(overrides))
    points = grid_points(grid)
    params = [validate({**base, **point}) for point in points]  # all checked up front
    out = output_dir(out)
    with run_lock(out):  # one sweep at a time on a directory
        records = run_points(out, points, params, progress=progress)
        table = sweep_table(records, list(grid))
        table.attrs.update(preset=preset, grid=json.dumps(dict(grid), default=str),
                           loss_only=", ".join(LOSS_ONLY))
        write_netcdf(table, out / "sweep.nc")
        table.to_dataframe().to_csv(out / "sweep.csv")
    print(f"sweep table: {out / 'sweep.nc'} and {out / 'sweep.csv'}", flush=True)
    return table


def run_points(out: Path, points: Sequence[Mapping[str, Any]],
               params: Sequence[Mapping[str, Any]], *, ids: Sequence[str] | None = None,
               progress: bool = False) -> list[dict[str, Any]]:
    """The method at every point of a sweep directory; the records of the finished points.

    Points with the same data share one data set, points that differ only in
    :data:`LOSS_ONLY` one pre-masking stack, as described in the module docstring
    (:func:`run_sweep` and :func:`pcm.experiments.worlds.run_worlds` both call this).

    Parameters
    ----------
    out : Path
        The sweep directory (the caller holds its lock).
    points : sequence of mapping
        What names each point (recorded, and its folder name via :func:`point_id`).
    params : sequence of mapping
        The validated parameters of every point.
    ids : sequence of str, optional
        Folder names under ``OUT/points`` (default: :func:`point_id` of each point).

    Returns
    -------
    list of dict
        ``{"point", "params", "row"}`` per point, in the order of ``points``.
    """
    ids = [point_id(p) for p in points] if ids is None else list(ids)
    runs = [RunDir(out / "points" / i) for i in ids]
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(params):
        groups.setdefault(_premask_key(p), []).append(i)
    n = len(points)
    for members in groups.values():
        todo = [i for i in members if not _is_done(runs[i], params[i])]
        for i in members:
            if i not in todo:
                print(f"[{i + 1}/{n}] {ids[i]}: done, skipped", flush=True)
        if not todo:
            continue
        data = _prepare(out, params[members[0]])
        group_params = [params[i] for i in members]
        lambdas = _group_lambdas(group_params)
        print(f"pre-masking {len(lambdas)} x {data.catalogue.n_outputs} networks as one stack "
              f"(l1 = {', '.join(f'{lam:g}' for lam in lambdas)}) ...", flush=True)
        stack_run, model, hist = _train_group(out, data, group_params, progress=progress)
        for i in todo:
            print(f"[{i + 1}/{n}] {ids[i]} ...", flush=True)
            run = runs[i]
            _use_data(run, data)
            lam = float(params[i]["l1"])
            _split_into(run, stack_run, model, hist, lambdas.index(lam), lam, len(members))
            _finish_point(run, params[i], progress=progress)
            write_json({"point": dict(points[i]), "params": _comparable(params[i]),
                        "row": _row(run)}, run.artefact(POINT_FILE))
    return [read_json(r.artefact(POINT_FILE)) for r in runs]


def _coordinate(values: list[Any]) -> np.ndarray:
    """Grid values as a netCDF-friendly array: numbers stay numbers, the rest strings."""
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=float if any(isinstance(v, float) for v in values)
                          else np.int64)
    return np.asarray([str(v) for v in values])


_LONG_NAMES = {
    "precision": "precision of the PCMasking masks against all true drivers",
    "recall": "recall of the PCMasking masks over all true drivers",
    "f1": "F1 of the PCMasking masks against all true drivers",
    "strong_precision": "precision of the masks, every true driver counted as correct",
    "strong_recall": "recall of the masks over strong drivers (>= 1 % of variance)",
    "strong_f1": "F1 of the masks for strong drivers",
    "auc": "ROC AUC of the masking vectors (drivers vs non-drivers)",
    "oracle_f1": "best F1 any threshold on the masking vectors could reach",
    "strong_auc": "ROC AUC of the masking vectors (strong drivers vs non-drivers)",
    "oracle_strong_f1": "best strong-driver F1 any threshold could reach",
    "causal_f1": "F1 of the causal masks against all true drivers",
    "inputs_kept": "mean number of inputs kept per output by the PCMasking masks",
}


def sweep_table(records: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> xr.Dataset:
    """The tidy table of finished points: dimension ``point``, grid values as coordinates.

    Parameters
    ----------
    records : sequence of mapping
        ``{"point": {key: value}, "row": {column: number}}`` per point.
    keys : sequence of str
        The grid keys (coordinate order).
    """
    if not records:
        raise PCMError("no finished grid point to tabulate")
    ids = [point_id(r["point"]) for r in records]
    coords: dict[str, Any] = {"point": ("point", np.asarray(ids), {"long_name": "grid point"})}
    for key in keys:
        coords[key] = ("point", _coordinate([r["point"][key] for r in records]),
                       {"long_name": f"run parameter {key}: {PARAMETERS[key].help}"})
    columns = list(dict.fromkeys(c for r in records for c in r["row"]))
    data = {}
    for column in columns:
        values = np.array([r["row"].get(column, math.nan) for r in records], dtype=float)
        if column.startswith("r2_"):
            attrs = {"long_name": "mean R² over the variable's outputs, " + column[3:]
                     .replace("_", " "), "units": _UNITS_ONE}
        elif column.startswith("seconds"):
            attrs = {"long_name": "wall seconds of the point" + (
                " (PCMasking phases)" if column.endswith("pcmasking") else " (all phases)")
                + "; a shared pre-masking stack counts 1/k", "units": "s"}
        elif column.startswith("shap_nondriver_share_"):
            attrs = {"long_name": "share of mean |SHAP| on non-drivers, "
                     + column.removeprefix("shap_nondriver_share_"), "units": _UNITS_ONE}
        else:
            attrs = {"long_name": _LONG_NAMES.get(column, column.replace("_", " ")),
                     "units": _UNITS_ONE}
        data[column] = ("point", values, attrs)
    return xr.Dataset(data, coords=coords)


def run_table(run: RunDir | str | os.PathLike) -> xr.Dataset:
    """The columns of :func:`sweep_table` for one finished run (one point, ``default``)."""
    return sweep_table([{"point": {}, "row": _row(RunDir.of(run))}], [])


def stack_seconds(out: str | os.PathLike) -> list[tuple[int, float]]:
    """``(networks, seconds)`` of every pre-masking stack of a sweep (its training cost)."""
    rows = []
    folder = Path(out) / "stacks"
    for stack in sorted(folder.iterdir()) if folder.is_dir() else []:
        path = stack / "history_premask.nc"
        if path.exists():
            with xr.open_dataset(path) as hist:
                rows.append((int(hist.sizes["network"]), float(hist.attrs["phase_seconds"])))
    return rows
