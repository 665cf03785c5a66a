"""The prognostic single-column testbed: a truth run of the synthetic aquaplanet, made
prognostic, and the large-scale forcing that drives every coupled column.

The synthetic aquaplanet (:mod:`pcm.data.synthetic`) gives, per column and half-hour
step, a large-scale state ``x(t)`` (the 94 CBRAIN inputs) and a column physics
``f(x)`` (the 65 outputs; :func:`pcm.data.synthetic.output_function`). Made
prognostic, the temperature and humidity profiles ``s = (q, T)`` of a column evolve as::

    s(t+1) = s(t) + dt * (F(t) + P(inputs(s(t), t)))

with ``P`` the heating ``TPHYSTND`` (K/s) and moistening ``PHQ`` (kg/kg/s) of a
parameterization and ``F(t)`` the prescribed large-scale forcing, the truth run's
non-physics tendency along its own trajectory::

    F(t) = (x(t+1) - x(t)) / dt - f(x(t))     (q and T parts)

so that the truth physics ``P = f`` reproduces the truth trajectory ``s(t) = x(t)``
(to rounding; :mod:`pcm.online.coupling` tests it) and any other ``P`` drifts away
from it by its own errors and their feedback. The forcing does not depend on the
state (a single-column model with prescribed advective tendencies); what does:

* ``QBP``, ``TBP`` are the state;
* ``SHFLX``, ``LHFLX`` follow the bulk formulae from the lowest level: the truth
  run's flux plus ``rho c_h |U| c_p (T_truth - T)`` and ``rho c_h |U| L_v (q_truth - q)``
  at the lowest level;
* the *proxy*: in the truth run (and therefore in the training data) the meridional
  wind at 993 hPa (``vbp-992.56``, never a driver) carries a copy of the humidity at
  976 hPa (a driver of convection) plus noise. Coupled normally, the proxy follows the
  state's humidity as in training; in the ``proxy`` scenario it is decorrelated (the
  wind of the aquaplanet without the copy), which breaks a network that leans on it.

``VBP`` (other levels), ``PS`` and ``SOLIN`` are prescribed from the truth run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from pcm import variables as V
from pcm.data import synthetic
from pcm.errors import ParameterError

__all__ = ["DT", "NL", "N_STATE", "I_PROXY", "I_PROXY_DRIVER", "EXCHANGE", "Proxy", "Forcing",
           "truth_fields", "forcing_from_fields", "state_of", "column_inputs", "SCENARIOS"]

DT = float(V.TIME_STEP_SECONDS)
NL = V.N_LEVELS
#: The prognostic state of a column: q (30 levels, kg/kg) then T (30, K), input order.
N_STATE = 2 * NL
_IQ, _IT = np.arange(NL), np.arange(NL, 2 * NL)
_I_SHFLX, _I_LHFLX = 92, 93
#: The proxy input (VBP at 992.56 hPa) and the driver it copies (QBP at 976.33 hPa).
I_PROXY = 2 * NL + NL - 1
I_PROXY_DRIVER = NL - 2
#: Bulk exchange ``rho c_h |U|`` (kg m-2 s-1) of the flux response to the state: 1.2 kg/m3,
#: c_h = 1.2e-3, 7 m/s (the aquaplanet's mean wind speed).
EXCHANGE = 1.2 * 1.2e-3 * 7.0
_CP, _LV = 1004.64, 2.501e6
#: Seed offset of the independent wind that replaces the proxy in the ``proxy`` scenario.
_WIND_SEED = 4409

#: Online scenarios: control, the proxy decorrelated, the SST shifted.
SCENARIOS = ("control", "proxy", "sst")


@dataclass(frozen=True)
class Proxy:
    """The spurious proxy ``v = offset + slope * q(976 hPa) + noise * v_free``.

    Parameters
    ----------
    slope : float
        m/s per kg/kg.
    offset : float
        m/s.
    noise : float
        Weight of the aquaplanet's own wind at that level (the noise of the copy).
    """

    slope: float
    offset: float
    driver_mean: float
    noise: float = 0.3

    @classmethod
    def fit(cls, q_driver: np.ndarray, v_free: np.ndarray, noise: float = 0.3) -> Proxy:
        """A proxy whose copy term has twice the spread of the free wind (correlation with
        the driver about 0.99 in the truth run)."""
        slope = 2.0 * float(np.std(v_free)) / max(float(np.std(q_driver)), 1e-12)
        mean = float(np.mean(q_driver))
        return cls(slope=slope, offset=-slope * mean, driver_mean=mean, noise=noise)

    def value(self, q_driver: np.ndarray, v_free: np.ndarray) -> np.ndarray:
        """The proxy wind (m/s) of a driver value."""
        return self.offset + self.slope * q_driver + self.noise * v_free

    def decorrelated(self, v_free: np.ndarray) -> np.ndarray:
        """The proxy's level without the copy: same mean and about the same spread, but
        independent of the driver (the free wind, scaled)."""
        return (self.offset + self.slope * self.driver_mean
                + np.sqrt(4.0 + self.noise**2) * v_free)


def truth_fields(steps: int, *, seed: int, n_lat: int, n_lon: int, sst_shift: float = 0.0,
                 proxy: Proxy | None = None) -> tuple[xr.Dataset, Proxy]:
    """The truth run on a grid subset: the aquaplanet with the proxy injected.

    Parameters
    ----------
    steps : int
        Half-hourly steps.
    seed : int
        Seed of the aquaplanet (and, offset, of the free wind).
    n_lat, n_lon : int
        Grid subset (:func:`pcm.variables.gaussian_grid`).
    sst_shift : float
        SST shift (K) of the truth climate.
    proxy : Proxy, optional
        The proxy relation; default :meth:`Proxy.fit` on this run (the training run);
        an online run passes the training run's.

    Returns
    -------
    fields : xarray.Dataset
        As :func:`pcm.data.synthetic.generate`, ``VBP`` at 992.56 hPa replaced by the
        proxy and the free wind kept as ``V_FREE(time, lat, lon)``.
    proxy : Proxy
    """
    if int(steps) < 2:
        raise ParameterError("steps", f"the truth run needs at least 2 steps, got {steps}")
    fields = synthetic.generate(int(steps), seed=int(seed), n_lat=n_lat, n_lon=n_lon,
                                sst_shift=float(sst_shift))
    other = synthetic.generate(int(steps), seed=int(seed) + _WIND_SEED, n_lat=n_lat,
                               n_lon=n_lon, sst_shift=float(sst_shift))
    v_free = other["VBP"].isel(lev=-1).astype(np.float64)
    q_driver = fields["QBP"].isel(lev=I_PROXY_DRIVER).astype(np.float64)
    proxy = proxy or Proxy.fit(q_driver.values, v_free.values)
    vbp = fields["VBP"].values
    vbp[:, -1] = proxy.value(q_driver.values, v_free.values).astype(np.float32)
    fields["VBP"] = fields["VBP"].copy(data=vbp)
    fields["V_FREE"] = v_free.astype(np.float32).assign_attrs(
        units="m/s", long_name="meridional wind at 992.56 hPa without the proxy copy")
    fields.attrs.update(proxy_slope=proxy.slope, proxy_offset=proxy.offset,
                        proxy_driver_mean=proxy.driver_mean, proxy_noise=proxy.noise)
    return fields, proxy


@dataclass(frozen=True)
class Forcing:
    """The large-scale series of one truth run, per column.

    Attributes
    ----------
    x : numpy.ndarray
        ``[steps, n_col, 94]`` float64 truth inputs (CBRAIN order; proxy injected).
    v_free : numpy.ndarray
        ``[steps, n_col]`` the proxy level's wind without the copy (m/s).
    tendency : numpy.ndarray
        ``[steps - 1, n_col, 60]`` large-scale forcing of q (kg/kg/s) and T (K/s).
    lat, lon : numpy.ndarray
        ``[n_col]`` column coordinates (degrees).
    proxy : Proxy
    proxy_coupled : numpy.ndarray
        ``[n_col]`` bool: the proxy follows the state (False: decorrelated).
    """

    x: np.ndarray
    v_free: np.ndarray
    tendency: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    proxy: Proxy
    proxy_coupled: np.ndarray

    @property
    def steps(self) -> int:
        """Number of steps of a coupled run (one fewer than the truth series)."""
        return self.tendency.shape[0]

    @property
    def n_columns(self) -> int:
        return self.x.shape[1]

    @classmethod
    def concat(cls, parts: list[Forcing]) -> Forcing:
        """Several forcings (same length and proxy) as one set of columns."""
        return cls(*(np.concatenate([getattr(p, k) for p in parts], axis=1 if k in
                                    ("x", "v_free", "tendency") else 0)
                     for k in ("x", "v_free", "tendency", "lat", "lon")),
                   proxy=parts[0].proxy,
                   proxy_coupled=np.concatenate([p.proxy_coupled for p in parts]))


def forcing_from_fields(fields: xr.Dataset, proxy: Proxy, *,
                        proxy_coupled: bool = True) -> Forcing:
    """The large-scale forcing ``F(t) = (x(t+1) - x(t)) / dt - f(x(t))`` of a truth run."""
    x = synthetic.stack_columns(fields, V.INPUT_VARIABLES)
    steps = fields.sizes["time"]
    n_col = x.shape[0] // steps
    x = x.reshape(steps, n_col, -1)
    f = synthetic.output_function(x.reshape(-1, x.shape[-1])).reshape(steps, n_col, -1)
    phys = np.concatenate([f[:-1, :, NL:2 * NL], f[:-1, :, :NL]], axis=2)  # PHQ, TPHYSTND
    tendency = (x[1:, :, :N_STATE] - x[:-1, :, :N_STATE]) / DT - phys
    lat = np.repeat(fields["lat"].values, fields.sizes["lon"])
    lon = np.tile(fields["lon"].values, fields.sizes["lat"])
    return Forcing(x=x, v_free=fields["V_FREE"].values.reshape(steps, n_col).astype(np.float64),
                   tendency=tendency, lat=lat, lon=lon, proxy=proxy,
                   proxy_coupled=np.full(n_col, bool(proxy_coupled)))


def state_of(forcing: Forcing, t: int = 0) -> np.ndarray:
    """The truth state ``[n_col, 60]`` (q then T) at step ``t``."""
    return forcing.x[t, :, :N_STATE].copy()


def column_inputs(state: np.ndarray, forcing: Forcing, t: int) -> np.ndarray:
    """The 94 CBRAIN inputs ``[n_col, 94]`` (physical units) of the state at step ``t``.

    The truth run's inputs with the state's q and T, surface fluxes that respond to
    the lowest level, and the proxy built from the state's humidity (or decorrelated
    where ``forcing.proxy_coupled`` is False).
    """
    x = forcing.x[t].copy()
    x[:, :N_STATE] = state
    low = NL - 1
    x[:, _I_SHFLX] += EXCHANGE * _CP * (forcing.x[t, :, _IT[low]] - state[:, _IT[low]])
    x[:, _I_LHFLX] += EXCHANGE * _LV * (forcing.x[t, :, _IQ[low]] - state[:, _IQ[low]])
    coupled = forcing.proxy_coupled
    free = forcing.v_free[t]
    x[:, I_PROXY] = np.where(coupled,
                             x[:, I_PROXY] + forcing.proxy.slope
                             * (state[:, I_PROXY_DRIVER] - forcing.x[t, :, I_PROXY_DRIVER]),
                             forcing.proxy.decorrelated(free))
    return x
