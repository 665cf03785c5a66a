"""Validation of a CBRAIN-layout data file (``pcm data check``), against a norm file,
and of a training set before training starts (:func:`check_training_set`).

Kept apart from :mod:`pcm.data.cbrain` (reading and writing the layout) and
:mod:`pcm.data.normalization` (the statistics), because it uses both.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from pcm.data.cbrain import (
    column_index,
    column_labels,
    file_catalogue,
    header,
    iter_rows,
    nonfinite_error,
    open_nc,
    sample_grid,
    validate_names,
)
from pcm.data.normalization import MAX_ABS_NORMALIZED, Normalization
from pcm.errors import DataError

__all__ = ["check_file", "check_training_set", "TrainingDataWarning"]


class TrainingDataWarning(UserWarning):
    """A training set that trains, but not usefully (constant outputs, less than a batch)."""


def check_training_set(y: np.ndarray, batch_size: int, *,
                       path: str | os.PathLike | None = None) -> list[str]:
    """Warn, one line each, about a training set that will train without learning much.

    Parameters
    ----------
    y : np.ndarray
        Training outputs ``(samples, outputs)`` (normalised or not).
    batch_size : int
        Mini-batch size of the training.
    path : path-like, optional
        The training file, named in the messages.

    Returns
    -------
    list of str
        The messages issued as :class:`TrainingDataWarning`: every output constant
        over the training samples (the networks can only learn a constant), and
        fewer samples than one batch (each epoch is a single optimizer step).
    """
    y = np.asarray(y)
    where = f"{path}: " if path is not None else ""
    messages = []
    n = y.shape[0]
    if n and y.ndim == 2 and y.shape[1] and bool(np.all(np.ptp(y, axis=0) == 0)):
        messages.append(f"{where}all {y.shape[1]} training outputs are constant over the {n} "
                        "training samples: the networks can only learn a constant (wrong file "
                        "or variables?)")
    if n < batch_size:
        messages.append(f"{where}the training set has {n} samples, fewer than one batch "
                        f"(batch_size={batch_size}): every epoch is a single optimizer step; "
                        "lower batch_size or use more data")
    for message in messages:
        warnings.warn(message, TrainingDataWarning, stacklevel=2)
    return messages


def check_file(path: str | os.PathLike, norm=None) -> str:
    """Validate a CBRAIN-layout file and describe what it holds.

    Parameters
    ----------
    path : path-like
        The data file.
    norm : path-like or xr.Dataset, optional
        A normalisation file to check against the data: it must have ``mean std
        min max (var_names)`` and ``std_by_var (var_names_single)`` with entries
        for every catalogue variable at the right number of levels, and the
        normalised inputs must stay within ``pcm.data.normalization.MAX_ABS_NORMALIZED``.

    Returns
    -------
    str
        A human-readable report: samples, columns per variable, time steps,
        grid, value range per variable with units.

    Raises
    ------
    DataError
        Any problem, naming the file and the variable: not netCDF, missing
        ``vars``/``var_names``, missing variable, wrong number of levels,
        non-finite values (with the level label of the first bad column and the
        count), grid inconsistent, norm file mismatch.
    """
    path = Path(path)
    with open_nc(path) as nc:
        names, n_samples = header(nc, path)
        attrs = {k: nc.getncattr(k) for k in nc.ncattrs()}
    catalogue = file_catalogue({**attrs, "path": str(path)})
    all_variables = catalogue.all_variables
    validate_names(names, all_variables, path, catalogue)
    grid = sample_grid(path)
    cols = column_index(names, all_variables, catalogue)
    labels = column_labels(names, catalogue)
    col_names = names[cols]
    col_labels = [labels[c] for c in cols]
    normalization = None
    if norm is not None:
        normalization = Normalization.from_any(norm, warn=False)  # listed in the report
        if normalization.catalogue != catalogue:
            raise DataError(f"holds {catalogue.name} data but the norm file "
                            f"{normalization.source} is for {normalization.catalogue.name}",
                            path=path)
    n_in = catalogue.n_inputs

    counts = np.zeros(cols.size, dtype=np.int64)
    vmin = np.full(cols.size, np.inf)
    vmax = np.full(cols.size, -np.inf)
    nmax = np.zeros(n_in)
    for _, rows in iter_rows(path, cols):
        if not rows.size:
            continue
        finite = np.isfinite(rows)
        if not finite.all():
            counts += (~finite).sum(axis=0)
            rows = np.where(finite, rows, np.nan)
        with warnings.catch_warnings():  # all-NaN columns: reported below
            warnings.simplefilter("ignore", RuntimeWarning)
            vmin = np.fmin(vmin, np.nanmin(rows, axis=0))
            vmax = np.fmax(vmax, np.nanmax(rows, axis=0))
            if normalization is not None:
                xn = normalization.normalize_inputs(rows[:, :n_in], dtype="float64")
                nmax = np.fmax(nmax, np.nanmax(np.abs(xn), axis=0))
    if counts.any():
        raise nonfinite_error(path, (col_names, col_labels), counts)

    if grid.get("unstructured"):
        where = f"{grid['lat'].size} columns (unstructured, recorded in the file)"
    else:
        where = (f"{grid['lat'].size} lat x {grid['lon'].size} lon"
                 f" ({'recorded in the file' if grid['from_file'] else 'assumed full T42'})")
    lines = [
        f"{path}: CBRAIN layout ({catalogue.name} catalogue), {n_samples} samples x "
        f"{names.size} columns",
        f"  time steps: {grid['n_time']}; grid: {where}",
    ]
    if attrs.get("pcm_layout"):
        lines.append(f"  written by pcm ({attrs['pcm_layout']})")
    extras = [n for n in dict.fromkeys(names.tolist()) if n not in all_variables]
    if extras:
        lines.append(f"  extra variables (ignored): {', '.join(extras)}")
    width = max(10, *(len(n) for n in all_variables))
    lines.append(f"  {'variable':{width}s} {'levels':>6s} {'min':>12s} {'max':>12s}  units")
    col = 0
    for name in all_variables:
        var = catalogue.by_name[name]
        k = var.n_levels
        role = "in " if name in catalogue.inputs else "out"
        lines.append(f"  {name:{width}s} {k:6d} {np.min(vmin[col:col + k]):12.5g} "
                     f"{np.max(vmax[col:col + k]):12.5g}  {var.units} ({role})")
        col += k
    if normalization is not None:
        limit = MAX_ABS_NORMALIZED
        j = int(np.argmax(nmax)) if nmax.size else 0
        if nmax.size and nmax[j] > limit:
            raise DataError(
                f"norm file {normalization.source} does not match the data: normalised "
                f"{col_labels[j]} reaches {nmax[j]:.3g} (limit {limit:g}); wrong norm file "
                "or units?", path=path, variable=str(col_names[j]))
        lines.append(f"  norm file {normalization.source}: matches (max |normalised input| "
                     f"{float(np.max(nmax)) if nmax.size else 0.0:.3g})")
        zero = normalization.zero_variance_labels()
        if zero:
            lines.append(f"  zero-variance outputs in the norm file (kept, R2 NaN): "
                         f"{', '.join(zero)}")
    lines.append("  OK: all values finite")
    return "\n".join(lines)
