"""Threshold search: successive halving against the full search, at the `ci` size.

On a synthetic run with the sizes of a preset (default `ci`), the pre-masking
networks are trained once; then the threshold search runs twice from the same
pre-masking networks: the full search (every candidate trained ``search_epochs``) and
successive halving (``search_halving``: all candidates briefly, the better half per
output continues, round after round; the survivors train ``search_epochs`` in all).
Each chosen set of masks is fine-tuned the same way and scored on the test split.
Printed: search seconds and network-epochs of both, their ratio, the share of
outputs whose selected threshold is the same, mean test R² of the final networks
(outputs with zero variance skipped) and the masks' precision / recall / F1 against
the true drivers. Figures are printed, never asserted; the last line is one JSON object.

Usage: ``python benchmarks/successive_halving.py [--preset ci] [--search-epochs 4]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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
from pcm.params.presets import notebook_name, preset  # noqa: E402
from pcm.run.rundir import RunDir  # noqa: E402


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="ci", choices=("ci", "tutorial", "paper"))
    p.add_argument("--search-epochs", type=int, default=4,
                   help="epochs of a search network (halving needs >= 2)")
    p.add_argument("--selection", default="val_loss", choices=("val_loss", "train_loss"))
    p.add_argument("--out", default=None, help="keep the run directories here")
    args = p.parse_args(argv)
    params = {notebook_name(k): v for k, v in preset(args.preset).items()}
    params.update(search_epochs=args.search_epochs, selection=args.selection)

    work = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="pcm-halving-"))
    base = RunDir(work / "base")
    files = write_synthetic_dataset(base.data_dir, steps=params["data_steps"],
                                    seed=params["seed"], n_lat=params["data_n_lat"],
                                    n_lon=params["data_n_lon"])
    base.write_manifest(files, source="synthetic")
    run_premask(base, PremaskConfig.from_parameters(params), progress=False)
    compute_masking_vectors(base)
    x_test, y_test = base.arrays("test")
    drivers = base.drivers()

    rows: dict[str, dict] = {}
    chosen: dict[str, np.ndarray] = {}
    for name, halving in (("full", False), ("halving", True)):
        run = RunDir(work / name)
        if run.root.exists():
            shutil.rmtree(run.root)
        shutil.copytree(base.root, run.root, ignore=shutil.ignore_patterns("checkpoints"))
        t = time.perf_counter()
        ds = search_thresholds(run, SearchConfig.from_parameters(
            {**params, "search_halving": halving}), progress=False)
        search_s = time.perf_counter() - t
        run_finetune(run, FinetuneConfig.from_parameters(params), progress=False)
        r2 = mean_r2(y_test, predict_stacked(run.load_model("pcmasking"), x_test))
        masks = run.mask("pcmasking")
        scores = mean_driver_scores(masks, drivers)
        chosen[name] = ds.threshold.values
        rows[name] = {"search_s": search_s,
                      "network_epochs": float(np.nansum(ds.epochs_trained.values)),
                      "r2_test": r2, "inputs_kept": float(masks.sum("input").mean()),
                      **{k: scores[k] for k in ("precision", "recall", "f1")}}
    same = float(np.mean(chosen["halving"] == chosen["full"]))
    cost_ratio = rows["halving"]["search_s"] / rows["full"]["search_s"]
    epoch_ratio = rows["halving"]["network_epochs"] / rows["full"]["network_epochs"]
    print(f"\npreset {args.preset}: {params['n_thresholds']} thresholds "
          f"(p{params['threshold_percentile']:g}), search_epochs {args.search_epochs}, "
          f"selection {args.selection}, fine-tuning {params['finetune_epochs']} epochs")
    print(f"{'search':<9}{'seconds':>9}{'net-epochs':>12}{'kept':>7}{'R2 test':>9}"
          f"{'prec':>7}{'recall':>7}{'F1':>7}")
    for name, row in rows.items():
        print(f"{name:<9}{row['search_s']:>9.2f}{row['network_epochs']:>12.0f}"
              f"{row['inputs_kept']:>7.1f}{row['r2_test']:>9.4f}{row['precision']:>7.3f}"
              f"{row['recall']:>7.3f}{row['f1']:>7.3f}")
    print(f"same selected threshold: {same:.1%} of the outputs; R2 difference (halving - full) "
          f"{rows['halving']['r2_test'] - rows['full']['r2_test']:+.4f}; cost ratio "
          f"(halving / full): {cost_ratio:.2f} in seconds, {epoch_ratio:.2f} in network-epochs")
    result = {"preset": args.preset, "search_epochs": args.search_epochs,
              "selection": args.selection, "rows": rows, "same_threshold_share": same,
              "r2_difference": rows["halving"]["r2_test"] - rows["full"]["r2_test"],
              "cost_ratio_seconds": cost_ratio, "cost_ratio_network_epochs": epoch_ratio}
    if not args.out:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
