"""Shared constants and helpers of the synthetic aquaplanet: levels, indices, humidity."""

from __future__ import annotations

import numpy as np

from pcm import variables as V

CP = 1004.64  # J/kg/K, specific heat of dry air (as in the CBRAIN normalisation)
LV = 2.501e6  # J/kg, latent heat of vaporisation
GRAV = 9.80616  # m/s2
SIGMA = 5.670374e-8  # W/m2/K4, Stefan-Boltzmann
S0 = 1365.0  # W/m2, solar constant
RHO_AIR = 1.2  # kg/m3, near-surface air density
RHO_WATER = 1000.0  # kg/m3
C_EXCHANGE = 1.2e-3  # bulk exchange coefficient for heat and moisture
DT = float(V.TIME_STEP_SECONDS)

NL = V.N_LEVELS
P_HPA = V.LEVELS_HPA  # reference mid-level pressure (PS = 1000 hPa), top -> bottom
P_PA = P_HPA * 100.0

# Input indices (pcm.variables order): QBP 0-29, TBP 30-59, VBP 60-89, PS, SOLIN, SHFLX, LHFLX.
IQ = np.arange(0, NL)
IT = np.arange(NL, 2 * NL)
I_PS, I_SOLIN, I_SHFLX, I_LHFLX = 90, 91, 92, 93
N_IN = 94
# Output indices: TPHYSTND 0-29, PHQ 30-59, FSNT, FSNS, FLNT, FLNS, PRECT.
O_T = np.arange(0, NL)
O_Q = np.arange(NL, 2 * NL)
O_FSNT, O_FSNS, O_FLNT, O_FLNS, O_PRECT = 60, 61, 62, 63, 64
N_OUT = 65

#: Levels 0..9 (3.64-121.55 hPa) are "stratospheric": radiation only, PHQ == 0.
K_STRAT = 10
#: Boundary-layer levels (976, 993 hPa) whose moist static energy feeds convection.
K_BL = (28, 29)
#: Mid-level whose saturated moist static energy caps convection (525 hPa).
K_MID_T = 18
#: Mid-level whose humidity reduces convection when dry (610 hPa).
K_MID_Q = 19
#: Level whose relative humidity drives large-scale (stratiform) condensation (763 hPa).
K_LS = 21
#: Lowest levels heated/moistened by the surface fluxes (957, 976, 993 hPa).
K_SFC = (27, 28, 29)
#: Humidity levels used as column water for the surface shortwave (691, 860, 936 hPa).
K_FSNS_Q = (20, 23, 26)
#: Levels of the outgoing longwave: temperature at 274 and 446 hPa, humidity at 379 hPa.
K_FLNT_T = (14, 17)
K_FLNT_Q = 16
#: Levels of the surface longwave: temperature at 936/993 hPa, humidity at 860/957 hPa.
K_FLNS_T = (26, 29)
K_FLNS_Q = (23, 27)

#: Real mean specific humidity per level (kg/kg), ``mean`` of QBP in the SPCAM
#: ``001_norm.nc`` (reference implementation, MIT licence); a fixed humidity scale.
Q_SCALE = np.array([
    1.6549e-06, 1.6098e-06, 1.2513e-06, 1.3225e-06, 1.2150e-06, 1.1386e-06, 1.2027e-06,
    1.2718e-06, 1.4866e-06, 2.0815e-06, 3.6176e-06, 8.2966e-06, 1.9139e-05, 4.0903e-05,
    8.2808e-05, 1.5780e-04, 2.9071e-04, 5.2125e-04, 8.9880e-04, 1.4599e-03, 2.3028e-03,
    3.4872e-03, 4.8160e-03, 5.6484e-03, 6.2153e-03, 6.6612e-03, 6.9832e-03, 7.2532e-03,
    7.4454e-03, 7.9837e-03,
])


def _layer_thickness() -> np.ndarray:
    """Pressure thickness (Pa) of each layer for PS = 1000 hPa (interfaces at mid-points)."""
    edges = np.concatenate([[0.0], 0.5 * (P_PA[1:] + P_PA[:-1]), [100000.0]])
    return np.diff(edges)


DP = _layer_thickness()


def _profile(centre_hpa: float, width: float) -> np.ndarray:
    """Gaussian bump in log-pressure, centred at ``centre_hpa``, width in ln(p) units."""
    return np.exp(-(((np.log(P_HPA) - np.log(centre_hpa)) / width) ** 2))


def _normalised(shape: np.ndarray) -> np.ndarray:
    """Scale a vertical shape so that sum(shape * dp) = 1 (per Pa)."""
    return shape / np.sum(shape * DP)


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def saturation_vapour_pressure(t: np.ndarray) -> np.ndarray:
    """Saturation vapour pressure over water (Pa), Bolton (1980)."""
    return 611.2 * np.exp(17.67 * (t - 273.15) / (t - 29.65))


def saturation_specific_humidity(t: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Saturation specific humidity (kg/kg) at temperature ``t`` (K) and pressure ``p`` (Pa)."""
    es = np.minimum(saturation_vapour_pressure(t), 0.5 * p)
    return 0.622 * es / (p - 0.378 * es)
