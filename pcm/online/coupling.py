"""Stepping columns of the testbed with a parameterization: the truth physics, zero, or
a stacked network of a run.

A parameterization is a callable ``P(x) -> y``: physical inputs ``[n, 94]`` to physical
outputs ``[n, 65]`` (CBRAIN order). :func:`simulate` steps every column of a
:class:`~pcm.online.testbed.Forcing` with it (:mod:`pcm.online.testbed` gives the
equations) and stops a column at its first non-physical state (its blow-up; the column
then holds NaN).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pcm import variables as V
from pcm.data import synthetic
from pcm.data.normalization import Normalization
from pcm.online.testbed import DT, N_STATE, NL, Forcing, column_inputs, state_of

__all__ = ["Parameterization", "truth_physics", "zero_physics", "NetworkPhysics",
           "Trajectory", "simulate", "physical", "T_RANGE", "Q_MAX", "Q_FLOOR",
           "SAMPLE_EVERY"]

Parameterization = Callable[[np.ndarray], np.ndarray]

#: A column state is physical while every temperature lies in T_RANGE (K) and every
#: specific humidity below Q_MAX (kg/kg); its first other state is its blow-up.
T_RANGE = (150.0, 350.0)
Q_MAX = 0.05
#: Humidity below this (kg/kg) is set to it after each step (the usual hole filling).
Q_FLOOR = 1e-9
#: Steps between stored states (3 hours).
SAMPLE_EVERY = 6

_O_PRECT = 64


def truth_physics(x: np.ndarray) -> np.ndarray:
    """The truth parameterization: :func:`pcm.data.synthetic.output_function`."""
    return synthetic.output_function(x)


def zero_physics(x: np.ndarray) -> np.ndarray:
    """A parameterization that returns zeros (the column feels the forcing only)."""
    return np.zeros((x.shape[0], V.SPCAM.n_outputs))


class NetworkPhysics:
    """A stacked network of a run as a parameterization (physical units in and out).

    Parameters
    ----------
    model : pcm.nn.networks.StackedMLP
        65 networks, output ``k`` by network ``k`` (``targets`` order is respected).
    norm : Normalization
        The run's normalisation (inputs in, outputs out).
    """

    def __init__(self, model, norm: Normalization) -> None:
        import tensorflow as tf

        self.norm = norm
        order = np.argsort(np.asarray(model.targets))
        self._order = order
        self._call = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        xn = self.norm.normalize_inputs(x, dtype=np.float32)
        y = np.asarray(self._call(xn), dtype=np.float64)[:, self._order]
        return self.norm.denormalize_outputs(y, dtype=np.float64)


def physical(state: np.ndarray) -> np.ndarray:
    """``[n]`` bool: every value finite, T within :data:`T_RANGE`, q below :data:`Q_MAX`."""
    q, t = state[:, :NL], state[:, NL:]
    with np.errstate(invalid="ignore"):
        return (np.isfinite(state).all(axis=1) & (t >= T_RANGE[0]).all(axis=1)
                & (t <= T_RANGE[1]).all(axis=1) & (q <= Q_MAX).all(axis=1))


@dataclass
class Trajectory:
    """A coupled run of ``n_col`` columns.

    Attributes
    ----------
    state : numpy.ndarray
        ``[n_sample, n_col, 60]`` q (kg/kg) and T (K) every :data:`SAMPLE_EVERY` steps
        (first sample: the initial state); NaN after a column's blow-up.
    outputs : numpy.ndarray
        ``[n_sample, n_col, 65]`` the parameterization's outputs at the sampled steps.
    inputs : numpy.ndarray
        ``[n_sample, n_col, 94]`` its inputs there (surface fluxes as coupled).
    time_days : numpy.ndarray
        ``[n_sample]`` days since the start.
    blow_up_step : numpy.ndarray
        ``[n_col]`` the step whose result was not physical (-1: none).
    steps : int
        Steps run.
    """

    state: np.ndarray
    outputs: np.ndarray
    inputs: np.ndarray
    time_days: np.ndarray
    blow_up_step: np.ndarray
    steps: int


def simulate(forcing: Forcing, physics: Parameterization, *, steps: int | None = None,
             sample_every: int = SAMPLE_EVERY) -> Trajectory:
    """Step every column of ``forcing`` with ``physics`` from the truth's initial state.

    ``s(t+1) = s(t) + dt * (F(t) + P(inputs(s(t), t)))`` (q and T), humidity floored at
    :data:`Q_FLOOR`; a column whose new state is not :func:`physical` is stopped (NaN).

    Parameters
    ----------
    forcing : Forcing
        The columns and their large-scale forcing.
    physics : callable
        The parameterization ``[n, 94] -> [n, 65]`` (physical units).
    steps : int, optional
        Steps to run (default all of the forcing).
    sample_every : int
        Steps between stored samples.

    Returns
    -------
    Trajectory
    """
    steps = forcing.steps if steps is None else min(int(steps), forcing.steps)
    n = forcing.n_columns
    state = state_of(forcing, 0)
    n_sample = steps // sample_every + 1
    states = np.full((n_sample, n, N_STATE), np.nan)
    outs = np.full((n_sample, n, V.SPCAM.n_outputs), np.nan)
    ins = np.full((n_sample, n, V.SPCAM.n_inputs), np.nan)
    states[0] = state
    blow = np.full(n, -1, dtype=np.int64)
    alive = np.ones(n, dtype=bool)
    for t in range(steps):
        x = column_inputs(state, forcing, t)
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            y = np.asarray(physics(x), dtype=np.float64)
            if t % sample_every == 0:
                outs[t // sample_every], ins[t // sample_every] = y, x
            tend = np.concatenate([y[:, NL:2 * NL], y[:, :NL]], axis=1)  # PHQ, TPHYSTND
            state = state + DT * (forcing.tendency[t] + tend)
            state[:, :NL] = np.maximum(state[:, :NL], Q_FLOOR)
        ok = physical(state)
        newly = alive & ~ok
        blow[newly] = t
        alive &= ok
        state[~alive] = np.nan
        if (t + 1) % sample_every == 0:
            states[(t + 1) // sample_every] = state
        if not alive.any():
            break
    return Trajectory(state=states, outputs=outs, inputs=ins,
                      time_days=np.arange(n_sample) * sample_every * DT / 86400.0,
                      blow_up_step=blow, steps=steps)


def precipitation(trajectory: Trajectory) -> np.ndarray:
    """``[n_sample, n_col]`` precipitation of the parameterization (m/s)."""
    return trajectory.outputs[..., _O_PRECT]
