"""Generation of the synthetic aquaplanet: time stepping, noise, datasets and reports."""

from __future__ import annotations

from functools import cache

import numpy as np
import xarray as xr
from scipy.special import ndtr

from pcm import variables as V
from pcm.data.synthetic._base import (
    DT,
    I_SOLIN,
    K_STRAT,
    N_IN,
    N_OUT,
    NL,
    O_FSNS,
    O_FSNT,
    O_PRECT,
    O_Q,
    P_HPA,
)
from pcm.data.synthetic.atmosphere import (
    N_LATENT,
    N_STATE,
    PHI,
    _climatology,
    _solin,
    input_function,
)
from pcm.data.synthetic.physics import _driver_matrix, _physics, output_function, true_drivers
from pcm.data.synthetic.worlds import simulate_world, world_drivers, world_output
from pcm.errors import ParameterError

# Noise (see _add_noise): additive Gaussian std as a fraction of the deterministic std;
# bounded albedo and transmissivity perturbations; log-normal sigma of precipitation.
NOISE_ADDITIVE = 0.45
ALBEDO_NOISE = 0.53  # keeps the albedo within [0.014, 0.994]
TRANSMISSIVITY_NOISE = 0.1
PRECT_LOG_NOISE = 0.5

_CHUNK_ROWS = 8192  # columns x steps processed at once (cache-friendly)


def _draw_state(rng: np.random.Generator, n_col: int) -> np.ndarray:
    """Unit-variance innovations ``[n_col, N_STATE]`` (float32): Gaussian for the latents,
    uniform (3x cheaper to draw) for the per-level noise, which the AR(1) filter smooths."""
    draw = np.empty((n_col, N_STATE), dtype=np.float32)
    draw[:, :N_LATENT] = rng.standard_normal((n_col, N_LATENT), dtype=np.float32)
    draw[:, N_LATENT:] = rng.random((n_col, N_STATE - N_LATENT), dtype=np.float32)
    draw[:, N_LATENT:] -= 0.5
    draw[:, N_LATENT:] *= np.float32(np.sqrt(12.0))
    return draw


