"""Inputs of the synthetic aquaplanet: a large-scale state from latent AR(1) processes."""

from __future__ import annotations

import numpy as np

from pcm import variables as V
from pcm.data.synthetic._base import (
    C_EXCHANGE,
    CP,
    DT,
    I_LHFLX,
    I_PS,
    I_SHFLX,
    I_SOLIN,
    LV,
    N_IN,
    NL,
    P_HPA,
    RHO_AIR,
    S0,
    _profile,
    _sigmoid,
    _softplus,
    saturation_specific_humidity,
)

#: Legendre coefficients (in sin(lat)) of the zonal- and time-mean surface pressure (Pa)
#: of the 48 real time steps of ``PS`` in ``ancil_spcam.nc`` (SPCAM aquaplanet, reference
#: implementation, MIT licence); the fit is within 115 Pa of the real zonal mean.
PS_LEGENDRE = np.array([
    98482.0, -760.0, -1531.0, -2027.0, -1081.0, -700.0, 1347.0, 1378.0, 86.0, 324.0, -14.0,
    -338.0, 209.0,
])

#: Latent processes: name, e-folding time (h).
LATENTS = (
    ("moisture", 6.0),  # low-level moisture / convergence
    ("deep_t", 24.0),  # deep tropospheric temperature
    ("bl_t", 12.0),  # boundary-layer temperature / stability
    ("upper", 36.0),  # upper-level temperature / moisture
    ("synoptic", 48.0),  # surface pressure / synoptic wind
    ("wind", 8.0),  # surface wind speed for the fluxes
)
N_LATENT = len(LATENTS)
LEVEL_NOISE_HOURS = 3.0  # e-folding time of the per-level noise (T, q, V)
SURFACE_NOISE_HOURS = 3.0  # e-folding time of the PS, SHFLX, LHFLX noise
#: State vector: latents, T noise (30), q noise (30), V noise (30), PS, SHFLX, LHFLX noise.
N_STATE = N_LATENT + 3 * NL + 3
_TAU_HOURS = np.concatenate([
    [tau for _, tau in LATENTS], np.full(3 * NL, LEVEL_NOISE_HOURS),
    np.full(3, SURFACE_NOISE_HOURS),
])
PHI = np.exp(-DT / (_TAU_HOURS * 3600.0))

# Vertical loadings (top -> bottom).
_LOW = np.exp(-(((1000.0 - P_HPA) / 250.0) ** 2))  # lower troposphere
_BL = np.exp(-(((1000.0 - P_HPA) / 120.0) ** 2))  # boundary layer
_UPPER_TROP = _profile(350.0, 0.8)
_STRAT = _sigmoid((np.log(150.0) - np.log(P_HPA)) / 0.3)
_HUMID_TROP = _sigmoid((np.log(P_HPA) - np.log(120.0)) / 0.12)  # 0 aloft, 1 below ~150 hPa
_V_SHAPE = _LOW - 0.6 * _profile(250.0, 0.5)
_ZERO = np.zeros(NL)
#: Loadings (latent x level) of temperature (K, times a latitude amplitude), the logit of
#: relative humidity and the meridional wind (m/s); rows in LATENTS order.
LOAD_T = np.stack([_ZERO, 1.2 * _UPPER_TROP, 1.0 * _BL, 3.0 * _STRAT, _ZERO, _ZERO])
LOAD_RH = np.stack([0.9 * _LOW, 0.3 * _UPPER_TROP, _ZERO, 0.6 * (1.0 - _LOW), _ZERO, _ZERO])
# (the synoptic wind blows with low surface pressure, hence with storm-track rain)
LOAD_V = np.stack([5.0 * _V_SHAPE, _ZERO, _ZERO, _ZERO, -1.0 - 4.0 * _UPPER_TROP, _ZERO])
#: Amplitude of the moisture/convergence latent: BASE + EXTRA * exp(-(lat / 20 deg)**2).
MOIST_AMP_BASE = 0.5
MOIST_AMP_EXTRA = 1.3
#: Storm-track humidity: low surface pressure (synoptic latent) moistens the lower-mid
#: troposphere around 50 degrees by up to STORM_RH (logit of relative humidity).
STORM_RH = 2.0
_STORM_SHAPE = _profile(700.0, 0.5)
#: Levels (above 300 hPa) that carry the stratospheric water-vapour background.
K_DRY = 14


def sea_surface_temperature(lat: np.ndarray, sst_shift: float = 0.0) -> np.ndarray:
    """Aquaplanet QOBS sea-surface temperature (K) at latitudes ``lat`` (degrees)."""
    phi = np.radians(lat)
    sst = np.where(np.abs(lat) < 60.0, 27.0 * (1.0 - np.sin(1.5 * phi) ** 2), 0.0)
    return 273.15 + sst + sst_shift


