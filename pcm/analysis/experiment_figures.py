"""Figures of the experiments chapter: sweeps, threshold strategies, sparsity, climate shift.

Each function returns a :class:`matplotlib.figure.Figure` drawn from the tables of
:mod:`pcm.experiments.chapter` and :mod:`pcm.experiments.sweep`.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

#: Units of the columns a sweep table holds (the scores are ratios: unit 1).
UNITS = {"inputs_kept": "inputs per output", "seconds": "s"}

__all__ = ["sweep_lines", "strategy_bars", "sparsity_histograms", "shift_curves"]


def sweep_lines(table: xr.Dataset, x: str, columns: Sequence[str], *, logx: bool = False,
                title: str = "") -> Figure:
    """Scores of a sweep table (:func:`pcm.experiments.sweep.sweep_table`) against one grid key.

    Parameters
    ----------
    table : xr.Dataset
        The sweep table (dimension ``point``, grid keys as coordinates).
    x : str
        Grid key on the x axis.
    columns : sequence of str
        Table columns drawn as lines (missing ones are skipped).
    logx : bool
        Logarithmic x axis (λ).
    """
    values = np.asarray(table[x].values)
    order = np.argsort(values)
    fig, ax = plt.subplots(figsize=(7.5, 3.6), layout="constrained")
    for column in columns:
        if column in table:
            ax.plot(values[order], table[column].values[order], "o-", label=column)
    if logx:
        ax.set_xscale("log")
    if not logx and np.all(np.mod(values, 1) == 0):  # hidden layers, seeds: whole numbers
        ax.set_xticks(np.unique(values), [f"{v:.0f}" for v in np.unique(values)])
    ax.set_xlabel(x)
    units = {UNITS.get(c, "1") for c in columns if c in table}
    ax.set_ylabel(f"score ({', '.join(sorted(units))})")
    fig.legend(loc="outside right upper", fontsize="small")
    ax.set_title(title)
    return fig


def strategy_bars(strategies: xr.Dataset,
                  columns: Sequence[str] = ("f1", "strong_f1", "precision", "recall")) -> Figure:
    """Driver scores of each threshold strategy
    (:func:`pcm.experiments.chapter.threshold_strategies`), with the mean number of inputs
    kept on a second axis."""
    names = [str(s) for s in strategies["strategy"].values]
    fig, ax = plt.subplots(figsize=(8.0, 3.8), layout="constrained")
    width = 0.8 / len(columns)
    for j, column in enumerate(columns):
        ax.bar(np.arange(len(names)) + (j - (len(columns) - 1) / 2) * width,
               strategies[column].values, width, label=column)
    ax.set_xticks(np.arange(len(names)), names, rotation=40, ha="right", fontsize="small")
    ax.set_ylim(0, 1)
    ax.set_ylabel("score (1, mean over outputs)")
    kept = ax.twinx()
    kept.plot(np.arange(len(names)), strategies["inputs_kept"].values, "k^", label="inputs kept")
    kept.set_ylabel("inputs kept per output")
    kept.set_ylim(0, float(strategies.attrs.get("n_inputs", 94)))
    kept.yaxis.set_major_locator(MaxNLocator(integer=True))
    handles = [h for a in (ax, kept) for h in a.get_legend_handles_labels()[0]]
    fig.legend(handles=handles, loc="outside right upper", fontsize="small")
    ax.set_title("Threshold strategies on the same masking vectors")
    return fig


def sparsity_histograms(validation: xr.Dataset) -> Figure:
    """Distributions of masking-vector entries: drivers, non-drivers, untrained networks
    (:func:`pcm.experiments.chapter.sparsity_validation`)."""
    vectors = validation["masking_vector"].values
    truth = validation["drivers"].values.astype(bool)
    groups = {"true drivers": vectors[truth], "non-drivers": vectors[~truth],
              "untrained networks": validation["untrained"].values.ravel()}
    positive = np.concatenate([v[v > 0] for v in groups.values()])
    bins = np.geomspace(positive.min(), positive.max(), 50)
    fig, ax = plt.subplots(figsize=(7.5, 3.4), layout="constrained")
    for name, values in groups.items():
        ax.hist(values[values > 0], bins=bins, density=True, histtype="step", lw=1.5, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("masking-vector entry (L2 norm of the input's row, 1)")
    ax.set_ylabel("density (per unit of the entry)")
    fig.legend(loc="outside right upper", fontsize="small")
    ax.set_title("Sparsity validation")
    return fig


def shift_curves(shift: xr.Dataset, variables: Sequence[str] | None = None) -> Figure:
    """R² against the SST shift of the test climate, per model kind
    (:func:`pcm.experiments.chapter.shift_test`): the mean over variables and one panel each."""
    variables = list(variables if variables is not None else shift["var"].values)
    panels = ["mean", *variables]
    ncol = min(3, len(panels))
    nrow = int(np.ceil(len(panels) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(8.0, 2.7 * nrow), sharex=True,
                             squeeze=False, layout="constrained")
    for ax, panel in zip(axes.ravel(), panels, strict=False):
        for model in shift["model"].values:
            data = (shift["r2_mean"] if panel == "mean" else shift["r2"].sel(var=panel))
            ax.plot(shift["shift"].values, data.sel(model=model).values, "o-", ms=3,
                    label=str(model))
        ax.axvline(0, color="0.7", lw=0.8)
        ax.set_title(panel)
        ax.set_xticks(shift["shift"].values[::2])
    for ax in axes.ravel()[len(panels):]:
        ax.set_visible(False)
    for ax in axes.ravel()[max(0, len(panels) - ncol):len(panels)]:
        ax.set_xlabel("SST shift (K)")
        ax.xaxis.set_tick_params(labelbottom=True)
    for row in axes:
        row[0].set_ylabel("R² (1)")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center",
               ncols=len(shift["model"]))
    fig.suptitle("Climate-shift stress test")
    return fig
