"""Time series of single grid columns from a CBRAIN-layout file.

Causal discovery needs, for each selected column, the consecutive time
steps of its 94 inputs and 65 outputs. CBRAIN files stack samples
``(time, lat, lon)`` with lon fastest, so time step ``t`` of column ``c`` is
sample ``t * n_columns + c``. The file must be unshuffled (the synthetic
train split is one continuous simulation); shuffled files keep unshuffled
coordinates and would silently give nonsense here.
"""

from __future__ import annotations

import os

import numpy as np

from pcm.baselines.causal.discovery import select_columns
from pcm.data.cbrain import column_index, iter_rows, open_cbrain, sample_grid
from pcm.errors import DataError
from pcm.params.presets import MIN_CAUSAL_STEPS
from pcm.variables import INPUT_VARIABLES, OUTPUT_VARIABLES, VARIABLES, gaussian_grid

__all__ = ["feature_indices", "gaussian_weights", "read_column_series", "lag1_autocorrelation",
           "series_problem", "causal_feasibility", "MIN_PERSISTENCE", "log_precipitation",
           "PRECT_LOG_OFFSET"]

#: Median lag-1 autocorrelation of the inputs below which a file is taken as shuffled.
MIN_PERSISTENCE = 0.1

#: Offset (m/s) added to PRECT before its logarithm, so that dry steps (PRECT = 0, common in
#: SPCAM) map to a finite value: log(1e-12 m/s), about 1e-4 mm/day, far below any
#: measurable rain. The synthetic PRECT is log-normal and always positive (smallest value
#: about 6e-12 m/s in the `ci` data), so there the offset barely matters.
PRECT_LOG_OFFSET = 1e-12


def feature_indices(var_names: np.ndarray, names: tuple[str, ...], *,
                    path: str | os.PathLike | None = None) -> np.ndarray:
    """Positions of the features of ``names`` in a CBRAIN ``var_names`` coordinate.

    Parameters
    ----------
    var_names : np.ndarray
        The file's ``var_names`` (one entry per feature, names repeated per level).
    names : tuple of str
        Variables in network order (e.g. ``INPUT_VARIABLES``).
    path : path-like, optional
        The file, for error messages.

    Returns
    -------
    np.ndarray
        int indices, in network order (top level first within a variable).
    """
    var_names = np.asarray([str(v).strip().upper() for v in np.asarray(var_names)])
    indices = []
    for name in names:
        where = np.flatnonzero(var_names == name)
        if len(where) != VARIABLES[name].n_levels:
            raise DataError(f"expected {VARIABLES[name].n_levels} entries of {name} in "
                            f"var_names, found {len(where)}", path=path, variable=name)
        indices.extend(where.tolist())
    return np.asarray(indices, dtype=int)


def gaussian_weights(lat: np.ndarray) -> np.ndarray:
    """Gaussian weight ``gw`` of each latitude of a (possibly thinned) T42 grid.

    Latitudes are matched to the T42 Gaussian nodes (within 0.01 degrees);
    latitudes of another grid fall back to ``cos(lat)`` (only relative weights
    matter for the aggregation).

    Parameters
    ----------
    lat : np.ndarray
        Latitudes in degrees north.

    Returns
    -------
    np.ndarray
        float weights, one per latitude.
    """
    lat = np.asarray(lat, dtype=np.float64)
    full = gaussian_grid()
    distance = np.abs(lat[:, None] - full["lat"][None, :])
    nearest = distance.argmin(axis=1)
    if np.all(distance[np.arange(len(lat)), nearest] < 0.01):
        return full["gw"][nearest]
    return np.cos(np.radians(lat))


def read_column_series(path: str | os.PathLike, columns: np.ndarray, *,
                       n_steps: int | None = None, block_steps: int = 16,
                       ) -> tuple[np.ndarray, np.ndarray, dict]:
    """Read the input and output time series of some grid columns.

    Parameters
    ----------
    path : path-like
        Unshuffled CBRAIN-layout file (e.g. the synthetic train split).
    columns : np.ndarray
        int ``[n, 2]`` of ``(lat index, lon index)`` (see
        :func:`pcm.baselines.causal.discovery.select_columns`).
    n_steps : int, optional
        Number of leading time steps to read; None: all.
    block_steps : int
        Time steps read per block (memory: ``block_steps * n_lat * n_lon * 159``
        float32).

    Returns
    -------
    x : np.ndarray
        float32 ``[time, n, 94]`` inputs in physical units.
    y : np.ndarray
        float32 ``[time, n, 65]`` outputs in physical units.
    grid : dict
        :func:`pcm.data.cbrain.sample_grid` of the file, ``gw`` always filled in.
    """
    with open_cbrain(path) as ds:
        grid = dict(sample_grid(ds))
        features = np.concatenate([column_index(ds, INPUT_VARIABLES),
                                   column_index(ds, OUTPUT_VARIABLES)])
    if grid.get("gw") is None:
        grid["gw"] = gaussian_weights(grid["lat"])
    n_lat, n_lon, n_time = len(grid["lat"]), len(grid["lon"]), int(grid["n_time"])
    columns = np.asarray(columns, dtype=int).reshape(-1, 2)
    if columns.size and (columns[:, 0].max() >= n_lat or columns[:, 1].max() >= n_lon
                         or columns.min() < 0):
        raise DataError(f"column indices outside the {n_lat} x {n_lon} grid", path=path)
    steps = n_time if n_steps is None else int(n_steps)
    if not 1 <= steps <= n_time:
        raise DataError(f"asked for {steps} time steps, the file holds {n_time}", path=path)
    flat = columns[:, 0] * n_lon + columns[:, 1]
    n_col = n_lat * n_lon
    n_in = sum(VARIABLES[v].n_levels for v in INPUT_VARIABLES)
    series = np.empty((steps, len(flat), len(features)), dtype=np.float32)
    for first, rows in iter_rows(path, features, stop=steps * n_col,
                                 block=max(1, block_steps) * n_col):
        t0 = first // n_col
        block = rows.reshape(-1, n_col, len(features))
        series[t0:t0 + block.shape[0]] = block[:, flat]
    if not np.all(np.isfinite(series)):
        raise DataError("non-finite values in the selected columns", path=path)
    return series[..., :n_in], series[..., n_in:], grid


