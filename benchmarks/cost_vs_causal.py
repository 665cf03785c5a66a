"""Cost of PCMasking versus the causally-informed baseline, on the same data.

The paper claims that PCMasking reaches the skill of the causally-informed
networks of Iglesias-Suarez et al. (JGR 2024) at about a third of their cost.
This script runs, in one process, on the same data and network sizes:

* PCMasking: pre-masking -> masking vectors -> threshold search -> fine-tuning
  (the step functions of :mod:`pcm.method`);
* causal: PC1 discovery on EVERY grid column of the data (tigramite, batches of
  columns on a local dask cluster) -> the per-output q search of the causally-informed
  networks, whose best candidates are the final networks (:mod:`pcm.baselines.causal`);

and prints wall and CPU seconds per phase (CPU = this process plus its
finished child processes, i.e. the discovery workers) and the ratio.

What the numbers depend on: the discovery costs ``seconds per column x
columns`` and the seconds per column grow with the time steps per column
and with the number of links that survive the first PC iterations; the
training phases grow with samples x epochs x network size (x candidate q for the
causal training). Like the reference, the discovery runs on every column of the
grid, so the measured ratio needs no extrapolation; the script also prints the
measured growth of PC1's cost with the steps per column and an extrapolation of
the discovery to the full T42 grid over one year of half-hourly steps, labelled
EXTRAPOLATION. Wall seconds depend on the load of the machine; the CPU seconds
are the more robust measure (the discovery's CPU seconds are those of tigramite in
the dask workers plus this process).

Usage::

    python benchmarks/cost_vs_causal.py --preset ci
    python benchmarks/cost_vs_causal.py --preset tutorial --n-lat 8 --n-lon 16 --n-jobs 2
    python benchmarks/cost_vs_causal.py --run-dir runs/tutorial   # reuse its data

The LAST line of the output is one JSON object with (at least) ``pcmasking_s``,
``causal_s`` and ``ratio`` (causal / PCMasking wall seconds).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: Full T42 grid of the reference setup.
FULL_GRID_COLUMNS = 64 * 128

#: Fewest synthetic time steps of this benchmark (the train split is 70 % of them).
MIN_STEPS = 48

#: Time steps per column of the extrapolation: one year of half-hourly steps
#: (the reference's discovery experiment is named ``002_train_1_year``).
YEAR_STEPS = 365 * 48


def _cpu_seconds() -> float:
    """CPU seconds of this process plus all finished (waited-for) children."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _configs(p: dict[str, Any]) -> dict[str, Any]:
    """The configuration objects of the phases, built from the run parameters as in notebooks."""
    from pcm.params.config import CausalConfig, FinetuneConfig, PremaskConfig, SearchConfig

    return {"premask": PremaskConfig.from_parameters(p),
            "threshold_search": SearchConfig.from_parameters(p),
            "finetune": FinetuneConfig.from_parameters(p),
            "causal": CausalConfig.from_parameters(p)}


def _timed(name: str, fn: Callable, timings: dict[str, dict[str, float]]) -> Any:
    print(f"-- {name} ...", flush=True)
    wall0, cpu0 = time.perf_counter(), _cpu_seconds()
    result = fn()
    wall, cpu = time.perf_counter() - wall0, _cpu_seconds() - cpu0
    timings[name] = {"wall_s": wall, "cpu_s": cpu}
    print(f"   {name}: wall {wall:8.2f} s   cpu {cpu:8.2f} s", flush=True)
    return result


