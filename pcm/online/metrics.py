"""Metrics of coupled runs: blow-up time, drift against the truth, budgets, precipitation.

Pure functions of arrays (no I/O); :mod:`pcm.online.runner` applies them to the
trajectories of :mod:`pcm.online.coupling` and writes the results.
"""

from __future__ import annotations

import numpy as np

from pcm import variables as V

__all__ = ["first_failure", "blow_up_days", "drift_rmse", "total_rmse", "energy_residual",
           "moisture_residual", "precipitation_stats", "LAYER_DP", "WET_THRESHOLD"]

_GRAV, _CP, _LV, _RHO_WATER = 9.80616, 1004.64, 2.501e6, 1000.0
_NL = V.N_LEVELS
#: Pressure thickness (Pa) of each level for PS = 1000 hPa (interfaces at mid-points).
LAYER_DP = np.diff(np.concatenate([[0.0], 0.5 * (V.LEVELS_HPA[1:] + V.LEVELS_HPA[:-1]) * 100.0,
                                   [100000.0]]))
#: Precipitation (mm/day) above which a sample counts as wet.
WET_THRESHOLD = 1.0
_MM_DAY = 1000.0 * 86400.0  # m/s -> mm/day


def first_failure(ok: np.ndarray) -> np.ndarray:
    """Index of the first False along axis 0 of ``ok [time, ...]``, -1 where always True."""
    ok = np.asarray(ok, dtype=bool)
    bad = ~ok
    first = np.argmax(bad, axis=0)
    return np.where(bad.any(axis=0), first, -1)


def blow_up_days(blow_up_step: np.ndarray, dt_seconds: float) -> np.ndarray:
    """Days to the end of the step that blew up (``(step + 1) * dt``); NaN where none (-1)."""
    step = np.asarray(blow_up_step, dtype=float)
    return np.where(step >= 0, (step + 1.0) * dt_seconds / 86400.0, np.nan)


def drift_rmse(state: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """RMSE over columns of ``state - truth`` per time and level.

    Parameters
    ----------
    state, truth : numpy.ndarray
        ``[time, column, level]``; NaN columns (blown up) are left out.

    Returns
    -------
    numpy.ndarray
        ``[time, level]``; NaN where no column is left.
    """
    diff2 = (np.asarray(state, dtype=float) - np.asarray(truth, dtype=float)) ** 2
    with np.errstate(invalid="ignore"):
        count = np.sum(np.isfinite(diff2), axis=1)
        total = np.nansum(diff2, axis=1)
        return np.where(count > 0, np.sqrt(total / np.maximum(count, 1)), np.nan)


def total_rmse(state: np.ndarray, truth: np.ndarray) -> float:
    """RMSE of ``state - truth`` over every finite element (time, column, level)."""
    diff2 = (np.asarray(state, dtype=float) - np.asarray(truth, dtype=float)) ** 2
    finite = np.isfinite(diff2)
    return float(np.sqrt(diff2[finite].mean())) if finite.any() else float("nan")


def energy_residual(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Column energy budget residual (W/m2) of outputs ``y`` at inputs ``x`` (CBRAIN order).

    ``sum(c_p TPHYSTND dp / g) - (FSNT - FSNS - FLNT + FLNS + SHFLX + L_v rho_w PRECT)``:
    the heating the column receives minus what its boundary fluxes and precipitation
    supply.
    """
    heating = _CP / _GRAV * np.sum(y[..., :_NL] * LAYER_DP, axis=-1)
    fsnt, fsns, flnt, flns, prect = (y[..., 60 + i] for i in range(5))
    supply = fsnt - fsns - flnt + flns + x[..., 92] + _LV * _RHO_WATER * prect
    return heating - supply


def moisture_residual(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Column moisture budget residual (mm/day): ``sum(PHQ dp / g) - (E - P)``, with
    evaporation ``E = LHFLX / L_v`` and precipitation ``P = rho_w PRECT``."""
    moistening = np.sum(y[..., _NL:2 * _NL] * LAYER_DP, axis=-1) / _GRAV  # kg m-2 s-1
    supply = x[..., 93] / _LV - _RHO_WATER * y[..., 64]
    return (moistening - supply) * 86400.0


def precipitation_stats(prect: np.ndarray) -> dict[str, float]:
    """Mean, 99th percentile (mm/day) and wet share (above :data:`WET_THRESHOLD`) of the
    finite samples of ``prect`` (m/s)."""
    p = np.asarray(prect, dtype=float)
    p = p[np.isfinite(p)] * _MM_DAY
    if not p.size:
        return {"mean": float("nan"), "p99": float("nan"), "wet_share": float("nan")}
    return {"mean": float(p.mean()), "p99": float(np.percentile(p, 99.0)),
            "wet_share": float((p > WET_THRESHOLD).mean())}
