"""Outputs of the synthetic aquaplanet: a sparse column physics with known drivers."""

from __future__ import annotations

from functools import cache

import numpy as np
import xarray as xr

from pcm import variables as V
from pcm.data.synthetic._base import (
    CP,
    GRAV,
    I_LHFLX,
    I_SHFLX,
    I_SOLIN,
    IQ,
    IT,
    K_BL,
    K_FLNS_Q,
    K_FLNS_T,
    K_FLNT_Q,
    K_FLNT_T,
    K_FSNS_Q,
    K_LS,
    K_MID_Q,
    K_MID_T,
    K_SFC,
    K_STRAT,
    LV,
    N_IN,
    N_OUT,
    NL,
    O_FLNS,
    O_FLNT,
    O_FSNS,
    O_FSNT,
    O_PRECT,
    O_Q,
    O_T,
    P_HPA,
    P_PA,
    Q_SCALE,
    RHO_WATER,
    SIGMA,
    _normalised,
    _profile,
    _softplus,
    saturation_specific_humidity,
)
from pcm.data.synthetic.atmosphere import LAPSE_REF
from pcm.data.synthetic.worlds import world_drivers
from pcm.errors import DataError

_TROP = P_HPA > 140.0  # levels 10..29
#: Vertical structure of convective heating (per Pa, integrates to 1); zero above 140 hPa.
SHAPE_HEAT = _normalised(np.where(_TROP, _profile(450.0, 0.55) + 0.02, 0.0))
#: Vertical structure of convective drying (per Pa, integrates to 1, weighted by q/Q_SCALE).
SHAPE_DRY = _normalised(np.where(_TROP, _profile(850.0, 0.35) + 0.02, 0.0))
#: Vertical structure of large-scale condensation heating and drying (per Pa).
SHAPE_LS = _normalised(np.where(_TROP, _profile(600.0, 0.6) + 0.02, 0.0))
#: Detrainment moistening of the upper troposphere (per Pa), a fraction of the condensate.
SHAPE_DETRAIN = 0.15 * _normalised(np.where(_TROP, _profile(250.0, 0.3), 0.0))
#: Surface-flux deposition (per Pa) over the lowest levels.
SHAPE_SFC = _normalised(np.isin(np.arange(NL), K_SFC).astype(float))
#: Shortwave absorption per unit SOLIN (K/s per W/m2): ozone-like aloft, water vapour below;
#: shaped after the real mean QRS profile of ``001_norm.nc`` divided by the mean SOLIN.
SW_ABS = (2.5e-6 + 3.7e-5 * (P_HPA[0] / P_HPA) ** 0.75 + 5e-6 * _profile(800.0, 0.5)) / 324.0
#: Longwave cooling rate (K/s) at 250 K: balances SW aloft, ~1.5 K/day in the troposphere.
LW_COOL = np.where(_TROP, 1.3e-5 + 1.0e-5 * _profile(850.0, 0.3), 1.05 * SW_ABS * 324.0)

# Convection: instability (K) -> intensity (kg m-2 s-1).
CONV_HUMIDITY = 5.0  # K per e-fold of q(610 hPa): entrained dry air suppresses convection
CONV_GZ_MID = 54000.0  # J/kg, geopotential of the 525 hPa level
CONV_OFFSET = 2.0  # K, instability at which convection switches on
CONV_WIDTH = 2.5  # K, softness of the switch
CONV_RATE = 2.5e-5  # kg m-2 s-1 per softplus unit (2.2 mm/day)
# Convective heating modulated by the local lapse rate: T(k) - T(993 hPa) relative to the
# equatorial climatology (atmosphere.LAPSE_REF) changes it by up to +-ADJ_AMPLITUDE.
ADJ_AMPLITUDE = 0.4
ADJ_WIDTH = 4.0  # K
# Large-scale condensation: relative humidity at 763 hPa -> rate (kg m-2 s-1).
LS_RH = 0.75  # relative humidity at which condensation switches on
LS_WIDTH = 0.1  # softness of the switch
LS_RATE = 2.5e-5  # kg m-2 s-1 per softplus unit (2.2 mm/day)
CLOUD_SCALE = 4e-5  # kg m-2 s-1, precipitation rate of a (1 - 1/e)-cloudy column

