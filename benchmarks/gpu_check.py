"""GPU check: one epoch of the paper-size stack in memory and one streamed, against the CPU.

On a machine with a GPU: trains the paper's pre-masking stack (65 networks, input
layer 94x94, 9 hidden layers of 256, batch 1024) for two epochs on ``--samples``
synthetic samples held in memory, then two epochs streamed from disk
(:class:`pcm.data.streaming.DiskSplit`, windows sized by ``--budget-mb``), and prints
for each the samples/s of the second epoch (the first traces the graph), the peak GPU
memory, and the ratio to the CPU, measured in a subprocess without the GPU on
``--cpu-samples`` samples. With several GPUs, ``--devices N`` trains under
``MirroredStrategy``.

Then the ``climsim-full`` preset's pre-masking stack (one network per ClimSim output:
128 networks, input layer 184x184, its hidden layers and batch size, all read from the
preset) for two epochs on ``--climsim-samples`` random rows of ClimSim's shape held in
memory (the work depends on the shapes alone), and the time of one epoch over the
preset's training split (ClimSim's subset, 10,091,520 samples) *extrapolated* from the
second epoch's samples/s, beside what ``pcm run --dry-run`` estimates for it. The
ClimSim files themselves (about 101 GB to convert) are not needed.

Without a GPU it says so and runs the CPU parts only (in memory and streamed), at
``--cpu-samples`` and ``--climsim-cpu-samples``. The last line is JSON.

Usage::

    .venv/bin/python benchmarks/gpu_check.py [--samples 262144] [--cpu-samples 8192]
        [--climsim-samples 262144] [--climsim-cpu-samples 8192] [--devices N] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import json_child  # noqa: E402 - the benchmarks folder, as a script
from streaming import write_data  # noqa: E402

NETWORKS, HIDDEN, BATCH = 65, (256,) * 9, 1024


def epochs(path: Path, norm: Path, samples: int, mode: str, budget_mb: float,
           devices: int | None) -> dict:
    """Two epochs of the paper-size stack; samples/s of the second, memory."""
    warnings.simplefilter("ignore")
    import tensorflow as tf

    from pcm.data.datasets import load_split
    from pcm.data.normalization import Normalization
    from pcm.data.streaming import DiskSplit
    from pcm.nn.config import TrainConfig
    from pcm.nn.networks import StackedMLP
    from pcm.nn.trainer import train_stacked

    gpus = tf.config.list_physical_devices("GPU")
    normalization = Normalization.from_file(norm, warn=False)
    if mode == "stream":
        x, y = DiskSplit(path, normalization, max_samples=samples, budget_mb=budget_mb), None
    else:
        x, y = load_split(path, normalization, max_samples=samples)
    model = StackedMLP(NETWORKS, HIDDEN, input_layer=True, seed=0)
    config = TrainConfig(hidden_units=HIDDEN, epochs=2, batch_size=BATCH, seed=0,
                         devices=devices)
    if gpus:
        tf.config.experimental.reset_memory_stats("GPU:0")
    t0 = time.perf_counter()
    hist = train_stacked(model, x, y, config, l1=1e-3)
    wall = time.perf_counter() - t0
    seconds = hist.epoch_seconds.values
    out = {"mode": mode, "samples": int(len(x)), "device": "GPU" if gpus else "CPU",
           "samples_per_s": float(len(x) / seconds[-1]),
           "epoch_seconds": [round(float(s), 3) for s in seconds], "wall_seconds": wall}
    if gpus:
        info = tf.config.experimental.get_memory_info("GPU:0")
        out["gpu_peak_mb"] = round(info["peak"] / 2**20, 1)
        out["gpus"] = len(gpus)
    return out


def climsim_epochs(samples: int, devices: int | None) -> dict:
    """Two epochs of the ``climsim-full`` pre-masking stack on random rows of ClimSim's
    shape in memory; samples/s of the second, and one epoch over the preset's training
    split extrapolated from it."""
    warnings.simplefilter("ignore")
    import numpy as np
    import tensorflow as tf

    from pcm.nn.config import TrainConfig
    from pcm.nn.networks import StackedMLP
    from pcm.nn.trainer import train_stacked
    from pcm.run.dry_run import dry_run_parameters, plan

    params = dry_run_parameters("climsim-full")
    sized = plan(params)
    n_in, n_out, train = sized["n_inputs"], sized["n_outputs"], sized["samples"]["train"]
    hidden = (int(params["hidden_units"]),) * int(params["hidden_layers"])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((samples, n_in), dtype=np.float32)
    y = rng.standard_normal((samples, n_out), dtype=np.float32)
    gpus = tf.config.list_physical_devices("GPU")
    model = StackedMLP(n_out, hidden, n_inputs=n_in, input_layer=True, seed=0)
    config = TrainConfig(hidden_units=hidden, epochs=2, batch_size=int(params["batch_size"]),
                         seed=0, devices=devices)
    if gpus:
        tf.config.experimental.reset_memory_stats("GPU:0")
    hist = train_stacked(model, x, y, config, l1=1e-3)
    seconds = hist.epoch_seconds.values
    rate = float(samples / seconds[-1])
    estimate = sized["phases"]["premask"]
    n_epochs = sized["training_epochs"]  # the epochs the estimate counts
    out = {"mode": "climsim_full_premask", "samples": samples,
           "device": "GPU" if gpus else "CPU", "networks": n_out, "inputs": n_in,
           "hidden": list(hidden), "batch_size": int(params["batch_size"]),
           "samples_per_s": rate, "epoch_seconds": [round(float(s), 3) for s in seconds],
           "train_samples": train, "epoch_seconds_extrapolated": round(train / rate, 1),
           "dry_run_epoch_seconds": {k: round(v / n_epochs, 1)
                                     for k, v in estimate["seconds"].items()}}
    if gpus:
        info = tf.config.experimental.get_memory_info("GPU:0")
        out["gpu_peak_mb"] = round(info["peak"] / 2**20, 1)
        out["gpus"] = len(gpus)
    return out


def run_child(args, samples: int, mode: str, *, cpu: bool) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--path", str(args.path), "--norm",
           str(args.norm), "--child-samples", str(samples), "--budget-mb", str(args.budget_mb)]
    if args.devices and not cpu:
        cmd += ["--devices", str(args.devices)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if cpu:
        env["CUDA_VISIBLE_DEVICES"] = ""
    out = json_child(cmd, f"{mode} ({'CPU' if cpu else 'GPU'})", env=env)
    print(f"  {out['device']} {mode:9s} {out['samples']:8d} samples: "
          f"{out['samples_per_s']:10.0f} samples/s (epochs {out['epoch_seconds']} s)"
          + (f", peak GPU memory {out['gpu_peak_mb']} MB" if "gpu_peak_mb" in out else ""),
          flush=True)
    if "epoch_seconds_extrapolated" in out:
        print(f"    one epoch of the {out['networks']} networks over {out['train_samples']:,} "
              f"samples: {out['epoch_seconds_extrapolated'] / 3600:.2f} h (extrapolated); "
              f"pcm run --dry-run estimates "
              + ", ".join(f"{v / 3600:.2f} h ({k})"
                          for k, v in out["dry_run_epoch_seconds"].items()), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=262144, help="GPU: samples per epoch")
    parser.add_argument("--cpu-samples", type=int, default=8192)
    parser.add_argument("--budget-mb", type=float, default=256.0,
                        help="memory budget that sizes the streamed windows")
    parser.add_argument("--climsim-samples", type=int, default=262144,
                        help="GPU: rows of the climsim-full stack's epochs")
    parser.add_argument("--climsim-cpu-samples", type=int, default=8192)
    parser.add_argument("--devices", type=int, default=None)
    parser.add_argument("--out", default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--path", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--norm", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-samples", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "climsim":
        print(json.dumps(climsim_epochs(args.child_samples, args.devices)))
        return
    if args.child:
        print(json.dumps(epochs(Path(args.path), Path(args.norm), args.child_samples,
                                args.child, args.budget_mb, args.devices)))
        return
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    names = [tf.config.experimental.get_device_details(g).get("device_name", g.name)
             for g in gpus]
    if gpus:
        print(f"GPU(s): {names}", flush=True)
    else:
        print("no GPU found: running the CPU part only, at a small size "
              f"({args.cpu_samples} samples)", flush=True)
    result: dict = {"gpus": names, "networks": NETWORKS, "hidden": list(HIDDEN),
                    "batch_size": BATCH}
    with tempfile.TemporaryDirectory(prefix="pcm-gpu-check-") as tmp:
        folder = Path(args.out or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        need = max(args.samples if gpus else 0, args.cpu_samples)
        args.path, args.norm, _ = write_data(folder, need)
        cpu = {m: run_child(args, args.cpu_samples, m, cpu=True) for m in ("in_memory",
                                                                            "stream")}
        result["cpu_samples_per_s"] = {m: round(v["samples_per_s"]) for m, v in cpu.items()}
        if gpus:
            gpu = {m: run_child(args, args.samples, m, cpu=False) for m in ("in_memory",
                                                                             "stream")}
            result["gpu_samples_per_s"] = {m: round(v["samples_per_s"]) for m, v in gpu.items()}
            result["gpu_peak_mb"] = {m: v.get("gpu_peak_mb") for m, v in gpu.items()}
            result["gpu_over_cpu"] = {m: round(gpu[m]["samples_per_s"]
                                               / cpu[m]["samples_per_s"], 2) for m in gpu}
            result["gpu_epoch_seconds"] = {m: v["epoch_seconds"] for m, v in gpu.items()}
            result["gpu_samples"] = args.samples
        print("climsim-full pre-masking stack (random rows of ClimSim's shape, in memory):",
              flush=True)
        result["climsim_full"] = {"cpu": run_child(args, args.climsim_cpu_samples, "climsim",
                                                   cpu=True)}
        if gpus:
            full = result["climsim_full"]
            full["gpu"] = run_child(args, args.climsim_samples, "climsim", cpu=False)
            full["gpu_over_cpu"] = round(full["gpu"]["samples_per_s"]
                                         / full["cpu"]["samples_per_s"], 2)
    result["cpu_samples"] = args.cpu_samples
    print(json.dumps(result))


if __name__ == "__main__":
    main()
