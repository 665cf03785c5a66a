"""Figure of ``pcm worlds``: the distribution of the scores of each method over worlds."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.figure import Figure

__all__ = ["world_strips", "SCORES", "TARGETS"]

#: Panels of :func:`world_strips`: score -> axis label.
SCORES = {"auc": "ranking AUC", "strong_f1": "strong-driver F1", "precision": "precision",
          "shap_nondriver_share": "non-driver SHAP share", "r2_gap": "R² gap to unconstrained"}
#: Goal lines drawn on the panels (the held-out goal of :data:`pcm.experiments.worlds.GOAL`).
TARGETS = {"auc": 0.95, "strong_f1": 0.85, "precision": 0.8, "shap_nondriver_share": 0.05,
           "r2_gap": 0.02}

_COLOURS = {"development": "0.55", "held-out": "C0"}


def world_strips(table: xr.Dataset, scores: Sequence[str] | None = None, *,
                 title: str = "") -> Figure:
    """One panel per score: every world as a dot per method, the median as a bar.

    Parameters
    ----------
    table : xr.Dataset
        :func:`pcm.experiments.worlds.worlds_table` (dimension ``row``; ``world``, ``split``,
        ``method``).
    scores : sequence of str, optional
        Columns to draw (default :data:`SCORES`, those present).
    title : str
        Figure title.
    """
    scores = [s for s in (scores or SCORES) if s in table]
    methods = list(dict.fromkeys(table["method"].values.tolist()))
    splits = [s for s in ("development", "held-out") if s in table["split"].values]
    fig, axes = plt.subplots(1, len(scores), figsize=(2.6 * len(scores) + 0.6, 3.4),
                             layout="constrained", squeeze=False)
    rng = np.random.default_rng(0)  # jitter only
    for ax, score in zip(axes[0], scores, strict=True):
        for j, method in enumerate(methods):
            for k, split in enumerate(splits):
                sel = (table["method"].values == method) & (table["split"].values == split)
                values = table[score].values[sel]
                values = values[np.isfinite(values)]
                if not values.size:
                    continue
                x = j + (k - (len(splits) - 1) / 2) * 0.3
                ax.scatter(x + rng.uniform(-0.07, 0.07, values.size), values, s=12,
                           color=_COLOURS[split], alpha=0.8,
                           label=split if (j == 0 and ax is axes[0][0]) else None)
                ax.hlines(np.median(values), x - 0.12, x + 0.12, color="k", lw=2)
        if score in TARGETS:
            ax.axhline(TARGETS[score], color="C3", ls="--", lw=1)
        ax.set_xticks(range(len(methods)), methods, rotation=30, ha="right")
        ax.set_title(SCORES.get(score, score), fontsize=10)
        ax.set_xlim(-0.6, len(methods) - 0.4)
    if splits:
        axes[0][0].legend(fontsize=8, loc="lower left")
    fig.suptitle(title or "scores over worlds (dots: worlds, bars: medians, dashed: goal)",
                 fontsize=10)
    return fig
