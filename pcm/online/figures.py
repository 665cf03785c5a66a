"""Figures of the online chapter: drift as time-pressure sections, column lifetimes."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

__all__ = ["drift_sections", "lifetime_figure", "LABELS"]

#: Readable model names.
LABELS = {"truth": "truth physics", "zero": "zero (forcing only)",
          "unconstrained": "unconstrained", "pcmasking_paper": "PCMasking, paper's rule",
          "pcmasking_relative": "PCMasking, relative rule", "causal": "causally-informed"}


def drift_sections(drift: xr.Dataset, scenario: str = "control",
                   models: list[str] | None = None) -> plt.Figure:
    """T and q drift (RMSE against the truth run over the live columns, mean over seeds)
    as time-pressure sections, one row per model.

    Parameters
    ----------
    drift : xr.Dataset
        ``drift.nc`` of ``pcm online``.
    scenario : str
        ``control``, ``proxy`` or ``sst``.
    models : list of str, optional
        Default: every model but the truth.
    """
    models = models or [m for m in drift["model"].values.tolist() if m != "truth"]
    fig, axes = plt.subplots(len(models), 2, figsize=(10, 2.2 * len(models) + 0.6),
                             sharex=True, sharey=True, squeeze=False, layout="constrained")
    sel = drift.sel(scenario=scenario)
    for col, (var, name, cmap) in enumerate((("t_rmse", "temperature", "magma_r"),
                                             ("q_rmse", "specific humidity", "viridis_r"))):
        values = sel[var].sel(model=models).mean("seed", skipna=True)
        vmax = float(np.nanpercentile(values.values, 99)) if np.isfinite(values).any() else 1
        for row, model in enumerate(models):
            ax = axes[row, col]
            mesh = ax.pcolormesh(sel["time"], sel["lev"], values.sel(model=model).T,
                                 cmap=cmap, vmin=0, vmax=vmax or 1, shading="nearest")
            ax.set_title(f"{LABELS.get(model, model)}: {name}", fontsize=9)
            if col == 0:
                ax.set_ylabel("pressure (hPa)")
        fig.colorbar(mesh, ax=axes[:, col], shrink=0.8,
                     label=f"{name} RMSE ({sel[var].attrs.get('units', '')})")
        axes[-1, col].set_xlabel("time (days)")
    axes[0, 0].invert_yaxis()
    fig.suptitle(f"Drift against the truth run, scenario {scenario!r} (mean over seeds; "
                 "blank: every column blown up)", fontsize=10)
    return fig


def lifetime_figure(life: xr.DataArray, days: float) -> plt.Figure:
    """Mean column lifetime per model and scenario, one dot per seed."""
    models = life["model"].values.tolist()
    scenarios = life["scenario"].values.tolist()
    fig, ax = plt.subplots(figsize=(9, 3.4), layout="constrained")
    width = 0.8 / len(scenarios)
    for j, scenario in enumerate(scenarios):
        pos = np.arange(len(models)) + (j - (len(scenarios) - 1) / 2) * width
        vals = life.sel(scenario=scenario).transpose("model", "seed").values
        ax.bar(pos, np.nanmean(vals, axis=1), width * 0.9, label=scenario, alpha=0.6)
        for k in range(vals.shape[1]):
            ax.plot(pos, vals[:, k], "k.", ms=4)
    ax.axhline(days, color="grey", lw=0.8, ls="--")
    ax.set_xticks(np.arange(len(models)), [LABELS.get(m, m) for m in models], rotation=20,
                  ha="right", fontsize=8)
    ax.set_ylabel("mean column lifetime (days)")
    ax.set_title(f"Days each column stays physical (dashed: the {days:g}-day run); dots: seeds",
                 fontsize=10)
    ax.legend(title="scenario", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig
