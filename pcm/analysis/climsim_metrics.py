"""ClimSim's own scores: R² per column and level over time, in energy units, averaged.

ClimSim (Yu et al. 2023; ``climsim_utils/data_utils.py`` of leap-stc/ClimSim,
``output_weighting``, ``calc_R2`` and ``create_metrics_df``) scores an emulator so:

1. every target is converted to W/m²: the tendencies are weighted by the mass of
   their layer, ``ptend_t x cp x dp/g`` and ``ptend_q0001 x Lv x dp/g``, with
   ``dp`` the pressure thickness of the layer of each sample (from its surface
   pressure and the hybrid interface coefficients ``hyai hybi``); precipitation
   rates (m/s) are multiplied by ``Lv x rho_water``; the radiative fluxes are
   W/m² already;
2. R² is computed for each column and level over time, ``1 - sum_t (pred -
   true)² / sum_t (true - mean_t true)²``;
3. it is averaged over the columns (a plain mean), then over the levels of a
   variable (a plain mean).

(ClimSim also multiplies by the relative column area, which cancels in an R²
computed per column.) Where the truth of a column and level hardly varies over
time the ratio is meaningless and the average over levels explodes; ClimSim's
published table therefore shows "--" for ``dq/dt`` and PRECSC. Here such
entries are *left out and counted*: an entry whose truth has a standard deviation
over time below :data:`NEGLIGIBLE_STD_WM2` (W/m²) gets NaN, the averages skip it,
and every result says how many entries of how many were left out, so a figure is
always labelled with what it covers. ClimSim's own plain average over every entry
is kept beside it (``r2_all``) for the variables where nothing is left out.

Pure functions on arrays; the pipeline feeds them test-split truth and
predictions in physical units (samples stacked (time, column)).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

__all__ = [
    "GRAVITY",
    "CP_AIR",
    "LATENT_HEAT_VAPORIZATION",
    "RHO_WATER",
    "NEGLIGIBLE_STD_WM2",
    "ENERGY_FACTOR",
    "layer_mass",
    "to_energy_units",
    "r2_per_column_level",
    "climsim_scores",
]

#: Physical constants of E3SM (``shr_const_mod.F90``), as ClimSim's scoring uses them.
GRAVITY = 9.80616  # m/s²
CP_AIR = 1.00464e3  # J/kg/K
LATENT_HEAT_VAPORIZATION = 2.501e6  # J/kg
RHO_WATER = 1.0e3  # kg/m³

#: Factor of each ClimSim target to W/m² (tendencies: per kg/m² of layer mass, times dp/g).
ENERGY_FACTOR = {
    "ptend_t": CP_AIR,
    "ptend_q0001": LATENT_HEAT_VAPORIZATION,
    "cam_out_NETSW": 1.0,
    "cam_out_FLWDS": 1.0,
    "cam_out_PRECSC": LATENT_HEAT_VAPORIZATION * RHO_WATER,
    "cam_out_PRECC": LATENT_HEAT_VAPORIZATION * RHO_WATER,
    "cam_out_SOLS": 1.0,
    "cam_out_SOLL": 1.0,
    "cam_out_SOLSD": 1.0,
    "cam_out_SOLLD": 1.0,
}

#: An entry (column, level) whose truth varies over time by less than this standard
#: deviation (W/m²) has no variance to explain: its R² is left out (NaN) and counted.
NEGLIGIBLE_STD_WM2 = 1e-3


def layer_mass(ps: np.ndarray, hyai: Sequence[float], hybi: Sequence[float],
               p0: float = 1e5) -> np.ndarray:
    """Mass per area of each layer, ``dp / g`` (kg/m²), for surface pressures ``ps``.

    Parameters
    ----------
    ps : array ``[n]``
        Surface pressure of each sample (Pa).
    hyai, hybi : array ``[lev + 1]``
        Hybrid coefficients of the layer interfaces, top first:
        ``p_interface = hyai * p0 + hybi * ps``.
    p0 : float
        Reference pressure (Pa).

    Returns
    -------
    np.ndarray
        float64 ``[n, lev]``.

    Examples
    --------
    >>> layer_mass(np.array([1e5]), [0.0, 0.0], [0.0, 1.0]) * GRAVITY
    array([[100000.]])
    """
    ps = np.asarray(ps, dtype=np.float64).reshape(-1, 1)
    p_int = (np.asarray(hyai, dtype=np.float64) * p0)[None, :] \
        + np.asarray(hybi, dtype=np.float64)[None, :] * ps
    return np.diff(p_int, axis=1) / GRAVITY


def to_energy_units(y: np.ndarray, variables: Sequence[str], mass: np.ndarray | None = None
                    ) -> np.ndarray:
    """Targets in physical units -> W/m², ClimSim's way.

    Parameters
    ----------
    y : array ``[n, n_outputs]``
        Physical units (K/s, kg/kg/s, W/m², m/s).
    variables : sequence of str
        Variable of each output column (``ptend_t`` repeated once per level, ...).
    mass : array ``[n, lev]``, optional
        :func:`layer_mass` of each sample; needed when a tendency is present.

    Returns
    -------
    np.ndarray
        float64 ``[n, n_outputs]`` in W/m².

    Raises
    ------
    ValueError
        An unknown variable, or a tendency without ``mass``, or levels that do
        not match ``mass``.
    """
    y = np.asarray(y, dtype=np.float64)
    variables = list(variables)
    if y.ndim != 2 or y.shape[1] != len(variables):
        raise ValueError(f"y has shape {y.shape}, expected [n, {len(variables)}]")
    out = np.empty_like(y)
    for name in dict.fromkeys(variables):
        if name not in ENERGY_FACTOR:
            raise ValueError(f"no energy conversion for {name!r} (known: "
                             f"{', '.join(ENERGY_FACTOR)})")
        idx = np.flatnonzero(np.array(variables) == name)
        factor = ENERGY_FACTOR[name]
        if name.startswith("ptend_"):
            if mass is None or np.shape(mass) != (y.shape[0], idx.size):
                raise ValueError(f"{name}: layer masses [n, {idx.size}] needed, got "
                                 f"{None if mass is None else np.shape(mass)}")
            out[:, idx] = y[:, idx] * factor * mass
        else:
            out[:, idx] = y[:, idx] * factor
    return out


def r2_per_column_level(truth: np.ndarray, pred: np.ndarray, n_col: int, *,
                        min_std: float = NEGLIGIBLE_STD_WM2) -> np.ndarray:
    """R² over time of every column and output, ClimSim's ``calc_R2`` before averaging.

    Parameters
    ----------
    truth, pred : array ``[n_time * n_col, n_outputs]``
        Energy units, samples stacked (time, column).
    n_col : int
        Columns per time step.
    min_std : float
        Entries whose truth has a smaller standard deviation over time get NaN.

    Returns
    -------
    np.ndarray
        float64 ``[n_col, n_outputs]``; NaN where the truth has negligible variance.
    """
    truth = np.asarray(truth, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    if truth.shape != pred.shape or truth.ndim != 2 or truth.shape[0] % n_col:
        raise ValueError(f"truth {truth.shape} and pred {pred.shape} must be equal "
                         f"[n_time * {n_col}, n_outputs]")
    t = truth.reshape(-1, n_col, truth.shape[1])
    p = pred.reshape(t.shape)
    sse = ((p - t) ** 2).sum(axis=0)
    sst = ((t - t.mean(axis=0)) ** 2).sum(axis=0)
    ok = sst > (min_std**2) * t.shape[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, 1.0 - sse / np.where(ok, sst, 1.0), np.nan)


def climsim_scores(truth: np.ndarray, pred: np.ndarray, variables: Sequence[str], n_col: int,
                   *, min_std: float = NEGLIGIBLE_STD_WM2) -> xr.Dataset:
    """ClimSim's R² per variable, with the entries of negligible variance left out.

    Parameters
    ----------
    truth, pred : array ``[n_time * n_col, n_outputs]``
        W/m² (:func:`to_energy_units`), samples stacked (time, column).
    variables : sequence of str
        Variable of each output column.
    n_col : int
        Columns per time step.
    min_std : float
        See :func:`r2_per_column_level`.

    Returns
    -------
    xr.Dataset
        Over ``var``: ``r2`` (mean over columns, then over levels, of the entries
        with variance), ``r2_all`` (ClimSim's plain mean over every entry; NaN when
        an entry was left out, as ClimSim's table shows "--"), ``n_left_out`` and
        ``n_entries`` (column-level entries); over ``output``: ``r2_level`` (mean
        over the columns with variance) and ``n_columns_scored``; attributes
        ``n_time``, ``n_col``, ``n_samples``, ``min_std_wm2``.
    """
    variables = [str(v) for v in variables]
    per = r2_per_column_level(truth, pred, n_col, min_std=min_std)
    finite = np.isfinite(per)
    n_scored = finite.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        level = np.where(n_scored > 0, np.where(finite, per, 0.0).sum(axis=0)
                         / np.maximum(n_scored, 1), np.nan)
    names = list(dict.fromkeys(variables))
    r2, r2_all, left, entries = [], [], [], []
    for name in names:
        idx = np.flatnonzero(np.array(variables) == name)
        lev = level[idx]
        r2.append(float(np.nanmean(lev)) if np.isfinite(lev).any() else np.nan)
        n_left = int((~finite[:, idx]).sum())
        left.append(n_left)
        entries.append(int(finite[:, idx].size))
        r2_all.append(float(per[:, idx].mean(axis=0).mean()) if n_left == 0 else np.nan)
    n_time = truth.shape[0] // n_col
    return xr.Dataset(
        {"r2": ("var", np.array(r2), {"long_name": "R2 per column and level over time in "
                                      "W/m2, mean over columns then levels (entries of "
                                      "negligible variance left out)", "units": "1"}),
         "r2_all": ("var", np.array(r2_all), {"long_name": "ClimSim's plain mean over every "
                                              "column-level entry (NaN: some entry has no "
                                              "variance)", "units": "1"}),
         "n_left_out": ("var", np.array(left), {"long_name": "column-level entries of "
                                                "negligible variance, left out", "units": "1"}),
         "n_entries": ("var", np.array(entries), {"long_name": "column-level entries",
                                                  "units": "1"}),
         "r2_level": ("output", level, {"long_name": "R2 over time, mean over the columns "
                                        "with variance", "units": "1"}),
         "n_columns_scored": ("output", n_scored, {"long_name": "columns with variance",
                                                   "units": "1"})},
        coords={"var": names, "variable": ("output", variables)},
        attrs={"n_time": n_time, "n_col": int(n_col), "n_samples": int(truth.shape[0]),
               "min_std_wm2": float(min_std),
               "definition": "ClimSim (Yu et al. 2023), climsim_utils/data_utils.py: "
                             "output_weighting, calc_R2, create_metrics_df"})
