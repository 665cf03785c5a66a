"""Variable catalogues: inputs, outputs, levels, labels and units of a data source.

A :class:`Catalogue` declares what a data source holds: its input and output
variables (name, number of levels, units, long name), the pressure of its
levels (which names the features, ``qbp-3.64``), and the factors that turn its
outputs into comparable energy-like units. Everything that names or counts a
feature goes through a catalogue, so that the pipeline is sized from the data.

Two catalogues exist:

* :data:`SPCAM` (94 inputs, 65 outputs, 30 levels), in the order and with the
  labels of the reference implementation (``qbp-3.64`` ... ``lhflx``;
  ``tphystnd-3.64`` ... ``prect``). Its vertical coordinate and hybrid
  coefficients are those of the SPCAM aquaplanet (``ancil_spcam.nc`` in the
  reference implementation of Kühbacher et al. 2024, MIT licence); the T42
  Gaussian grid is recomputed exactly from Gauss-Legendre nodes. The module
  constants and functions below (``INPUT_VARIABLES``, ``input_labels()`` ...)
  are this catalogue's.
* ClimSim (E3SM-MMF low resolution, 184 inputs, 128 outputs, 60 levels),
  built by :func:`climsim_catalogue` from the pressure of its levels, which
  the converter takes from the grid-info file.

A CBRAIN-layout file records its catalogue as global attributes
(:meth:`Catalogue.attrs`, read back by :func:`catalogue_from_attrs`); files
without them are SPCAM.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

__all__ = [
    "Variable",
    "Catalogue",
    "ROLES",
    "SPCAM",
    "CATALOGUE_NAMES",
    "climsim_catalogue",
    "catalogue_from_attrs",
    "VARIABLES",
    "T42_SHAPE",
    "grid_shape",
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
    "split_label",
]

#: Number of SPCAM model levels.
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
    """One variable of a catalogue.

    Parameters
    ----------
    name : str
        Name as in the CBRAIN ``var_names`` coordinate (``QBP``, ``ptend_t``).
    n_levels : int
        Number of CBRAIN columns: the catalogue's number of levels for a
        variable on model levels, 1 for a 2-D field.
    units : str
        Physical units (before any normalisation).
    long_name : str
        Human-readable description.
    """

    name: str
    n_levels: int
    units: str
    long_name: str

    @property
    def three_d(self) -> bool:
        """True for a variable on the model levels."""
        return self.n_levels > 1


#: Physical roles a catalogue names (:attr:`Catalogue.roles`): the state it reads, and
#: the outputs the book shows side by side across sources.
ROLES = ("temperature", "humidity", "wind", "heating", "moistening", "radiation",
         "precipitation")


@dataclass(frozen=True, eq=False)
class Catalogue:
    """The inputs and outputs of one data source.

    Parameters
    ----------
    name : str
        Catalogue name, recorded in the files that hold its data (``"spcam"``).
    variables : tuple of Variable
        Every variable, inputs and outputs.
    inputs, outputs : tuple of str
        Input and output variable names in network order.
    levels_hpa : tuple of float
        Mid-level pressure (hPa) at the reference surface pressure, top first.
    output_scale : mapping
        Factor per output variable turning it into energy-like units.
    grid : str
        ``"gaussian"`` (samples stacked time, lat, lon) or ``"unstructured"``
        (samples stacked time, column).
    description : str
        One line naming the source.
    roles : mapping
        The variable playing each physical role of :data:`ROLES` (``"heating":
        "TPHYSTND"``), so that the book shows analogous quantities of any source.
        ``"radiation"`` is the net shortwave flux at the surface (SPCAM FSNS,
        ClimSim cam_out_NETSW).
    """

    name: str
    variables: tuple[Variable, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    levels_hpa: tuple[float, ...]
    output_scale: Mapping[str, float]
    grid: str = "gaussian"
    description: str = ""
    roles: Mapping[str, str] = field(default_factory=dict)
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = [v.name for v in self.variables]
        if len(set(names)) != len(names):
            raise ValueError(f"catalogue {self.name}: duplicate variable names")
        for key in self.inputs + self.outputs:
            if key not in names:
                raise ValueError(f"catalogue {self.name}: {key} is not one of its variables")
        for var in self.variables:
            if var.three_d and var.n_levels != len(self.levels_hpa):
                raise ValueError(f"catalogue {self.name}: {var.name} has {var.n_levels} "
                                 f"levels, the catalogue {len(self.levels_hpa)}")
        missing = [o for o in self.outputs if o not in self.output_scale]
        if missing:
            raise ValueError(f"catalogue {self.name}: no output scale for {missing}")
        unknown = {r: v for r, v in self.roles.items() if r not in ROLES or v not in names}
        if unknown:
            raise ValueError(f"catalogue {self.name}: bad roles {unknown}")
        labels = [lab for v in self.variables for lab in self.labels(v.name)]
        if len(set(labels)) != len(labels):
            raise ValueError(f"catalogue {self.name}: feature labels are not unique (levels "
                             "closer than 0.01 hPa?)")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Catalogue) and self.attrs_key() == other.attrs_key()

    def __hash__(self) -> int:
        return hash(self.attrs_key())

    def attrs_key(self) -> tuple:
        """What identifies the catalogue: its name and its levels."""
        return (self.name, tuple(round(float(p), 6) for p in self.levels_hpa))

    # ------------------------------------------------------------------ lookups
    @cached_property
    def by_name(self) -> dict[str, Variable]:
        """Variables by name."""
        return {v.name: v for v in self.variables}

    @property
    def n_levels(self) -> int:
        """Number of model levels."""
        return len(self.levels_hpa)

    @property
    def all_variables(self) -> tuple[str, ...]:
        """Inputs then outputs, the columns of a CBRAIN file of this source."""
        return tuple(self.inputs) + tuple(self.outputs)

    @property
    def n_inputs(self) -> int:
        """Number of input features."""
        return sum(self.by_name[n].n_levels for n in self.inputs)

    @property
    def n_outputs(self) -> int:
        """Number of output features."""
        return sum(self.by_name[n].n_levels for n in self.outputs)

    def feature_label(self, name: str, level: int | None = None) -> str:
        """Label of one feature: lower-case name, and the level's pressure for 3-D ones.

        Examples
        --------
        >>> SPCAM.feature_label("QBP", 0)
        'qbp-3.64'
        >>> SPCAM.feature_label("PS")
        'ps'
        """
        if level is None:
            return name.lower()
        return f"{name.lower()}-{round(float(self.levels_hpa[level]), 2):g}"

    def labels(self, name: str) -> list[str]:
        """Feature labels of one variable, top level first."""
        var = self.by_name[name]
        if not var.three_d:
            return [self.feature_label(name)]
        return [self.feature_label(name, k) for k in range(var.n_levels)]

    def input_labels(self) -> list[str]:
        """The input feature labels, in network order."""
        return [label for name in self.inputs for label in self.labels(name)]

    def output_labels(self) -> list[str]:
        """The output feature labels, in network order."""
        return [label for name in self.outputs for label in self.labels(name)]

    def expand_var_names(self, names: tuple[str, ...] | list[str]) -> list[str]:
        """Repeat each variable name once per level, as the CBRAIN ``var_names`` does."""
        return [name for name in names for _ in range(self.by_name[name].n_levels)]

    def _label_index(self) -> dict[str, tuple[str, int | None]]:
        if "labels" not in self._cache:
            index: dict[str, tuple[str, int | None]] = {}
            for var in self.variables:
                for k, label in enumerate(self.labels(var.name)):
                    index[label] = (var.name, k if var.three_d else None)
            self._cache["labels"] = index
        return self._cache["labels"]

    def variable_of_label(self, label: str) -> str:
        """Variable name of a feature label (``"tbp-54.6"`` -> ``"TBP"``)."""
        try:
            return self._label_index()[label][0]
        except KeyError:
            raise KeyError(f"unknown feature label {label!r} in the {self.name} "
                           "catalogue") from None

    def level_index_of_label(self, label: str) -> int | None:
        """Level index (0 = top) of a feature label, None for 2-D variables."""
        try:
            return self._label_index()[label][1]
        except KeyError:
            raise KeyError(f"unknown feature label {label!r} in the {self.name} "
                           "catalogue") from None

    def label_near(self, name: str, hpa: float) -> str:
        """Label of a 3-D variable at the level nearest to ``hpa`` hPa.

        Examples
        --------
        >>> SPCAM.label_near("TPHYSTND", 690)
        'tphystnd-691.39'
        """
        if not self.by_name[name].three_d:
            raise ValueError(f"{name} is a 2-D variable of the {self.name} catalogue")
        level = int(np.argmin(np.abs(np.asarray(self.levels_hpa) - float(hpa))))
        return self.feature_label(name, level)

    def input_groups(self) -> dict[str, list[int]]:
        """Input indices grouped as the book reports them: each 3-D variable, then 2-D."""
        groups: dict[str, list[int]] = {n: [] for n in self.inputs if self.by_name[n].three_d}
        groups["2-D"] = []
        for i, label in enumerate(self.input_labels()):
            name = self.variable_of_label(label)
            groups[name if name in groups else "2-D"].append(i)
        return groups

    def attrs(self) -> dict[str, object]:
        """Global attributes recording this catalogue in a file."""
        return {"pcm_catalogue": self.name,
                "pcm_levels_hpa": np.asarray(self.levels_hpa, dtype="f8")}


_SPCAM_VARIABLES = (
    Variable("QBP", N_LEVELS, "kg/kg", "specific humidity before physics"),
    Variable("TBP", N_LEVELS, "K", "temperature before physics"),
    Variable("VBP", N_LEVELS, "m/s", "meridional wind before physics"),
    Variable("PS", 1, "Pa", "surface pressure"),
    Variable("SOLIN", 1, "W/m2", "incoming solar radiation at the top of the atmosphere"),
    Variable("SHFLX", 1, "W/m2", "surface sensible heat flux"),
    Variable("LHFLX", 1, "W/m2", "surface latent heat flux"),
    Variable("TPHYSTND", N_LEVELS, "K/s", "temperature tendency from physics (heating)"),
    Variable("PHQ", N_LEVELS, "kg/kg/s", "specific humidity tendency from physics (moistening)"),
    Variable("FSNT", 1, "W/m2", "net shortwave flux at the top of the model"),
    Variable("FSNS", 1, "W/m2", "net shortwave flux at the surface"),
    Variable("FLNT", 1, "W/m2", "net longwave flux at the top of the model"),
    Variable("FLNS", 1, "W/m2", "net longwave flux at the surface"),
    Variable("PRECT", 1, "m/s", "total precipitation rate"),
)

#: Factors that turn heating into W/kg (c_p, J/kg/K), moistening into W/kg
#: (latent heat, J/kg), fluxes into kW/m2 and precipitation into an energy-like
#: unit (reference normalisation of the CBRAIN setup).
C_P = 1004.64
L_S = 2834700.0
FLUX_SCALE = 1e-3
PREC_SCALE = 1728000.0

#: The SPCAM catalogue of the paper (94 inputs, 65 outputs, 30 levels).
SPCAM = Catalogue(
    name="spcam",
    variables=_SPCAM_VARIABLES,
    inputs=("QBP", "TBP", "VBP", "PS", "SOLIN", "SHFLX", "LHFLX"),
    outputs=("TPHYSTND", "PHQ", "FSNT", "FSNS", "FLNT", "FLNS", "PRECT"),
    levels_hpa=tuple(float(p) for p in LEVELS_HPA),
    output_scale={
        "TPHYSTND": C_P,  # K/s -> W/kg
        "PHQ": L_S,  # kg/kg/s -> W/kg
        "FSNT": FLUX_SCALE,
        "FSNS": -FLUX_SCALE,
        "FLNT": -FLUX_SCALE,
        "FLNS": FLUX_SCALE,
        "PRECT": PREC_SCALE,
    },
    grid="gaussian",
    description="SPCAM aquaplanet (Rasp et al. 2018; Kuehbacher et al. 2024), T42, 30 levels",
    roles={"temperature": "TBP", "humidity": "QBP", "wind": "VBP", "heating": "TPHYSTND",
           "moistening": "PHQ", "radiation": "FSNS", "precipitation": "PRECT"},
)

#: SPCAM variables by name.
VARIABLES: dict[str, Variable] = SPCAM.by_name

#: SPCAM input variable names, in network-input order.
INPUT_VARIABLES = SPCAM.inputs

#: SPCAM output variable names, in network-output order.
OUTPUT_VARIABLES = SPCAM.outputs

#: SPCAM factors that turn outputs into energy-like units (reference normalisation).
OUTPUT_SCALE: dict[str, float] = dict(SPCAM.output_scale)

feature_label = SPCAM.feature_label
input_labels = SPCAM.input_labels
output_labels = SPCAM.output_labels
expand_var_names = SPCAM.expand_var_names
variable_of_label = SPCAM.variable_of_label
level_index_of_label = SPCAM.level_index_of_label
input_groups = SPCAM.input_groups

#: ClimSim time step (s): tendencies are (after - before) / CLIMSIM_TIME_STEP_SECONDS.
CLIMSIM_TIME_STEP_SECONDS = 1200.0


def climsim_catalogue(levels_hpa) -> Catalogue:
    """The ClimSim (E3SM-MMF) catalogue, analogue of the SPCAM one, on the given levels.

    Inputs (184 on 60 levels): ``state_t`` (TBP), ``state_q0001`` (QBP),
    ``state_v`` (VBP), ``state_ps``, ``pbuf_SOLIN``, ``pbuf_SHFLX``,
    ``pbuf_LHFLX``. Outputs (128): the heating and moistening tendencies
    ``ptend_t``, ``ptend_q0001`` (``(mlo.state_X - mli.state_X) / 1200 s``) and
    the surface fields ``cam_out_NETSW cam_out_FLWDS cam_out_PRECC
    cam_out_PRECSC cam_out_SOLS cam_out_SOLL cam_out_SOLSD cam_out_SOLLD``.

    Output scaling, as for the analogous SPCAM outputs: heating times c_p
    (1004.64 J/kg/K, W/kg), moistening times the latent heat of SPCAM's setup
    (2.8347e6 J/kg, W/kg), the radiative fluxes (positive downward, W/m2) times
    1e-3 (kW/m2) and the precipitation rates (m/s) times 1.728e6, the factor
    of SPCAM's PRECT.

    Parameters
    ----------
    levels_hpa : array-like
        Mid-level pressure (hPa) at the reference surface pressure, top first
        (``hyam * P0 + hybm * P0`` of the grid-info file, divided by 100).
    """
    levels = tuple(float(p) for p in np.asarray(levels_hpa, dtype="f8").reshape(-1))
    n = len(levels)
    variables = (
        Variable("state_t", n, "K", "temperature before physics (TBP)"),
        Variable("state_q0001", n, "kg/kg", "specific humidity before physics (QBP)"),
        Variable("state_v", n, "m/s", "meridional wind before physics (VBP)"),
        Variable("state_ps", 1, "Pa", "surface pressure"),
        Variable("pbuf_SOLIN", 1, "W/m2", "incoming solar radiation at the top of the model"),
        Variable("pbuf_SHFLX", 1, "W/m2", "surface sensible heat flux"),
        Variable("pbuf_LHFLX", 1, "W/m2", "surface latent heat flux"),
        Variable("ptend_t", n, "K/s", "temperature tendency from physics (heating)"),
        Variable("ptend_q0001", n, "kg/kg/s",
                 "specific humidity tendency from physics (moistening)"),
        Variable("cam_out_NETSW", 1, "W/m2", "net shortwave flux at the surface"),
        Variable("cam_out_FLWDS", 1, "W/m2", "downward longwave flux at the surface"),
        Variable("cam_out_PRECC", 1, "m/s", "convective precipitation rate (liquid + ice)"),
        Variable("cam_out_PRECSC", 1, "m/s", "convective snow rate (water equivalent)"),
        Variable("cam_out_SOLS", 1, "W/m2", "downward visible direct solar flux at the surface"),
        Variable("cam_out_SOLL", 1, "W/m2",
                 "downward near-infrared direct solar flux at the surface"),
        Variable("cam_out_SOLSD", 1, "W/m2",
                 "downward visible diffuse solar flux at the surface"),
        Variable("cam_out_SOLLD", 1, "W/m2",
                 "downward near-infrared diffuse solar flux at the surface"),
    )
    scale = {"ptend_t": C_P, "ptend_q0001": L_S, "cam_out_PRECC": PREC_SCALE,
             "cam_out_PRECSC": PREC_SCALE}
    outputs = tuple(v.name for v in variables[7:])
    return Catalogue(
        name="climsim",
        variables=variables,
        inputs=tuple(v.name for v in variables[:7]),
        outputs=outputs,
        levels_hpa=levels,
        output_scale={o: scale.get(o, FLUX_SCALE) for o in outputs},
        grid="unstructured",
        description=f"ClimSim low-res (E3SM-MMF, Yu et al. 2023), ne4pg2, {n} levels",
        roles={"temperature": "state_t", "humidity": "state_q0001", "wind": "state_v",
               "heating": "ptend_t", "moistening": "ptend_q0001", "radiation": "cam_out_NETSW",
               "precipitation": "cam_out_PRECC"},
    )


def split_label(label: str) -> tuple[str, float | None]:
    """Variable part and level pressure (hPa) of any catalogue's feature label.

    Labels are ``name-<hPa>`` for 3-D variables and ``name`` for 2-D ones
    (:meth:`Catalogue.feature_label`), so they can be read without the catalogue.

    Examples
    --------
    >>> split_label("tphystnd-691.39")
    ('tphystnd', 691.39)
    >>> split_label("cam_out_netsw")
    ('cam_out_netsw', None)
    """
    name, sep, level = label.rpartition("-")
    if sep:
        try:
            return name, float(level)
        except ValueError:
            pass
    return label, None


#: Catalogue names that files may record.
CATALOGUE_NAMES = ("spcam", "climsim")


def catalogue_from_attrs(attrs: Mapping[str, object]) -> Catalogue:
    """The catalogue recorded in a file's global attributes (SPCAM when none is).

    Raises
    ------
    ValueError
        An unknown catalogue name, or a ClimSim file without its levels.
    """
    name = str(attrs.get("pcm_catalogue", "spcam"))
    if name == "spcam":
        return SPCAM
    if name == "climsim":
        levels = attrs.get("pcm_levels_hpa")
        if levels is None:
            raise ValueError("climsim catalogue recorded without pcm_levels_hpa")
        return climsim_catalogue(levels)
    raise ValueError(f"unknown catalogue {name!r} (known: {', '.join(CATALOGUE_NAMES)})")


#: Latitudes and longitudes of SPCAM's full T42 Gaussian grid.
T42_SHAPE = (64, 128)


def grid_shape(n_lat: int | None = None, n_lon: int | None = None) -> tuple[int, int]:
    """Latitudes and longitudes of a (synthetic) T42 grid subset: None is the full grid."""
    return (T42_SHAPE[0] if n_lat is None else int(n_lat),
            T42_SHAPE[1] if n_lon is None else int(n_lon))


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
    full_lat, full_lon = T42_SHAPE
    nodes, weights = np.polynomial.legendre.leggauss(full_lat)
    lat = np.degrees(np.arcsin(nodes))
    lon = np.arange(full_lon) * 360.0 / full_lon
    n_lat, n_lon = grid_shape(n_lat, n_lon)
    if not 1 <= n_lat <= full_lat or not 1 <= n_lon <= full_lon:
        raise ValueError(f"grid subset must have 1..{full_lat} latitudes and 1..{full_lon} "
                         f"longitudes, got n_lat={n_lat}, n_lon={n_lon}")
    ilat = np.floor((np.arange(n_lat) + 0.5) * full_lat / n_lat).astype(int)
    ilon = np.floor(np.arange(n_lon) * full_lon / n_lon).astype(int)
    return {"lat": lat[ilat], "lon": lon[ilon], "gw": weights[ilat]}
