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
from matplotlib.colors import BoundaryNorm, ListedColormap, LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from pcm.analysis.r2 import cross_section, profile
from pcm.analysis.scoring import mean_scores
from pcm.data.cbrain import column_index
from pcm.variables import SPCAM, Catalogue, split_label

__all__ = [
    "training_history",
    "r2_maps",
    "r2_profiles",
    "r2_cross_sections",
    "feature_matrix",
    "shap_matrix",
    "shap_matrices",
    "driver_score_bars",
    "masking_vector_plot",
    "mask_overview",
    "threshold_search",
    "snapshot_maps",
    "mean_profiles",
]

R2_CMAP = "Spectral_r"
#: Label of every R² axis and colour bar (R² is a ratio of squared errors: no unit).
R2_LABEL = "R² (1)"
#: Two colours of binary masks (0: dropped, 1: kept).
MASK_CMAP = ListedColormap(["#f2f2f2", "#1a1a1a"])
#: Width (inches) of a figure that fills the book's text column at its full size.
BOOK_WIDTH = 8.0


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
    width = min(BOOK_WIDTH * 1.5, 4.5 * len(kinds))
    fig = plt.figure(figsize=(width, 3.4 * width / (4.5 * len(kinds))), layout="constrained")
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
    fig.colorbar(mesh, ax=fig.axes, orientation="horizontal", shrink=0.6, label=R2_LABEL,
                 extend="min")
    n_time = r2.attrs.get(f"time_steps_{climate}", r2.attrs.get("n_time"))  # r2.nc, r2_dataset
    per_point = f" ({n_time} test steps per point: a noisy estimate)" if n_time else ""
    fig.suptitle(f"R² per grid point over time, {climate}{per_point}")
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
        ax.set_xlabel(R2_LABEL)
        # Very negative R² (levels with almost no variance) would squash the rest.
        ax.set_xlim(max(-1.0, min(0.0, float(np.nanmin(prof.values, initial=0.0)))), 1.0)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("Pressure (hPa)")
    axes[0, 0].invert_yaxis()
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside right upper")
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
    fig.colorbar(mesh, ax=list(axes[0]), label=R2_LABEL, extend="min")
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


