"""Randomised worlds: synthetic data sets whose physics is drawn from a world seed.

World 0 is the hand-written aquaplanet of :mod:`pcm.data.synthetic` (unchanged, bit
for bit). Every other world ``w`` draws its own physics from ``w`` alone
(:func:`world_physics`; the data seed only draws the samples), in the same CBRAIN
layout (94 inputs, 65 outputs), so that the whole pipeline runs on it unchanged:

* **inputs**: ``K`` latent AR(1) processes (3-8, e-folding 3-72 h) load smooth
  vertical profiles of temperature and (log) humidity and the surface fluxes; an
  input's variance is a world-drawn share ``shared`` of latents plus AR(1) noise of its
  own, correlated in the vertical over ``smoothness`` levels (0.7-6: from rough to very
  smooth profiles). A latitude pattern (the aquaplanet's climatology, scaled by
  ``meridional``) adds a large-scale correlation; insolation is the aquaplanet's.
* **spurious proxies**: ``VBP`` drives nothing but copies ``TBP`` or log ``QBP`` level by
  level at correlation ``proxy_r`` (0.5-0.92); ``PS`` drives nothing but copies one of
  the world's hub drivers at ``ps_r`` (0.3-0.9). Non-driver levels of ``TBP`` and
  ``QBP`` correlate with driver levels through the vertical smoothness and the latents.
* **driver graph**: 2-8 *hub* inputs (tropospheric T and q, sometimes a surface flux)
  are shared by many outputs, each output variable reading a random subset of them;
  every heating (moistening) level reads its own temperature (humidity) with a drawn
  probability and 0-2 extra inputs near its level; the lowest three levels read the
  surface flux; the 2-D outputs read their hubs plus 1-4 random inputs. Weights are
  log-uniform over 0.03-1 (sometimes one dominant driver x3), so strengths run from weak
  to dominant. ``PHQ`` above 140 hPa is exactly zero, as in world 0.
* **nonlinearity**: each driver enters as ``(1 - a) u + a g(u)`` with ``g`` one of
  tanh, softplus, square, exponential (unit variance) and ``a`` the world's
  ``nonlinearity`` (0-0.9); with probability ``a`` an output also reads the product of
  two of its drivers.
* **noise**: additive Gaussian, independent of the inputs, at a world-drawn share of the
  deterministic standard deviation (0.15-0.8, jittered per output); PRECT is log-normal
  (always positive, as the causal baseline's log transform expects).

Ground truth: :func:`world_drivers` (``drivers``) and, through
:func:`pcm.data.synthetic.driver_strength`, the linearised variance share of every
driver, written to ``drivers.nc`` as for world 0.

World seeds are split (:func:`world_split`): worlds 0-99 are **development** worlds,
the only ones looked at while choosing methods and defaults (:data:`DEVELOPMENT_WORLDS`,
0-9, is the set used for that); worlds 100-199 are **held-out** worlds, evaluated only
(:data:`HELDOUT_WORLDS`, 100-149, is the evaluation set).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from pcm import variables as V
from pcm.data.synthetic._base import (
    DT,
    I_LHFLX,
    I_PS,
    I_SHFLX,
    I_SOLIN,
    IQ,
    IT,
    K_SFC,
    K_STRAT,
    N_IN,
    N_OUT,
    NL,
    O_PRECT,
    O_Q,
    O_T,
    P_HPA,
    Q_SCALE,
    _softplus,
)
from pcm.data.synthetic.atmosphere import _climatology, _solin
from pcm.errors import ParameterError

__all__ = ["DEVELOPMENT_WORLDS", "HELDOUT_WORLDS", "world_split", "WorldPhysics",
           "world_physics", "world_drivers", "world_output", "simulate_world",
           "world_summary"]

#: Development worlds: the only ones looked at while choosing methods and defaults.
DEVELOPMENT_WORLDS = tuple(range(0, 10))
#: Held-out worlds: evaluated only, never looked at while choosing.
HELDOUT_WORLDS = tuple(range(100, 150))
#: Worlds below this seed are development worlds, from it up to 199 held-out worlds.
HELDOUT_START = 100
MAX_WORLD = 199

_PHYSICS_SALT = 17_2406  # the world's physics stream: SeedSequence([world, salt])
_SAMPLE_SALT = 2406_03920  # the samples' stream, as world 0: SeedSequence([seed, salt, world])
_CHUNK_ROWS = 8192

#: Physical scale (std) and offset of each output variable in every world other than 0.
_OUTPUT_SCALE = {"TPHYSTND": (1.5e-5, 0.0), "PHQ": (3.0e-8, 0.0), "FSNT": (120.0, 250.0),
                 "FSNS": (100.0, 180.0), "FLNT": (20.0, 240.0), "FLNS": (15.0, 60.0)}
_PRECT_MEAN = 3.0e-8  # m/s (about 2.6 mm/day)
_PRECT_LOG_STD = 0.6  # log-normal: sigma of log PRECT from the deterministic part

# Nonlinear shapes g(u), each with zero mean and unit variance for u ~ N(0, 1).
_SHAPES = (
    lambda u: np.tanh(1.5 * u),
    lambda u: _softplus(2.0 * u),
    lambda u: u * u,
    lambda u: np.exp(0.6 * np.clip(u, -8.0, 8.0)),
)


def _shape_moments() -> np.ndarray:
    u = np.random.default_rng(0).standard_normal(400_000)
    return np.array([(g(u).mean(), g(u).std()) for g in _SHAPES])


_MOMENTS = _shape_moments()


def world_split(world: int) -> str:
    """``"development"`` for worlds 0-99, ``"held-out"`` for worlds 100-199."""
    _check_world(world)
    return "development" if world < HELDOUT_START else "held-out"


def _check_world(world: int) -> int:
    if isinstance(world, bool) or not isinstance(world, int | np.integer) or not (
            0 <= world <= MAX_WORLD):
        raise ParameterError("data.world", f"must be an integer from 0 to {MAX_WORLD} (0: the "
                             f"aquaplanet; 1-99 development, 100-199 held-out), got {world!r}")
    return int(world)


@dataclass(frozen=True, eq=False)
class WorldPhysics:
    """The drawn physics of one world (see the module docstring for the ranges)."""

    world: int
    tau_hours: np.ndarray  # (K,) latent e-folding times
    noise_tau_hours: float  # per-level noise e-folding time
    load_t: np.ndarray  # (K, NL) latent loadings of the temperature anomaly (unit norm per level)
    load_q: np.ndarray  # (K, NL) ... of the log-humidity anomaly
    load_sfc: np.ndarray  # (K, 2) ... of SHFLX, LHFLX
    shared: float  # share of an input's variance from the latents
    smoothness: float  # vertical correlation length of the per-level noise (levels)
    vertical: np.ndarray  # (NL, NL) Cholesky factor of the vertical noise correlation
    meridional: float  # weight of the latitude pattern
    amp_t: np.ndarray  # (NL,) K per unit anomaly
    proxy_source: str  # "TBP" or "QBP": what VBP copies level by level
    proxy_r: float
    ps_source: int  # input index that PS copies
    ps_r: float
    hubs: np.ndarray  # input indices shared by many outputs
    drivers: np.ndarray  # (65, 94) bool
    weights: np.ndarray  # (65, 94) float
    kinds: np.ndarray  # (65, 94) int, index into the nonlinear shapes
    pairs: np.ndarray  # (65, 2) int, -1: no interaction
    pair_weight: np.ndarray  # (65,)
    nonlinearity: float
    noise: np.ndarray  # (65,) noise std / deterministic std


def _bumps(rng: np.random.Generator, k: int, width: float) -> np.ndarray:
    """``k`` random smooth vertical profiles (sums of two Gaussian bumps in level index)."""
    levels = np.arange(NL)
    out = np.zeros((k, NL))
    for m in range(k):
        for _ in range(2):
            centre, w = rng.uniform(0, NL - 1), width * rng.uniform(0.7, 1.5)
            out[m] += rng.standard_normal() * np.exp(-(((levels - centre) / w) ** 2))
    return out


def _unit_levels(load: np.ndarray) -> np.ndarray:
    """Scale every level (column) of a loading to unit norm over the latents."""
    return load / np.maximum(np.linalg.norm(load, axis=0, keepdims=True), 1e-9)


@cache
def world_physics(world: int) -> WorldPhysics:
    """Draw the physics of ``world`` (1-199) from its seed alone.

    Raises
    ------
    ParameterError
        ``world`` is not an integer from 1 to 199 (world 0 is the hand-written aquaplanet).
    """
    world = _check_world(world)
    if world == 0:
        raise ParameterError("data.world", "world 0 is the hand-written aquaplanet "
                             "(pcm.data.synthetic.physics), not a drawn world")
    rng = np.random.default_rng(np.random.SeedSequence([world, _PHYSICS_SALT]))
    k = int(rng.integers(3, 9))
    smoothness = float(rng.uniform(0.7, 6.0))
    d = np.abs(np.subtract.outer(np.arange(NL), np.arange(NL))) / smoothness
    vertical = np.linalg.cholesky(np.exp(-(d**1.5)) + 1e-6 * np.eye(NL))
    width = max(1.5, 2.0 * smoothness)
    load_t, load_q = _unit_levels(_bumps(rng, k, width)), _unit_levels(_bumps(rng, k, width))
    load_sfc = _unit_levels(rng.standard_normal((k, 2)))
    tau = np.exp(rng.uniform(np.log(3.0), np.log(72.0), k))
    # -- driver graph ---------------------------------------------------------
    trop = np.arange(K_STRAT, NL)
    pool_3d = np.concatenate([IT, IQ[trop]])
    eligible = np.concatenate([pool_3d, [I_SOLIN, I_SHFLX, I_LHFLX]])
    n_hub = int(rng.integers(2, 9))
    hub_pool = np.concatenate([IT[trop], IQ[trop], [I_SHFLX, I_LHFLX]])
    p_pool = np.r_[np.ones(2 * trop.size), [3.0, 3.0]]
    hubs = np.sort(rng.choice(hub_pool, n_hub, replace=False, p=p_pool / p_pool.sum()))
    drivers = np.zeros((N_OUT, N_IN), dtype=bool)
    p_local = float(rng.uniform(0.4, 1.0))
    window = int(rng.integers(1, 5))
    for var, outputs in _output_groups().items():
        p_hub = rng.uniform(0.2, 1.0)
        subset = hubs[rng.random(hubs.size) < p_hub]
        p_solin = rng.uniform(0.0, 1.0) if var != "PRECT" else 0.0
        for o in outputs:
            if var == "PHQ" and o - O_Q[0] < K_STRAT:
                continue  # exactly zero aloft, as in world 0
            drivers[o, subset] = True
            if var in ("TPHYSTND", "PHQ"):
                level = o - (O_T[0] if var == "TPHYSTND" else O_Q[0])
                local = IT[level] if var == "TPHYSTND" else IQ[max(level, K_STRAT)]
                if rng.random() < p_local:
                    drivers[o, local] = True
                near = [i for i in pool_3d
                        if abs(_level_of(i) - level) <= window and i != local]
                n_near = min(len(near), int(rng.integers(0, 3)))
                if n_near:
                    drivers[o, rng.choice(near, n_near, replace=False)] = True
                if level in K_SFC and rng.random() < 0.8:
                    drivers[o, I_SHFLX if var == "TPHYSTND" else I_LHFLX] = True
            else:
                drivers[o, rng.choice(eligible, int(rng.integers(1, 5)), replace=False)] = True
            if rng.random() < p_solin:
                drivers[o, I_SOLIN] = True
            if not drivers[o].any():
                drivers[o, rng.choice(eligible)] = True
    weights = np.exp(rng.uniform(np.log(0.03), 0.0, (N_OUT, N_IN)))
    weights *= rng.choice([-1.0, 1.0], (N_OUT, N_IN))
    dominant = rng.random(N_OUT) < 0.3
    for o in np.flatnonzero(dominant & drivers.any(axis=1)):
        weights[o, rng.choice(np.flatnonzero(drivers[o]))] *= 3.0
    weights = np.where(drivers, weights, 0.0)
    kinds = rng.integers(0, len(_SHAPES), (N_OUT, N_IN))
    nonlinearity = float(rng.uniform(0.0, 0.9))
    pairs = np.full((N_OUT, 2), -1)
    pair_weight = np.zeros(N_OUT)
    for o in range(N_OUT):
        own = np.flatnonzero(drivers[o])
        if own.size >= 2 and rng.random() < nonlinearity:
            pairs[o] = rng.choice(own, 2, replace=False)
            pair_weight[o] = rng.uniform(0.2, 0.6) * rng.choice([-1.0, 1.0])
    noise = rng.uniform(0.15, 0.8) * np.exp(0.2 * rng.standard_normal(N_OUT))
    ps_source = int(rng.choice(hubs[hubs < 2 * NL])) if (hubs < 2 * NL).any() else int(IT[-1])
    return WorldPhysics(
        world=world, tau_hours=tau, noise_tau_hours=float(rng.uniform(1.0, 6.0)),
        load_t=load_t, load_q=load_q, load_sfc=load_sfc,
        shared=float(rng.uniform(0.3, 0.85)), smoothness=smoothness, vertical=vertical,
        meridional=float(rng.uniform(0.2, 1.2)), amp_t=rng.uniform(1.0, 3.0) * (
            1.0 + 0.5 * (P_HPA < 150.0)),
        proxy_source=str(rng.choice(["TBP", "QBP"])), proxy_r=float(rng.uniform(0.5, 0.92)),
        ps_source=ps_source, ps_r=float(rng.uniform(0.3, 0.9)), hubs=hubs, drivers=drivers,
        weights=weights, kinds=kinds, pairs=pairs, pair_weight=pair_weight,
        nonlinearity=nonlinearity, noise=noise)


def _output_groups() -> dict[str, np.ndarray]:
    groups, start = {}, 0
    for name in V.OUTPUT_VARIABLES:
        n = V.VARIABLES[name].n_levels
        groups[name] = np.arange(start, start + n)
        start += n
    return groups


def _level_of(i: int) -> int:
    return int(i % NL) if i < 2 * NL else NL - 1


def world_drivers(world: int) -> np.ndarray:
    """Boolean ``[65, 94]``: the inputs each output of ``world`` reads."""
    return world_physics(world).drivers.copy()


# -- inputs -------------------------------------------------------------------------------
_N_NOISE = 3 * NL + 3  # per-level noise of T, q, V; PS, SHFLX, LHFLX


def _patterns(lat: np.ndarray, sst_shift: float) -> dict[str, np.ndarray]:
    """Per-column latitude patterns (standardised over latitude) and climatological means."""
    clim = _climatology(lat, sst_shift)
    ref = _climatology(np.linspace(-87.0, 87.0, 59), 0.0)
    t_ref = ref["t"].mean(axis=0)
    t_pat = (clim["t"] - t_ref - _shift_profile(sst_shift)) / ref["t"].std(axis=0)
    rh_pat = (clim["rh_logit"] - ref["rh_logit"].mean(axis=0)) / np.maximum(
        ref["rh_logit"].std(axis=0), 1e-6)
    return {"t_ref": t_ref, "t_pat": t_pat, "rh_pat": rh_pat, "sst_shift": sst_shift}


def _shift_profile(sst_shift: float) -> np.ndarray:
    return sst_shift * (2.2 - 1.2 * P_HPA / 1000.0)


def _world_inputs(phys: WorldPhysics, state: np.ndarray, pat: dict[str, np.ndarray],
                  solin: np.ndarray) -> np.ndarray:
    """Physical inputs ``[n, 94]`` from the AR(1) state ``[n, K + 3 NL + 3]``."""
    k = phys.tau_hours.size
    z = state[:, :k].astype(np.float64)
    e = state[:, k:].astype(np.float64)
    e_t, e_q, e_v = (e[:, i * NL:(i + 1) * NL] @ phys.vertical.T for i in range(3))
    e_ps, e_sh, e_lh = e[:, 3 * NL], e[:, 3 * NL + 1], e[:, 3 * NL + 2]
    a, b = np.sqrt(phys.shared), np.sqrt(1.0 - phys.shared)
    a_t = a * (z @ phys.load_t) + b * e_t
    a_q = a * (z @ phys.load_q) + b * e_q
    a_sfc = a * (z @ phys.load_sfc)
    x = np.empty((state.shape[0], N_IN))
    shift = pat["sst_shift"]
    # anomaly plus latitude pattern, of unit variance: T is linear in it, log q too
    m = phys.meridional
    s_t = (a_t + m * pat["t_pat"]) / np.sqrt(1.0 + m * m)
    s_q = (a_q + m * pat["rh_pat"]) / np.sqrt(1.0 + m * m)
    x[:, IT] = pat["t_ref"] + _shift_profile(shift) + phys.amp_t * np.sqrt(1.0 + m * m) * s_t
    x[:, IQ] = Q_SCALE * np.exp(0.4 * np.sqrt(1.0 + m * m) * s_q + 0.07 * shift)
    # the proxies copy the whole signal, so that their correlation is the drawn one
    source = s_t if phys.proxy_source == "TBP" else s_q
    r = phys.proxy_r
    x[:, 2 * NL:3 * NL] = 5.0 * (r * source + np.sqrt(1.0 - r * r) * e_v)
    hub = np.concatenate([s_q, s_t], axis=1)[:, phys.ps_source]
    x[:, I_PS] = 98482.0 + 400.0 * (phys.ps_r * hub + np.sqrt(1.0 - phys.ps_r**2) * e_ps)
    x[:, I_SOLIN] = solin
    x[:, I_SHFLX] = 15.0 + 8.0 * (a_sfc[:, 0] + b * e_sh)
    x[:, I_LHFLX] = 110.0 + 35.0 * (a_sfc[:, 1] + b * e_lh)
    return x


def _draw(rng: np.random.Generator, n_col: int, k: int) -> np.ndarray:
    return rng.standard_normal((n_col, k + _N_NOISE), dtype=np.float32)


def _inputs(phys: WorldPhysics, steps: int, rng: np.random.Generator, lat: np.ndarray,
            lon: np.ndarray, sst_shift: float):
    """Yield ``(t0, tc, x)`` as :func:`pcm.data.synthetic.generator._inputs` does."""
    n_col = lat.size * lon.size
    lat_col, lon_col = np.repeat(lat, lon.size), np.tile(lon, lat.size)
    pat = _patterns(lat_col, sst_shift)
    chunk = max(1, _CHUNK_ROWS // n_col)
    k = phys.tau_hours.size
    tau = np.concatenate([phys.tau_hours, np.full(_N_NOISE, phys.noise_tau_hours)])
    phi = np.exp(-DT / (tau * 3600.0))
    phi32, innovation = phi.astype(np.float32), np.sqrt(1.0 - phi**2).astype(np.float32)
    states = np.empty((chunk, n_col, k + _N_NOISE), dtype=np.float32)
    state = states[0]
    for t0 in range(0, steps, chunk):
        tc = min(chunk, steps - t0)
        for i in range(tc):
            draw = _draw(rng, n_col, k)
            if t0 + i == 0:
                states[0] = draw
            else:
                np.multiply(state, phi32, out=states[i])
                states[i] += draw * innovation
            state = states[i]
        solin = _solin(lat_col, lon_col, (t0 + np.arange(tc)) * DT).reshape(-1)
        rows = {key: (np.tile(v, (tc, 1)) if isinstance(v, np.ndarray) and v.ndim == 2 else v)
                for key, v in pat.items()}
        yield t0, tc, _world_inputs(phys, states[:tc].reshape(-1, k + _N_NOISE), rows, solin)


# -- outputs ------------------------------------------------------------------------------
def _standardised(x: np.ndarray, stats: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    u = x.copy()
    u[:, IQ] = np.log(np.maximum(u[:, IQ], 1e-12))
    return (u - stats[0]) / stats[1]


def _raw_output(phys: WorldPhysics, u: np.ndarray) -> np.ndarray:
    """``sum_j w_j h(u_j)`` (+ an interaction) per output, before standardisation."""
    out = np.zeros((u.shape[0], N_OUT))
    a = phys.nonlinearity
    used = np.flatnonzero(phys.drivers.any(axis=0))
    for i in used:
        outputs = np.flatnonzero(phys.drivers[:, i])
        for kind in np.unique(phys.kinds[outputs, i]):
            these = outputs[phys.kinds[outputs, i] == kind]
            mean, std = _MOMENTS[kind]
            h = (1.0 - a) * u[:, i] + a * (_SHAPES[kind](u[:, i]) - mean) / std
            out[:, these] += h[:, None] * phys.weights[these, i]
    for o in np.flatnonzero(phys.pairs[:, 0] >= 0):
        i, j = phys.pairs[o]
        out[:, o] += phys.pair_weight[o] * np.tanh(u[:, i]) * np.tanh(u[:, j])
    return out


def _reference(phys: WorldPhysics) -> dict[str, np.ndarray]:
    """Input and deterministic-output statistics on a fixed reference sample of the world
    (16 x 32 grid, 48 steps, seed 12345, control climate)."""
    return _reference_cached(phys.world)


@cache
def _reference_cached(world: int) -> dict[str, np.ndarray]:
    phys = world_physics(world)
    grid = V.gaussian_grid(16, 32)
    x = np.concatenate([x for _, _, x in _inputs(phys, 48, np.random.default_rng(12345),
                                                  grid["lat"], grid["lon"], 0.0)])
    x = x.astype(np.float32).astype(np.float64)
    u = x.copy()
    u[:, IQ] = np.log(u[:, IQ])
    stats = (u.mean(axis=0), np.where(u.std(axis=0) > 0, u.std(axis=0), 1.0))
    raw = _raw_output(phys, _standardised(x, stats))
    std = raw.std(axis=0)
    return {"x_mean": stats[0], "x_std": stats[1], "y_mean": raw.mean(axis=0),
            "y_std": np.where(std > 0, std, 1.0)}


def _scales() -> tuple[np.ndarray, np.ndarray]:
    scale, offset = np.zeros(N_OUT), np.zeros(N_OUT)
    for var, outputs in _output_groups().items():
        if var in _OUTPUT_SCALE:
            scale[outputs], offset[outputs] = _OUTPUT_SCALE[var]
    return scale, offset


def _standard_output(phys: WorldPhysics, x: np.ndarray) -> np.ndarray:
    ref = _reference(phys)
    raw = _raw_output(phys, _standardised(x, (ref["x_mean"], ref["x_std"])))
    f = (raw - ref["y_mean"]) / ref["y_std"]
    f[:, ~phys.drivers.any(axis=1)] = 0.0
    return f


def world_output(world: int, x: np.ndarray) -> np.ndarray:
    """Deterministic (noise-free) part ``[n, 65]`` of the outputs of ``world``, physical units.

    PRECT's deterministic part is its conditional median ``exp(...)``: its noise is
    log-normal of mean one, so E[PRECT | x] is this times a constant.
    """
    phys = world_physics(world)
    f = _standard_output(phys, np.asarray(x, dtype=np.float64))
    return _physical(phys, f, np.zeros_like(f))


def _physical(phys: WorldPhysics, f: np.ndarray, eps: np.ndarray) -> np.ndarray:
    scale, offset = _scales()
    y = offset + scale * (f + phys.noise * eps)
    s = _PRECT_LOG_STD
    n = phys.noise[O_PRECT]
    y[:, O_PRECT] = _PRECT_MEAN * np.exp(s * (f[:, O_PRECT] + n * eps[:, O_PRECT])
                                         - 0.5 * s * s * (1.0 + n * n))
    return y


def simulate_world(world: int, steps: int, seed: int, lat: np.ndarray, lon: np.ndarray,
                   sst_shift: float):
    """Yield ``(t0, tc, x, y)`` of ``world``: inputs (float32-representable) and noisy outputs,
    as :func:`pcm.data.synthetic.generator._simulate` does for world 0."""
    phys = world_physics(world)
    ss_in, ss_out = np.random.SeedSequence([seed, _SAMPLE_SALT, world]).spawn(2)
    rng_in, rng_out = np.random.default_rng(ss_in), np.random.default_rng(ss_out)
    zero = ~phys.drivers.any(axis=1) & np.isin(np.arange(N_OUT), O_Q[:K_STRAT])
    for t0, tc, x in _inputs(phys, steps, rng_in, lat, lon, sst_shift):
        x[...] = x.astype(np.float32)
        eps = rng_out.standard_normal(x.shape[0] * N_OUT).reshape(-1, N_OUT)
        eps[:, zero] = 0.0
        yield t0, tc, x, _physical(phys, _standard_output(phys, x), eps)


def world_summary(world: int) -> dict[str, float | int | str]:
    """The drawn knobs of ``world`` (for tables): drivers per output, proxy strength, ..."""
    phys = world_physics(world)
    per_output = phys.drivers.sum(axis=1)
    return {"world": phys.world, "split": world_split(phys.world), "latents":
            int(phys.tau_hours.size), "hubs": int(phys.hubs.size),
            "drivers_per_output": float(per_output[per_output > 0].mean()),
            "nonlinearity": phys.nonlinearity, "noise": float(np.median(phys.noise)),
            "proxy_source": phys.proxy_source, "proxy_r": phys.proxy_r, "ps_r": phys.ps_r,
            "smoothness": phys.smoothness, "shared": phys.shared}