def _inputs(steps: int, rng: np.random.Generator, lat: np.ndarray, lon: np.ndarray,
            sst_shift: float):
    """Yield ``(t0, tc, x)``: inputs ``[tc * n_col, 94]`` of ``tc`` consecutive steps.

    The random stream is consumed one time step at a time, so the first steps of
    a longer run equal a shorter run with the same seed.
    """
    n_col = lat.size * lon.size
    lat_col, lon_col = np.repeat(lat, lon.size), np.tile(lon, lat.size)
    clim = _climatology(lat_col, sst_shift)
    chunk = max(1, _CHUNK_ROWS // n_col)
    clim_rows = {k: np.tile(v, (chunk,) + (1,) * (v.ndim - 1)) for k, v in clim.items()}
    phi = PHI.astype(np.float32)
    innovation = np.sqrt(1.0 - PHI**2).astype(np.float32)
    states = np.empty((chunk, n_col, N_STATE), dtype=np.float32)
    state = states[0]
    for t0 in range(0, steps, chunk):
        tc = min(chunk, steps - t0)
        for i in range(tc):
            draw = _draw_state(rng, n_col)
            if t0 + i == 0:
                states[0] = draw  # stationary start
            else:
                np.multiply(state, phi, out=states[i])
                draw *= innovation
                states[i] += draw
            state = states[i]
        solin = _solin(lat_col, lon_col, (t0 + np.arange(tc)) * DT).reshape(-1)
        rows = {k: v[:tc * n_col] for k, v in clim_rows.items()}
        yield t0, tc, input_function(states[:tc].reshape(-1, N_STATE), rows, solin)


@cache
def _noise_std() -> np.ndarray:
    """Std ``[65]`` of the additive Gaussian noise: NOISE_ADDITIVE times the std of each
    deterministic output on a fixed reference sample (16 x 32 grid, 48 steps, seed 12345);
    zero for the outputs with their own noise model (FSNT, FSNS, PRECT) and for PHQ aloft."""
    grid = V.gaussian_grid(16, 32)
    x = np.concatenate([x for _, _, x in _inputs(48, np.random.default_rng(12345),
                                                  grid["lat"], grid["lon"], 0.0)])
    std = NOISE_ADDITIVE * _physics(x)[0].std(axis=0)
    std[[O_FSNT, O_FSNS, O_PRECT]] = 0.0
    std[O_Q[:K_STRAT]] = 0.0
    return std


#: Outputs that carry noise (all but PHQ above 140 hPa).
NOISY = np.setdiff1d(np.arange(N_OUT), O_Q[:K_STRAT])


def _add_noise(x: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """Outputs ``f(x) + noise`` from standard-normal draws ``eps [n, 65]``.

    Every noise term has zero mean given ``x`` (E[y | x] = f(x)) and is drawn
    independently of the inputs:

    * additive Gaussian for heating, moistening and longwave fluxes;
    * a random sub-grid cloud ``c = Phi(eps)**4`` in [0, 1] (mean 1/5) that
      perturbs the albedo by ``ALBEDO_NOISE * (c - 1/5)`` for FSNT, so that
      0 <= FSNT <= SOLIN, and a bounded symmetric relative perturbation of the
      surface transmissivity for FSNS, so that 0 <= FSNS <= FSNT;
    * log-normal (mean one) multiplicative noise for PRECT, so PRECT > 0.
    """
    f, solin, albedo, transmissivity = _physics(x)
    y = f + eps * _noise_std()
    cloud = ndtr(eps[:, O_FSNT]) ** 4  # random sub-grid cloud in [0, 1], mean 1/5
    y[:, O_FSNT] = solin * (1.0 - albedo - ALBEDO_NOISE * (cloud - 0.2))
    y[:, O_FSNS] = y[:, O_FSNT] * transmissivity * (
        1.0 + TRANSMISSIVITY_NOISE * np.tanh(eps[:, O_FSNS]))
    y[:, O_PRECT] = f[:, O_PRECT] * np.exp(
        PRECT_LOG_NOISE * eps[:, O_PRECT] - 0.5 * PRECT_LOG_NOISE**2)
    return y


def _simulate(steps: int, seed: int, lat: np.ndarray, lon: np.ndarray, sst_shift: float):
    """Yield ``(t0, tc, x, y)``: inputs (float32-representable float64) and noisy outputs."""
    ss_in, ss_out = np.random.SeedSequence([seed, 2406_03920]).spawn(2)
    rng_in, rng_out = np.random.default_rng(ss_in), np.random.default_rng(ss_out)
    n_col = lat.size * lon.size
    for t0, tc, x in _inputs(steps, rng_in, lat, lon, sst_shift):
        x[...] = x.astype(np.float32)  # outputs are a function of the stored (float32) inputs
        eps = np.zeros((tc, n_col, N_OUT), dtype=np.float32)
        for i in range(tc):  # no draws for PHQ above 140 hPa, which is exactly zero
            eps[i][:, NOISY] = rng_out.standard_normal((n_col, NOISY.size), dtype=np.float32)
        eps = eps.reshape(-1, N_OUT)
        yield t0, tc, x, _add_noise(x, eps)


def generate(steps: int, *, seed: int = 0, n_lat: int | None = None, n_lon: int | None = None,
             sst_shift: float = 0.0, world: int = 0) -> xr.Dataset:
    """Generate the synthetic aquaplanet: 7 input and 7 output fields in physical units.

    Parameters
    ----------
    steps : int
        Number of half-hourly time steps.
    seed : int
        Random seed; the same arguments give bit-identical output.
    n_lat, n_lon : int, optional
        Grid subset (see :func:`pcm.variables.gaussian_grid`); None for full T42.
    sst_shift : float
        Uniform SST (and tropospheric temperature) change in K, e.g. +4 / -4.
    world : int
        The physics: 0 the hand-written aquaplanet (this module's docstring), 1-199 a
        physics drawn from the world seed (:mod:`pcm.data.synthetic.worlds`; 1-99
        development, 100-199 held-out worlds).

    Returns
    -------
    xarray.Dataset
        3-D variables ``(time, lev, lat, lon)``, 2-D ``(time, lat, lon)``, float32,
        with ``units`` and ``long_name``; coordinates ``time`` (s since start),
        ``lev`` (hPa, top to bottom), ``lat``, ``lon`` and ``gw(lat)``.
    """
    if int(steps) != steps or steps < 1:
        raise ParameterError("steps", f"must be a positive integer, got {steps!r}")
    steps = int(steps)
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ParameterError("seed", f"must be a non-negative integer, got {seed!r}")
    try:
        grid = V.gaussian_grid(n_lat, n_lon)
    except ValueError as err:
        raise ParameterError("n_lat/n_lon", str(err)) from None
    lat, lon = grid["lat"], grid["lon"]
    world = _world(world)
    shape = (steps, lat.size, lon.size)
    fields = {name: np.empty((steps, NL, lat.size, lon.size) if V.VARIABLES[name].three_d
                             else shape, dtype=np.float32)
              for name in V.INPUT_VARIABLES + V.OUTPUT_VARIABLES}
    in_slices, out_slices = _variable_slices(V.INPUT_VARIABLES), _variable_slices(
        V.OUTPUT_VARIABLES)
    simulate = (_simulate(steps, seed, lat, lon, float(sst_shift)) if world == 0 else
                simulate_world(world, steps, seed, lat, lon, float(sst_shift)))
    for t0, tc, x, y in simulate:
        for block, slices in ((x, in_slices), (y, out_slices)):
            # feature-major float32 copy, so that every field is then copied contiguously
            block = np.ascontiguousarray(block.T, dtype=np.float32).reshape(
                -1, tc, lat.size, lon.size)
            for name, sl in slices.items():
                if V.VARIABLES[name].three_d:
                    fields[name][t0:t0 + tc] = block[sl].transpose(1, 0, 2, 3)
                else:
                    fields[name][t0:t0 + tc] = block[sl.start]
    coords = {
        "time": ("time", np.arange(steps, dtype=np.int64) * V.TIME_STEP_SECONDS,
                 {"units": "s", "long_name": "time since start of the simulation"}),
        "lev": ("lev", P_HPA.copy(), {"units": "hPa", "long_name": "mid-level pressure for "
                                      "PS = 1000 hPa (top to bottom)"}),
        "lat": ("lat", lat, {"units": "degrees_north", "long_name": "latitude"}),
        "lon": ("lon", lon, {"units": "degrees_east", "long_name": "longitude"}),
        "gw": ("lat", grid["gw"], {"units": "1", "long_name": "Gaussian weights"}),
    }
    data_vars = {}
    for name, values in fields.items():
        var = V.VARIABLES[name]
        dims = ("time", "lev", "lat", "lon") if var.three_d else ("time", "lat", "lon")
        data_vars[name] = (dims, values, {"units": var.units, "long_name": var.long_name})
    attrs = {
        "title": "synthetic SPCAM-like aquaplanet with known physical drivers",
        "source": "pcm.data.synthetic",
        "seed": int(seed),
        "sst_shift": float(sst_shift),
        "time_step_seconds": V.TIME_STEP_SECONDS,
    }
    if world:  # world 0's files stay as they were, byte for byte
        attrs.update(title="synthetic SPCAM-like data of a randomised world with known "
                     "physical drivers", world=world)
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def _world(world: int) -> int:
    if isinstance(world, bool) or not isinstance(world, int | np.integer) or world < 0:
        raise ParameterError("data.world", f"must be a non-negative integer, got {world!r}")
    if world:
        world_drivers(int(world))  # checks the range
    return int(world)


def deterministic_output(x: np.ndarray, world: int = 0) -> np.ndarray:
    """Noise-free outputs ``[n, 65]`` of ``world`` (0: :func:`output_function`)."""
    return output_function(x) if world == 0 else world_output(world, x)


def driver_matrix(world: int = 0) -> np.ndarray:
    """Boolean ``[65, 94]``: the true drivers of ``world`` (0: the aquaplanet's)."""
    return _driver_matrix().copy() if _world(world) == 0 else world_drivers(world)


def _variable_slices(names: tuple[str, ...]) -> dict[str, slice]:
    slices, start = {}, 0
    for name in names:
        n = V.VARIABLES[name].n_levels
        slices[name] = slice(start, start + n)
        start += n
    return slices


def stack_columns(ds: xr.Dataset, names: tuple[str, ...]) -> np.ndarray:
    """Stack fields of ``ds`` into ``[n_sample, n_feature]`` float64 (time, lat, lon; lon
    fastest), features in catalogue order (e.g. ``INPUT_VARIABLES`` -> 94 columns)."""
    cols = []
    for name in names:
        da = ds[name]
        if V.VARIABLES[name].three_d:
            cols.append(da.transpose("time", "lat", "lon", "lev").values.reshape(-1, NL))
        else:
            cols.append(da.values.reshape(-1, 1))
    return np.concatenate(cols, axis=1).astype(np.float64)


def calibration_report(steps: int = 48, *, seed: int = 0, n_lat: int = 16,
                       n_lon: int = 32) -> dict[str, dict[str, float]]:
    """Pooled statistics and explained-variance shares of a generated sample.

    Returns
    -------
    dict
        ``{VAR: {"mean", "std", "explained"}}`` — pooled mean and std over levels
        and samples, and (outputs) the median over the variable's non-degenerate
        levels of the share of variance explained by the deterministic part.
    """
    ds = generate(steps, seed=seed, n_lat=n_lat, n_lon=n_lon)
    x = stack_columns(ds, V.INPUT_VARIABLES)
    y = stack_columns(ds, V.OUTPUT_VARIABLES)
    f = output_function(x)
    report = {}
    for names, block, slices in ((V.INPUT_VARIABLES, x, _variable_slices(V.INPUT_VARIABLES)),
                                 (V.OUTPUT_VARIABLES, y, _variable_slices(
                                     V.OUTPUT_VARIABLES))):
        for name in names:
            values = block[:, slices[name]]
            entry = {"mean": float(values.mean()), "std": float(values.std())}
            if block is y:
                fv, yv = f[:, slices[name]], values
                keep = yv.std(axis=0) > 0
                share = fv[:, keep].var(axis=0) / yv[:, keep].var(axis=0)
                entry["explained"] = float(np.median(share)) if keep.any() else float("nan")
            report[name] = entry
    return report


def driver_strength(steps: int = 24, *, seed: int = 0, n_lat: int = 16,
                    n_lon: int = 32, world: int = 0) -> xr.DataArray:
    """How much each true driver matters: its linearised share of the deterministic variance.

    For every input, the change of :func:`output_function` under a small
    perturbation is scaled to one within-latitude standard deviation of that
    input (SOLIN: its full standard deviation), squared, averaged over a
    generated sample and divided by the variance of the output's deterministic
    part (the noise-free :func:`output_function`; noise is not explained by any
    input). Zero exactly for non-drivers; the scores of :mod:`pcm.analysis.scoring`
    call a driver "strong" when this share is at least 1 %.

    Returns
    -------
    xarray.DataArray
        ``driver_strength(output, input)``, dimensionless, same coordinates as
        :func:`true_drivers`.
    """
    ds = generate(steps, seed=seed, n_lat=n_lat, n_lon=n_lon, world=world)
    x = stack_columns(ds, V.INPUT_VARIABLES)
    by_lat = x.reshape(steps, n_lat, n_lon, N_IN)
    sigma = (by_lat - by_lat.mean(axis=(0, 2), keepdims=True)).std(axis=(0, 2)).mean(axis=0)
    sigma[I_SOLIN] = x[:, I_SOLIN].std()
    f0 = deterministic_output(x, world)
    f_var = f0.var(axis=0)
    drivers = driver_matrix(world)
    strength = np.zeros((N_OUT, N_IN))
    step = 1e-3
    for i in np.flatnonzero(drivers.any(axis=0)):
        xp = x.copy()
        xp[:, i] += step * sigma[i]
        change = (deterministic_output(xp, world) - f0) / step
        strength[:, i] = (change**2).mean(axis=0) / np.where(f_var > 0, f_var, 1.0)
    strength[~drivers] = 0.0
    da = true_drivers(world).copy(data=strength)
    da.name = "driver_strength"
    da.attrs = {"long_name": "linearised share of the output's deterministic variance from a "
                             "one-sigma change of the driver", "units": "1",
                "sample": f"{steps} steps on a {n_lat} x {n_lon} grid, seed {seed}"
                          + (f", world {world}" if world else "")}
    return da
