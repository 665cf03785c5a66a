"""SHAP attributions of stacked networks on Keras 3.

Three ways to attribute a network's output to its 94 inputs:

* :func:`deep_shap` — DeepSHAP (DeepLIFT rescale rule averaged over background
  samples) for all networks of a :class:`~pcm.nn.networks.StackedMLP` at once,
  written directly in TensorFlow. For a Dense/LeakyReLU chain the rescale rule
  gives, for one input ``x`` and one reference ``r``::

      phi(x, r) = (x - r) * W_0 D_1 W_1 D_2 ... W_L,
      D_k = diag((f(z_k(x)) - f(z_k(r))) / (z_k(x) - z_k(r)))

  (``f'(z_k(x))`` where ``|z_k(x) - z_k(r)| < 1e-6``), and DeepSHAP averages
  ``phi`` over the background. This is exactly what ``shap.DeepExplainer``
  computes with its LeakyReLU handler; the sums telescope, so
  ``sum_i phi_i = f(x) - mean_r f(r)`` (additivity).
* :func:`deep_explainer_shap` — the reference ``shap.DeepExplainer`` on one
  exported network (after teaching shap about LeakyReLU).
* :func:`gradient_input` — gradient x (input - mean background): fast, not
  additive, for quick looks.

Attributions are in the network's own units: normalised inputs in, outputs in
energy units (``Normalization.normalize_outputs``) out.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np

from pcm.errors import DataError

__all__ = [
    "deep_shap",
    "deep_explainer_shap",
    "gradient_input",
    "register_leaky_relu",
    "forward",
]

#: Below this absolute pre-activation difference the rescale rule falls back to
#: the gradient (shap's ``nonlinearity_1d`` handler uses the same constant).
RESCALE_EPS = 1e-6


def _weights(model, networks: Sequence[int] | None, dtype) -> list[tuple[np.ndarray, np.ndarray]]:
    weights = model.layer_weights()
    sel = np.arange(model.n_networks) if networks is None else np.asarray(networks, dtype=int)
    if sel.size and (sel.min() < 0 or sel.max() >= model.n_networks):
        raise ValueError(f"network indices must lie in 0..{model.n_networks - 1}")
    return [(k[sel].astype(dtype), b[sel].astype(dtype)) for k, b in weights]


def _check_x(x: np.ndarray, name: str, n_inputs: int, dtype) -> np.ndarray:
    x = np.asarray(x, dtype=dtype)
    if x.ndim != 2 or x.shape[1] != n_inputs:
        raise DataError(f"{name} has shape {x.shape}, expected (n_samples, {n_inputs}) "
                        f"normalised inputs")
    return x


def forward(weights, x, slope: float):
    """Pre-activations of every hidden layer and the output, for all networks.

    Returns
    -------
    list of tf.Tensor
        ``z_k`` of shape ``(N, n, units_k)`` for each hidden layer ``k`` and, last,
        the output ``(N, n)``.
    """
    import tensorflow as tf

    h = tf.einsum("bi,nio->nbo", x, weights[0][0]) + weights[0][1][:, None, :]
    zs = []
    for kernel, bias in weights[1:]:
        zs.append(h)
        h = tf.matmul(tf.nn.leaky_relu(h, alpha=slope), kernel) + bias[:, None, :]
    zs.append(h[..., 0])
    return zs


def _multiplier(zx, zr, slope: float):
    """Rescale-rule multiplier of LeakyReLU between ``zx`` and ``zr`` (broadcast)."""
    import tensorflow as tf

    d = zx - zr
    small = tf.abs(d) < RESCALE_EPS
    rescale = (tf.nn.leaky_relu(zx, alpha=slope) - tf.nn.leaky_relu(zr, alpha=slope)) / tf.where(
        small, tf.ones_like(d), d)
    grad = tf.where(zx > 0, tf.ones_like(zx), slope * tf.ones_like(zx))
    return tf.where(small, grad + tf.zeros_like(d), rescale)


@cache
def _make_pair_step(slope: float, jit_compile: bool):
    """One traced chunk step per (slope, XLA) pair, reused across calls."""
    import tensorflow as tf

    @tf.function(reduce_retracing=True, jit_compile=jit_compile)
    def step(kernels, zxs, zrs, x, r):
        """Sum over the background chunk of DeepLIFT attributions, ``(N, cx, in)``."""
        # kernels[k]: (N, in_k, out_k); zxs[k]: (N, cx, u_k); zrs[k]: (N, cr, u_k)
        n = tf.shape(zxs[0])[0]
        cx = tf.shape(x)[0]
        cr = tf.shape(r)[0]
        g = kernels[-1][:, None, None, :, 0]  # (N, 1, 1, u_L)
        for k in range(len(zxs) - 1, -1, -1):
            m = _multiplier(zxs[k][:, :, None, :], zrs[k][:, None, :, :], slope)
            g = g * m  # (N, cx, cr, u_k)
            u = tf.shape(g)[-1]
            g = tf.matmul(tf.reshape(g, (n, cx * cr, u)), kernels[k], transpose_b=True)
            g = tf.reshape(g, (n, cx, cr, -1))
        delta = x[None, :, None, :] - r[None, None, :, :]
        return tf.reduce_sum(g * delta, axis=2)

    return step


def deep_shap(model, x_explain: np.ndarray, x_background: np.ndarray, *,
              networks: Sequence[int] | None = None, batch_elements: int = 2**23,
              dtype: str = "float32", jit_compile: bool = True) -> np.ndarray:
    """DeepSHAP values of stacked networks (batched DeepLIFT rescale rule).

    Parameters
    ----------
    model : StackedMLP
        The stacked networks (mask folded into the first kernel).
    x_explain : array, ``(n_explain, 94)``
        Normalised inputs to explain.
    x_background : array, ``(n_background, 94)``
        Normalised background (reference) inputs.
    networks : sequence of int, optional
        Which networks to explain (default all).
    batch_elements : int
        Bound on the elements of one intermediate tensor
        ``networks x explained x background x units``; chunks are chosen below it.
    dtype : {"float32", "float64"}
        Computation precision.
    jit_compile : bool
        Compile the chunk step with XLA (about 2x faster on CPU, compile
        included: 65 networks of 9x256, 100 x 100 samples, 23 s instead of 45 s
        on a loaded 2-core machine).

    Returns
    -------
    np.ndarray, ``(n_networks, n_explain, 94)``
        SHAP values; ``values.sum(-1) == f(x) - mean f(background)`` per network.
    """
    import tensorflow as tf

    weights = _weights(model, networks, dtype)
    x = _check_x(x_explain, "x_explain", model.n_inputs, dtype)
    r = _check_x(x_background, "x_background", model.n_inputs, dtype)
    n_net = weights[0][0].shape[0]
    if len(r) == 0:
        raise DataError("x_background is empty; DeepSHAP needs at least one background sample")
    out = np.zeros((n_net, len(x), model.n_inputs), dtype=dtype)
    if n_net == 0 or len(x) == 0:
        return out
    slope = float(model.negative_slope)
    tw = [(tf.constant(k), tf.constant(b)) for k, b in weights]
    kernels = [k for k, _ in tw]
    zx_all = forward(tw, tf.constant(x), slope)[:-1]
    zr_all = forward(tw, tf.constant(r), slope)[:-1]
    widest = max(max(k.shape[1], k.shape[2]) for k, _ in weights)
    pairs = max(1, batch_elements // (n_net * widest))
    cr = min(len(r), pairs)
    cx = max(1, min(len(x), pairs // cr))
    step = _make_pair_step(slope, jit_compile)
    for i0 in range(0, len(x), cx):
        xs = slice(i0, i0 + cx)
        total = None
        for j0 in range(0, len(r), cr):
            rs = slice(j0, j0 + cr)
            part = step(kernels, [z[:, xs] for z in zx_all], [z[:, rs] for z in zr_all],
                        tf.constant(x[xs]), tf.constant(r[rs]))
            total = part if total is None else total + part
        out[:, xs] = total.numpy() / len(r)
    return out


def gradient_input(model, x_explain: np.ndarray, x_background: np.ndarray | None = None, *,
                   networks: Sequence[int] | None = None,
                   dtype: str = "float32") -> np.ndarray:
    """Gradient x input attributions, ``grad f(x) * (x - mean background)``.

    Parameters
    ----------
    model : StackedMLP
        The stacked networks.
    x_explain : array, ``(n_explain, 94)``
        Normalised inputs to explain.
    x_background : array, optional
        Background inputs; their mean is the baseline (default zeros, the
        normalised training mean).
    networks : sequence of int, optional
        Which networks (default all).
    dtype : {"float32", "float64"}
        Computation precision.

    Returns
    -------
    np.ndarray, ``(n_networks, n_explain, 94)``
        Not additive in general (exact for linear networks only).
    """
    import tensorflow as tf

    weights = _weights(model, networks, dtype)
    x = _check_x(x_explain, "x_explain", model.n_inputs, dtype)
    base = (np.zeros(model.n_inputs, dtype=dtype) if x_background is None
            else _check_x(x_background, "x_background", model.n_inputs, dtype).mean(axis=0))
    slope = float(model.negative_slope)
    tw = [(tf.constant(k), tf.constant(b)) for k, b in weights]
    zs = forward(tw, tf.constant(x), slope)[:-1]
    g = tw[-1][0][:, None, :, 0]  # (N, 1, u_L)
    for k in range(len(zs) - 1, -1, -1):
        z = zs[k]
        g = g * tf.where(z > 0, tf.ones_like(z), slope * tf.ones_like(z))
        g = tf.matmul(g, tw[k][0], transpose_b=True)
    return g.numpy() * (x - base)[None]


def register_leaky_relu() -> None:
    """Teach ``shap.DeepExplainer`` the LeakyReLU op (missing in shap's handler table).

    Without it, explaining a Keras 3 model with LeakyReLU fails with "gradient
    registry has no entry for: shap_LeakyRelu". LeakyReLU is a one-input
    element-wise nonlinearity, so shap's own rescale handler applies.
    Idempotent.
    """
    from shap.explainers._deep import deep_tf

    if "LeakyRelu" not in deep_tf.op_handlers:
        deep_tf.op_handlers["LeakyRelu"] = deep_tf.nonlinearity_1d(0)


def deep_explainer_shap(keras_model, x_explain: np.ndarray, x_background: np.ndarray, *,
                        check_additivity: bool = True) -> np.ndarray:
    """Reference SHAP values from ``shap.DeepExplainer`` for one single-output network.

    Parameters
    ----------
    keras_model : keras.Model
        One network, e.g. ``StackedMLP.export_network(n)``.
    x_explain, x_background : array, ``(n, 94)``
        Normalised inputs to explain and background.
    check_additivity : bool
        Let shap verify that the values sum to ``f(x) - E f(background)``.

    Returns
    -------
    np.ndarray, ``(n_explain, 94)``
    """
    import shap

    register_leaky_relu()
    x = np.asarray(x_explain, dtype="float32")
    r = np.asarray(x_background, dtype="float32")
    explainer = shap.DeepExplainer(keras_model, r)
    values = explainer.shap_values(x, check_additivity=check_additivity)
    values = np.asarray(values[0] if isinstance(values, list) else values)
    return values.reshape(len(x), -1)