FLNT_OFFSET = 25.0  # K, emission temperature minus the mean of T(274 hPa), T(446 hPa)
FLNT_CLOUD = 0.4  # OLR reduction of a fully cloudy column


def _convection(q: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Convective intensity C (kg m-2 s-1) from 6 inputs: q, T at 976/993 hPa, T at 525 hPa,
    q at 610 hPa."""
    kb = list(K_BL)
    h_bl = CP * t[:, kb].mean(axis=1) + LV * q[:, kb].mean(axis=1)
    t_mid = t[:, K_MID_T]
    h_sat_mid = CP * t_mid + CONV_GZ_MID + LV * saturation_specific_humidity(
        t_mid, P_PA[K_MID_T])
    humidity = CONV_HUMIDITY * np.log(q[:, K_MID_Q] / Q_SCALE[K_MID_Q])
    instability = (h_bl - h_sat_mid) / CP + humidity
    return CONV_RATE * _softplus((instability - CONV_OFFSET) / CONV_WIDTH)


def _large_scale(q: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Large-scale condensation rate (kg m-2 s-1) from q and T at 763 hPa."""
    rh = q[:, K_LS] / saturation_specific_humidity(t[:, K_LS], P_PA[K_LS])
    return LS_RATE * _softplus((rh - LS_RH) / LS_WIDTH)


def output_function(x: np.ndarray) -> np.ndarray:
    """Deterministic (noise-free) part of the 65 outputs.

    Parameters
    ----------
    x : numpy.ndarray
        ``[n, 94]`` inputs in physical units, in :func:`pcm.variables.input_labels`
        order.

    Returns
    -------
    numpy.ndarray
        ``[n, 65]`` float64 outputs in physical units, in
        :func:`pcm.variables.output_labels` order. Each output reads exactly the
        inputs that :func:`true_drivers` declares; :func:`generate` returns
        ``output_function(inputs)`` plus noise of zero conditional mean.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != N_IN:
        raise DataError(f"expected physical inputs of shape [n, {N_IN}] in "
                        f"pcm.variables.input_labels() order, got shape {x.shape}",
                        variable="inputs")
    return _physics(x)[0]


def _physics(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Outputs ``[n, 65]`` and the shortwave ingredients (SOLIN, albedo, transmissivity)."""
    q, t = x[:, :NL], x[:, NL:2 * NL]  # views
    solin, shflx, lhflx = x[:, I_SOLIN], x[:, I_SHFLX], x[:, I_LHFLX]
    conv = _convection(q, t)
    large_scale = _large_scale(q, t)
    cloud = 1.0 - np.exp(-(conv + large_scale) / CLOUD_SCALE)
    wet = q[:, K_STRAT:] / (q[:, K_STRAT:] + Q_SCALE[K_STRAT:])  # 0..1, humidity factor
    t4 = (t * (1.0 / 250.0)) ** 2
    t4 *= t4
    out = np.empty((x.shape[0], N_OUT))

    # Temperature tendency (K/s): convection + shortwave - longwave + sensible heating.
    heat = out[:, :NL]  # a view (O_T as a slice)
    np.multiply(solin[:, None], SW_ABS, out=heat)
    heat[:, K_STRAT:] *= 0.5 + wet
    t4 *= LW_COOL
    t4[:, K_STRAT:] *= 0.6 + 0.8 * wet
    heat -= t4
    # convective heating is weaker where the level is warm relative to the surface air
    stability = t[:, K_STRAT:] - t[:, -1:] - LAPSE_REF[K_STRAT:]
    profile = SHAPE_HEAT[K_STRAT:] * (1.0 - ADJ_AMPLITUDE * np.tanh(stability / ADJ_WIDTH))
    heat[:, K_STRAT:] += (LV * GRAV / CP) * (conv[:, None] * profile
                                             + large_scale[:, None] * SHAPE_LS[K_STRAT:])
    heat[:, list(K_SFC)] += (GRAV / CP) * shflx[:, None] * SHAPE_SFC[list(K_SFC)]
    # Moisture tendency (kg/kg/s): convective drying ~ q, detrainment, surface evaporation;
    # exactly zero in the stratosphere.
    moist = out[:, NL:2 * NL]
    moist[:, :K_STRAT] = 0.0
    moist[:, K_STRAT:] = (GRAV * conv)[:, None] * (
        SHAPE_DETRAIN[K_STRAT:] - SHAPE_DRY[K_STRAT:] / Q_SCALE[K_STRAT:] * q[:, K_STRAT:])
    moist[:, K_STRAT:] -= (GRAV * large_scale)[:, None] * SHAPE_LS[K_STRAT:]
    moist[:, list(K_SFC)] += (GRAV / LV) * lhflx[:, None] * SHAPE_SFC[list(K_SFC)]

    albedo = 0.12 + 0.45 * cloud
    column_water = 1300.0 * q[:, list(K_FSNS_Q)].sum(axis=1)  # ~kg/m2
    transmissivity = 0.9 * np.exp(-0.006 * column_water)
    out[:, O_FSNT] = solin * (1.0 - albedo)
    out[:, O_FSNS] = out[:, O_FSNT] * transmissivity
    t_emit = t[:, list(K_FLNT_T)].mean(axis=1) + FLNT_OFFSET
    q_up = q[:, K_FLNT_Q]
    out[:, O_FLNT] = (SIGMA * t_emit**4 * (1.0 - 0.25 * q_up / (q_up + Q_SCALE[K_FLNT_Q]))
                      * (1.0 - FLNT_CLOUD * cloud))
    t_air, t_sfc = t[:, K_FLNS_T[0]], t[:, K_FLNS_T[1]]
    emissivity = 0.97 - 0.3 * np.exp(-q[:, list(K_FLNS_Q)].sum(axis=1) / 0.012)
    out[:, O_FLNS] = SIGMA * (t_sfc**4 - emissivity * t_air**4)
    out[:, O_PRECT] = (conv + large_scale) / RHO_WATER
    return out, solin, albedo, transmissivity


@cache
def _driver_matrix() -> np.ndarray:
    """Boolean ``[65, 94]``: the inputs each output of :func:`output_function` reads."""
    d = np.zeros((N_OUT, N_IN), dtype=bool)
    precip = np.zeros(N_IN, dtype=bool)  # convection and large-scale condensation
    precip[IQ[list(K_BL)]] = precip[IT[list(K_BL)]] = True
    precip[IT[K_MID_T]] = precip[IQ[K_MID_Q]] = True
    precip[IT[K_LS]] = precip[IQ[K_LS]] = True
    for k in range(NL):
        d[O_T[k], [IT[k], I_SOLIN]] = True
        if k >= K_STRAT:
            d[O_T[k]] |= precip
            d[O_T[k], IQ[k]] = True
            d[O_Q[k]] |= precip
            d[O_Q[k], IQ[k]] = True
        if k in K_SFC:
            d[O_T[k], I_SHFLX] = d[O_Q[k], I_LHFLX] = True
    d[O_FSNT] = precip
    d[O_FSNT, I_SOLIN] = True
    d[O_FSNS] = d[O_FSNT]
    d[O_FSNS, IQ[list(K_FSNS_Q)]] = True
    d[O_FLNT] = precip
    d[O_FLNT, IT[list(K_FLNT_T)]] = d[O_FLNT, IQ[K_FLNT_Q]] = True
    d[O_FLNS, IT[list(K_FLNS_T)]] = d[O_FLNS, IQ[list(K_FLNS_Q)]] = True
    d[O_PRECT] = precip
    return d


def true_drivers(world: int = 0) -> xr.DataArray:
    """The true physical drivers of every output.

    Parameters
    ----------
    world : int
        0: the aquaplanet above; 1-199: a drawn world (:mod:`pcm.data.synthetic.worlds`).

    Returns
    -------
    xarray.DataArray
        Boolean ``drivers(output, input)`` with the feature labels of
        :mod:`pcm.variables` as coordinates; True where the output's
        deterministic part reads the input. ``VBP`` and ``PS`` are never drivers.
    """
    return xr.DataArray(
        _driver_matrix().copy() if not world else world_drivers(world),
        dims=("output", "input"),
        coords={"output": V.output_labels(), "input": V.input_labels()},
        name="drivers",
        attrs={"long_name": "true physical drivers of the synthetic aquaplanet (output reads "
                            "input)" if not world else f"true drivers of synthetic world "
                            f"{world} (output reads input)"},
    )
