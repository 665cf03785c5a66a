"""Input gradients of every network of a stacked model, in one backward pass per batch.

The attributions of :mod:`pcm.method.ranking` (gradient x input, integrated gradients)
need ``d f_n / d x`` for every network ``n`` of a :class:`pcm.nn.networks.StackedMLP`.
All networks read the same input, so one gradient of the summed outputs would mix
them; here the input is repeated once per network (``(N, batch, inputs)``) and the
first layer applied per network, so one backward pass gives every network's gradient.
"""

from __future__ import annotations

import numpy as np

__all__ = ["input_gradients"]


def input_gradients(model, x: np.ndarray, *, scale: float = 1.0,
                    batch_size: int = 256) -> np.ndarray:
    """Gradient of each network's output with respect to its (masked) input.

    Parameters
    ----------
    model : pcm.nn.networks.StackedMLP
        Any stacked model (with or without pre-masking input layer); its mask applies.
    x : array ``(samples, n_inputs)``
        Normalised inputs.
    scale : float
        The gradient is taken at the point ``scale * x`` (integrated gradients walk
        ``scale`` from 0 to 1).
    batch_size : int
        Samples per backward pass.

    Returns
    -------
    numpy.ndarray ``(n_networks, samples, n_inputs)``
        ``grad f_n`` at ``scale * x`` of network ``n``, float64.
    """
    import tensorflow as tf
    from keras import ops

    first = model.dense[0]
    dtype = first.kernel.dtype
    n = model.n_networks
    parts = []
    for lo in range(0, len(x), batch_size):
        xb = tf.constant(np.asarray(x[lo:lo + batch_size]) * float(scale), dtype=dtype)
        rep = tf.tile(xb[None], [n, 1, 1])
        with tf.GradientTape() as tape:
            tape.watch(rep)
            kernel = first.kernel * ops.expand_dims(ops.cast(model.mask, dtype), -1)
            h = tf.matmul(rep, kernel) + first.bias[:, None, :]
            for layer in model.dense[1:]:
                h = layer(ops.leaky_relu(h, negative_slope=model.negative_slope))
            total = tf.reduce_sum(h)
        parts.append(np.asarray(tape.gradient(total, rep), dtype=np.float64))
    return np.concatenate(parts, axis=1) if parts else np.zeros((n, 0, model.n_inputs))
