"""Writing the CBRAIN layout: gridded fields (synthetic aquaplanet) or a stream of steps.

:func:`write_cbrain` writes gridded fields of the SPCAM catalogue in one go;
:func:`create_step_file` makes a file of any catalogue on an unstructured grid
whose time steps are written in place afterwards, by any process, in any order
(:class:`StepFile`; the ClimSim converter's workers write through it). Both
record the grid, the time axis and the catalogue in the file, so
:func:`pcm.data.cbrain.sample_grid` never has to guess.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import netCDF4
import numpy as np
import xarray as xr

from pcm.data.cbrain import ALL_VARIABLES, CHUNK_ROWS, LAYOUT_VERSION, READ_ROWS
from pcm.errors import DataError, hint
from pcm.io import atomic_path
from pcm.variables import LEVELS_HPA, SPCAM, VARIABLES, Catalogue, gaussian_grid

__all__ = ["write_cbrain", "StepFile", "create_step_file"]


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


def _write_axes(nc, dims: dict[str, int], var_names: Sequence[str],
                coords: Sequence[tuple]) -> None:
    """The dimensions, ``var_names`` and the float64 coordinates ``(name, values, dim,
    units, long_name)`` (values None: left out) of a CBRAIN-layout file."""
    for name, size in dims.items():
        nc.createDimension(name, size)
    vn = nc.createVariable("var_names", str, ("var_names",))
    vn.long_name = "variable of each column (repeated once per level, top first)"
    vn[:] = np.array(var_names, dtype=object)
    for key, values, dim, units, long_name in coords:
        if values is None:
            continue
        v = nc.createVariable(key, "f8", (dim,))
        v.units = units
        v.long_name = long_name
        v[:] = np.asarray(values, dtype="f8")


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
            _write_axes(nc, {"sample": n_samples, "var_names": n_cols, "time": n_time,
                             "lat": n_lat, "lon": n_lon, "lev": len(LEVELS_HPA)}, var_names, (
                ("lat", lat, "lat", "degrees_north", "latitude"),
                ("lon", lon, "lon", "degrees_east", "longitude"),
                ("gw", gw, "lat", "1", "Gaussian weights"),
                ("time", time, "time", "s", "time since the start of the simulation"),
                ("lev", LEVELS_HPA, "lev", "hPa", "mid-level pressure for PS = 1000 hPa"),
            ))
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


@dataclass(frozen=True)
class StepFile:
    """A CBRAIN-layout file of an unstructured grid whose rows are written in place.

    Made by :func:`create_step_file`. ``vars`` is stored contiguously
    (little-endian float32, no fill value), so the rows of time steps ``first ...
    first + k - 1`` are bytes at a fixed offset of the file: any process may write
    any steps, in any order, while others write other steps, and the file's bytes
    do not depend on that order. Nothing else of the file changes after it is
    made. A plain dataclass, so it travels to dask workers.

    Attributes
    ----------
    path : Path
        The file.
    offset : int
        Byte offset of ``vars``'s data in the file.
    n_col : int
        Columns per time step.
    n_vars : int
        Columns of ``vars`` (``var_names``).
    n_time : int
        Time steps.
    """

    path: Path
    offset: int
    n_col: int
    n_vars: int
    n_time: int

    def write_steps(self, first: int, rows: np.ndarray) -> None:
        """Write consecutive time steps from ``first``: ``rows[k * ncol, n_vars]`` (``k``
        steps, ``ncol`` fastest) in ``var_names`` order, with one ``pwrite``.

        Raises
        ------
        DataError
            ``rows`` of the wrong shape, or steps outside the file.
        """
        rows = np.ascontiguousarray(rows, dtype="<f4")
        if rows.ndim != 2 or rows.shape[0] % self.n_col or rows.shape[1] != self.n_vars:
            raise DataError(f"step {first}: rows of shape {rows.shape}, expected "
                            f"(k x {self.n_col}, {self.n_vars})", path=self.path)
        k = rows.shape[0] // self.n_col
        if first < 0 or first + k > self.n_time:
            raise DataError(f"steps {first}..{first + k - 1} outside the file's "
                            f"{self.n_time} time steps", path=self.path)
        data = rows.data.cast("B")
        at = self.offset + first * self.n_col * self.n_vars * 4
        fd = os.open(self.path, os.O_WRONLY)
        try:
            while data:  # pwrite may write less than asked (above 2 GiB on Linux)
                done = os.pwrite(fd, data, at)
                data, at = data[done:], at + done
        finally:
            os.close(fd)


def create_step_file(path: str | os.PathLike, catalogue: Catalogue, *, lat, lon, area,
                     time, time_units: str, calendar: str | None = None,
                     attrs: dict | None = None, chunk_rows: int = CHUNK_ROWS) -> StepFile:
    """Make a CBRAIN-layout file of an unstructured grid whose steps are written later.

    For sources whose samples are columns of an unstructured grid (ClimSim's
    ne4pg2): ``vars(sample, var_names)`` stacks (time, column), and the file
    records ``lat lon area (ncol)``, ``time (time)``, ``lev (lev)`` and the
    catalogue (:meth:`pcm.variables.Catalogue.attrs`), with the global
    attributes ``pcm_layout``, ``pcm_grid = "unstructured"``, ``pcm_n_time`` and
    ``pcm_chunk_rows`` (the rows readers take at a time). The file appears
    (atomically) with its storage reserved; its rows are written with
    :meth:`StepFile.write_steps`, and the caller tracks which steps are written.

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
        Rows readers take at a time (``pcm_chunk_rows``; the storage is contiguous).

    Returns
    -------
    StepFile
        Where each step's rows go.
    """
    lat, lon, area, time = (np.asarray(a, dtype="f8") for a in (lat, lon, area, time))
    var_names = catalogue.expand_var_names(catalogue.all_variables)
    n_col, n_time, n_vars = lat.size, time.size, len(var_names)
    with atomic_path(path) as tmp:
        with netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
            nc.set_fill_off()  # every row is written later: no fill pass over the data
            nc.pcm_layout = LAYOUT_VERSION
            nc.pcm_grid = "unstructured"
            nc.pcm_n_time = np.int64(n_time)
            nc.pcm_chunk_rows = np.int64(chunk_rows)
            nc.setncatts(catalogue.attrs())
            nc.title = f"{catalogue.description} in the CBRAIN layout"
            nc.comment = ("vars(sample, var_names): samples stacked (time, ncol), ncol "
                          "fastest; var_names repeats each variable once per level, top first")
            nc.units_by_variable = "; ".join(f"{n}: {catalogue.by_name[n].units}"
                                             for n in catalogue.all_variables)
            nc.setncatts({k: v for k, v in (attrs or {}).items()
                          if isinstance(v, str | int | float | np.integer | np.floating)})
            _write_axes(nc, {"sample": n_time * n_col, "var_names": n_vars, "time": n_time,
                             "ncol": n_col, "lev": catalogue.n_levels}, var_names, (
                ("lat", lat, "ncol", "degrees_north", "latitude of the column centre"),
                ("lon", lon, "ncol", "degrees_east", "longitude of the column centre"),
                ("area", area, "ncol", "1", "area of the column (weights)"),
                ("time", time, "time", time_units, "time of the step"),
                ("lev", catalogue.levels_hpa, "lev", "hPa",
                 "mid-level pressure at the reference surface pressure"),
            ))
            if calendar:
                nc.variables["time"].calendar = calendar
            data = nc.createVariable("vars", "f4", ("sample", "var_names"), contiguous=True,
                                     endian="little")
            data.long_name = "stacked input and output variables"
            data.units = "per variable, see the global attribute units_by_variable"
            data[-1:, :] = np.zeros((1, n_vars), dtype="f4")  # reserves the storage
        with h5py.File(tmp, "r") as h5:
            offset = h5["vars"].id.get_offset()
    if offset is None:
        raise DataError("no storage reserved for 'vars'", path=path)
    return StepFile(Path(path), int(offset), n_col, n_vars, n_time)


def _gw_of(lat: np.ndarray) -> np.ndarray | None:
    """Gaussian weights of ``lat`` when it is a subset of the T42 latitudes, else None."""
    grid = gaussian_grid()
    idx = [int(np.argmin(np.abs(grid["lat"] - v))) for v in lat]
    if np.allclose(grid["lat"][idx], lat, atol=1e-6):
        return grid["gw"][idx]
    return None
