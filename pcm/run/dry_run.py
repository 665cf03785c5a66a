"""``pcm run --dry-run``: what a run would need (samples, disk, memory, time), running nothing.

:func:`plan` sizes a resolved parameter set: the samples of every split (from the
data files' headers, from ``conversion.json`` of a ClimSim folder, from the
synthetic grid, or, for ClimSim's subset without a folder yet, from the subset's
definition), the disk the data take (float32 rows), the memory of the splits held
in memory (or the budget when they stream) and of the networks' training state,
and an estimated time per phase: the phase's work (networks x samples x epochs x
6 x weights, the usual forward-plus-backward count of multiply-adds) divided by a
*measured* throughput from :data:`THROUGHPUT_FILE` (``pcm/throughput.json``,
each figure with the run and machine it came from). A machine may have records for
several network sizes (small networks reach a fraction of the FLOP/s of wide ones);
each machine's estimate uses its record of the nearest size (:func:`nearest_records`).
The causal discovery (PC1 on each grid column) is estimated from the CPU seconds per
column a machine took at several series lengths (``discovery`` in the same file),
interpolated to the run's steps per column (:func:`discovery_cpu_seconds`) and divided
by the machine's cores. The time is an extrapolation and says so.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from pcm.data.cbrain import file_catalogue, header, open_nc, sample_grid
from pcm.data.climsim import CLIMSIM_SUBSET
from pcm.data.splits import split_steps
from pcm.errors import DataError, ParameterError
from pcm.method.thresholds import halving_rounds
from pcm.params.presets import CLIMSIM_FILES, PAPER_RULE
from pcm.params.presets import preset as preset_values
from pcm.params.run_parameters import parse_override, resolve_parameters
from pcm.variables import SPCAM, grid_shape

__all__ = ["THROUGHPUT_FILE", "throughput_table", "discovery_table", "nearest_records",
           "discovery_cpu_seconds", "subset_steps", "dry_run_parameters", "plan", "format_plan",
           "dry_run"]

#: Measured training throughput (package data): one record per measurement.
THROUGHPUT_FILE = "throughput.json"

#: ClimSim low-res: columns, inputs, outputs (pcm.variables.climsim_catalogue) and the
#: published file sizes of one step (MB, mli + mlo; ClimSim's README: 1.9 + 1.1). The
#: sizes estimate a run before conversion; a converted folder's catalogue sizes it after.
CLIMSIM_COLUMNS, CLIMSIM_INPUTS, CLIMSIM_OUTPUTS, CLIMSIM_STEP_MB = 384, 184, 128, 3.0

#: Steps per day of ClimSim (20-minute steps) and days per month (no-leap calendar).
_STEPS_PER_DAY = 72
_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _throughput_file() -> tuple[dict, str]:
    path = resources.files("pcm").joinpath(THROUGHPUT_FILE)
    return json.loads(path.read_text()), str(path)


def throughput_table() -> list[dict]:
    """The measured throughput records (``pcm/throughput.json``), each checked for the
    keys the estimate reads."""
    content, path = _throughput_file()
    records = content["records"]
    for k, record in enumerate(records):
        network = record.get("network")
        if not (isinstance(network, dict) and {"hidden_layers", "hidden_units"} <= set(network)
                and {"name", "flop_per_s", "source"} <= set(record)):
            raise DataError(f"record {k} needs name, network (hidden_layers, hidden_units), "
                            f"flop_per_s and source, got keys {sorted(record)}",
                            path=path)
    return records


def discovery_table() -> list[dict]:
    """The measured cost of the causal discovery per machine (``discovery`` of
    ``pcm/throughput.json``): ``name``, ``cores``, ``points`` (``[steps per column, CPU
    seconds per column]``, at least two, increasing steps) and ``source``; checked."""
    content, path = _throughput_file()
    records = content.get("discovery", [])
    for k, record in enumerate(records):
        points = record.get("points")
        steps = [p[0] for p in points] if isinstance(points, list) and all(
            isinstance(p, list) and len(p) == 2 for p in points) else []
        cores = record.get("cores")
        if not ({"name", "source"} <= set(record) and isinstance(cores, int) and cores >= 1
                and len(steps) >= 2 and steps == sorted(set(steps))):
            raise DataError(f"discovery record {k} needs name, cores (>= 1), source and points "
                            "(two or more [steps, CPU seconds per column], increasing steps), "
                            f"got {record}", path=path)
    return records


def discovery_cpu_seconds(points: list[list[float]], steps: int) -> tuple[float, bool]:
    """CPU seconds of PC1 on one column of ``steps`` steps, from measured ``points``.

    Linear between the measured steps; below the fewest, the cost at the fewest (the
    cost there is mostly a fixed part per column); above the most, the line through the
    last two points. Returns the seconds and whether ``steps`` lies outside the
    measured range.
    """
    x = [float(p[0]) for p in points]
    y = [float(p[1]) for p in points]
    if steps < x[0]:
        return y[0], True
    if steps <= x[-1]:
        return float(np.interp(steps, x, y)), False
    slope = (y[-1] - y[-2]) / (x[-1] - x[-2])
    return y[-1] + slope * (steps - x[-1]), True


def nearest_records(records: list[dict], hidden_layers: int, hidden_units: int) -> list[dict]:
    """Per machine (``name``), the record measured on the network size nearest to
    ``hidden_layers`` x ``hidden_units`` (nearest width by ratio, then depth), in the
    order the machines first appear.
    """
    best: dict[str, tuple[tuple[float, int], dict]] = {}
    for record in records:
        layers, units = record["network"]["hidden_layers"], record["network"]["hidden_units"]
        distance = (abs(math.log(units / hidden_units)), abs(layers - hidden_layers))
        name = record["name"]
        if name not in best or distance < best[name][0]:
            best[name] = (distance, record)
    return [record for _, record in best.values()]


def subset_steps(months: tuple[str, str], stride: int) -> int:
    """ClimSim steps in a month range (both ends included), every ``stride``-th.

    Examples
    --------
    >>> subset_steps(("0001-02", "0008-01"), 7)
    26280
    """
    (y0, m0), (y1, m1) = ((int(p[:4]), int(p[5:7])) for p in months)
    days = 0
    y, m = y0, m0
    while (y, m) <= (y1, m1):
        days += _DAYS[m - 1]
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return math.ceil(days * _STEPS_PER_DAY / int(stride))


def _file_samples(path: str) -> int:
    with open_nc(path) as nc:
        return int(header(nc, path)[1])


def _synthetic_columns(params: Mapping[str, Any]) -> int:
    """Columns of the synthetic grid (``data.n_lat`` x ``data.n_lon``; None: full T42)."""
    n_lat, n_lon = grid_shape(params.get("data.n_lat"), params.get("data.n_lon"))
    return n_lat * n_lon


def _samples(params: Mapping[str, Any]) -> tuple[dict[str, int], int, int, str]:
    """Samples per split, inputs, outputs, and where the counts came from."""
    source = params["data.source"]
    if source == "synthetic":
        per_step = _synthetic_columns(params)
        blocks = split_steps(int(params["data.steps"]))
        counts = {k: (s.stop - s.start) * per_step for k, s in blocks.items()}
        counts["plus4K"] = counts["minus4K"] = counts["test"]
        return counts, SPCAM.n_inputs, SPCAM.n_outputs, "the synthetic grid"
    if source == "spcam":
        counts = {k: _file_samples(params[f"data.{k}"]) for k in ("train", "valid", "test")}
        return counts, SPCAM.n_inputs, SPCAM.n_outputs, "the files' headers"
    folder = params.get("data.dir")
    if folder:
        # a converted folder: its catalogue (levels) sizes the networks
        catalogue = file_catalogue(Path(folder) / "train.nc")
        n_in, n_out = catalogue.n_inputs, catalogue.n_outputs
        manifest = Path(folder) / "conversion.json"
        if manifest.is_file():
            splits = json.loads(manifest.read_text()).get("splits")
            if splits:
                return ({k: int(v["samples"]) for k, v in splits.items()}, n_in, n_out,
                        f"{manifest}")
        counts = {k: _file_samples(str(Path(folder) / f"{k}.nc"))
                  for k in ("train", "valid", "test") if f"{k}.nc" in CLIMSIM_FILES}
        return counts, n_in, n_out, "the files' headers"
    counts = {k: subset_steps(m, CLIMSIM_SUBSET["stride"]) * CLIMSIM_COLUMNS
              for k, m in CLIMSIM_SUBSET["split_months"].items()}
    return (counts, CLIMSIM_INPUTS, CLIMSIM_OUTPUTS,
            "ClimSim's subset definition (every 7th step; no data.dir yet)")


def _weights(n_in: int, layers: int, units: int, premask: bool) -> int:
    """Weights and biases of one single-output network."""
    w = n_in * units + units + (layers - 1) * (units * units + units) + units + 1
    return w + (n_in * n_in + n_in if premask else 0)


def _search_candidate_epochs(params: Mapping[str, Any]) -> float:
    """Candidate-epochs of the threshold search per output (0: no search training)."""
    if params["selection"] in ("proxy", "relative", "knockoff", "stability"):
        return 0.0
    n, epochs = int(params["n_thresholds"]), int(params["search_epochs"])
    if not params.get("search_halving"):
        return float(n * epochs)
    total, left = 0.0, n
    for e in halving_rounds(n, epochs):
        total += left * e
        left = math.ceil(left / 2)
    return total


def _discovery_size(params: Mapping[str, Any], train_samples: int) -> tuple[int, int]:
    """Grid columns the causal discovery analyses and time steps per column."""
    if params["data.source"] == "synthetic":
        columns = _synthetic_columns(params)
        steps = train_samples // columns
    else:  # spcam: the train file's grid
        grid = sample_grid(params["data.train"])
        columns = len(grid["lat"]) * len(grid["lon"])
        steps = int(grid["n_time"])
    if params.get("causal_columns") is not None:
        columns = min(columns, int(params["causal_columns"]))
    if params.get("causal_steps") is not None:
        steps = min(steps, int(params["causal_steps"]))
    return columns, steps


def plan(params: Mapping[str, Any], throughput: list[dict] | None = None,
         discovery: list[dict] | None = None) -> dict:
    """What a run with ``params`` needs; nothing is run or written.

    Parameters
    ----------
    params : mapping
        Resolved parameters (:func:`pcm.params.run_parameters.resolve_parameters`).
    throughput : list of dict, optional
        Records of :func:`throughput_table` (default: read them); each machine's record
        of the nearest network size is used (:func:`nearest_records`).
    discovery : list of dict, optional
        Records of :func:`discovery_table` (default: read them).

    Returns
    -------
    dict
        ``samples`` (per split, and ``train_used`` after ``max_samples``),
        ``counts_from``, ``n_inputs``, ``n_outputs``, ``network`` (hidden layers, units),
        ``disk_gb`` (data, and
        ``climsim_source`` to convert when the subset is not converted yet),
        ``memory_gb`` (``splits``, ``streamed``, ``training_state``), ``phases``
        (per phase: ``work_flop``, ``seconds`` per throughput record),
        ``training_epochs`` (of pre-masking and the unconstrained network),
        ``throughput`` (the records used) and, for a run with the causally-informed
        networks, ``causal_discovery`` (``columns``, ``steps``, and per machine with a
        discovery record ``cpu_seconds``, ``seconds`` on its cores and whether the
        steps were ``extrapolated``; in ``seconds_total`` where measured).
    """
    layers, units = int(params["hidden_layers"]), int(params["hidden_units"])
    throughput = nearest_records(throughput_table() if throughput is None else throughput,
                                 layers, units)
    samples, n_in, n_out, origin = _samples(params)
    train = samples["train"] if params.get("max_samples") is None \
        else min(samples["train"], int(params["max_samples"]))
    row_bytes = 4 * (n_in + n_out)
    disk = {k: v * row_bytes / 1e9 for k, v in samples.items()}
    out: dict[str, Any] = {"samples": {**samples, "train_used": train}, "counts_from": origin,
                           "n_inputs": n_in, "n_outputs": n_out, "network": (layers, units),
                           "disk_gb": {"data": round(sum(disk.values()), 2)}}
    if params["data.source"] == "climsim" and not params.get("data.dir"):
        steps = sum(samples[k] for k in ("train", "valid", "test")) // CLIMSIM_COLUMNS
        out["disk_gb"]["climsim_source"] = round(steps * CLIMSIM_STEP_MB / 1e3, 1)
    budget = float(params.get("data.memory_budget_mb", 8192.0)) / 1e3
    mode = str(params.get("data.in_memory", "auto"))
    split_gb = {k: train * row_bytes / 1e9 if k == "train" else disk[k]
                for k in ("train", "valid")}
    streamed = [k for k, v in split_gb.items()
                if mode == "false" or (mode == "auto" and v > budget)]
    held = sum(v for k, v in split_gb.items() if k not in streamed)
    w_pre = _weights(n_in, layers, units, True)
    w = _weights(n_in, layers, units, False)
    # weights, gradients and two Adam moments, float32, of the largest stack (pre-masking)
    state = n_out * w_pre * 4 * 4 / 1e9
    out["memory_gb"] = {"splits_in_memory": round(held, 2), "streamed": streamed,
                        "stream_budget": round(budget, 2) if streamed else 0.0,
                        "training_state": round(state, 3)}
    epoch_cap = int(params["max_epochs"]) if params.get("schedule") == "plateau" else None

    def epochs(key: str) -> int:
        """A phase's epochs: ``max_epochs`` under the plateau schedule (an upper bound)."""
        return epoch_cap or int(params[key])

    work = {
        "premask": n_out * train * epochs("epochs") * 6 * w_pre,
        "unconstrained": n_out * train * epochs("epochs") * 6 * w,
        "threshold_search": n_out * train * _search_candidate_epochs(params) * 6 * w,
        "finetune": 0 if params.get("search_final") else
        n_out * train * epochs("finetune_epochs") * 6 * w,
    }
    if params.get("paper_rule"):  # the paper's rule beside the run's own selection
        rule = {**params, **PAPER_RULE, "search_halving": False}
        work["paper_rule_search"] = n_out * train * _search_candidate_epochs(rule) * 6 * w
        work["paper_rule_finetune"] = n_out * train * epochs("finetune_epochs") * 6 * w
    causal_networks = 0
    if params.get("causal") and params["data.source"] != "climsim":
        # one network per output and candidate quantile; identical parent sets train once,
        # so this is an upper bound (the tutorial's 65 x 3 candidates were 120 networks)
        causal_networks = n_out * (int(params["causal_quantiles"])
                                   if params.get("causal_rule", "quantile") == "quantile" else 1)
        work["causal_training"] = causal_networks * train * epochs("causal_epochs") * 6 * w
    out["phases"] = {k: {"work_flop": float(v),
                         "seconds": {r["name"]: v / r["flop_per_s"] for r in throughput}}
                     for k, v in work.items()}
    out["seconds_total"] = {r["name"]: sum(v / r["flop_per_s"] for v in work.values())
                            for r in throughput}
    if "causal_training" in work:
        columns, steps = _discovery_size(params, samples["train"])
        found: dict[str, Any] = {"columns": columns, "steps": steps, "cpu_seconds": {},
                                 "seconds": {}, "extrapolated": {}, "records": []}
        for record in discovery_table() if discovery is None else discovery:
            per_column, outside = discovery_cpu_seconds(record["points"], steps)
            name = record["name"]
            found["cpu_seconds"][name] = columns * per_column
            found["seconds"][name] = columns * per_column / int(record["cores"])
            found["extrapolated"][name] = outside
            found["records"].append(record)
            if name in out["seconds_total"]:
                out["seconds_total"][name] += found["seconds"][name]
        out["causal_discovery"] = found
    out["throughput"] = throughput
    out["epochs_are_upper_bounds"] = epoch_cap is not None
    out["training_epochs"] = epochs("epochs")  # of pre-masking and the unconstrained network
    out["causal_networks"] = causal_networks
    return out


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def format_plan(p: Mapping[str, Any], preset: str) -> str:
    """The dry-run report, a few lines of text."""
    s = p["samples"]
    lines = [f"pcm run --preset {preset} --dry-run: nothing is run or written",
             f"samples ({p['counts_from']}): " + ", ".join(
                 f"{k} {v:,}" for k, v in s.items() if k != "train_used")
             + (f"; training on {s['train_used']:,}" if s["train_used"] != s["train"] else ""),
             f"networks: {p['n_outputs']} outputs, {p['n_inputs']} inputs"]
    disk = p["disk_gb"]
    line = f"disk: {disk['data']:.2f} GB of data (float32 rows)"
    if "climsim_source" in disk:
        line += (f"; the ClimSim files to convert first: about {disk['climsim_source']:.0f} GB "
                 "(pcm data climsim --climsim-subset)")
    lines.append(line)
    mem = p["memory_gb"]
    line = f"memory: {mem['splits_in_memory']:.2f} GB of splits in memory"
    if mem["streamed"]:
        line += (f", {' and '.join(mem['streamed'])} streamed from disk within "
                 f"{mem['stream_budget']:.1f} GB (data.memory_budget_mb)")
    line += f"; training state of the largest stack {mem['training_state']:.3f} GB"
    lines.append(line)
    lines.append("time (estimate: work / measured throughput; "
                 + ("epochs at max_epochs, an upper bound; " if p["epochs_are_upper_bounds"]
                    else "")
                 + "extrapolated from the runs named below):")
    if p["causal_networks"] > p["n_outputs"]:
        lines.append(f"  causal_training: up to {p['causal_networks']:,} networks, one per "
                     "output and candidate quantile (identical parent sets train once), an "
                     "upper bound")
    found = p.get("causal_discovery")
    if found is not None:
        lines.append(f"  causal_discovery: PC1 on {found['columns']:,} columns x "
                     f"{found['steps']:,} steps each, the CPU seconds per column measured on "
                     "a machine divided by its cores (a dask cluster of more cores divides "
                     "the CPU time by its own)")
    for record in p["throughput"]:
        name, net = record["name"], record["network"]
        parts = ", ".join(f"{k} {_duration(v['seconds'][name])}" for k, v in p["phases"].items())
        if found is not None and name in found["seconds"]:
            parts += (f", causal_discovery {_duration(found['seconds'][name])} "
                      f"({_duration(found['cpu_seconds'][name])} of CPU"
                      + (", outside the measured steps" if found["extrapolated"][name] else "")
                      + ")")
        elif found is not None:
            parts += ", causal_discovery not measured on this machine (not in the total)"
        other = (net["hidden_layers"], net["hidden_units"]) != p["network"]
        lines.append(f"  {name}: {parts}; total {_duration(p['seconds_total'][name])}"
                     + (f" (measured on networks of {net['hidden_layers']} x "
                        f"{net['hidden_units']}, not {p['network'][0]} x {p['network'][1]})"
                        if other else ""))
    for record in p["throughput"]:
        net = record["network"]
        lines.append(f"  [{record['name']}] {record['flop_per_s']:.3g} FLOP/s on networks of "
                     f"{net['hidden_layers']} x {net['hidden_units']}: {record['source']}")
    for record in [] if found is None else found["records"]:
        points = ", ".join(f"{c:.2f} s at {int(n):,}" for n, c in record["points"])
        lines.append(f"  [{record['name']}, {record['cores']} cores] PC1's CPU seconds per "
                     f"column by steps per column: {points}: {record['source']}")
    return "\n".join(lines)


def dry_run_parameters(preset: str, params_file=None, overrides=()) -> dict[str, Any]:
    """Resolved parameters; a ClimSim preset may lack ``data.dir`` (not converted yet).

    Every other key is validated as for a real run.
    """
    try:
        return resolve_parameters(preset, params_file, overrides)
    except ParameterError as err:
        given = dict(parse_override(o) for o in overrides)
        if err.key != "data.dir" or given.get("data.dir") is not None:
            raise
    # no data.dir: validate the rest as a synthetic run, then restore the source
    params = resolve_parameters(preset, params_file,
                                [*overrides, "data.source=synthetic", "causal=false"])
    params["data.source"] = "climsim"
    params["causal"] = bool(dict(preset_values(preset)).get("causal", False))
    return params


def dry_run(preset: str, params_file=None, overrides=()) -> str:
    """The text ``pcm run --dry-run`` prints."""
    return format_plan(plan(dry_run_parameters(preset, params_file, overrides)), preset)
