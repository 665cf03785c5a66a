"""The SPCAM variable catalogue: inputs, outputs, levels, grid, labels and units.

Everything that names a feature goes through this module, so that the 94 inputs
and 65 outputs always appear in the order and with the labels of the reference
implementation (``qbp-3.64`` ... ``lhflx``; ``tphystnd-3.64`` ... ``prect``).

The vertical coordinate and hybrid coefficients are those of the SPCAM
aquaplanet (``ancil_spcam.nc`` in the reference implementation of
Kühbacher et al. 2024, MIT licence); the T42 Gaussian grid is recomputed
exactly from Gauss-Legendre nodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

__all__ = [
    "Variable",
    "VARIABLES",
    "INPUT_VARIABLES",
    "OUTPUT_VARIABLES",
    "N_LEVELS",
    "LEVELS_HPA",
    "HYAM",
    "HYBM",
    "P0",
    "TIME_STEP_SECONDS",
    "OUTPUT_SCALE",
    "gaussian_grid",
    "input_labels",
    "output_labels",
    "feature_label",
    "expand_var_names",
    "variable_of_label",
    "level_index_of_label",
    "input_groups",
]

#: Number of model levels.
N_LEVELS = 30

#: Mid-level pressure (hPa) for PS = 1000 hPa, top (index 0) to bottom
#: (``lev`` of ``ancil_spcam.nc``).
LEVELS_HPA = np.array([
    3.64347, 7.59482, 14.35663, 24.61222, 38.2683, 54.59548, 72.01245, 87.82123,
    103.31713, 121.54724, 142.99404, 168.22508, 197.90809, 232.82862, 273.91082,
    322.2419, 379.1009, 445.99257, 524.68717, 609.77869, 691.38943, 763.40448,
    820.85837, 859.53477, 887.02025, 912.64455, 936.1984, 957.48548, 976.32541,
    992.5561,
])

#: Hybrid A coefficients at mid levels (``hyam``), top to bottom.
HYAM = np.array([
    0.00364347, 0.00759482, 0.01435663, 0.02461222, 0.0382683, 0.05459548,
    0.07201245, 0.08782123, 0.10331713, 0.12154724, 0.14299404, 0.16822508,
    0.17823067, 0.17032433, 0.16102291, 0.15008029, 0.13720686, 0.12206194,
    0.10424471, 0.08497915, 0.0665017, 0.05019679, 0.03718866, 0.02843195,
    0.02220898, 0.01640738, 0.01107456, 0.00625495, 0.00198941, 0.0,
])

#: Hybrid B coefficients at mid levels (``hybm``), top to bottom.
HYBM = np.array([
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.01967741,
    0.06250429, 0.11288791, 0.17216162, 0.24189404, 0.32393064, 0.42044246,
    0.52479954, 0.62488773, 0.71320769, 0.78366971, 0.83110282, 0.86481127,
    0.89623716, 0.92512384, 0.95123053, 0.974336, 0.9925561,
])

#: Reference pressure of the hybrid coordinate (Pa).
P0 = 100000.0

#: SPCAM time step (s); one CBRAIN sample per column and time step.
TIME_STEP_SECONDS = 1800


@dataclass(frozen=True)
class Variable:
    """One SPCAM variable of the catalogue.

    Parameters
    ----------
    name : str
        Upper-case SPCAM name, as in the CBRAIN ``var_names`` coordinate.
    three_d : bool
        True for a variable on the 30 model levels, False for a 2-D field.
    units : str
        Physical units (before any normalisation).
    long_name : str
        Human-readable description.
    """

    name: str
    three_d: bool
    units: str
    long_name: str

    @property
    def n_levels(self) -> int:
        """Number of CBRAIN columns this variable occupies (30 or 1)."""
        return N_LEVELS if self.three_d else 1

    def labels(self) -> list[str]:
        """Feature labels of this variable, top level first."""
        if not self.three_d:
            return [feature_label(self.name)]
        return [feature_label(self.name, k) for k in range(N_LEVELS)]


_CATALOGUE = [
    Variable("QBP", True, "kg/kg", "specific humidity before physics"),
    Variable("TBP", True, "K", "temperature before physics"),
    Variable("VBP", True, "m/s", "meridional wind before physics"),
    Variable("PS", False, "Pa", "surface pressure"),
    Variable("SOLIN", False, "W/m2", "incoming solar radiation at the top of the atmosphere"),
    Variable("SHFLX", False, "W/m2", "surface sensible heat flux"),
    Variable("LHFLX", False, "W/m2", "surface latent heat flux"),
    Variable("TPHYSTND", True, "K/s", "temperature tendency from physics (heating)"),
    Variable("PHQ", True, "kg/kg/s", "specific humidity tendency from physics (moistening)"),
    Variable("FSNT", False, "W/m2", "net shortwave flux at the top of the model"),
    Variable("FSNS", False, "W/m2", "net shortwave flux at the surface"),
    Variable("FLNT", False, "W/m2", "net longwave flux at the top of the model"),
    Variable("FLNS", False, "W/m2", "net longwave flux at the surface"),
    Variable("PRECT", False, "m/s", "total precipitation rate"),
]

#: All catalogue variables by name.
VARIABLES: dict[str, Variable] = {v.name: v for v in _CATALOGUE}

#: Input variable names, in network-input order.
INPUT_VARIABLES = ("QBP", "TBP", "VBP", "PS", "SOLIN", "SHFLX", "LHFLX")

#: Output variable names, in network-output order.
OUTPUT_VARIABLES = ("TPHYSTND", "PHQ", "FSNT", "FSNS", "FLNT", "FLNS", "PRECT")

#: Factors that turn outputs into energy-like units (reference normalisation).
OUTPUT_SCALE: dict[str, float] = {
    "TPHYSTND": 1004.64,  # c_p, K/s -> W/kg
    "PHQ": 2834700.0,  # L_s, kg/kg/s -> W/kg
    "FSNT": 1e-3,
    "FSNS": -1e-3,
    "FLNT": -1e-3,
    "FLNS": 1e-3,
    "PRECT": 1728000.0,  # rho_w * L_v / 1000 * ...
}


def feature_label(name: str, level: int | None = None) -> str:
    """Return the reference-implementation label of one feature.

    Parameters
    ----------
    name : str
        Variable name (any case).
    level : int, optional
        Level index (0 = top) for 3-D variables; None for 2-D variables.

    Examples
    --------
    >>> feature_label("QBP", 0)
    'qbp-3.64'
    >>> feature_label("PS")
    'ps'
    """
    if level is None:
        return name.lower()
    return f"{name.lower()}-{round(float(LEVELS_HPA[level]), 2):g}"


def input_labels() -> list[str]:
    """The 94 input feature labels, in network order."""
    return [label for name in INPUT_VARIABLES for label in VARIABLES[name].labels()]


def output_labels() -> list[str]:
    """The 65 output feature labels, in network order."""
    return [label for name in OUTPUT_VARIABLES for label in VARIABLES[name].labels()]


def expand_var_names(names: tuple[str, ...] | list[str]) -> list[str]:
    """Repeat each variable name once per level, as the CBRAIN ``var_names`` does."""
    return [name for name in names for _ in range(VARIABLES[name].n_levels)]


@cache
def _label_index() -> dict[str, tuple[str, int | None]]:
    index: dict[str, tuple[str, int | None]] = {}
    for var in _CATALOGUE:
        for k, label in enumerate(var.labels()):
            index[label] = (var.name, k if var.three_d else None)
    return index


def variable_of_label(label: str) -> str:
    """Upper-case variable name of a feature label (``"tbp-54.6"`` -> ``"TBP"``)."""
    try:
        return _label_index()[label][0]
    except KeyError:
        raise KeyError(f"unknown feature label {label!r}") from None


def level_index_of_label(label: str) -> int | None:
    """Level index (0 = top) of a feature label, None for 2-D variables."""
    try:
        return _label_index()[label][1]
    except KeyError:
        raise KeyError(f"unknown feature label {label!r}") from None


def input_groups() -> dict[str, list[int]]:
    """Input indices grouped as the book reports them: QBP, TBP, VBP and 2-D."""
    groups: dict[str, list[int]] = {"QBP": [], "TBP": [], "VBP": [], "2-D": []}
    for i, label in enumerate(input_labels()):
        name = variable_of_label(label)
        groups[name if name in groups else "2-D"].append(i)
    return groups


def gaussian_grid(n_lat: int | None = None, n_lon: int | None = None) -> dict[str, np.ndarray]:
    """The T42 Gaussian grid of SPCAM, or an evenly thinned subset of it.

    Parameters
    ----------
    n_lat, n_lon : int, optional
        Number of latitudes (<= 64) and longitudes (<= 128) to keep. Subsets
        take evenly spaced rows/columns of the full grid, so every point is a
        real T42 point. None keeps the full grid.

    Returns
    -------
    dict
        ``lat`` (degrees north, south to north), ``lon`` (degrees east),
        ``gw`` (Gaussian weights of the kept latitudes, summing to 2 on the full
        grid).
    """
    nodes, weights = np.polynomial.legendre.leggauss(64)
    lat = np.degrees(np.arcsin(nodes))
    lon = np.arange(128) * 360.0 / 128
    n_lat = 64 if n_lat is None else n_lat
    n_lon = 128 if n_lon is None else n_lon
    if not 1 <= n_lat <= 64 or not 1 <= n_lon <= 128:
        raise ValueError(f"grid subset must have 1..64 latitudes and 1..128 longitudes, "
                         f"got n_lat={n_lat}, n_lon={n_lon}")
    ilat = np.floor((np.arange(n_lat) + 0.5) * 64 / n_lat).astype(int)
    ilon = np.floor(np.arange(n_lon) * 128 / n_lon).astype(int)
    return {"lat": lat[ilat], "lon": lon[ilon], "gw": weights[ilat]}
