"""Reading the CBRAIN layout (writing it: :mod:`pcm.data.cbrain_write`).

The CBRAIN layout (CBRAIN-CAM, the causally-informed networks and the
PCMasking reference implementation) is one netCDF file per split with

* ``vars(sample, var_names)`` float32: one row per atmospheric column and time
  step, samples stacked (time, lat, lon) with longitude fastest, so one full
  T42 time step is 8192 consecutive samples;
* ``var_names(var_names)`` strings repeating a variable name once per level
  (30 x ``QBP``, 30 x ``TBP``, ..., ``PS``, ...), levels top to bottom.

Files written by others may hold extra variables (``QCBP``, ``DTVKE`` ...), any
variable order, and ``var_names`` as variable-length strings, fixed-width
strings or character arrays; all are read the same way, by name. Shuffled
files keep the *unshuffled* per-sample coordinates, so the latitude and
longitude stored in foreign files are never trusted: :func:`sample_grid`
assumes the full T42 grid unless the file was written by
:func:`pcm.data.cbrain_write.write_cbrain`,
which records the grid vectors (``lat``, ``lon``, ``gw``), the time axis and
``pcm_n_time`` explicitly.

Nothing here loads a whole file: data are read in blocks of rows
(:func:`iter_rows`), the layout's natural access pattern.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import netCDF4
import numpy as np
import xarray as xr

from pcm.errors import DataError, hint
from pcm.variables import (
    INPUT_VARIABLES,
    OUTPUT_VARIABLES,
    SPCAM,
    T42_SHAPE,
    Catalogue,
    catalogue_from_attrs,
    gaussian_grid,
)

__all__ = [
    "ALL_VARIABLES",
    "SAMPLES_PER_T42_STEP",
    "LAYOUT_VERSION",
    "file_catalogue",
    "open_cbrain",
    "read_var_names",
    "column_index",
    "column_labels",
    "sample_grid",
    "iter_rows",
    "open_nc",
    "header",
    "validate_names",
    "decode_names",
    "nonfinite_error",
]

#: The 14 catalogue variables, inputs then outputs (159 columns).
ALL_VARIABLES: tuple[str, ...] = tuple(INPUT_VARIABLES) + tuple(OUTPUT_VARIABLES)

#: Samples in one time step of the full T42 grid (64 x 128).
SAMPLES_PER_T42_STEP = T42_SHAPE[0] * T42_SHAPE[1]

#: Written as the global attribute ``pcm_layout`` by the files pcm writes.
LAYOUT_VERSION = "cbrain-pcm-1"

#: Rows per HDF5 chunk of ``vars`` in files we write (about 2.6 MB for 159
#: columns): small enough for cheap random batch reads, large enough for fast
#: sequential reads (see benchmarks/data_throughput.py).
CHUNK_ROWS = 4096

#: Rows per block when streaming through a file.
READ_ROWS = 65536


# --------------------------------------------------------------------------- reading
def decode_names(raw: np.ndarray) -> np.ndarray:
    """Decode var_names stored as vlen/fixed-width strings, bytes or char arrays."""
    arr = np.asarray(raw)
    if isinstance(arr, np.ma.MaskedArray):
        arr = arr.filled(b"" if arr.dtype.kind == "S" else "")
    if arr.ndim == 2 and arr.dtype.kind in "SU" and arr.dtype.itemsize in (1, 4):
        # character array (var_names, string_length)
        arr = np.array([b"".join(row.astype("S1")) if arr.dtype.kind == "S"
                        else "".join(row) for row in arr])
    out = []
    for item in arr.ravel():
        if isinstance(item, bytes | np.bytes_):
            item = item.decode("utf-8", errors="replace")
        out.append(str(item).replace("\x00", "").strip())
    return np.array(out, dtype=object)


def open_nc(path: str | os.PathLike):
    """Open ``path`` with netCDF4, turning library errors into DataError."""
    path = Path(path)
    if not path.exists():
        raise DataError("file not found", path=path)
    if path.is_dir():
        raise DataError("is a directory, expected a netCDF file", path=path)
    try:
        nc = netCDF4.Dataset(path, "r")
    except OSError as err:
        raise DataError(f"not a readable netCDF file ({err})", path=path) from None
    nc.set_auto_mask(False)
    return nc


def header(nc, path) -> tuple[np.ndarray, int]:
    """Decoded var_names and number of samples of an open CBRAIN file."""
    if "vars" not in nc.variables:
        raise DataError(f"no variable 'vars' (found: {', '.join(nc.variables) or 'none'}); "
                        "expected the CBRAIN layout vars(sample, var_names)", path=path)
    if "var_names" not in nc.variables:
        raise DataError("no variable 'var_names' naming the columns of 'vars' "
                        "(expected the CBRAIN layout)", path=path)
    data = nc.variables["vars"]
    if data.ndim != 2:
        raise DataError(f"'vars' has dims {data.dimensions}, expected (sample, var_names)",
                        path=path)
    try:
        names = decode_names(nc.variables["var_names"][:])
    except Exception as err:  # noqa: BLE001 - any decoding problem is a data problem
        raise DataError(f"cannot decode 'var_names' ({err})", path=path) from None
    if data.shape[0] == 0:
        raise DataError("'vars' has no samples", path=path)
    if names.shape[0] != data.shape[1]:
        raise DataError(f"'var_names' has {names.shape[0]} entries but 'vars' has "
                        f"{data.shape[1]} columns", path=path)
    return names, int(data.shape[0])


def case_hint(name: str, present) -> str:
    """``"; the file has 'qbp': did you mean 'QBP'? ..."`` if ``present`` has ``name`` in
    another case, else ``""`` (for messages about a missing variable)."""
    other = [p for p in present if str(p).casefold() == name.casefold() and str(p) != name]
    if not other:
        return ""
    return (f"; the file has {other[0]!r}: did you mean {name!r}? (variable names are "
            "case-sensitive)")


def validate_names(names: np.ndarray, require: Sequence[str], path,
                   catalogue: Catalogue = SPCAM) -> None:
    """Raise a DataError naming the first variable of ``require`` missing from ``names``
    or present with the wrong number of levels (as ``catalogue`` declares them)."""
    for name in require:
        if name not in catalogue.by_name:
            raise DataError(f"not a catalogue variable{hint(name, catalogue.by_name)} "
                            f"(known in the {catalogue.name} catalogue: "
                            f"{', '.join(catalogue.by_name)})", variable=name)
        expected = catalogue.by_name[name].n_levels
        found = int(np.count_nonzero(names == name))
        if found == 0:
            present = sorted(set(names.tolist()))
            raise DataError(f"missing from 'var_names' (expected {expected} column"
                            f"{'s' if expected > 1 else ''}; file has {', '.join(present)})"
                            f"{case_hint(name, present)}", path=path, variable=name)
        if found != expected:
            raise DataError(f"has {found} columns (levels) in 'var_names', expected {expected}",
                            path=path, variable=name)


def file_catalogue(source: str | os.PathLike | dict) -> Catalogue:
    """The catalogue a CBRAIN file records (``pcm_catalogue``); SPCAM when it records none.

    Parameters
    ----------
    source : path-like or dict
        The file, or its global attributes.

    Raises
    ------
    DataError
        The recorded catalogue is unknown or incomplete.
    """
    path = None
    if isinstance(source, dict):
        attrs = source
        path = attrs.get("path")
    else:
        path = source
        with open_nc(path) as nc:
            attrs = {k: nc.getncattr(k) for k in nc.ncattrs()}
    try:
        return catalogue_from_attrs(attrs)
    except ValueError as err:
        raise DataError(str(err), path=path) from None


def read_var_names(path: str | os.PathLike) -> np.ndarray:
    """Decoded column names of a CBRAIN file (object array of str)."""
    with open_nc(path) as nc:
        names, _ = header(nc, path)
    return names


def open_cbrain(
    path: str | os.PathLike,
    *,
    require: Sequence[str] | None = None,
    chunk_rows: int = READ_ROWS,
) -> xr.Dataset:
    """Open a CBRAIN-layout file lazily and validate its columns.

    Parameters
    ----------
    path : path-like
        The netCDF file.
    require : sequence of str, optional
        Catalogue variables that must be present with their number of levels
        (default: all inputs and outputs of the file's catalogue,
        :func:`file_catalogue`).
    chunk_rows : int
        Rows per dask chunk of ``vars``.

    Returns
    -------
    xr.Dataset
        ``vars(sample, var_names)`` backed by dask (nothing loaded), with a
        ``var_names`` coordinate of plain ``str``; attribute ``path``. Close it
        (or use it as a context manager) when done.

    Raises
    ------
    DataError
        File missing or not netCDF; no ``vars``/``var_names``; a required
        variable missing or with the wrong number of levels (the message names
        the file, the variable, and the found and expected counts).
    """
    with open_nc(path) as nc:
        names, _ = header(nc, path)
        attrs = {k: nc.getncattr(k) for k in nc.ncattrs()}
    catalogue = file_catalogue({**attrs, "path": str(path)})
    validate_names(names, catalogue.all_variables if require is None else require, path,
                   catalogue)
    # h5netcdf (h5py's own HDF5) for the lazy dataset: mixing lazily opened
    # xarray/netcdf4 handles with direct netCDF4 reads of the same file
    # segfaults in netCDF4 1.7 (reproduced); netCDF3 files go through scipy.
    with open(path, "rb") as fh:
        engine = "h5netcdf" if fh.read(8) == b"\x89HDF\r\n\x1a\n" else "scipy"
    try:
        ds = xr.open_dataset(path, engine=engine, chunks={"sample": chunk_rows},
                             decode_times=False, mask_and_scale=False)
    except Exception:  # noqa: BLE001 - unusual files: let netCDF4 try
        try:
            ds = xr.open_dataset(path, engine="netcdf4", chunks={"sample": chunk_rows},
                                 decode_times=False, mask_and_scale=False)
        except Exception as err:  # noqa: BLE001 - report, never a library traceback
            raise DataError(f"xarray cannot open the file ({err})", path=path) from None
    ds = ds.assign_coords(var_names=("var_names" if "var_names" in ds["vars"].dims
                                     else ds["vars"].dims[1], names.astype(str)))
    ds.attrs["path"] = str(path)
    return ds


def column_index(ds: xr.Dataset | Sequence[str] | np.ndarray,
                 variables: Sequence[str], catalogue: Catalogue | None = None) -> np.ndarray:
    """Columns of ``vars`` holding ``variables``, by name, levels in file order.

    Parameters
    ----------
    ds : xr.Dataset or sequence of str
        A dataset from :func:`open_cbrain`, or its decoded ``var_names``.
    variables : sequence of str
        Catalogue variable names (``pcm.variables.INPUT_VARIABLES`` gives the
        94 network inputs, ``OUTPUT_VARIABLES`` the 65 outputs).

    Returns
    -------
    np.ndarray
        int64 column indices, one per feature in network order (file order of
        a variable's columns is its level order, top first).
    catalogue : Catalogue, optional
        Declares the levels of ``variables``; default: the dataset's recorded
        catalogue, or SPCAM for bare names.
    """
    if isinstance(ds, xr.Dataset):
        names = np.asarray(ds["var_names"].values).astype(str)
        path = ds.attrs.get("path")
        catalogue = catalogue or file_catalogue(dict(ds.attrs))
    else:
        names = np.asarray(ds).astype(str)
        path = None
    validate_names(names, variables, path, catalogue or SPCAM)
    return np.concatenate([np.flatnonzero(names == v) for v in variables]).astype(np.int64)


def column_labels(names: Sequence[str] | np.ndarray,
                  catalogue: Catalogue = SPCAM) -> list[str]:
    """Feature label of every column (``tbp-54.6``); unknown variables as ``name[k]``."""
    labels, seen = [], {}
    for name in names:
        k = seen.get(name, 0)
        seen[name] = k + 1
        var = catalogue.by_name.get(name)
        if var is None:
            labels.append(f"{name}[{k}]")
        elif var.three_d:
            labels.append(catalogue.feature_label(name, k) if k < var.n_levels
                          else f"{name}[{k}]")
        else:
            labels.append(catalogue.feature_label(name))
    return labels


def sample_grid(ds: xr.Dataset | str | os.PathLike) -> dict:
    """Grid of the samples of a CBRAIN file.

    Parameters
    ----------
    ds : xr.Dataset or path-like
        A dataset from :func:`open_cbrain`, or a path.

    Returns
    -------
    dict
        ``lat`` and ``lon`` (1-D, degrees), ``gw`` (Gaussian weights or None),
        ``n_time`` (int), ``from_file`` (bool: the grid was recorded by
        :func:`write_cbrain`; otherwise the full T42 grid is assumed, because
        per-sample coordinates of foreign, possibly shuffled files cannot be
        trusted). For an unstructured grid (files of
        :func:`~pcm.data.cbrain_write.create_step_file`, e.g. ClimSim) ``lat``
        and ``lon`` are per column, ``area`` holds the column areas and
        ``unstructured`` is True; samples are stacked (time, column).

    Raises
    ------
    DataError
        Grid unknown and the number of samples is not a multiple of 8192.
    """
    if isinstance(ds, xr.Dataset):
        attrs = dict(ds.attrs)
        path = attrs.get("path")
        n_samples = int(ds["vars"].shape[0])
        grid = {k: np.asarray(ds[k].values, dtype="f8") for k in ("lat", "lon", "gw")
                if k in ds.variables and ds[k].dims == (k if k != "gw" else "lat",)}
        grid.update({k: np.asarray(ds[k].values, dtype="f8") for k in ("lat", "lon", "area")
                     if k in ds.variables and ds[k].dims == ("ncol",)})
        return _grid(attrs, grid, n_samples, path)
    path = ds
    with open_nc(path) as nc:
        _, n_samples = header(nc, path)
        attrs = {k: nc.getncattr(k) for k in nc.ncattrs()}
        grid = {k: np.asarray(nc.variables[k][:], dtype="f8") for k in ("lat", "lon", "gw")
                if k in nc.variables
                and nc.variables[k].dimensions == (k if k != "gw" else "lat",)}
        grid.update({k: np.asarray(nc.variables[k][:], dtype="f8") for k in ("lat", "lon", "area")
                     if k in nc.variables and nc.variables[k].dimensions == ("ncol",)})
    return _grid(attrs, grid, n_samples, path)


def _grid(attrs: dict, grid: dict, n_samples: int, path) -> dict:
    if attrs.get("pcm_layout") == LAYOUT_VERSION and attrs.get("pcm_grid") == "unstructured":
        if not all(k in grid for k in ("lat", "lon", "area")):
            raise DataError("unstructured grid without lat, lon, area over ncol", path=path)
        n_col = grid["lat"].size
        n_time = int(attrs.get("pcm_n_time", 0))
        if n_time * n_col != n_samples:
            raise DataError(f"{n_samples} samples do not match the recorded grid ({n_time} "
                            f"steps x {n_col} columns)", path=path)
        return {"lat": grid["lat"], "lon": grid["lon"], "gw": None, "area": grid["area"],
                "n_time": n_time, "from_file": True, "unstructured": True}
    if attrs.get("pcm_layout") == LAYOUT_VERSION and "lat" in grid and "lon" in grid:
        lat, lon = grid["lat"], grid["lon"]
        n_time = int(attrs.get("pcm_n_time", n_samples // max(1, lat.size * lon.size)))
        if n_time * lat.size * lon.size != n_samples:
            raise DataError(f"{n_samples} samples do not match the recorded grid "
                            f"({n_time} steps x {lat.size} lat x {lon.size} lon)", path=path)
        return {"lat": lat, "lon": lon, "gw": grid.get("gw"), "n_time": n_time,
                "from_file": True}
    if n_samples % SAMPLES_PER_T42_STEP:
        raise DataError(f"{n_samples} samples is not a multiple of {SAMPLES_PER_T42_STEP} (one "
                        "T42 time step) and the file records no grid (lat, lon)", path=path)
    full = gaussian_grid()
    return {"lat": full["lat"], "lon": full["lon"], "gw": full["gw"],
            "n_time": n_samples // SAMPLES_PER_T42_STEP, "from_file": False}


def iter_rows(
    path: str | os.PathLike,
    columns: np.ndarray | None = None,
    *,
    start: int = 0,
    stop: int | None = None,
    step: int = 1,
    block: int = READ_ROWS,
) -> Iterator[tuple[int, np.ndarray]]:
    """Stream rows of ``vars`` in blocks, selecting ``columns``.

    Parameters
    ----------
    path : path-like
        CBRAIN file.
    columns : array of int, optional
        Columns to keep, in the order wanted (see :func:`column_index`).
        Default: all.
    start, stop, step : int
        Rows ``start:stop:step`` of the file.
    block : int
        Rows read per block (before striding).

    Yields
    ------
    (int, np.ndarray)
        Index of the first row yielded (in the strided selection, counted from
        0) and a float32 array ``[rows, len(columns)]``. Values equal to a
        ``_FillValue`` are returned as NaN.
    """
    with open_nc(path) as nc:
        _, n_samples = header(nc, path)
        var = nc.variables["vars"]
        fill = getattr(var, "_FillValue", None)
        stop = n_samples if stop is None else min(stop, n_samples)
        block = max(step, block - block % step)
        contiguous = None
        if columns is not None:
            columns = np.asarray(columns, dtype=np.int64)
            if columns.size and np.array_equal(columns, np.arange(columns[0],
                                                                  columns[0] + columns.size)):
                contiguous = slice(int(columns[0]), int(columns[0] + columns.size))
        # Small strides: read contiguous rows and subsample in memory (netCDF
        # strided reads are several times slower); large strides skip chunks.
        sub = step if step <= 4 * CHUNK_ROWS else 1
        hyper = step // sub
        out_row = 0
        for r0 in range(start, stop, block):
            r1 = min(stop, r0 + block)
            if contiguous is not None:
                rows = var[r0:r1:hyper, contiguous]
            else:
                rows = var[r0:r1:hyper, :]
                if columns is not None:
                    rows = rows[:, columns]
            if sub > 1:
                rows = rows[::sub]
            rows = np.asarray(rows, dtype=np.float32)
            if fill is not None and np.isfinite(fill):
                rows[rows == np.float32(fill)] = np.nan
            yield out_row, rows
            out_row += rows.shape[0]


# --------------------------------------------------------------------------- checking
def nonfinite_error(path, names_or_labels, counts, first_row=None) -> DataError:
    """DataError naming the variable and level of the first bad column.

    Parameters
    ----------
    path : path-like
        The file.
    names_or_labels : tuple of (array, list)
        Variable name and feature label of every counted column.
    counts : array of int
        Non-finite values per column.
    first_row : int, optional
        Sample of the first non-finite value.
    """
    names, labels = names_or_labels
    bad = np.flatnonzero(counts)
    j = int(bad[0])
    where = "" if first_row is None else f" (first in sample {first_row})"
    others = ""
    if bad.size > 1:
        more = sorted({labels[i] for i in bad[1:]})
        others = f"; also in {', '.join(more[:5])}{' ...' if len(more) > 5 else ''}"
    return DataError(f"({labels[j]}): {int(counts[j])} non-finite values{where}{others}",
                     path=path, variable=str(names[j]))
