"""A synthetic SPCAM-like aquaplanet whose physical drivers are known exactly.

The real SPCAM data set has no ground truth for "which inputs drive which
output". This module builds one: a column model on the real T42 grid whose
inputs evolve smoothly in time like a large-scale atmospheric state, and whose
65 outputs are a simplified, *sparse* column physics of those inputs plus
exogenous noise::

    y = output_function(x) + noise,   noise drawn independently of the inputs

so the conditional mean E[y | x] depends on the declared drivers only
(:func:`true_drivers`), while many non-drivers are still correlated with the
outputs through the shared large-scale state — the situation that makes
driver discovery hard.

Inputs (per column, half-hourly):

* six latent AR(1) processes per column (low-level moisture/convergence,
  deep-tropospheric temperature, boundary-layer temperature, upper-level
  temperature/moisture, synoptic surface pressure, surface wind) plus small
  independent AR(1) noise on every level, so that no input is an exact linear
  combination of the others;
* ``TBP``: a lapse-rate troposphere over an aquaplanet SST (the QOBS profile)
  smoothly joined to a stratosphere, plus latent anomalies;
* ``QBP``: relative humidity times saturation specific humidity, so that the
  ±4 K experiments follow Clausius–Clapeyron; a dry stratosphere (~2e-6 kg/kg);
* ``VBP``: meridional wind loading on the same latents as low-level moisture
  (correlated with convection, but never a driver);
* ``PS``: the real zonal-mean surface pressure plus synoptic anomalies;
* ``SOLIN``: perpetual-equinox insolation with a diurnal cycle;
* ``SHFLX``, ``LHFLX``: bulk formulae from the SST and the lowest level.

Outputs (:func:`output_function`): a convective intensity ``C`` (kg m-2 s-1,
a softplus of low-level moist static energy minus mid-level saturated moist
static energy, raised by mid-level humidity) and a large-scale condensation
rate ``S`` (a softplus of relative humidity at 763 hPa) make up precipitation,
heat and dry the troposphere and make clouds; radiation depends on local
temperature, humidity, insolation and cloud; surface fluxes heat and moisten
the lowest three levels. The true drivers (:func:`true_drivers`) are:

===========================  ===========================================================
output                       drivers (P = the 8 precipitation drivers: q, T at 976 and
                             993 hPa; T at 525 hPa; q at 610 hPa; q, T at 763 hPa)
===========================  ===========================================================
TPHYSTND, p < 140 hPa        T(k), SOLIN
TPHYSTND, p > 140 hPa        P, T(k), q(k), SOLIN (+ SHFLX in the lowest 3 levels)
PHQ, p < 140 hPa             none: exactly zero
PHQ, p > 140 hPa             P, q(k) (+ LHFLX in the lowest 3 levels)
FSNT                         P, SOLIN
FSNS                         P, SOLIN, q at 691, 860, 936 hPa
FLNT                         P, T at 274 and 446 hPa, q at 379 hPa
FLNS                         T at 936 and 993 hPa, q at 860 and 957 hPa
PRECT                        P
===========================  ===========================================================

VBP and PS are never drivers, although VBP shares the moisture and synoptic
latents with precipitation (|corr| ~ 0.4) and PS the synoptic one.

Noise (drawn independently of the inputs, zero mean given the inputs, so
E[y | x] = output_function(x)): additive Gaussian for heating, moistening and
longwave fluxes (std 0.45 x the deterministic std: ~83 % of the variance is
explained), a bounded random cloud for the shortwave fluxes (~95 %; they stay
within 0 <= FSNS <= FSNT <= SOLIN) and log-normal for precipitation (~75 %).

Worlds: ``generate(..., world=w)`` with ``w`` from 1 to 199 draws a different physics
from the seed ``w`` (driver graph, strengths, nonlinearity, noise, spurious proxies,
vertical smoothness; :mod:`pcm.data.synthetic.worlds`); ``world=0`` is the aquaplanet
above, bit for bit. Worlds 0-99 are development worlds (methods and defaults are chosen
on them), 100-199 held-out worlds (evaluated only).
"""

from pcm.data.synthetic._base import S0, saturation_specific_humidity, saturation_vapour_pressure
from pcm.data.synthetic.atmosphere import input_function, sea_surface_temperature
from pcm.data.synthetic.generator import (
    calibration_report,
    deterministic_output,
    driver_matrix,
    driver_strength,
    generate,
    stack_columns,
)
from pcm.data.synthetic.physics import output_function, true_drivers
from pcm.data.synthetic.worlds import (
    DEVELOPMENT_WORLDS,
    HELDOUT_WORLDS,
    world_split,
    world_summary,
)

__all__ = [
    "generate",
    "true_drivers",
    "deterministic_output",
    "driver_matrix",
    "DEVELOPMENT_WORLDS",
    "HELDOUT_WORLDS",
    "world_split",
    "world_summary",
    "output_function",
    "input_function",
    "stack_columns",
    "driver_strength",
    "calibration_report",
    "sea_surface_temperature",
    "saturation_specific_humidity",
    "saturation_vapour_pressure",
    "S0",
]