def lag1_autocorrelation(x: np.ndarray) -> float:
    """Median lag-1 autocorrelation of the non-constant series of ``x [time, column, feature]``.

    Close to 1 for a continuous simulation at a 30-minute step, close to 0 for a
    shuffled file.
    """
    x = np.asarray(x, dtype=np.float64)
    a, b = x[:-1] - x[:-1].mean(axis=0), x[1:] - x[1:].mean(axis=0)
    denom = np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))
    ok = denom > 0
    if not ok.any():
        return float("nan")
    return float(np.median((a * b).sum(axis=0)[ok] / denom[ok]))


def series_problem(x: np.ndarray) -> str | None:
    """Why column time series ``x [time, column, feature]`` do not suit causal discovery.

    Returns
    -------
    str or None
        Too few time steps (< ``pcm.params.presets.MIN_CAUSAL_STEPS``) or no persistence
        from one step to the next (a shuffled file); None if the series are usable.
    """
    if x.shape[0] < MIN_CAUSAL_STEPS:
        return (f"only {x.shape[0]} time steps per column; causal discovery needs a "
                f"continuous simulation of at least {MIN_CAUSAL_STEPS} (better hundreds of) "
                "steps")
    persistence = lag1_autocorrelation(x)
    if persistence < MIN_PERSISTENCE:
        return ("the inputs of the selected columns barely persist from one time step to the "
                f"next (median lag-1 autocorrelation {persistence:.2f}); the file looks "
                "shuffled. Causal discovery needs an unshuffled, continuous simulation")
    return None


def causal_feasibility(path: str | os.PathLike, *, n_steps: int = 24, n_columns: int = 8,
                       seed: int = 0) -> str | None:
    """Whether a CBRAIN file holds time series that causal discovery can use (cheap check).

    Reads the first ``n_steps`` time steps of ``n_columns`` columns (the test
    of :func:`pcm.baselines.causal.run_discovery`, on a sample), so that a run
    can skip the causal baseline before any training.

    Returns
    -------
    str or None
        The problem (:func:`series_problem`), or None if the file is usable.
    """
    with open_cbrain(path) as ds:
        grid = sample_grid(ds)
    n_time = int(grid["n_time"])
    if n_time < MIN_CAUSAL_STEPS:
        return series_problem(np.zeros((n_time, 1, 1)))
    columns = select_columns(len(grid["lat"]), len(grid["lon"]), n_columns, seed=seed)
    x, _, _ = read_column_series(path, columns, n_steps=min(n_steps, n_time))
    return series_problem(x)


def log_precipitation(y: np.ndarray) -> np.ndarray:
    """Outputs with PRECT replaced by ``log(max(PRECT, 0) + PRECT_LOG_OFFSET)`` (a copy).

    The reference log-transforms precipitation before the partial-correlation
    tests: PRECT is skewed (mostly near zero, rare heavy rain), and a linear test
    on the raw values is dominated by the few heavy events.

    Parameters
    ----------
    y : np.ndarray
        Outputs ``[..., 65]`` in physical units (PRECT in m/s, the last output).

    Returns
    -------
    np.ndarray
        Same shape and dtype.
    """
    y = np.array(y, copy=True)
    n_out = sum(VARIABLES[v].n_levels for v in OUTPUT_VARIABLES)
    if y.shape[-1] != n_out:
        raise DataError(f"expected {n_out} outputs on the last axis, got {y.shape[-1]}",
                        variable="PRECT")
    k = n_out - VARIABLES["PRECT"].n_levels
    y[..., k] = np.log(np.maximum(y[..., k], 0.0) + PRECT_LOG_OFFSET)
    return y
