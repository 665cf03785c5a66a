"""Reading and writing the CBRAIN layout of SPCAM data.

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
assumes the full T42 grid unless the file was written by :func:`write_cbrain`,
which records the grid vectors (``lat``, ``lon``, ``gw``), the time axis and
``pcm_n_time`` explicitly.

Nothing here loads a whole file: data are read in blocks of rows
(:func:`iter_rows`), the layout's natural access pattern.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path

import netCDF4
import numpy as np
import xarray as xr

from pcm.errors import DataError, did_you_mean
from pcm.io import atomic_path
from pcm.variables import (
    INPUT_VARIABLES,
    LEVELS_HPA,
    OUTPUT_VARIABLES,
    SPCAM,
    VARIABLES,
    Catalogue,
    catalogue_from_attrs,
    gaussian_grid,
)

__all__ = [
    "ALL_VARIABLES",
    "SAMPLES_PER_T42_STEP",
    "LAYOUT_VERSION",
    "write_cbrain",
    "CbrainWriter",
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
SAMPLES_PER_T42_STEP = 64 * 128

#: Written as the global attribute ``pcm_layout`` by :func:`write_cbrain`.
LAYOUT_VERSION = "cbrain-pcm-1"

#: Rows per HDF5 chunk of ``vars`` in files we write (about 2.6 MB for 159
#: columns): small enough for cheap random batch reads, large enough for fast
#: sequential reads (see benchmarks/data_throughput.py).
CHUNK_ROWS = 4096

#: Rows per block when streaming through a file.
READ_ROWS = 65536


# --------------------------------------------------------------------------- writing
def _field_columns(fields: xr.Dataset, name: str, dims: tuple[str, ...]) -> xr.DataArray:
    """One variable of ``fields`` as (time, lat, lon[, lev]) ready for stacking."""
    var = VARIABLES[name]
    if name not in fields.data_vars:
        raise DataError(f"missing in the fields to write (have {sorted(fields.data_vars)})",
                        variable=name)
    da = fields[name]
    want = ("time", "lev", "lat", "lon") if var.three_d else ("time", "lat", "lon")
    if set(da.dims) != set(want):
        raise DataError(f"dims {da.dims}, expected {want}", variable=name)
    if var.three_d and da.sizes["lev"] != var.n_levels:
        raise DataError(f"{da.sizes['lev']} levels, expected {var.n_levels}", variable=name)
    return da.transpose(*dims, *(("lev",) if var.three_d else ()))


def write_cbrain(
    fields: xr.Dataset,
    path: str | os.PathLike,
    *,
    variables: Sequence[str] | None = None,
    chunk_rows: int = CHUNK_ROWS,
    compress: bool = False,
) -> Path:
    """Write gridded fields into one CBRAIN-layout netCDF file.

    Parameters
    ----------
    fields : xr.Dataset
        Physical-unit fields: 3-D variables with dims (time, lev, lat, lon), 2-D
        variables with dims (time, lat, lon), as :func:`pcm.data.synthetic.generate`
        returns them. Coordinates ``lat``, ``lon`` (and ``time``) are recorded.
    path : path-like
        Destination; written atomically (a crash leaves no partial file).
    variables : sequence of str, optional
        Catalogue variables to write, in column order. Default: the 7 inputs
        then the 7 outputs (94 + 65 = 159 columns).
    chunk_rows : int
        Rows per HDF5 chunk of ``vars``.
    compress : bool
        zlib level 1 with byte shuffle. Off by default: it saves little on
        float32 fields and slows reads (benchmarks/data_throughput.py).

    Returns
    -------
    Path
        ``path``.

    Notes
    -----
    Besides ``vars`` and ``var_names`` the file holds ``lat(lat)``,
    ``lon(lon)``, ``gw(lat)`` (Gaussian weights, when the grid is a T42
    subset or ``fields`` has ``gw``), ``time(time)`` and ``lev(lev)``, and the
    global attributes ``pcm_layout`` and ``pcm_n_time``, so that
    :func:`sample_grid` can recover the grid of the samples.
    """
    names = tuple(ALL_VARIABLES if variables is None else variables)
    for name in names:
        if name not in VARIABLES:
            raise DataError(f"not a catalogue variable{_hint(name, VARIABLES)} "
                            f"(known: {', '.join(VARIABLES)})", variable=name)
    for dim in ("time", "lat", "lon"):
        if dim not in fields.sizes:
            raise DataError(f"fields lack the dimension {dim!r} (dims: {dict(fields.sizes)})")
    dims = ("time", "lat", "lon")
    columns = [_field_columns(fields, name, dims) for name in names]
    n_time, n_lat, n_lon = (fields.sizes[d] for d in dims)
    per_step = n_lat * n_lon
    n_samples = n_time * per_step
    var_names = [name for name in names for _ in range(VARIABLES[name].n_levels)]
    n_cols = len(var_names)

    lat = np.asarray(fields["lat"].values if "lat" in fields.coords else np.arange(n_lat),
                     dtype="f8")
    lon = np.asarray(fields["lon"].values if "lon" in fields.coords else np.arange(n_lon),
                     dtype="f8")
    time = np.asarray(fields["time"].values if "time" in fields.coords else np.arange(n_time),
                      dtype="f8")
    gw = fields["gw"].values if "gw" in fields.variables else _gw_of(lat)

    chunk = (max(1, min(chunk_rows, n_samples)), n_cols)
    with atomic_path(path) as tmp:
        with netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
            nc.pcm_layout = LAYOUT_VERSION
            nc.pcm_n_time = np.int64(n_time)
            nc.setncatts(SPCAM.attrs())
            nc.title = "SPCAM-like data in the CBRAIN layout"
            nc.comment = ("vars(sample, var_names): samples stacked (time, lat, lon), lon "
                          "fastest; var_names repeats each variable once per level, top first")
            nc.units_by_variable = "; ".join(f"{n}: {VARIABLES[n].units}" for n in names)
            for key, value in fields.attrs.items():  # provenance (seed, sst_shift, ...)
                if isinstance(value, str | int | float | np.integer | np.floating):
                    nc.setncattr(f"fields_{key}", value)
            nc.createDimension("sample", n_samples)
            nc.createDimension("var_names", n_cols)
            nc.createDimension("time", n_time)
            nc.createDimension("lat", n_lat)
            nc.createDimension("lon", n_lon)
            nc.createDimension("lev", len(LEVELS_HPA))
            vn = nc.createVariable("var_names", str, ("var_names",))
            vn.long_name = "variable of each column (repeated once per level, top first)"
            vn[:] = np.array(var_names, dtype=object)
            for key, values, dim, units, long_name in (
                ("lat", lat, "lat", "degrees_north", "latitude"),
                ("lon", lon, "lon", "degrees_east", "longitude"),
                ("gw", gw, "lat", "1", "Gaussian weights"),
                ("time", time, "time", "s", "time since the start of the simulation"),
                ("lev", LEVELS_HPA, "lev", "hPa", "mid-level pressure for PS = 1000 hPa"),
            ):
                if values is None:
                    continue
                v = nc.createVariable(key, "f8", (dim,))
                v.units = units
                v.long_name = long_name
                v[:] = np.asarray(values, dtype="f8")
            data = nc.createVariable(
                "vars", "f4", ("sample", "var_names"), chunksizes=chunk,
                zlib=compress, complevel=1 if compress else 4, shuffle=compress,
            )
            data.long_name = "stacked input and output variables"
            data.units = "per variable, see the global attribute units_by_variable"
            # Stream a few time steps at a time: memory stays ~ one block.
            steps_per_block = max(1, READ_ROWS // per_step)
            for t0 in range(0, n_time, steps_per_block):
                t1 = min(n_time, t0 + steps_per_block)
                block = np.empty((t1 - t0, n_lat, n_lon, n_cols), dtype="f4")
                col = 0
                for name, da in zip(names, columns, strict=True):
                    k = VARIABLES[name].n_levels
                    values = np.asarray(da.isel(time=slice(t0, t1)).values)
                    block[..., col:col + k] = values.reshape(t1 - t0, n_lat, n_lon, k)
                    col += k
                data[t0 * per_step:t1 * per_step, :] = block.reshape(-1, n_cols)
    return Path(path)


class CbrainWriter:
    """Write the CBRAIN layout of an unstructured grid one time step at a time.

    For sources whose samples are columns of an unstructured grid (ClimSim's
    ne4pg2): ``vars(sample, var_names)`` stacks (time, column), and the file
    records ``lat lon area (ncol)``, ``time (time)``, ``lev (lev)`` and the
    catalogue (:meth:`pcm.variables.Catalogue.attrs`), with the global
    attributes ``pcm_layout``, ``pcm_grid = "unstructured"`` and
    ``pcm_n_time``. Use it as a context manager: the file appears (atomically)
    only when the block ends without error and every step was written.

    Parameters
    ----------
    path : path-like
        Destination.
    catalogue : Catalogue
        Declares the columns: its inputs then its outputs.
    lat, lon, area : array ``[ncol]``
        Column centres (degrees) and areas (any unit; used as weights).
    time : array ``[n_time]``
        Time of each step (``time_units``).
    time_units : str
        CF units of ``time``.
    calendar : str, optional
        CF calendar of ``time`` (``"noleap"`` for E3SM).
    attrs : dict, optional
        Further global attributes (provenance).
    chunk_rows : int
        Rows per HDF5 chunk of ``vars``.
    """

    def __init__(self, path: str | os.PathLike, catalogue: Catalogue, *, lat, lon, area,
                 time, time_units: str, calendar: str | None = None,
                 attrs: dict | None = None, chunk_rows: int = CHUNK_ROWS) -> None:
        self.path = Path(path)
        self.catalogue = catalogue
        self.lat, self.lon, self.area = (np.asarray(a, dtype="f8") for a in (lat, lon, area))
        self.time = np.asarray(time, dtype="f8")
        self.time_units = time_units
        self.calendar = calendar
        self.attrs = dict(attrs or {})
        self.chunk_rows = chunk_rows
        self.var_names = catalogue.expand_var_names(catalogue.all_variables)
        self._written = np.zeros(self.time.size, dtype=bool)
        self._stack = None
        self._nc = None

    def __enter__(self) -> CbrainWriter:
        self._stack = ExitStack()
        tmp = self._stack.enter_context(atomic_path(self.path))
        nc = self._stack.enter_context(netCDF4.Dataset(tmp, "w", format="NETCDF4"))
        cat = self.catalogue
        n_col, n_time, n_cols = self.lat.size, self.time.size, len(self.var_names)
        nc.pcm_layout = LAYOUT_VERSION
        nc.pcm_grid = "unstructured"
        nc.pcm_n_time = np.int64(n_time)
        nc.setncatts(cat.attrs())
        nc.title = f"{cat.description} in the CBRAIN layout"
        nc.comment = ("vars(sample, var_names): samples stacked (time, ncol), ncol fastest; "
                      "var_names repeats each variable once per level, top first")
        nc.units_by_variable = "; ".join(f"{n}: {cat.by_name[n].units}"
                                         for n in cat.all_variables)
        nc.setncatts({k: v for k, v in self.attrs.items()
                      if isinstance(v, str | int | float | np.integer | np.floating)})
        nc.createDimension("sample", n_time * n_col)
        nc.createDimension("var_names", n_cols)
        nc.createDimension("time", n_time)
        nc.createDimension("ncol", n_col)
        nc.createDimension("lev", cat.n_levels)
        vn = nc.createVariable("var_names", str, ("var_names",))
        vn.long_name = "variable of each column (repeated once per level, top first)"
        vn[:] = np.array(self.var_names, dtype=object)
        for key, values, dim, units, long_name in (
            ("lat", self.lat, "ncol", "degrees_north", "latitude of the column centre"),
            ("lon", self.lon, "ncol", "degrees_east", "longitude of the column centre"),
            ("area", self.area, "ncol", "1", "area of the column (weights)"),
            ("time", self.time, "time", self.time_units, "time of the step"),
            ("lev", np.asarray(cat.levels_hpa), "lev", "hPa",
             "mid-level pressure at the reference surface pressure"),
        ):
            v = nc.createVariable(key, "f8", (dim,))
            v.units = units
            v.long_name = long_name
            v[:] = values
        if self.calendar:
            nc.variables["time"].calendar = self.calendar
        data = nc.createVariable("vars", "f4", ("sample", "var_names"),
                                 chunksizes=(max(1, min(self.chunk_rows, n_time * n_col)),
                                             n_cols))
        data.long_name = "stacked input and output variables"
        data.units = "per variable, see the global attribute units_by_variable"
        self._nc = nc
        return self

    def write_step(self, t: int, rows: np.ndarray) -> None:
        """Write time step ``t``: ``rows[ncol, n_columns]`` in ``var_names`` order."""
        n_col = self.lat.size
        rows = np.asarray(rows, dtype="f4")
        if rows.shape != (n_col, len(self.var_names)):
            raise DataError(f"step {t}: rows of shape {rows.shape}, expected "
                            f"{(n_col, len(self.var_names))}", path=self.path)
        self._nc.variables["vars"][t * n_col:(t + 1) * n_col, :] = rows
        self._written[t] = True

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and not self._written.all():
            missing = np.flatnonzero(~self._written)
            exc = DataError(f"{missing.size} time steps never written (first {missing[0]})",
                            path=self.path)
            self._stack.__exit__(type(exc), exc, None)
            raise exc
        self._stack.__exit__(exc_type, exc, tb)


def _gw_of(lat: np.ndarray) -> np.ndarray | None:
    """Gaussian weights of ``lat`` when it is a subset of the T42 latitudes, else None."""
    grid = gaussian_grid()
    idx = [int(np.argmin(np.abs(grid["lat"] - v))) for v in lat]
    if np.allclose(grid["lat"][idx], lat, atol=1e-6):
        return grid["gw"][idx]
    return None


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


def _hint(name: str, known) -> str:
    match = did_you_mean(name, known)
    return f" (did you mean {match!r}?)" if match else ""


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
            raise DataError(f"not a catalogue variable{_hint(name, catalogue.by_name)} "
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
        trusted). For an unstructured grid (files of :class:`CbrainWriter`,
        e.g. ClimSim) ``lat`` and ``lon`` are per column, ``area`` holds the
        column areas and ``unstructured`` is True; samples are stacked (time,
        column).

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
