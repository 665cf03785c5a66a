"""Power of per-column PC1 against the length of the time series, on the synthetic data.

The causally-informed baseline runs PC1 (PCMCI, ParCorr, pc_alpha 0.01, parents = the 94
inputs at lag 1) on the time series of single grid columns. Its power grows with the
number of time steps; the synthetic aquaplanet knows the true drivers, so this script
measures, for a few columns and a few series lengths, the precision and recall of the
per-column links (PRECT log-transformed, as in the pipeline), and the CPU seconds per
column. It also scores the links aggregated over the columns by the published quantile
rule at q = 0.5. Figures are printed, never asserted; the last line is one JSON object.

Usage::

    python benchmarks/causal_recall.py                       # 4 columns, 48 ... 672 steps
    python benchmarks/causal_recall.py --columns 8 --lengths 96,168,336
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
import xarray as xr

from pcm.analysis.scoring import mean_driver_scores
from pcm.baselines.causal.aggregation import link_shares, quantile_masks
from pcm.baselines.causal.data import log_precipitation, read_column_series
from pcm.baselines.causal.discovery import discover_column, select_columns
from pcm.data.datasets import write_synthetic_dataset
from pcm.data.splits import split_steps


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--columns", type=int, default=4, help="grid columns analysed")
    p.add_argument("--lengths", default="48,96,168,336,672",
                   help="time steps per column (comma-separated)")
    p.add_argument("--lat", type=int, default=8)
    p.add_argument("--lon", type=int, default=16)
    p.add_argument("--pc-alpha", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    lengths = sorted(int(s) for s in args.lengths.split(","))
    # the train split is the first 70 % of the steps: generate enough for the longest
    steps = int(np.ceil(lengths[-1] / 0.7)) + 2
    while split_steps(steps)["train"].stop < lengths[-1]:
        steps += 1
    with tempfile.TemporaryDirectory() as tmp:
        files = write_synthetic_dataset(tmp, steps=steps, seed=args.seed, n_lat=args.lat,
                                        n_lon=args.lon)
        columns = select_columns(args.lat, args.lon, args.columns, seed=args.seed)
        x, y, _ = read_column_series(files["train"], columns, n_steps=lengths[-1])
        with xr.open_dataset(files["drivers"]) as ds:
            truth = ds["drivers"].values.astype(bool)
    y = log_precipitation(y)
    print(f"synthetic grid {args.lat} x {args.lon}, {args.columns} columns, pc_alpha "
          f"{args.pc_alpha}; true drivers: {int(truth.sum())} links of {truth.size}")
    print("| steps per column | precision | recall | F1 | links per column | CPU s per column "
          "| quantile rule (q=0.5) P / R |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    rows = []
    for n in lengths:
        scores, links, cpu, found = [], [], [], []
        for c in range(x.shape[1]):
            t0 = time.process_time()
            r = discover_column(x[:n, c], y[:n, c], pc_alpha=args.pc_alpha)
            cpu.append(time.process_time() - t0)
            found.append(r.found & r.tested)
            scores.append(mean_driver_scores(found[-1], truth))
            links.append(int(found[-1].sum()))
        mask = quantile_masks(link_shares(np.stack(found)), [0.5])[:, 0]
        agg = mean_driver_scores(mask, truth)
        row = {"steps": n, **{m: float(np.nanmean([s[m] for s in scores]))
                              for m in ("precision", "recall", "f1")},
               "links_per_column": float(np.mean(links)), "cpu_s_per_column": float(np.mean(cpu)),
               "quantile_precision": agg["precision"], "quantile_recall": agg["recall"]}
        rows.append(row)
        print(f"| {n} | {row['precision']:.2f} | {row['recall']:.2f} | {row['f1']:.2f} | "
              f"{row['links_per_column']:.0f} | {row['cpu_s_per_column']:.1f} | "
              f"{agg['precision']:.2f} / {agg['recall']:.2f} |", flush=True)
    result = {"columns": args.columns, "grid": [args.lat, args.lon], "pc_alpha": args.pc_alpha,
              "rows": rows}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
