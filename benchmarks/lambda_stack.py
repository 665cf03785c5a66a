"""Cost of a λ sweep trained as one stack against one pre-masking run.

On synthetic data of the ``ci`` size this trains, in one process and in
interleaved rounds, the 65 pre-masking networks of one λ, and k copies of them
with k λ values as ONE stack (``StackedMLP.repeat`` and a per-network L1
weight, as ``pcm sweep`` does). It prints the median seconds per epoch of both
and their ratio next to k: a ratio near 1 means the stack costs about one run,
near k that the sweep is compute bound. Figures are printed, never asserted;
the last line is one JSON object.

Usage: ``python benchmarks/lambda_stack.py [--k 5] [--epochs 2] [--rounds 2] ...``
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from pcm.data.datasets import write_synthetic_dataset  # noqa: E402
from pcm.nn.backend import quiet_tensorflow  # noqa: E402
from pcm.nn.config import TrainConfig  # noqa: E402
from pcm.nn.trainer import train_stacked  # noqa: E402
from pcm.run.rundir import RunDir  # noqa: E402


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=96, help="synthetic time steps (ci: 96)")
    p.add_argument("--lat", type=int, default=8)
    p.add_argument("--lon", type=int, default=16)
    p.add_argument("--hidden-layers", type=int, default=2)
    p.add_argument("--hidden-units", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=2, help="epochs per timed training")
    p.add_argument("--k", type=int, default=5, help="λ values in the stack")
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args(argv)
    quiet_tensorflow()
    from pcm.nn.networks import StackedMLP

    work = Path(tempfile.mkdtemp(prefix="pcm-lambda-stack-"))
    run = RunDir(work)
    run.write_manifest(write_synthetic_dataset(run.data_dir, steps=args.steps, n_lat=args.lat,
                                               n_lon=args.lon), source="synthetic")
    x, y, xv, yv = run.training_arrays(None, "float32")
    config = TrainConfig(hidden_units=(args.hidden_units,) * args.hidden_layers,
                         epochs=args.epochs, batch_size=args.batch_size, lr_every=4)
    lambdas = np.logspace(0, -(args.k - 1), args.k)

    def timed(k: int) -> float:
        model = StackedMLP(65, config.hidden_units, input_layer=True, seed=0).repeat(k)
        t0 = time.perf_counter()
        train_stacked(model, x, y, config, x_val=xv, y_val=yv,
                      l1=np.repeat(lambdas[:k], 65))
        return (time.perf_counter() - t0) / args.epochs

    timed(1)  # warm-up: imports, first trace
    one, stack = [], []
    for _ in range(args.rounds):
        one.append(timed(1))
        stack.append(timed(args.k))
    result = {"k": args.k, "samples": int(len(x)), "epochs": args.epochs,
              "one_run_s_per_epoch": float(np.median(one)),
              "stack_s_per_epoch": float(np.median(stack))}
    result["ratio"] = result["stack_s_per_epoch"] / result["one_run_s_per_epoch"]
    print(f"one λ (65 networks):         {result['one_run_s_per_epoch']:.2f} s/epoch")
    print(f"{args.k} λ as one stack ({65 * args.k} networks): "
          f"{result['stack_s_per_epoch']:.2f} s/epoch")
    print(f"ratio {result['ratio']:.2f} (k = {args.k}; {args.k} separate runs: ratio {args.k})")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
