"""Streaming training: peak memory as the training set grows past the budget, and speed.

Writes one synthetic training file of ``16 x`` the memory budget (normalised float32
inputs and outputs, 159 columns) and trains the same stacked model on its first
``k x budget`` samples for ``k`` in ``--sizes``, each in a fresh subprocess:

* ``rss_mb[k]``: peak resident memory of the process streaming the split
  (:class:`pcm.data.streaming.DiskSplit`, windows sized by the budget), one epoch;
* ``rss_in_memory_mb[k]``: the same with the split loaded into memory (for contrast);
* ``throughput_ratio``: samples/s of streaming over in-memory training at
  ``--throughput-size`` (median of the epochs after the first, which traces; median
  of ``--rounds`` interleaved runs), and ``cpu_time_ratio``, the same from the
  process's CPU seconds (less sensitive to other load on the machine; streaming's
  reads count against it).

The ``rss_ratio`` is ``rss_mb[16] / rss_mb[1]`` (goal <= 1.25); the throughput goal is
>= 0.8 on 2 cores. The normalisation statistics are computed in one streaming pass
(:func:`pcm.data.normalization.compute_norm`), timed and its peak traced memory printed.
The last line is JSON.

Usage::

    nice -n 10 .venv/bin/python benchmarks/streaming.py [--budget-mb 20] [--sizes 1,2,4,8,16]
        [--hidden 3x64] [--batch-size 256] [--networks 65] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
from common import json_child

ROW_BYTES = 159 * 4  # one normalised SPCAM sample, float32 (94 inputs + 65 outputs)


def write_data(folder: Path, samples: int) -> tuple[Path, Path, dict]:
    """A synthetic training file of at least ``samples`` rows and its norm file."""
    import xarray as xr

    from pcm.data import cbrain_write, synthetic
    from pcm.data.cbrain import header, open_nc
    from pcm.data.normalization import compute_norm, write_norm

    path, norm_path = folder / "train.nc", folder / "norm.nc"
    info: dict = {}
    if path.exists():
        with open_nc(path) as nc:
            if header(nc, path)[1] < samples:
                path.unlink()
    if not path.exists():
        steps, n_lat, n_lon = 32, 8, 16
        fields = synthetic.generate(steps, seed=0, n_lat=n_lat, n_lon=n_lon)
        reps = -(-samples // (steps * n_lat * n_lon))
        big = xr.concat([fields.chunk({"time": 8})] * reps, dim="time")
        big = big.assign_coords(time=np.arange(big.sizes["time"]) * 1800)
        t0 = time.perf_counter()
        cbrain_write.write_cbrain(big, path)
        info["write_seconds"] = round(time.perf_counter() - t0, 2)
    tracemalloc.start()
    t0 = time.perf_counter()
    write_norm(compute_norm(path), norm_path)
    info["norm_seconds"] = round(time.perf_counter() - t0, 2)
    info["norm_peak_traced_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
    tracemalloc.stop()
    info["file_mb"] = round(path.stat().st_size / 2**20, 1)
    return path, norm_path, info


def child(args) -> None:
    """One measurement in this (fresh) process; prints one JSON line."""
    warnings.simplefilter("ignore")
    from pcm.data.datasets import load_split
    from pcm.data.normalization import Normalization
    from pcm.data.streaming import DiskSplit
    from pcm.nn.config import TrainConfig
    from pcm.nn.networks import StackedMLP
    from pcm.nn.trainer import train_stacked

    norm = Normalization.from_file(args.norm, warn=False)
    n = int(args.samples)
    layers, units = (int(v) for v in args.hidden.split("x"))
    hidden = (units,) * layers
    model = StackedMLP(args.networks, hidden, input_layer=True, seed=0)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.mode == "stream":
        x, y = DiskSplit(args.path, norm, max_samples=n, budget_mb=args.budget_mb), None
    else:
        x, y = load_split(args.path, norm, max_samples=n)
    config = TrainConfig(hidden_units=hidden, epochs=args.epochs, batch_size=args.batch_size,
                         seed=0)
    cpu = [time.process_time()]
    hist = train_stacked(model, x, y, config, l1=1e-3,
                         on_epoch_end=lambda *_: cpu.append(time.process_time()))
    seconds = hist.epoch_seconds.values
    cpu_seconds = np.diff(cpu)
    rate = n / np.median(seconds[1:]) if len(seconds) > 1 else n / seconds[0]
    cpu_rate = n / np.median(cpu_seconds[1:]) if len(seconds) > 1 else n / cpu_seconds[0]
    print(json.dumps({"mode": args.mode, "samples": n,
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "rss_before_data_mb": base, "samples_per_s": float(rate),
                      "samples_per_cpu_s": float(cpu_rate),
                      "epoch_seconds": seconds.tolist(), "cpu_seconds": cpu_seconds.tolist(),
                      "layout": None if y is not None else
                      [x.layout.block_rows, x.layout.window_blocks]}))


def measure(args, mode: str, samples: int, epochs: int) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--path", str(args.path), "--norm",
           str(args.norm), "--samples", str(samples), "--epochs", str(epochs),
           "--budget-mb", str(args.budget_mb), "--hidden", args.hidden, "--batch-size",
           str(args.batch_size), "--networks", str(args.networks)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    out = json_child(cmd, f"{mode} at {samples} samples", env=env)
    print(f"  {mode:9s} {samples:8d} samples: peak RSS {out['rss_mb']:7.1f} MB "
          f"(before data {out['rss_before_data_mb']:.1f}), {out['samples_per_s']:9.0f} "
          f"samples/s, epochs {[round(s, 2) for s in out['epoch_seconds']]}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-mb", type=float, default=20.0)
    parser.add_argument("--sizes", default="1,2,4,8,16")
    parser.add_argument("--throughput-size", type=int, default=4)
    parser.add_argument("--throughput-epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2,
                        help="interleaved in-memory/streaming throughput rounds")
    parser.add_argument("--hidden", default="3x64", help="LAYERSxUNITS (tutorial: 3x64)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--networks", type=int, default=65)
    parser.add_argument("--in-memory-sizes", default="1,16",
                        help="sizes also measured with the split in memory (contrast)")
    parser.add_argument("--out", default=None, help="folder for the data (default: temporary)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    for name in ("--path", "--norm", "--mode"):
        parser.add_argument(name, default=None, help=argparse.SUPPRESS)
    for name in ("--samples", "--epochs"):
        parser.add_argument(name, type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.mode = args.child
        child(args)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    per_budget = int(args.budget_mb * 2**20 // ROW_BYTES)
    with tempfile.TemporaryDirectory(prefix="pcm-streaming-") as tmp:
        folder = Path(args.out or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        args.path, args.norm, info = write_data(folder, max(sizes) * per_budget)
        print(f"budget {args.budget_mb:g} MB = {per_budget} samples; data {info}; model "
              f"{args.networks} x {args.hidden}, batch {args.batch_size}", flush=True)
        print("peak RSS per size (one epoch each, fresh process):")
        rss, rss_mem = {}, {}
        for k in sizes:
            rss[k] = measure(args, "stream", k * per_budget, 1)["rss_mb"]
        for k in (int(s) for s in args.in_memory_sizes.split(",") if s):
            rss_mem[k] = measure(args, "in_memory", k * per_budget, 1)["rss_mb"]
        print(f"throughput at {args.throughput_size} x budget, "
              f"{args.throughput_epochs} epochs (median after the first):")
        n = args.throughput_size * per_budget
        runs: dict[str, list] = {"in_memory": [], "stream": []}
        for _ in range(args.rounds):  # interleaved: the machine's load drifts
            for mode in runs:
                runs[mode].append(measure(args, mode, n, args.throughput_epochs))
    rate = {m: float(np.median([r["samples_per_s"] for r in v])) for m, v in runs.items()}
    cpu_rate = {m: float(np.median([r["samples_per_cpu_s"] for r in v]))
                for m, v in runs.items()}
    ratio = rate["stream"] / rate["in_memory"]
    result = {"budget_mb": args.budget_mb, "samples_per_budget": per_budget,
              "rss_mb": {str(k): round(v, 1) for k, v in rss.items()},
              "rss_ratio": round(rss[max(sizes)] / rss[min(sizes)], 3),
              "rss_in_memory_mb": {str(k): round(v, 1) for k, v in rss_mem.items()},
              "throughput_ratio": round(ratio, 3),
              "cpu_time_ratio": round(cpu_rate["stream"] / cpu_rate["in_memory"], 3),
              "samples_per_s": {m: round(v) for m, v in rate.items()},
              "samples_per_cpu_s": {m: round(v) for m, v in cpu_rate.items()},
              "throughput_samples": n, "rounds": args.rounds,
              "layout": runs["stream"][0]["layout"], "cpu_count": os.cpu_count(),
              "load_average": [round(v, 1) for v in os.getloadavg()], **info}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
