"""Cost of both pipelines at the paper's scale: measured on samples, extrapolated.

The paper's headline: PCMasking reaches the skill of the causally-informed networks
(CI-NN) at about a third of their cost. Running either pipeline at full size needs a
GPU cluster; this script MEASURES on this machine, at the paper's network size,

* the training cost of paper-size networks (94 inputs, 9 hidden layers of 256,
  LeakyReLU, batch 1024): a stack of a few pre-masking networks (with the square L1
  input layer) and a stack of a few masking / causally-informed networks (mask folded
  into the first kernel), each for a few hundred optimizer steps; the second epoch is
  timed (the first includes tracing);
* PC1 of the causal discovery (tigramite, ParCorr, pc_alpha 0.01, all 94 inputs at lag 1
  as candidate parents of the 65 outputs) on a few synthetic grid columns with the
  paper's series length (one year of half-hourly steps, 17,520);

and EXTRAPOLATES (clearly labelled) to the published configuration:

* PCMasking: pre-masking 65 networks x 9 epochs; threshold search 65 x 20 networks x
  9 epochs (selection by training loss); the search network at the chosen threshold is
  the final network (no fine-tuning; the variant with a 9-epoch fine-tuning is printed
  too);
* CI-NN: discovery on 8,192 columns; the per-output q search, 65 x 20 networks x 18
  epochs, whose best candidates are the final networks.

Training cost is ``seconds per (network x sample) x networks x samples x epochs``; the
number of training samples of the paper is an assumption (``--samples``, printed).
Figures are printed, never asserted; the LAST line is one JSON object.

Usage::

    python benchmarks/paper_cost.py                       # the defaults below
    python benchmarks/paper_cost.py --networks 2 --steps 50 --pc1-columns 1 --pc1-steps 4380
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

#: The published configuration.
PAPER = {"outputs": 65, "thresholds": 20, "search_epochs": 9, "premask_epochs": 9,
         "finetune_epochs": 9, "quantiles": 20, "causal_epochs": 18, "columns": 64 * 128,
         "hidden": (256,) * 9, "batch_size": 1024}

#: The paper's ratio of cost, CI-NN / PCMasking ("about a third of the cost").
PAPER_RATIO = 3.0


def seconds_per_network_sample(n_networks: int, steps: int, *, input_layer: bool,
                               batch_size: int, hidden: tuple[int, ...]) -> dict:
    """Train a stack of paper-size networks two epochs; time the second one."""
    from pcm.nn.config import TrainConfig
    from pcm.nn.networks import StackedMLP
    from pcm.nn.trainer import train_stacked

    rng = np.random.default_rng(0)
    n = steps * batch_size
    x = rng.normal(size=(n, 94)).astype(np.float32)
    y = rng.normal(size=(n, 65)).astype(np.float32)
    model = StackedMLP(n_networks, hidden, input_layer=input_layer, seed=0)
    if not input_layer:
        mask = rng.random((n_networks, 94)) < 0.5
        model.set_mask(mask)
    config = TrainConfig(hidden_units=hidden, epochs=2, batch_size=batch_size,
                         l1=1e-3 if input_layer else 0.0)
    hist = train_stacked(model, x, y, config)
    epoch = float(hist.epoch_seconds.values[-1])
    return {"networks": n_networks, "samples": n, "epoch_s": epoch,
            "first_epoch_s": float(hist.epoch_seconds.values[0]),
            "s_per_network_sample": epoch / (n_networks * n)}


def pc1_seconds_per_column(n_columns: int, n_steps: int, seed: int = 0) -> dict:
    """CPU and wall seconds of PC1 on ``n_columns`` synthetic columns of ``n_steps`` steps."""
    from pcm.baselines.causal.data import log_precipitation, read_column_series
    from pcm.baselines.causal.discovery import discover_column, select_columns
    from pcm.data.datasets import write_synthetic_dataset
    from pcm.data.splits import split_steps

    steps = int(np.ceil(n_steps / 0.7)) + 2
    while split_steps(steps)["train"].stop < n_steps:
        steps += 1
    n_lat, n_lon = 2, max(1, (n_columns + 1) // 2)
    with tempfile.TemporaryDirectory() as tmp:
        files = write_synthetic_dataset(tmp, steps=steps, seed=seed, n_lat=n_lat, n_lon=n_lon)
        cols = select_columns(n_lat, n_lon, n_columns, seed=seed)
        x, y, _ = read_column_series(files["train"], cols, n_steps=n_steps)
    y = log_precipitation(y)
    wall, cpu, links = [], [], []
    for c in range(n_columns):
        r = discover_column(x[:, c], y[:, c], pc_alpha=0.01)
        wall.append(r.seconds)
        cpu.append(r.cpu_seconds)
        links.append(int(r.found.sum()))
        print(f"   PC1 column {c + 1}/{n_columns}, {n_steps} steps: {r.cpu_seconds:.1f} cpu s, "
              f"{r.seconds:.1f} wall s, {links[-1]} links", flush=True)
    return {"columns": n_columns, "steps": n_steps, "cpu_s_per_column": float(np.mean(cpu)),
            "wall_s_per_column": float(np.mean(wall)), "links_per_column": float(np.mean(links))}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--networks", type=int, default=4, help="networks per measured stack")
    p.add_argument("--steps", type=int, default=200, help="optimizer steps per measured epoch")
    p.add_argument("--pc1-columns", type=int, default=2, help="columns of the PC1 measurement")
    p.add_argument("--pc1-steps", type=int, default=365 * 48,
                   help="time steps per column of the PC1 measurement (default one year; "
                   "the reference's discovery configuration also names 3-month link files, "
                   "4380 steps)")
    p.add_argument("--samples", type=int, default=2_000_000,
                   help="ASSUMED training samples per epoch at the paper's scale")
    args = p.parse_args(argv)
    hidden, batch = PAPER["hidden"], PAPER["batch_size"]

    print("MEASURED on this machine (paper-size networks: 94 -> 9 x 256 -> 1, batch 1024)")
    pre = seconds_per_network_sample(args.networks, args.steps, input_layer=True,
                                     batch_size=batch, hidden=hidden)
    print(f"   pre-masking stack ({pre['networks']} nets, {pre['samples']} samples): second "
          f"epoch {pre['epoch_s']:.2f} s (first {pre['first_epoch_s']:.2f} s) -> "
          f"{pre['s_per_network_sample'] * 1e6:.2f} us per network-sample", flush=True)
    msk = seconds_per_network_sample(args.networks, args.steps, input_layer=False,
                                     batch_size=batch, hidden=hidden)
    print(f"   masking / CI-NN stack ({msk['networks']} nets, {msk['samples']} samples): "
          f"second epoch {msk['epoch_s']:.2f} s (first {msk['first_epoch_s']:.2f} s) -> "
          f"{msk['s_per_network_sample'] * 1e6:.2f} us per network-sample", flush=True)
    pc1 = pc1_seconds_per_column(args.pc1_columns, args.pc1_steps)
    print(f"   PC1: {pc1['cpu_s_per_column']:.1f} cpu s per column at {pc1['steps']} steps "
          f"(mean of {pc1['columns']} columns, {pc1['links_per_column']:.0f} links per column)")

    n = args.samples
    o, t, q = PAPER["outputs"], PAPER["thresholds"], PAPER["quantiles"]
    phases = {
        "premask": pre["s_per_network_sample"] * o * n * PAPER["premask_epochs"],
        "threshold_search": msk["s_per_network_sample"] * o * t * n * PAPER["search_epochs"],
        "finetune": msk["s_per_network_sample"] * o * n * PAPER["finetune_epochs"],
        "causal_discovery": pc1["cpu_s_per_column"] * PAPER["columns"],
        "causal_q_search": msk["s_per_network_sample"] * o * q * n * PAPER["causal_epochs"],
    }
    pcmasking = phases["premask"] + phases["threshold_search"]  # published: no fine-tuning
    pcmasking_ft = pcmasking + phases["finetune"]
    causal = phases["causal_discovery"] + phases["causal_q_search"]
    ratio, ratio_ft = causal / pcmasking, causal / pcmasking_ft
    print()
    print(f"EXTRAPOLATION to the published configuration ({o} outputs, {t} thresholds, "
          f"{q} quantiles, {PAPER['columns']} columns, ASSUMED {n:,} training samples per "
          "epoch; hours on this machine without parallelism: networks in wall seconds of "
          "TensorFlow on all its cores, PC1 in CPU seconds of one core):")
    print(f"   {'phase':<20}{'hours':>12}   what")
    what = {"premask": f"{o} nets x {PAPER['premask_epochs']} epochs",
            "threshold_search": f"{o} x {t} nets x {PAPER['search_epochs']} epochs",
            "finetune": f"{o} nets x {PAPER['finetune_epochs']} epochs (not in the published "
                        "pipeline)",
            "causal_discovery": f"{PAPER['columns']} columns x PC1 at {pc1['steps']} steps",
            "causal_q_search": f"{o} x {q} nets x {PAPER['causal_epochs']} epochs"}
    for name, sec in phases.items():
        print(f"   {name:<20}{sec / 3600:>12.1f}   {what[name]}")
    print(f"   PCMasking (published, no fine-tuning): {pcmasking / 3600:,.1f} h; with a 9-epoch "
          f"fine-tuning: {pcmasking_ft / 3600:,.1f} h")
    print(f"   CI-NN: {causal / 3600:,.1f} h (discovery {phases['causal_discovery'] / causal:.0%})")
    print(f"   ratio CI-NN / PCMasking: {ratio:.2f} (with fine-tuning {ratio_ft:.2f}); the "
          f"paper: ~{PAPER_RATIO:.0f}")
    net_epochs = {"pcmasking": o * PAPER["premask_epochs"] + o * t * PAPER["search_epochs"],
                  "causal": o * q * PAPER["causal_epochs"]}
    print(f"   network-epochs: PCMasking {net_epochs['pcmasking']}, CI-NN {net_epochs['causal']} "
          f"(training alone: ratio {net_epochs['causal'] / net_epochs['pcmasking']:.2f})")
    result = {"measured": {"premask": pre, "masking": msk, "pc1": pc1},
              "assumed_samples": n, "extrapolated_s": phases,
              "pcmasking_s": pcmasking, "pcmasking_with_finetune_s": pcmasking_ft,
              "causal_s": causal, "ratio": ratio, "ratio_with_finetune": ratio_ft,
              "paper_ratio": PAPER_RATIO, "network_epochs": net_epochs}
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
