"""Coefficient of determination (R²) of the predicted tendencies and fluxes.

Definitions (those of the reference implementation, ``ModelDiagnostics`` of
Kühbacher et al. 2024, which follows CBRAIN-CAM):

* **Map** (per grid point, per output): ``R² = 1 - MSE / Var`` over time,
  with ``MSE = mean_t (pred - true)²`` and ``Var = mean_t (true - mean_t true)²``
  (population variance, physical units).
* **Global** (per output, variable ``r2``): ``1 - <MSE> / <Var_st>`` where
  ``<.>`` is the cos(latitude)-weighted area mean and ``Var_st`` the variance
  of the truth over time *and* space (the reference's ``hor_r2``:
  ``<mean_t true²> - <mean_t true>²``). This pooled score is what the paper's
  tables and profiles report. The area mean of the per-point map is kept as
  ``r2_pointwise_mean`` for comparison; it is lower where many points have
  little variance.
* **Cross section** (per output and latitude, ``r2_zonal``): the same pooled
  score over time and longitude (the reference's zonal-mean ``plot_double_yz``).

Points or outputs with zero variance give NaN, never an error (division by
zero is undefined, and "no skill" would be wrong too). Outputs that no network
predicts (NaN predictions) also give NaN.

Samples of a CBRAIN split are stacked ``(time, lat, lon)`` with longitude
fastest, so ``y[k]`` with ``k = (t * n_lat + j) * n_lon + i``.

On an unstructured grid (ClimSim's ncol columns; samples stacked ``(time,
column)``) the same definitions hold with the column areas as weights
instead of cos(latitude); the map is per column (``r2_map(output, ncol)``,
with ``column_lat`` and ``column_lon``), and the "zonal" score pools the
columns of latitude bands (:data:`LAT_BAND_EDGES`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from pcm.errors import DataError
from pcm.variables import SPCAM, Catalogue

__all__ = [
    "LAT_BAND_EDGES",
    "R2Accumulator",
    "r2_dataset",
    "output_coords",
    "profile",
    "cross_section",
    "variable_means",
]


def _area_weights(lat: np.ndarray) -> np.ndarray:
    """cos(latitude) weights, as in the reference (``lat_weights``)."""
    return np.cos(np.deg2rad(np.asarray(lat, dtype=np.float64)))


def _weighted_mean(values: np.ndarray, weights: np.ndarray, axis: int) -> np.ndarray:
    """Weighted mean along ``axis`` ignoring NaN; all-NaN slices give NaN."""
    values = np.moveaxis(values, axis, -1)
    w = np.broadcast_to(weights, values.shape)
    finite = np.isfinite(values)
    wsum = np.sum(np.where(finite, w, 0.0), axis=-1)
    total = np.sum(np.where(finite, values * w, 0.0), axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(wsum > 0, total / np.where(wsum > 0, wsum, 1.0), np.nan)


#: Latitude bands (degrees) of the zonal R² on an unstructured grid: 18 bands of 10°.
LAT_BAND_EDGES = np.linspace(-90.0, 90.0, 19)

#: Variance below ``(ZERO_VARIANCE_RTOL * rms)**2`` counts as zero: a standard
#: deviation under a millionth of the field's magnitude is float32 round-off.
ZERO_VARIANCE_RTOL = 1e-6


def _ratio_r2(mse: np.ndarray, var: np.ndarray, meansq: np.ndarray) -> np.ndarray:
    """``1 - mse / var``; NaN where ``var`` is (numerically) zero or either is NaN."""
    ok = np.isfinite(var) & (var > ZERO_VARIANCE_RTOL**2 * meansq) & (var > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, 1.0 - mse / np.where(ok, var, 1.0), np.nan)


class R2Accumulator:
    """Streaming sums for R² over time, per grid point and output.

    Feed whole time steps (``k * n_lat * n_lon`` rows) with :meth:`update`;
    read the scores with :meth:`result`. Sums are kept in float64 and shifted
    by the first time step's truth, so a constant field has exactly zero
    variance (and gives NaN, not a huge number).

    Parameters
    ----------
    n_lat, n_lon : int
        Grid size of one time step.
    n_outputs : int
        Number of outputs (columns of ``y``).
    """

    def __init__(self, n_lat: int, n_lon: int, n_outputs: int) -> None:
        self.n_lat, self.n_lon, self.n_outputs = int(n_lat), int(n_lon), int(n_outputs)
        shape = (self.n_lat, self.n_lon, self.n_outputs)
        self.n_time = 0
        self._shift: np.ndarray | None = None
        self._s1 = np.zeros(shape)
        self._s2 = np.zeros(shape)
        self._sse = np.zeros(shape)

    @property
    def points_per_step(self) -> int:
        """Samples per time step (``n_lat * n_lon``)."""
        return self.n_lat * self.n_lon

    def update(self, y_true: np.ndarray, y_pred: np.ndarray) -> None:
        """Add whole time steps of truth and prediction, ``[k * n_lat * n_lon, n_outputs]``."""
        y_true = np.asarray(y_true, dtype=np.float64)
        y_pred = np.asarray(y_pred, dtype=np.float64)
        expected = f"[k * {self.points_per_step}, {self.n_outputs}] (whole time steps)"
        if y_true.shape != y_pred.shape:
            raise DataError(f"truth {y_true.shape} and prediction {y_pred.shape} differ; "
                            f"expected both {expected}")
        if (y_true.ndim != 2 or y_true.shape[1] != self.n_outputs
                or y_true.shape[0] % self.points_per_step):
            raise DataError(f"got shape {y_true.shape}, expected {expected}")
        t = y_true.reshape(-1, self.n_lat, self.n_lon, self.n_outputs)
        p = y_pred.reshape(t.shape)
        if self._shift is None:
            self._shift = t[0].copy()
        d = t - self._shift
        self._s1 += d.sum(axis=0)
        self._s2 += np.square(d).sum(axis=0)
        self._sse += np.square(p - t).sum(axis=0)
        self.n_time += t.shape[0]

    def result(self, lat: Sequence[float], *, area: Sequence[float] | None = None,
               band: Sequence[int] | None = None, n_bands: int = 0) -> dict[str, np.ndarray]:
        """R² scores so far.

        Parameters
        ----------
        lat : array of float, ``(n_lat,)``
            Latitudes (degrees) for the cos-latitude area weights.
        area : array of float, ``(n_lat,)``, optional
            Unstructured grid (``n_lon = 1``, one "latitude" row per column): the
            column areas, used as weights instead of cos(latitude).
        band, n_bands : optional
            With ``area``: the latitude band of each column and the number of
            bands; ``r2_zonal`` is then ``(n_bands, out)``, pooled over the
            columns of each band.

        Returns
        -------
        dict
            ``r2_map (lat, lon, out)``, ``r2 (out)`` (pooled, reference),
            ``r2_pointwise_mean (out)``, ``r2_zonal (lat, out)``, ``mse_map``,
            ``var_map (lat, lon, out)``.
        """
        if self.n_time == 0:
            raise DataError("no time steps were given to the R² accumulator")
        lat = np.asarray(lat, dtype=np.float64)
        if lat.shape != (self.n_lat,):
            raise DataError(f"lat has shape {lat.shape}, expected ({self.n_lat},)")
        n = float(self.n_time)
        mean_d = self._s1 / n
        var = np.maximum(self._s2 / n - np.square(mean_d), 0.0)
        mse = self._sse / n
        mean = self._shift + mean_d
        meansq = var + np.square(mean)
        r2_map = _ratio_r2(mse, var, meansq)
        if area is not None:
            return self._result_columns(np.asarray(area, dtype=np.float64), mean, var, mse,
                                        meansq, r2_map, np.asarray(band, dtype=int),
                                        int(n_bands))

        w = _area_weights(lat)
        # Pooled over time and space (law of total variance, weighted).
        wl = w[:, None, None] * np.ones((1, self.n_lon, 1))
        wl = wl / wl.sum()
        g_mean = np.sum(wl * mean, axis=(0, 1))
        g_var = np.sum(wl * (var + np.square(mean - g_mean)), axis=(0, 1))
        g_mse = np.sum(wl * mse, axis=(0, 1))
        r2 = _ratio_r2(g_mse, g_var, np.sum(wl * meansq, axis=(0, 1)))
        # Pooled over time and longitude (zonal).
        z_mean = mean.mean(axis=1)
        z_var = (var + np.square(mean - z_mean[:, None, :])).mean(axis=1)
        r2_zonal = _ratio_r2(mse.mean(axis=1), z_var, meansq.mean(axis=1))
        # Area mean of the per-point map.
        w_points = np.repeat(w, self.n_lon)
        pointwise = _weighted_mean(r2_map.reshape(-1, self.n_outputs), w_points, axis=0)
        return {"r2_map": r2_map, "r2": r2, "r2_pointwise_mean": pointwise,
                "r2_zonal": r2_zonal, "mse_map": mse, "var_map": var}

    def _result_columns(self, area, mean, var, mse, meansq, r2_map, band, n_bands) -> dict:
        """:meth:`result` on an unstructured grid: area weights, latitude bands."""
        if self.n_lon != 1 or area.shape != (self.n_lat,) or band.shape != (self.n_lat,):
            raise DataError(f"an unstructured grid needs n_lon = 1 and one area and band per "
                            f"column ({self.n_lat}); got n_lon={self.n_lon}, area "
                            f"{area.shape}, band {band.shape}")

        def pooled(sel: np.ndarray) -> np.ndarray:
            w = area[sel] / area[sel].sum()
            m, v, e, q = (a[sel, 0] for a in (mean, var, mse, meansq))
            g_mean = w @ m
            g_var = w @ (v + np.square(m - g_mean))
            return _ratio_r2(w @ e, g_var, w @ q)

        r2 = pooled(np.ones(self.n_lat, dtype=bool))
        r2_zonal = np.full((n_bands, self.n_outputs), np.nan)
        for b in range(n_bands):
            if np.any(band == b):
                r2_zonal[b] = pooled(band == b)
        pointwise = _weighted_mean(r2_map[:, 0], area, axis=0)
        return {"r2_map": r2_map, "r2": r2, "r2_pointwise_mean": pointwise,
                "r2_zonal": r2_zonal, "mse_map": mse, "var_map": var}


def output_coords(labels: Sequence[str] | None = None,
                  catalogue: Catalogue = SPCAM) -> dict[str, tuple]:
    """Coordinates of the ``output`` dimension: label, variable name and level (hPa).

    2-D outputs get ``lev = NaN``. Labels and levels are the catalogue's.
    """
    labels = list(catalogue.output_labels() if labels is None else labels)
    lev = [np.nan if (k := catalogue.level_index_of_label(lab)) is None
           else float(catalogue.levels_hpa[k]) for lab in labels]
    variable = [catalogue.variable_of_label(lab) for lab in labels]
    return {"output": ("output", labels),
            "variable": ("output", variable),
            "lev": ("output", np.asarray(lev)),
            }


def r2_dataset(y_true: np.ndarray, y_pred: np.ndarray, lat: Sequence[float],
               lon: Sequence[float], *, labels: Sequence[str] | None = None,
               accumulator: R2Accumulator | None = None, area: Sequence[float] | None = None,
               catalogue: Catalogue = SPCAM) -> xr.Dataset:
    """R² of one model on one split, from stacked truth and prediction.

    Parameters
    ----------
    y_true, y_pred : array, ``[n_time * n_lat * n_lon, n_outputs]``
        Physical-unit truth and prediction, samples stacked (time, lat, lon),
        longitude fastest. Ignored (may be None) if ``accumulator`` is given.
    lat, lon : array of float
        Grid of one time step (degrees).
    labels : sequence of str, optional
        Output feature labels (default: all outputs of ``catalogue``).
    accumulator : R2Accumulator, optional
        Already-filled sums (for data streamed in chunks).
    area : array of float, optional
        Unstructured grid: ``lat``, ``lon`` and ``area`` are per column, samples
        are stacked (time, column); see the module docstring.
    catalogue : Catalogue
        Names the outputs (default SPCAM).

    Returns
    -------
    xr.Dataset
        ``r2(output)``, ``r2_pointwise_mean(output)``, ``r2_zonal(output, lat)``,
        ``r2_map(output, lat, lon)`` (unstructured: ``r2_map(output, ncol)``, with
        ``column_lat column_lon area (ncol)``, and ``lat`` the centres of the
        latitude bands), with ``variable`` and ``lev`` coordinates on ``output``.
    """
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    labels = list(catalogue.output_labels() if labels is None else labels)
    columns = area is not None
    if accumulator is None:
        accumulator = (R2Accumulator(len(lat), 1, len(labels)) if columns
                       else R2Accumulator(len(lat), len(lon), len(labels)))
        if y_true is None or y_pred is None:
            raise DataError("give y_true and y_pred, or a filled accumulator")
        # a few time steps at a time: float64 temporaries stay small
        rows = accumulator.points_per_step * max(1, 2**20 // (accumulator.points_per_step
                                                              * max(1, len(labels))))
        if len(y_true) % accumulator.points_per_step or np.shape(y_pred) != np.shape(y_true):
            accumulator.update(y_true, y_pred)  # raises the explanatory DataError
        for start in range(0, len(y_true), rows):
            accumulator.update(y_true[start:start + rows], y_pred[start:start + rows])
    if columns:
        edges = LAT_BAND_EDGES
        band = np.clip(np.digitize(lat, edges) - 1, 0, len(edges) - 2)
        res = accumulator.result(lat, area=area, band=band, n_bands=len(edges) - 1)
        coords = {**output_coords(labels, catalogue),
                  "lat": ("lat", (edges[:-1] + edges[1:]) / 2,
                          {"units": "degrees_north", "long_name": "centre of the latitude band"}),
                  "column_lat": ("ncol", lat, {"units": "degrees_north"}),
                  "column_lon": ("ncol", lon, {"units": "degrees_east"}),
                  "area": ("ncol", np.asarray(area, dtype=np.float64),
                           {"units": "1", "long_name": "column area (weights)"})}
        map_var = (("output", "ncol"), res["r2_map"][:, 0, :].T)
    else:
        res = accumulator.result(lat)
        coords = {**output_coords(labels, catalogue),
                  "lat": ("lat", lat, {"units": "degrees_north"}),
                  "lon": ("lon", lon, {"units": "degrees_east"})}
        map_var = (("output", "lat", "lon"), res["r2_map"].transpose(2, 0, 1))
    ds = xr.Dataset(
        {"r2": ("output", res["r2"]),
         "r2_pointwise_mean": ("output", res["r2_pointwise_mean"]),
         "r2_zonal": (("output", "lat"), res["r2_zonal"].T),
         "r2_map": map_var},
        coords=coords)
    ds["r2"].attrs = {"long_name": "R2 over time and space (1 - area-mean MSE / space-time "
                      "variance, cos-lat weights; reference definition)", "units": "1"}
    ds["r2_pointwise_mean"].attrs = {"long_name": "cos-lat weighted area mean of the per-grid-"
                                     "point R2 map (NaN points excluded)", "units": "1"}
    ds["r2_zonal"].attrs = {"long_name": "R2 over time and longitude at each latitude "
                            "(pressure-latitude cross sections)", "units": "1"}
    ds["r2_map"].attrs = {"long_name": "R2 over time at each grid point", "units": "1"}
    ds["lev"].attrs = {"long_name": "pressure of the output level at PS = 1000 hPa (NaN for 2-D)",
                       "units": "hPa"}
    ds.attrs["n_time"] = accumulator.n_time
    return ds


def _select_variable(da: xr.DataArray, variable: str) -> xr.DataArray:
    names = np.asarray(da["variable"].values).astype(str)
    levels = np.asarray(da["lev"].values, dtype=float)
    three_d = list(dict.fromkeys(n for n, p in zip(names, levels, strict=True)
                                 if np.isfinite(p)))
    name = variable if variable in three_d else variable.upper()
    if name not in three_d:
        raise ValueError(f"{variable!r} is not a 3-D output variable ({three_d})")
    sel = da.isel(output=np.flatnonzero(names == name))
    return sel.swap_dims(output="lev")


def profile(ds: xr.Dataset, variable: str) -> xr.DataArray:
    """Global R² of a 3-D output variable as a vertical profile, ``(..., lev)``."""
    return _select_variable(ds["r2"], variable)


def cross_section(ds: xr.Dataset, variable: str) -> xr.DataArray:
    """Pressure-latitude cross section of R² of a 3-D output variable, ``(..., lev, lat)``."""
    return _select_variable(ds["r2_zonal"], variable).transpose(..., "lev", "lat")


def variable_means(r2: xr.DataArray) -> xr.DataArray:
    """Mean R² per output variable (NaN outputs skipped; all NaN -> NaN), ``(..., var)``."""
    names = list(dict.fromkeys(str(v) for v in r2["variable"].values))  # catalogue order
    r2 = r2.transpose(..., "output")
    parts = []
    for name in names:
        sel = r2.isel(output=np.flatnonzero(r2["variable"].values == name))
        values = sel.values
        finite = np.isfinite(values)
        count = finite.sum(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(count > 0, np.where(finite, values, 0).sum(axis=-1)
                            / np.maximum(count, 1), np.nan)
        parts.append(mean)
    dims = [d for d in r2.dims if d != "output"]
    coords = {d: r2[d] for d in dims if d in r2.coords}
    return xr.DataArray(np.stack(parts, axis=-1) if parts else np.zeros(0),
                        dims=[*dims, "var"], coords={**coords, "var": names},
                        attrs={"long_name": "mean R2 over the outputs of each variable",
                               "units": "1"})