def _steps_exponent(run: Any, n_steps: int) -> tuple[float, list[tuple[int, float]]]:
    """CPU seconds of PC1 on one column at n_steps, n_steps/2, n_steps/4; log-log slope."""
    import numpy as np

    from pcm.baselines.causal import discover_column, select_columns
    from pcm.baselines.causal.data import read_column_series
    from pcm.data.cbrain import sample_grid

    grid = sample_grid(run.data_path("train"))
    column = select_columns(len(grid["lat"]), len(grid["lon"]), 1)
    x, y, _ = read_column_series(run.data_path("train"), column, n_steps=n_steps)
    points = []
    for steps in sorted({n_steps, n_steps // 2, n_steps // 4}):
        if steps >= 16:
            result = discover_column(x[:steps, 0], y[:steps, 0])
            points.append((steps, result.cpu_seconds))
    if len(points) < 2:
        return float("nan"), points
    logs = np.log(np.array(points))
    slope = float(np.polyfit(logs[:, 0], logs[:, 1], 1)[0])
    return slope, points


def _finite(obj: Any) -> Any:
    """``obj`` with NaN/inf floats replaced by None (strict JSON), numbers as float."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, bool | int | str) or obj is None:
        return obj
    value = float(obj)
    return value if math.isfinite(value) else None


def _parameters(args: argparse.Namespace) -> dict[str, Any]:
    """Preset values (dotted keys flattened to notebook names) plus command-line overrides."""
    from pcm.params.presets import notebook_name, preset

    values = {notebook_name(k): v for k, v in preset(args.preset).items()}
    for key in ("steps", "n_lat", "n_lon"):
        value = getattr(args, key)
        if value is not None:
            values[f"data_{key}"] = value
    if args.steps is None and args.run_dir is None and values["data_steps"] < MIN_STEPS:
        print(f"note: preset {args.preset} has {values['data_steps']} time steps; the discovery "
              f"needs a longer continuous train split, using {MIN_STEPS} steps for both pipelines")
        values["data_steps"] = MIN_STEPS
    for key in ("hidden_layers", "hidden_units", "epochs", "finetune_epochs", "max_samples"):
        value = getattr(args, key)
        if value is not None:
            values[key] = value
    if args.epochs is not None:
        values["causal_epochs"] = args.epochs
    for key in ("pc_alpha", "share", "rule", "quantiles"):
        value = getattr(args, key)
        if value is not None:
            values[f"causal_{key}"] = value
    values["causal_columns"] = None  # every column of the grid, as the reference
    values["causal_steps"] = args.n_steps
    values["n_jobs"] = args.n_jobs
    return values


def _prepare_run(args: argparse.Namespace, params: dict[str, Any]):
    from pcm.run.rundir import RunDir

    tmp = tempfile.TemporaryDirectory(prefix="pcm-cost-")
    run = RunDir(Path(tmp.name) / "run")
    if args.run_dir is not None:
        # a fresh run directory on the same data files: no checkpoint or artefact of the
        # existing run is reused (a resumed phase would time nothing) or overwritten
        source = RunDir(args.run_dir)
        manifest = source.manifest()  # fails early with a clear message
        run.write_manifest(manifest["files"], source=manifest["source"])
        print(f"data: {source.data_path('train')} (data of {source.root}; artefacts in "
              f"{run.root})")
        return run, tmp
    from pcm.data.datasets import write_synthetic_dataset

    print(f"data: synthetic, {params['data_steps']} steps, grid "
          f"{params['data_n_lat']} x {params['data_n_lon']} -> {run.root}")
    files = write_synthetic_dataset(run.data_dir, steps=params["data_steps"],
                                    seed=params["seed"], n_lat=params["data_n_lat"],
                                    n_lon=params["data_n_lon"])
    run.write_manifest(dict(files), source="synthetic")
    return run, tmp


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="ci", choices=("ci", "tutorial", "paper"))
    parser.add_argument("--run-dir", type=Path, help="use the data of this run directory "
                        "(its artefacts and checkpoints are neither reused nor touched)")
    parser.add_argument("--steps", type=int, help="synthetic: time steps (train+valid+test)")
    parser.add_argument("--n-lat", type=int)
    parser.add_argument("--n-lon", type=int)
    parser.add_argument("--hidden-layers", type=int)
    parser.add_argument("--hidden-units", type=int)
    parser.add_argument("--epochs", type=int, help="pre-masking and causal training epochs")
    parser.add_argument("--finetune-epochs", type=int)
    parser.add_argument("--max-samples", type=int)
    parser.add_argument("--pc-alpha", type=float, help="default: the preset's causal_pc_alpha")
    parser.add_argument("--share", type=float, help="default: the preset's causal_share")
    parser.add_argument("--rule", choices=("quantile", "share"),
                        help="default: the preset's causal_rule")
    parser.add_argument("--quantiles", type=int, help="default: the preset's causal_quantiles")
    parser.add_argument("--n-steps", type=int, help="time steps per column (default: all)")
    parser.add_argument("--n-jobs", type=int, default=None,
                        help="discovery dask workers (default: cpu count)")
    parser.add_argument("--no-scaling", dest="scaling", action="store_false",
                        help="skip the one-column measurement of cost versus steps")
    parser.add_argument("--extrapolate-steps", type=int, default=YEAR_STEPS,
                        help="time steps per column of the extrapolated reference setup")
    args = parser.parse_args(argv)
    warnings.simplefilter("once")  # the same data warning from every phase: show it once

    from pcm.analysis.scoring import mean_driver_scores
    from pcm.baselines.causal import run_causal_training, run_discovery
    from pcm.method.finetune import run_finetune
    from pcm.method.masking import compute_masking_vectors, search_thresholds
    from pcm.method.premask import run_premask

    params = _parameters(args)
    config = _configs(params)
    run, tmp = _prepare_run(args, params)
    timings: dict[str, dict[str, float]] = {}
    try:
        # PCMasking
        _timed("premask", lambda: run_premask(run, config["premask"], progress=False), timings)
        _timed("masking_vectors", lambda: compute_masking_vectors(run), timings)
        _timed("threshold_search", lambda: search_thresholds(
            run, config["threshold_search"], progress=False), timings)
        _timed("finetune", lambda: run_finetune(run, config["finetune"], progress=False),
               timings)
        # causal
        discovery = _timed("causal_discovery", lambda: run_discovery(
            run, config["causal"], n_steps=params["causal_steps"], n_jobs=params["n_jobs"]),
            timings)
        _timed("causal_training", lambda: run_causal_training(
            run, config["causal"], progress=False), timings)
        timings["causal_discovery"]["cpu_s"] = max(
            timings["causal_discovery"]["cpu_s"],
            float(discovery["column_cpu_seconds"].sum()))  # tigramite ran in the workers
        drivers = run.drivers()
        causal_mask = run.mask("causal")
        scores = None if drivers is None else mean_driver_scores(causal_mask, drivers)
        n_candidates = int(run.history("causal").attrs["n_candidate_networks"])
        exponent, points = (float("nan"), [])
        if args.scaling:
            print("-- scaling of PC1 with the steps per column (one column) ...", flush=True)
            exponent, points = _steps_exponent(run, int(discovery.attrs["n_steps"]))
    finally:
        tmp.cleanup()

    pcm_phases = ("premask", "masking_vectors", "threshold_search", "finetune")
    causal_phases = ("causal_discovery", "causal_training")
    total = {kind: {k: sum(timings[p][k] for p in phases) for k in ("wall_s", "cpu_s")}
             for kind, phases in (("pcmasking", pcm_phases), ("causal", causal_phases))}
    ratio = total["causal"]["wall_s"] / total["pcmasking"]["wall_s"]
    cpu_ratio = total["causal"]["cpu_s"] / total["pcmasking"]["cpu_s"]

    n_columns = int(discovery.attrs["n_columns"])
    n_steps = int(discovery.attrs["n_steps"])
    per_column = float(discovery["column_seconds"].mean())
    cpu_per_column = float(discovery["column_cpu_seconds"].mean())
    phase_cpu_per_column = timings["causal_discovery"]["cpu_s"] / n_columns
    # Bounds: per-column cost between "independent of the steps" (per-test overhead
    # dominates short series) and "linear in the steps" (least squares dominates).
    grid_columns = int(discovery.attrs["grid_columns"])
    steps_factor = max(1.0, args.extrapolate_steps / n_steps)
    low = cpu_per_column * FULL_GRID_COLUMNS
    high = low * steps_factor
    fitted = low * steps_factor ** min(max(exponent, 0.0), 1.0) if points else float("nan")

    print()
    print(f"{'phase':<18}{'wall s':>10}{'cpu s':>10}")
    for name, t in timings.items():
        print(f"{name:<18}{t['wall_s']:>10.2f}{t['cpu_s']:>10.2f}")
    for kind, t in total.items():
        print(f"{kind + ' total':<18}{t['wall_s']:>10.2f}{t['cpu_s']:>10.2f}")
    print(f"ratio causal / PCMasking: wall {ratio:.2f}, cpu {cpu_ratio:.2f}")
    print(f"discovery: {n_columns} of {int(discovery.attrs['grid_columns'])} columns, "
          f"{n_steps} steps per column, pc_alpha {discovery.attrs['pc_alpha']}, "
          f"rule {discovery.attrs['rule']}, {discovery.attrs['n_jobs']} dask workers; "
          f"causal q search: {n_candidates} candidate networks")
    print(f"discovery scaling: tigramite {cpu_per_column:.2f} cpu s ({per_column:.2f} wall s) "
          f"per column; whole phase {phase_cpu_per_column:.2f} cpu s per column "
          "(incl. reading and worker start)")
    print(f"EXTRAPOLATION (not measured): discovery on the full T42 grid ({FULL_GRID_COLUMNS} "
          f"columns) with {args.extrapolate_steps} steps per column: between "
          f"{low / 3600:,.1f} core-hours (cost per column independent of the steps) and "
          f"{high / 3600:,.1f} core-hours (linear in the steps), from {cpu_per_column:.2f} "
          f"cpu s per column at {n_steps} steps; training phases not extrapolated")
    if len(points) >= 2:
        measured = ", ".join(f"{t} steps {c:.2f} cpu s" for t, c in points)
        print(f"   measured on one column: {measured} -> cost ~ steps^{exponent:.2f}; with "
              f"that exponent: {fitted / 3600:,.1f} core-hours (EXTRAPOLATION)")
    if scores is not None:
        print(f"causal mask vs true drivers: precision {scores['precision']:.3f}, "
              f"recall {scores['recall']:.3f}, F1 {scores['f1']:.3f}")
    result = {
        "pcmasking_s": total["pcmasking"]["wall_s"],
        "causal_s": total["causal"]["wall_s"],
        "ratio": ratio,
        "pcmasking_cpu_s": total["pcmasking"]["cpu_s"],
        "causal_cpu_s": total["causal"]["cpu_s"],
        "cpu_ratio": cpu_ratio,
        "phases": timings,
        "discovery_columns": n_columns,
        "grid_columns": grid_columns,
        "causal_candidate_networks": n_candidates,
        "discovery_steps": n_steps,
        "discovery_seconds_per_column": per_column,
        "discovery_cpu_seconds_per_column": cpu_per_column,
        "extrapolated_full_grid_discovery_cpu_s": [low, high],
        "extrapolated_steps": args.extrapolate_steps,
        "steps_exponent": exponent,
        "extrapolated_full_grid_discovery_cpu_s_fitted": fitted,
        "preset": args.preset,
        "causal_mask_scores": scores,
    }
    print(json.dumps(_finite(result)), flush=True)
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
