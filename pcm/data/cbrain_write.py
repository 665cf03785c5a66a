"""Writing the CBRAIN layout: gridded fields (synthetic aquaplanet) or a stream of steps.

:func:`write_cbrain` writes gridded fields of the SPCAM catalogue in one go;
:class:`CbrainWriter` appends time steps of any catalogue one by one (the ClimSim
converter streams through it). Both record the grid, the time axis and the
catalogue in the file, so :func:`pcm.data.cbrain.sample_grid` never has to guess.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import netCDF4
import numpy as np
import xarray as xr

from pcm.data.cbrain import ALL_VARIABLES, CHUNK_ROWS, LAYOUT_VERSION, READ_ROWS
from pcm.errors import DataError, hint
from pcm.io import atomic_path
from pcm.variables import LEVELS_HPA, SPCAM, VARIABLES, Catalogue, gaussian_grid

__all__ = ["write_cbrain", "CbrainWriter"]


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
            raise DataError(f"not a catalogue variable{hint(name, VARIABLES)} "
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
    """Write the CBRAIN layout of an unstructured grid, a block of time steps at a time.

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
    chunk_cache_chunks : int, optional
        Size of the HDF5 chunk cache of ``vars``, in chunks (default: the netCDF
        library's, 64 MB). Steps written in order need one; a process that keeps
        several files open bounds its memory with it.
    """

    def __init__(self, path: str | os.PathLike, catalogue: Catalogue, *, lat, lon, area,
                 time, time_units: str, calendar: str | None = None,
                 attrs: dict | None = None, chunk_rows: int = CHUNK_ROWS,
                 chunk_cache_chunks: int | None = None) -> None:
        self.path = Path(path)
        self.catalogue = catalogue
        self.lat, self.lon, self.area = (np.asarray(a, dtype="f8") for a in (lat, lon, area))
        self.time = np.asarray(time, dtype="f8")
        self.time_units = time_units
        self.calendar = calendar
        self.attrs = dict(attrs or {})
        self.chunk_rows = chunk_rows
        self.chunk_cache_chunks = chunk_cache_chunks
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
        if self.chunk_cache_chunks is not None:
            rows = max(1, min(self.chunk_rows, n_time * n_col))
            data.set_var_chunk_cache(size=int(self.chunk_cache_chunks) * rows * n_cols * 4,
                                     nelems=max(1, int(self.chunk_cache_chunks)))
        self._nc = nc
        return self

    def write_steps(self, first: int, rows: np.ndarray) -> None:
        """Write consecutive time steps from ``first`` in one call:
        ``rows[k * ncol, n_columns]`` (``k`` steps, ``ncol`` fastest) in ``var_names`` order.
        One write of a whole HDF5 chunk instead of one per step."""
        n_col = self.lat.size
        rows = np.asarray(rows, dtype="f4")
        if rows.ndim != 2 or rows.shape[0] % n_col or rows.shape[1] != len(self.var_names):
            raise DataError(f"step {first}: rows of shape {rows.shape}, expected "
                            f"(k x {n_col}, {len(self.var_names)})", path=self.path)
        k = rows.shape[0] // n_col
        if first < 0 or first + k > self.time.size:
            raise DataError(f"steps {first}..{first + k - 1} outside the file's "
                            f"{self.time.size} time steps", path=self.path)
        self._nc.variables["vars"][first * n_col:(first + k) * n_col, :] = rows
        self._written[first:first + k] = True

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