def _climatology(lat: np.ndarray, sst_shift: float) -> dict[str, np.ndarray]:
    """Per-column climatological state: temperature profile, RH logit, PS mean and amplitudes."""
    phi = np.radians(lat)[:, None]
    t_air = sea_surface_temperature(lat, 0.0)[:, None] - 0.6  # air-sea contrast
    # a warmer climate warms the upper troposphere more (moist adiabat), not the stratosphere
    t_lapse = t_air * (P_HPA / 1000.0) ** 0.19 + sst_shift * (2.2 - 1.2 * P_HPA / 1000.0)
    t_strat = 198.0 + 12.0 * np.sin(phi) ** 2 + 16.0 * np.log(np.maximum(100.0 / P_HPA, 1.0))
    t_clim = t_strat + 2.0 * _softplus((t_lapse - t_strat) / 2.0)
    deg = np.abs(lat)[:, None]
    moist_band = (0.9 * np.exp(-((deg / 12.0) ** 2)) + 0.5 * np.exp(-(((deg - 50.0) / 12.0) ** 2))
                  - 0.6)
    rh_logit = 1.4 * _LOW + (1.0 - _LOW) * (1.2 * moist_band - 0.3)
    mu = np.sin(np.radians(lat))
    return {
        "sst": sea_surface_temperature(lat, sst_shift),
        "t": t_clim,
        "rh_logit": rh_logit,
        "t_amp": 1.0 + 1.5 * np.sin(phi[:, 0]) ** 2,
        "storm": STORM_RH * np.exp(-(((np.abs(lat) - 50.0) / 15.0) ** 2)),
        "moist_amp": MOIST_AMP_EXTRA * np.exp(-((lat / 20.0) ** 2)) + MOIST_AMP_BASE,
        "ps": np.polynomial.legendre.legval(mu, PS_LEGENDRE),
        "ps_amp": 200.0 + 1000.0 * np.exp(-(((np.abs(lat) - 55.0) / 18.0) ** 2)),
    }


#: Climatological T(k) - T(993 hPa) at the equator (K), the reference of convective heating.
LAPSE_REF = _climatology(np.zeros(1), 0.0)["t"][0] - _climatology(np.zeros(1), 0.0)["t"][0, -1]


def _solin(lat: np.ndarray, lon: np.ndarray, time_s: np.ndarray) -> np.ndarray:
    """Perpetual-equinox insolation (W/m2), ``[n_time, n_col]``; exactly zero at night."""
    hour_angle = 2.0 * np.pi * time_s[:, None] / 86400.0 + np.radians(lon)[None, :] - np.pi
    cos_zenith = np.cos(np.radians(lat))[None, :] * np.cos(hour_angle)
    return S0 * np.maximum(cos_zenith, 0.0)


def _load(z: np.ndarray, loading: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out = z @ loading`` over the non-zero rows of ``loading``, without BLAS (whose
    thread pool costs more than this small product)."""
    rows = np.flatnonzero(np.any(loading != 0.0, axis=1))
    return np.einsum("ij,jk->ik", z[:, rows], loading[rows], out=out)


def input_function(state: np.ndarray, clim: dict[str, np.ndarray],
                   solin: np.ndarray) -> np.ndarray:
    """Inputs ``[n, 94]`` from the latent state ``[n, N_STATE]`` of columns ``clim``.

    Parameters
    ----------
    state : numpy.ndarray
        ``[n, N_STATE]`` standard-normal AR(1) state (latents, then per-level noise).
    clim : dict
        Per-column climatology (from ``_climatology``) broadcast to ``n`` rows.
    solin : numpy.ndarray
        ``[n]`` insolation (W/m2).
    """
    n = state.shape[0]
    z = state[:, :N_LATENT].astype(np.float64)
    z[:, 0] *= clim["moist_amp"]  # moisture/convergence variability peaks in the tropics
    e_t, e_q, e_v = (state[:, N_LATENT + i * NL:N_LATENT + (i + 1) * NL] for i in range(3))
    e_ps, e_sh, e_lh = (state[:, N_LATENT + 3 * NL + i] for i in range(3))
    x = np.empty((n, N_IN))
    q, t, v = x[:, :NL], x[:, NL:2 * NL], x[:, 2 * NL:3 * NL]

    _load(z, LOAD_T, out=t)
    t += 0.4 * e_t
    t *= clim["t_amp"][:, None]
    t += clim["t"]
    ps = x[:, I_PS]
    ps[:] = clim["ps"] + clim["ps_amp"] * z[:, 4] + 60.0 * e_ps
    rh = _load(z, LOAD_RH, out=np.empty((n, NL)))
    rh += 0.15 * e_q
    rh += clim["rh_logit"]
    rh -= (clim["storm"] * z[:, 4])[:, None] * _STORM_SHAPE
    p = V.HYAM * V.P0 + V.HYBM * ps[:, None]
    np.multiply(_HUMID_TROP * _sigmoid(rh), saturation_specific_humidity(t, p), out=q)
    q[:, :K_DRY] += 2.0e-6 * np.exp(0.15 * z[:, [3]] + 0.1 * e_q[:, :K_DRY])  # stratosphere
    _load(z, LOAD_V, out=v)
    v += 2.0 * e_v

    speed = 7.0 * np.exp(0.35 * z[:, 5] - 0.5 * 0.35**2)  # mean 7 m/s
    exchange = RHO_AIR * C_EXCHANGE * speed
    sst = clim["sst"]
    x[:, I_SOLIN] = solin
    x[:, I_SHFLX] = exchange * CP * (sst - t[:, -1]) + 3.0 * e_sh
    x[:, I_LHFLX] = exchange * LV * (saturation_specific_humidity(sst, ps) - q[:, -1]) \
        + 8.0 * e_lh
    return x
