"""Rankings of the inputs beyond the L1 row norm: the pure rules (numpy only).

A *ranking* is one score per (output, input), larger meaning more likely a driver;
the method stores it as the masking vector (``masking_vectors.nc``) and every
selection rule cuts it. The rankings (run parameter ``ranking``):

``row_norm``
    the L2 norm of each input's row of the pre-masking input kernel (the paper).
``gradient_input``
    mean over samples of ``|x_i * d f / d x_i|`` of the pre-masking network
    (:func:`gradient_input`).
``integrated_gradients``
    mean of ``|x_i * mean_k d f / d x_i (alpha_k x)|`` over a midpoint rule of
    ``alpha`` in (0, 1) from the baseline 0, the normalised mean
    (:func:`integrated_gradients`; Sundararajan et al. 2017).
``adaptive_l1``
    the row norms of a second pre-masking stage whose penalty weighs each input by
    :func:`adaptive_weights` (the adaptive lasso, Zou 2006): inputs the first stage
    found weak pay more, so a proxy that merely shares a driver's signal is pushed
    out while the driver keeps its weight.
``stability``
    the selection frequency over B pre-masking networks per output with their own
    initial weights and random penalty weights in ``[weakness, 1]``
    (:func:`random_penalty_weights`; the randomised lasso of stability selection,
    Meinshausen and Buehlmann 2010), each run selecting by the relative rule
    (:func:`selection_frequency`).

Per-input penalty weights need no change of the training engine: a network whose
input mask holds ``1 / w_i`` and whose kernel rows hold ``w_i`` times the effective
weights computes the same function, while the L1 penalty on the (unmasked) kernel is
``sum_i w_i |effective row i|`` (:func:`weighted_start`).
"""

from __future__ import annotations

import numpy as np

from pcm.errors import ParameterError

__all__ = ["RANKINGS", "gradient_input", "integrated_gradients", "ig_alphas",
           "adaptive_weights", "random_penalty_weights", "weighted_start",
           "selection_frequency"]

#: Values of the run parameter ``ranking``.
RANKINGS = ("row_norm", "gradient_input", "integrated_gradients", "adaptive_l1", "stability",
            "screen")


def gradient_input(gradients: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Mean ``|x * gradient|`` over samples.

    ``gradients (networks, samples, inputs)`` and ``x (samples, inputs)`` give
    ``(networks, inputs)``.
    """
    return np.mean(np.abs(np.asarray(gradients) * np.asarray(x)[None]), axis=1)


def ig_alphas(steps: int) -> np.ndarray:
    """Midpoints ``(k + 0.5) / steps`` of the integrated-gradients path, ``k < steps``."""
    if int(steps) < 1:
        raise ParameterError("ranking_steps", f"must be >= 1, got {steps}")
    return (np.arange(int(steps)) + 0.5) / int(steps)


def integrated_gradients(path_gradients: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Mean ``|IG|`` over samples from the gradients along the path.

    Parameters
    ----------
    path_gradients : array ``(steps, networks, samples, inputs)``
        Gradients at ``alpha_k * x`` for the alphas of :func:`ig_alphas`.
    x : array ``(samples, inputs)``
        The inputs (baseline 0).

    Returns
    -------
    numpy.ndarray ``(networks, inputs)``
    """
    attributions = np.asarray(x)[None] * np.mean(np.asarray(path_gradients), axis=0)
    return np.mean(np.abs(attributions), axis=1)


def adaptive_weights(vectors: np.ndarray, gamma: float = 1.0,
                     floor: float = 1e-3) -> np.ndarray:
    """Adaptive-L1 penalty weights ``((max v + eps) / (v + eps)) ** gamma`` per output row.

    ``eps = floor * max v`` keeps the weights finite (at most ``(1/floor) ** gamma``);
    the strongest input of each output has weight ~1, an input at a tenth of it ~10.
    """
    if not 0 <= float(gamma):
        raise ParameterError("adaptive_gamma", f"must be >= 0, got {gamma}")
    v = np.abs(np.asarray(vectors, dtype=np.float64))
    top = v.max(axis=1, keepdims=True)
    eps = np.maximum(floor * top, 1e-12)
    return ((top + eps) / (v + eps)) ** float(gamma)


def random_penalty_weights(shape: tuple[int, int], weakness: float, seed: int) -> np.ndarray:
    """Randomised-lasso penalty weights ``1 / U``, ``U ~ uniform[weakness, 1]`` per entry."""
    if not 0 < float(weakness) <= 1:
        raise ParameterError("stability_weakness", f"must lie in (0, 1], got {weakness}")
    u = np.random.default_rng([int(seed), 17]).uniform(float(weakness), 1.0, size=shape)
    return 1.0 / u


def weighted_start(kernel: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kernel and mask under which the L1 penalty on the kernel weighs input ``i`` by ``w_i``.

    Parameters
    ----------
    kernel : array ``(networks, inputs, units)``
        Effective input kernel to start from.
    weights : array ``(networks, inputs)``
        Penalty weight of each input (> 0).

    Returns
    -------
    (kernel, mask)
        ``kernel * w`` (rows) and ``1 / w``: their product is the effective kernel.
    """
    w = np.asarray(weights, dtype=np.float64)
    if np.any(~np.isfinite(w)) or np.any(w <= 0):
        raise ParameterError("adaptive_gamma", "penalty weights must be finite and > 0")
    return np.asarray(kernel) * w[:, :, None], 1.0 / w


def selection_frequency(vectors: np.ndarray, ratio: float) -> np.ndarray:
    """Share of runs whose relative rule keeps each input, ``(outputs, inputs)``.

    ``vectors`` holds one ranking per run, ``(runs, outputs, inputs)``.

    A run keeps input ``i`` of an output when its entry exceeds ``ratio`` times that
    output's largest entry in the run (:func:`pcm.method.thresholds.relative_thresholds`).
    """
    v = np.asarray(vectors, dtype=np.float64)
    if v.ndim != 3:
        raise ParameterError("stability_runs", f"expected (runs, outputs, inputs), got {v.shape}")
    if not 0 <= float(ratio) <= 1:
        raise ParameterError("selection_ratio", f"must lie in [0, 1], got {ratio}")
    return (v > float(ratio) * v.max(axis=2, keepdims=True)).mean(axis=0)
