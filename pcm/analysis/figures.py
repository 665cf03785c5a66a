"""Figures of the book: R² maps, profiles, cross sections, masks, SHAP, driver scores.

Every function returns a :class:`matplotlib.figure.Figure` and draws from the
artefacts (``r2.nc``, ``masks.nc``, ``masking_vectors.nc``, ``thresholds.nc``,
``shap.nc``) or the tables of :mod:`pcm.analysis.scoring`. Maps use cartopy with
gridlines only: no coastlines or background images, which cartopy would
download (the SPCAM case is an aquaplanet anyway).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from pcm.analysis.r2 import cross_section, profile
from pcm.analysis.scoring import mean_scores
from pcm.data.cbrain import column_index
from pcm.variables import split_label

__all__ = [
    "training_history",
    "r2_maps",
    "r2_profiles",
    "r2_cross_sections",
    "feature_matrix",
    "shap_matrix",
    "driver_score_bars",
    "masking_vector_plot",
    "mask_overview",
    "threshold_search",
    "snapshot_maps",
    "mean_profiles",
]

R2_CMAP = "Spectral_r"


def _models(ds: xr.Dataset | xr.DataArray, models: Sequence[str] | None) -> list[str]:
    available = [str(m) for m in ds["model"].values]
    if models is None:
        return available
    missing = [m for m in models if m not in available]
    if missing:
        raise ValueError(f"model kinds {missing} not in the data ({available})")
    return list(models)


def r2_maps(r2: xr.Dataset, output: str, *, climate: str = "control",
            models: Sequence[str] | None = None, projection: str = "robinson") -> Figure:
    """Maps of per-point R² of one output, one panel per model kind.

    Parameters
    ----------
    r2 : xr.Dataset
        ``r2.nc`` (needs ``r2_map(model, climate, output, lat, lon)``, or on an
        unstructured grid ``r2_map(model, climate, output, ncol)`` with
        ``column_lat`` and ``column_lon``: drawn as one dot per column).
    output : str
        Output feature label (``"tphystnd-691.39"``, ``"prect"``).
    climate : str
        ``"control"``, ``"plus4K"`` or ``"minus4K"``.
    models : sequence of str, optional
        Model kinds to show (default all in the file).
    projection : {"robinson", "platecarree"}
        Map projection.
    """
    import cartopy.crs as ccrs

    kinds = _models(r2, models)
    proj = {"robinson": ccrs.Robinson(), "platecarree": ccrs.PlateCarree()}[projection]
    fig = plt.figure(figsize=(4.5 * len(kinds), 3.2), layout="constrained")
    mesh = None
    for k, kind in enumerate(kinds):
        ax = fig.add_subplot(1, len(kinds), k + 1, projection=proj)
        da = r2["r2_map"].sel(model=kind, climate=climate, output=output)
        if "ncol" in da.dims:
            mesh = ax.scatter(da["column_lon"].values, da["column_lat"].values, c=da.values,
                              s=18, vmin=0, vmax=1, cmap=R2_CMAP, edgecolors="none",
                              transform=ccrs.PlateCarree())
        else:
            lon = da["lon"].values
            # Close the periodic longitude gap so the map has no seam.
            values = np.concatenate([da.values, da.values[:, :1]], axis=1)
            lon = np.append(lon, lon[0] + 360.0)
            mesh = ax.pcolormesh(lon, da["lat"].values, values, vmin=0, vmax=1, cmap=R2_CMAP,
                                 transform=ccrs.PlateCarree(), shading="nearest")
        ax.set_global()
        ax.gridlines(draw_labels=False, linewidth=0.3, color="grey")
        glob = float(r2["r2"].sel(model=kind, climate=climate, output=output))
        ax.set_title(f"{kind}: {output} (R² = {glob:.2f})")
    fig.colorbar(mesh, ax=fig.axes, orientation="horizontal", shrink=0.6, label="R²",
                 extend="min")
    fig.suptitle(f"R² per grid point, {climate}")
    return fig


def r2_profiles(r2: xr.Dataset, variables: Sequence[str] = ("TPHYSTND", "PHQ"), *,
                climate: str = "control", models: Sequence[str] | None = None) -> Figure:
    """Vertical profiles of global R², one panel per variable, one line per model kind."""
    kinds = _models(r2, models)
    fig, axes = plt.subplots(1, len(variables), figsize=(4 * len(variables), 4.5),
                             sharey=True, squeeze=False, layout="constrained")
    for ax, var in zip(axes[0], variables, strict=True):
        prof = profile(r2, var).sel(climate=climate)
        for kind in kinds:
            line = prof.sel(model=kind)
            ax.plot(line.values, line["lev"].values, marker=".", label=kind)
        ax.set_title(f"{var.upper()}")
        ax.set_xlabel("R²")
        # Very negative R² (levels with almost no variance) would squash the rest.
        ax.set_xlim(max(-1.0, min(0.0, float(np.nanmin(prof.values, initial=0.0)))), 1.0)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("Pressure (hPa)")
    axes[0, 0].invert_yaxis()
    axes[0, -1].legend(loc="best")
    fig.suptitle(f"Global R² by level, {climate}")
    return fig


def r2_cross_sections(r2: xr.Dataset, variable: str, *, climate: str = "control",
                      models: Sequence[str] | None = None) -> Figure:
    """Pressure-latitude cross sections of R² (pooled over time and longitude)."""
    kinds = _models(r2, models)
    section = cross_section(r2, variable).sel(climate=climate)
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.5 * len(kinds), 3.8), sharey=True,
                             squeeze=False, layout="constrained")
    mesh = None
    for ax, kind in zip(axes[0], kinds, strict=True):
        da = section.sel(model=kind)
        mesh = ax.pcolormesh(da["lat"].values, da["lev"].values, da.values, vmin=0, vmax=1,
                             cmap=R2_CMAP, shading="nearest")
        ax.set_title(f"{kind}: {variable.upper()}")
        ax.set_xlabel("Latitude (°N)")
    axes[0, 0].set_ylabel("Pressure (hPa)")
    axes[0, 0].invert_yaxis()
    fig.colorbar(mesh, ax=list(axes[0]), label="R²", extend="min")
    fig.suptitle(f"Zonal R², {climate}")
    return fig


def _group_ticks(labels: Sequence[str]) -> tuple[list, list, list]:
    """Tick positions (group centres), names and separator positions of grouped labels.

    3-D variables are one group each (named in upper case); consecutive 2-D
    variables (one column each, too narrow for a readable tick of their own) share
    one group named "2-D". Works for the labels of any catalogue.
    """
    variables = [name.upper() if level is not None else "2-D"
                 for name, level in map(split_label, labels)]
    ticks, texts, seps = [], [], []
    start = 0
    for i in range(1, len(variables) + 1):
        if i == len(variables) or variables[i] != variables[start]:
            ticks.append((start + i - 1) / 2)
            texts.append(variables[start])
            if i < len(variables):
                seps.append(i - 0.5)
            start = i
    return ticks, texts, seps


def feature_matrix(data: xr.DataArray, *, title: str = "", cmap: str = "viridis",
                   label: str = "", log: bool = False, ax=None) -> Figure:
    """Heatmap of an ``(output, input)`` array, inputs and outputs grouped by variable.

    Used for masks (bool), masking vectors and SHAP matrices. Separators mark
    variable boundaries; ticks name the variables (QBP, TBP, VBP, 2-D ones).

    Parameters
    ----------
    data : xr.DataArray ``(output, input)``
        With feature-label coordinates.
    title, label : str
        Axes title and colour-bar label.
    log : bool
        Logarithmic colour scale (positive values only).
    ax : matplotlib Axes, optional
        Draw into this axes instead of a new figure.
    """
    da = data.transpose("output", "input")
    values = np.asarray(da.values, dtype=float)
    if ax is None:
        fig, ax = plt.subplots(figsize=(10, 6.5), layout="constrained")
    else:
        fig = ax.figure
    norm = None
    if log:
        positive = values[np.isfinite(values) & (values > 0)]
        vmin = positive.min() if positive.size else 1e-6
        vmax = positive.max() if positive.size else 1.0
        norm = LogNorm(vmin=vmin, vmax=max(vmax, vmin * 10))
        values = np.where(values > 0, values, np.nan)
    image = ax.imshow(values, aspect="auto", interpolation="nearest", cmap=cmap, norm=norm)
    inputs = [str(s) for s in da["input"].values]
    outputs = [str(s) for s in da["output"].values]
    xt, xl, xs = _group_ticks(inputs)
    yt, yl, ys = _group_ticks(outputs)
    for x in xs:
        ax.axvline(x, color="tab:red", linewidth=0.6)
    for y in ys:
        ax.axhline(y, color="tab:red", linewidth=0.6)
    ax.set_xticks(xt, xl, rotation=90)
    ax.set_yticks(yt, yl)
    ax.set_xlabel("Input")
    ax.set_ylabel("Output")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label=label)
    return fig


def shap_matrix(shap: xr.Dataset | xr.DataArray, model: str, *, log: bool = True) -> Figure:
    """Mean |SHAP| matrix ``(output, input)`` of one model kind (``shap.nc``)."""
    da = shap["shap"] if isinstance(shap, xr.Dataset) else shap
    return feature_matrix(da.sel(model=model), title=f"Mean |SHAP|: {model}", cmap="magma",
                          label="mean |SHAP| (energy units)", log=log)


def driver_score_bars(tables: dict[str, xr.Dataset], *, by: str = "overall") -> Figure:
    """Bars of driver precision, recall and F1 per model kind.

    Parameters
    ----------
    tables : dict
        ``{kind: driver_scores(...)}`` (:func:`pcm.analysis.scoring.driver_scores`).
    by : {"overall", "group"}
        One panel with the means over outputs, or one panel per input group.
    """
    metrics = ("precision", "recall", "f1")
    kinds = list(tables)
    means = {k: mean_scores(t, by_variable=True) for k, t in tables.items()}
    if by == "overall":
        panels = {"all inputs": {k: means[k] for k in kinds}}
    elif by == "group":
        groups = list(next(iter(means.values()))["by_input_group"]) if means else []
        panels = {g: {k: means[k]["by_input_group"][g] for k in kinds} for g in groups}
    else:
        raise ValueError(f"by must be 'overall' or 'group', got {by!r}")
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(3.2 * max(1, len(panels)), 3.2),
                             sharey=True, squeeze=False, layout="constrained")
    width = 0.8 / max(1, len(kinds))
    for ax, (name, per_kind) in zip(axes[0], panels.items(), strict=False):
        for j, kind in enumerate(kinds):
            heights = [per_kind[kind][m] for m in metrics]
            ax.bar(np.arange(len(metrics)) + (j - (len(kinds) - 1) / 2) * width, heights,
                   width, label=kind)
        ax.set_xticks(np.arange(len(metrics)), metrics)
        ax.set_ylim(0, 1)
        ax.set_title(name)
    axes[0, 0].set_ylabel("score (mean over outputs)")
    if kinds:
        axes[0, -1].legend(loc="best")
    fig.suptitle("Recovery of the true drivers")
    return fig


def masking_vector_plot(vectors: xr.DataArray, output: str, *, threshold: float | None = None,
                        drivers: xr.DataArray | None = None) -> Figure:
    """Masking vector of one output over the 94 inputs, with the threshold line.

    Parameters
    ----------
    vectors : xr.DataArray ``(output, input)``
        ``masking_vectors.nc``'s ``masking_vector``.
    output : str
        Output feature label.
    threshold : float, optional
        Selected threshold (``thresholds.nc``'s ``threshold``); inputs above it
        are kept by the mask.
    drivers : xr.DataArray, optional
        True drivers ``(output, input)``; marked on the plot.
    """
    vec = vectors.sel(output=output)
    inputs = [str(s) for s in vec["input"].values]
    fig, ax = plt.subplots(figsize=(10, 3.5), layout="constrained")
    x = np.arange(len(inputs))
    ax.plot(x, vec.values, marker=".", linewidth=0.8, label="masking vector")
    if threshold is not None:
        ax.axhline(float(threshold), color="C3", linestyle="--",
                   label=f"threshold {float(threshold):.4g}")
    if drivers is not None:
        truth = drivers.sel(output=output, input=inputs).values.astype(bool)
        ax.plot(x[truth], vec.values[truth], "o", mfc="none", color="k", label="true driver")
    ticks, names, seps = _group_ticks(inputs)
    for s in seps:
        ax.axvline(s, color="grey", linewidth=0.5)
    ax.set_xticks(ticks, names)
    ax.set_xlabel("Input")
    ax.set_ylabel("L2 norm of input-layer row")
    ax.set_title(f"Masking vector of {output}")
    ax.legend(loc="best")
    return fig


def mask_overview(masks: xr.Dataset | xr.DataArray, *, title: str = "") -> Figure:
    """A mask matrix beside the number of inputs each output keeps.

    Left: ``mask(output, input)`` as :func:`feature_matrix` draws it (kept
    inputs bright); right: inputs kept per output, in the same row order, with
    the mean over outputs. Used for the published SPCAM masks
    (:func:`pcm.data.published.published_masks`) and for a run's ``masks.nc``.

    Parameters
    ----------
    masks : xr.Dataset or xr.DataArray
        With ``mask(output, input)`` (bool) and feature-label coordinates.
    title : str
        Figure title.
    """
    mask = (masks["mask"] if isinstance(masks, xr.Dataset) else masks).transpose(
        "output", "input")
    kept = mask.sum("input").values
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(13, 6.5), width_ratios=(4, 1), layout="constrained")
    feature_matrix(mask.astype(int), title="mask: input kept (1) or dropped (0)",
                   cmap="Greys", label="kept", ax=left)
    rows = np.arange(kept.size)
    right.barh(rows, kept, height=0.8, color="tab:blue")
    right.axvline(kept.mean(), color="tab:red", linestyle="--",
                  label=f"mean {kept.mean():.1f} of {mask.sizes['input']}")
    right.set_ylim(rows[-1] + 0.5, rows[0] - 0.5)  # the matrix's row order, top first
    right.set_yticks([])
    right.set_xlabel("inputs kept")
    right.set_title(f"{int(kept.sum())} inputs in all")
    right.legend(loc="lower right")
    fig.suptitle(title)
    return fig


def training_history(history: xr.Dataset, title: str, *,
                     ylabel: str = "loss (normalised)") -> Figure:
    """Training and validation loss per epoch, averaged over the stacked networks.

    Parameters
    ----------
    history : xarray.Dataset
        A training history (``history_<phase>.nc``) with ``loss`` and, if
        validation data were given, ``val_loss`` on ``(epoch, network)``.
    title : str
        Axes title (the phase).
    ylabel : str
        Label of the loss axis (log scale).
    """
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, label, style in (("loss", "training", "-o"), ("val_loss", "validation", "--s")):
        if name in history:
            mean = history[name].mean("network")
            ax.plot(mean["epoch"].values, mean.values, style, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    return fig


def threshold_search(thresholds: xr.Dataset, outputs: Sequence[str], *,
                     ylabel: str = "loss") -> Figure:
    """The search criterion against the candidate threshold, one line per output.

    Parameters
    ----------
    thresholds : xarray.Dataset
        ``thresholds.nc``: ``threshold_value`` and ``loss`` on ``(output,
        threshold_index)``, the chosen ``threshold(output)``.
    outputs : sequence of str
        Output labels to draw; a star marks each one's chosen threshold.
    ylabel : str
        Label of the loss axis (the criterion).
    """
    fig, ax = plt.subplots(figsize=(7, 4))
    for label in outputs:
        row = thresholds.sel(output=label)
        ax.plot(row["threshold_value"], row["loss"], marker=".", label=label)
        ax.plot(row["threshold"], row["loss"].min(), "k*")
    ax.set_xlabel("candidate threshold")
    ax.set_ylabel(ylabel)
    ax.legend()
    return fig


def snapshot_maps(data: xr.Dataset, lat: np.ndarray, lon: np.ndarray,
                  panels: Mapping[str, int], *, unstructured: bool = False) -> Figure:
    """Maps of the first time step of a CBRAIN-layout data set.

    Parameters
    ----------
    data : xarray.Dataset
        A CBRAIN-layout data set (``vars(sample, var_names)``, samples (time, lat,
        lon) with longitude fastest, or (time, column) on an unstructured grid).
    lat, lon : array
        The grid of the file (:func:`pcm.data.cbrain.sample_grid`); per column on an
        unstructured grid.
    panels : mapping
        Variable name -> level index (-1: the lowest level; 0 for 2-D variables).
    unstructured : bool
        The grid is unstructured (ClimSim): one dot per column.
    """
    per_step = len(lat) if unstructured else len(lat) * len(lon)
    first = np.asarray(data["vars"][:per_step].values)
    rows = (len(panels) + 1) // 2
    fig, axes = plt.subplots(rows, 2, figsize=(10, 2.5 * rows), sharex=True, sharey=True,
                             squeeze=False)
    for ax, (name, level) in zip(axes.flat, panels.items(), strict=False):
        field = first[:, column_index(data, [name])[level]]
        if unstructured:
            mesh = ax.scatter(lon, lat, c=field, s=10)
        else:
            mesh = ax.pcolormesh(lon, lat, field.reshape(len(lat), len(lon)), shading="auto")
        fig.colorbar(mesh, ax=ax, label=name)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    fig.supxlabel("longitude (°E)")
    fig.supylabel("latitude (°N)")
    return fig


def mean_profiles(data: xr.Dataset, variables: Sequence[str],
                  levels_hpa: np.ndarray) -> Figure:
    """Vertical profiles of the sample mean of 3-D variables, one panel per variable.

    Parameters
    ----------
    data : xarray.Dataset
        A CBRAIN-layout data set.
    variables : sequence of str
        Variables with one column per level.
    levels_hpa : array
        Pressure of the levels (top to bottom), the vertical axis.
    """
    mean = data["vars"].mean("sample").values
    fig, axes = plt.subplots(1, len(variables), figsize=(3 * len(variables), 4), sharey=True,
                             squeeze=False)
    for ax, name in zip(axes[0], variables, strict=True):
        ax.plot(mean[column_index(data, [name])], levels_hpa)
        ax.set_xlabel(name)
    axes[0, 0].set_ylabel("pressure (hPa)")
    axes[0, 0].invert_yaxis()
    return fig
