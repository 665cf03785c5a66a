"""Threshold search: the "proxy" criterion (no retraining) against "val_loss" (and "train_loss").

On a small synthetic run (known true drivers) this trains the pre-masking
networks once, then for each criterion searches the thresholds, fine-tunes the
masking networks with the chosen masks and scores them on the test split. It
prints, per criterion: search seconds, agreement of the chosen thresholds with
"val_loss", mean inputs kept, mean test R2 after fine-tuning (outputs with zero
variance skipped), and precision / recall / F1 of the masks against the true
drivers. Figures are printed, never asserted; the last line is one JSON object.

Usage: ``python benchmarks/threshold_proxy.py [--steps 48] [--lat 32] [--lon 64] ...``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from common import mean_r2  # noqa: E402

from pcm.analysis.scoring import mean_driver_scores  # noqa: E402
from pcm.data.datasets import write_synthetic_dataset  # noqa: E402
from pcm.method.finetune import run_finetune  # noqa: E402
from pcm.method.masking import compute_masking_vectors, search_thresholds  # noqa: E402
from pcm.method.premask import run_premask  # noqa: E402
from pcm.nn.engine import predict_stacked  # noqa: E402
from pcm.params.config import FinetuneConfig, PremaskConfig, SearchConfig  # noqa: E402
from pcm.run.rundir import RunDir  # noqa: E402


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=48, help="synthetic time steps")
    p.add_argument("--lat", type=int, default=32)
    p.add_argument("--lon", type=int, default=64)
    p.add_argument("--hidden-layers", type=int, default=2)
    p.add_argument("--hidden-units", type=int, default=32)
    p.add_argument("--epochs", type=int, default=4, help="pre-masking and fine-tuning epochs")
    p.add_argument("--search-epochs", type=int, default=1)
    p.add_argument("--n-thresholds", type=int, default=10)
    p.add_argument("--percentile", type=float, default=70.0)
    p.add_argument("--l1", type=float, default=1e-3)
    p.add_argument("--max-samples", type=int, default=None)
    p.add_argument("--criteria", default="proxy,val_loss,train_loss")
    p.add_argument("--out", default=None, help="keep the run directories here")
    args = p.parse_args(argv)

    t_start = time.perf_counter()
    work = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="pcm-proxy-"))
    base = RunDir(work / "base")
    paths = write_synthetic_dataset(base.data_dir, steps=args.steps, n_lat=args.lat,
                                    n_lon=args.lon)
    base.write_manifest(paths, source="synthetic")
    common = dict(batch_size=1024, seed=0, max_samples=args.max_samples)
    run_premask(base, PremaskConfig.from_parameters(dict(
        common, hidden_layers=args.hidden_layers, hidden_units=args.hidden_units,
        epochs=args.epochs, l1=args.l1)), progress=False)
    compute_masking_vectors(base)
    x_test, y_test = base.arrays("test")
    drivers = base.drivers()

    rows: dict[str, dict] = {}
    chosen: dict[str, np.ndarray] = {}
    for criterion in [c.strip() for c in args.criteria.split(",") if c.strip()]:
        run = RunDir(work / criterion)
        if run.root.exists():
            shutil.rmtree(run.root)
        shutil.copytree(base.root, run.root, ignore=shutil.ignore_patterns("checkpoints"))
        t = time.perf_counter()
        ds = search_thresholds(run, SearchConfig.from_parameters(dict(
            common, selection=criterion, n_thresholds=args.n_thresholds,
            threshold_percentile=args.percentile, search_epochs=args.search_epochs)),
            progress=False)
        search_s = time.perf_counter() - t
        run_finetune(run, FinetuneConfig.from_parameters(dict(common,
                                                              finetune_epochs=args.epochs)),
                     progress=False)
        r2 = mean_r2(y_test, predict_stacked(run.load_model("pcmasking"), x_test))
        masks = run.mask("pcmasking")
        scores = mean_driver_scores(masks, drivers)
        chosen[criterion] = ds.threshold.values
        rows[criterion] = {"search_s": round(search_s, 2), "r2_test": round(r2, 4),
                           "inputs_kept": round(float(masks.sum("input").mean()), 2),
                           **{k: round(scores[k], 3) for k in ("precision", "recall", "f1")}}
    ref = "val_loss" if "val_loss" in chosen else next(iter(chosen))
    for criterion, row in rows.items():
        row["same_threshold_as_" + ref] = round(float(np.mean(chosen[criterion]
                                                              == chosen[ref])), 3)

    print(f"\nsynthetic run {args.steps} steps on {args.lat}x{args.lon}, hidden "
          f"{args.hidden_layers}x{args.hidden_units}, {args.epochs} epochs, "
          f"{args.n_thresholds} thresholds (p{args.percentile:g}), search_epochs "
          f"{args.search_epochs}")
    header = f"{'criterion':<11} {'search s':>9} {'same thr':>9} {'kept':>6} {'R2 test':>8} " \
             f"{'prec':>6} {'recall':>6} {'F1':>6}"
    print(header)
    print("-" * len(header))
    for criterion, row in rows.items():
        print(f"{criterion:<11} {row['search_s']:>9.2f} {row['same_threshold_as_' + ref]:>9.2f} "
              f"{row['inputs_kept']:>6.1f} {row['r2_test']:>8.4f} {row['precision']:>6.3f} "
              f"{row['recall']:>6.3f} {row['f1']:>6.3f}")
    result = {"criteria": rows, "reference_criterion": ref,
              "benchmark_seconds": round(time.perf_counter() - t_start, 1)}
    if not args.out:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