def _level_ticks(labels: Sequence[str], every: int = 5) -> tuple[list[int], list[str]]:
    """Positions and labels of the inner ticks: the pressure (hPa) of every ``every``-th
    level of each 3-D variable and of its lowest level, and the name of each 2-D one."""
    ticks, texts = [], []
    parsed = [split_label(lab) for lab in labels]
    start = 0
    for i, (name, level) in enumerate(parsed):
        if i > 0 and parsed[i - 1][0] != name:
            start = i
        if level is None:
            ticks.append(i)
            texts.append(name.upper())
            continue
        last = i == len(parsed) - 1 or parsed[i + 1][0] != name
        on_grid = (i - start) % every == 0
        if on_grid or (last and (i - start) % every >= every // 2):
            ticks.append(i)
            texts.append(f"{level:.0f}" if level >= 10 else f"{level:.2g}")
    return ticks, texts


def _is_binary(values: np.ndarray, data: xr.DataArray) -> bool:
    """A 0/1 (or boolean) array: a mask."""
    finite = values[np.isfinite(values)]
    return (data.dtype.kind in "biu" and finite.size > 0
            and bool(np.isin(finite, (0.0, 1.0)).all()))


def _label_axis(ax, labels: Sequence[str], axis: str) -> None:
    """Variable names (outer, with separators) and level pressures (inner ticks)."""
    group_pos, group_names, seps = _group_ticks(labels)
    level_pos, level_names = _level_ticks(labels)
    for sep in seps:
        (ax.axvline if axis == "x" else ax.axhline)(sep, color="tab:red", linewidth=0.6)
    if axis == "x":
        ax.set_xticks(level_pos, level_names, rotation=90, fontsize=6)
        outer = ax.secondary_xaxis("top")
        outer.set_xticks(group_pos, group_names, fontsize="small")
        ax.set_xlabel("Input (variable on top; level in hPa, 2-D inputs by name)")
    else:
        ax.set_yticks(level_pos, level_names, fontsize=6)
        outer = ax.secondary_yaxis("right")
        outer.set_yticks(group_pos, group_names, fontsize="small", rotation=90,
                         va="center")
        ax.set_ylabel("Output (level in hPa; variable on the right)")
    outer.tick_params(length=0)


def feature_matrix(data: xr.DataArray, *, title: str = "", cmap: str = "viridis",
                   label: str = "", log: bool = False, binary: bool | None = None,
                   norm: Normalize | None = None, colorbar: bool = True, ax=None) -> Figure:
    """Heatmap of an ``(output, input)`` array, inputs and outputs labelled by variable and level.

    Used for masks (0/1), masking vectors and SHAP matrices. Red lines separate the
    variables; the outer ticks name them (QBP, TBP, VBP, the 2-D ones), the inner ticks
    give the pressure of every fifth level (hPa) and the names of 2-D variables.

    Parameters
    ----------
    data : xr.DataArray ``(output, input)``
        With feature-label coordinates.
    title, label : str
        Axes title and colour-bar label (with units).
    log : bool
        Logarithmic colour scale (positive values only).
    binary : bool, optional
        Draw two colours (dropped, kept) with a two-entry colour bar; None: when the
        data are boolean or integer zeros and ones.
    norm : matplotlib Normalize, optional
        Colour scale to use (side-by-side panels share one).
    colorbar : bool
        Draw a colour bar beside the axes.
    ax : matplotlib Axes, optional
        Draw into this axes instead of a new figure.
    """
    da = data.transpose("output", "input")
    values = np.asarray(da.values, dtype=float)
    if ax is None:
        fig, ax = plt.subplots(figsize=(BOOK_WIDTH, 5.6), layout="constrained")
    else:
        fig = ax.figure
    binary = _is_binary(values, da) if binary is None else binary
    if binary:
        cmap, norm = MASK_CMAP, BoundaryNorm([-0.5, 0.5, 1.5], MASK_CMAP.N)
    elif log:
        positive = values[np.isfinite(values) & (values > 0)]
        if norm is None:
            vmin = positive.min() if positive.size else 1e-6
            vmax = positive.max() if positive.size else 1.0
            norm = LogNorm(vmin=vmin, vmax=max(vmax, vmin * 10))
        values = np.where(values > 0, values, np.nan)
    image = ax.imshow(values, aspect="auto", interpolation="nearest", cmap=cmap, norm=norm)
    _label_axis(ax, [str(s) for s in da["input"].values], "x")
    _label_axis(ax, [str(s) for s in da["output"].values], "y")
    ax.set_title(title)
    if colorbar:
        bar = fig.colorbar(image, ax=ax, label=label, pad=0.06)
        if binary:
            bar.set_ticks([0, 1], labels=["dropped (0)", "kept (1)"])
    return fig


def shap_matrix(shap: xr.Dataset | xr.DataArray, model: str, *, log: bool = True) -> Figure:
    """Mean |SHAP| matrix ``(output, input)`` of one model kind (``shap.nc``)."""
    return shap_matrices(shap, [model], log=log)


def shap_matrices(shap: xr.Dataset | xr.DataArray, models: Sequence[str] | None = None, *,
                  log: bool = True) -> Figure:
    """Mean |SHAP| matrices of several model kinds, one panel each, one colour scale.

    Parameters
    ----------
    shap : xr.Dataset or xr.DataArray
        ``shap.nc`` (``shap(model, output, input)``).
    models : sequence of str, optional
        Model kinds, one panel each (default: all in the file).
    log : bool
        Logarithmic colour scale, shared by the panels.
    """
    da = shap["shap"] if isinstance(shap, xr.Dataset) else shap
    kinds = _models(da, models)
    values = np.asarray(da.sel(model=kinds).values, dtype=float)
    finite = values[np.isfinite(values) & ((values > 0) if log else True)]
    vmin = float(finite.min()) if finite.size else 1e-6
    vmax = float(finite.max()) if finite.size else 1.0
    norm = LogNorm(vmin=vmin, vmax=max(vmax, vmin * 10)) if log else Normalize(vmin, vmax)
    fig, axes = plt.subplots(len(kinds), 1, figsize=(BOOK_WIDTH, 4.6 * len(kinds)),
                             squeeze=False, layout="constrained")
    images = []
    for ax, kind in zip(axes[:, 0], kinds, strict=True):
        feature_matrix(da.sel(model=kind), title=f"Mean |SHAP|: {kind}", cmap="magma",
                       log=log, norm=norm, colorbar=False, ax=ax)
        images.append(ax.images[0])
    units = da.attrs.get("units", "scaled output units")
    fig.colorbar(images[0], ax=list(axes[:, 0]), label=f"mean |SHAP| ({units})",
                 shrink=0.8 if len(kinds) > 1 else 1.0)
    return fig


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
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(3.2 * max(1, len(panels)) + 1.8,
                                                             3.2),
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
    axes[0, 0].set_ylabel("score (1, mean over outputs)")
    if kinds:
        fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside right upper")
    fig.suptitle("Recovery of the true drivers")
    return fig


def masking_vector_plot(vectors: xr.DataArray, output: str, *, threshold: float | None = None,
                        drivers: xr.DataArray | None = None, kept: xr.DataArray | None = None,
                        ylabel: str = "L2 norm of the input-layer row (1)") -> Figure:
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
    kept : xr.DataArray, optional
        The mask ``(output, input)``; its kept inputs are filled (where a screen
        follows the threshold, they are not simply the inputs above the line).
    ylabel : str
        What the vector holds (another ranking than the row norm).
    """
    vec = vectors.sel(output=output)
    inputs = [str(s) for s in vec["input"].values]
    fig, ax = plt.subplots(figsize=(BOOK_WIDTH, 3.6), layout="constrained")
    x = np.arange(len(inputs))
    ax.plot(x, vec.values, marker=".", linewidth=0.8, label="masking vector")
    if threshold is not None:
        ax.axhline(float(threshold), color="C3", linestyle="--",
                   label=f"threshold {float(threshold):.4g}")
    if drivers is not None:
        truth = drivers.sel(output=output, input=inputs).values.astype(bool)
        ax.plot(x[truth], vec.values[truth], "o", mfc="none", color="k", label="true driver")
    if kept is not None:
        keep = kept.sel(output=output, input=inputs).values.astype(bool)
        ax.plot(x[keep], vec.values[keep], "o", color="C2", markersize=4, label="kept by the mask")
    _label_axis(ax, inputs, "x")
    ax.set_ylabel(ylabel)
    ax.set_title(f"Masking vector of {output}")
    fig.legend(loc="outside lower center", ncols=3)
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
        1, 2, figsize=(BOOK_WIDTH * 1.25, 6.5), width_ratios=(4, 1), layout="constrained")
    feature_matrix(mask.astype(int), title="mask: input kept (1) or dropped (0)",
                   label="mask", binary=True, ax=left)
    rows = np.arange(kept.size)
    right.barh(rows, kept, height=0.8, color="tab:blue")
    right.axvline(kept.mean(), color="tab:red", linestyle="--",
                  label=f"mean {kept.mean():.1f} of {mask.sizes['input']}")
    right.set_ylim(rows[-1] + 0.5, rows[0] - 0.5)  # the matrix's row order, top first
    right.set_yticks([])
    right.set_xlabel("inputs kept (count)")
    right.xaxis.set_major_locator(MaxNLocator(integer=True))
    right.set_title(f"{int(kept.sum())} inputs in all")
    right.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), fontsize="small")  # below
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
    fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
    for name, label, style in (("loss", "training", "-o"), ("val_loss", "validation", "--s")):
        if name in history:
            mean = history[name].mean("network")
            ax.plot(mean["epoch"].values, mean.values, style, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.legend(loc="outside right upper")
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
    fig, ax = plt.subplots(figsize=(7.5, 4), layout="constrained")
    for label in outputs:
        row = thresholds.sel(output=label)
        ax.plot(row["threshold_value"], row["loss"], marker=".", label=label)
        chosen = int(np.nanargmin(np.abs(row["threshold_value"].values
                                          - float(row["threshold"]))))
        ax.plot(row["threshold"], row["loss"].values[chosen], "k*", ms=10,
                label="selected" if label == outputs[0] else "_nolegend_")
    ax.set_xlabel("candidate threshold (masking-vector units, 1)")
    ax.set_ylabel(ylabel)
    fig.legend(loc="outside right upper")
    return fig


def snapshot_maps(data: xr.Dataset, lat: np.ndarray, lon: np.ndarray,
                  panels: Mapping[str, int], *, unstructured: bool = False,
                  catalogue: Catalogue = SPCAM, levels_hpa: Sequence[float] | None = None
                  ) -> Figure:
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
    catalogue : Catalogue
        The data's variables: units of the colour bars, level pressures of the titles.
    levels_hpa : sequence of float, optional
        Level pressures (default: the catalogue's).
    """
    levels = list(catalogue.levels_hpa if levels_hpa is None else levels_hpa)
    per_step = len(lat) if unstructured else len(lat) * len(lon)
    first = np.asarray(data["vars"][:per_step].values)
    rows = (len(panels) + 1) // 2
    fig, axes = plt.subplots(rows, 2, figsize=(BOOK_WIDTH * 1.25, 2.8 * rows), sharex=True,
                             sharey=True, squeeze=False, layout="constrained")
    for ax, (name, level) in zip(axes.flat, panels.items(), strict=False):
        columns = column_index(data, [name])
        field = first[:, columns[level]]
        if unstructured:
            mesh = ax.scatter(lon, lat, c=field, s=10)
        else:
            mesh = ax.pcolormesh(lon, lat, field.reshape(len(lat), len(lon)), shading="auto")
        var = catalogue.by_name.get(name)
        where = (f" at {levels[level]:.0f} hPa" if len(columns) > 1 and len(levels) == len(columns)
                 else "")
        ax.set_title(f"{name}{where}" + (f": {var.long_name}" if var else ""), fontsize="small")
        fig.colorbar(mesh, ax=ax, label=f"{name} ({var.units})" if var else name)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    fig.supxlabel("longitude (°E)")
    fig.supylabel("latitude (°N)")
    return fig


def mean_profiles(data: xr.Dataset, variables: Sequence[str],
                  levels_hpa: np.ndarray, *, catalogue: Catalogue = SPCAM) -> Figure:
    """Vertical profiles of the sample mean of 3-D variables, one panel per variable.

    Parameters
    ----------
    data : xarray.Dataset
        A CBRAIN-layout data set.
    variables : sequence of str
        Variables with one column per level.
    levels_hpa : array
        Pressure of the levels (top to bottom), the vertical axis.
    catalogue : Catalogue
        The data's variables (units of the horizontal axes).
    """
    mean = data["vars"].mean("sample").values
    fig, axes = plt.subplots(1, len(variables), figsize=(min(BOOK_WIDTH, 2.4 * len(variables)),
                                                         4), sharey=True, squeeze=False,
                             layout="constrained")
    for ax, name in zip(axes[0], variables, strict=True):
        ax.plot(mean[column_index(data, [name])], levels_hpa)
        var = catalogue.by_name.get(name)
        ax.set_xlabel(f"{name} ({var.units})" if var else name)
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))
    axes[0, 0].set_ylabel("pressure (hPa)")
    axes[0, 0].invert_yaxis()
    return fig
