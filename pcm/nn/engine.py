"""The compiled core of stacked training: one graph step trains every network at once.

The loss of a stacked model is the SUM over networks of each network's mean
squared error on its own target column (plus, for pre-masking networks, the L1
penalty ``l1[n] * ||W_in||_1 / n_inputs**2`` of its input kernel, with one λ per
network or one for all). Because the
networks share no weight and Adam is element-wise, this trains each network
exactly as if it were trained alone (tested to 1e-10 in float64 against separate
Keras models).

:class:`Engine` runs many optimizer steps inside one ``tf.function`` (a graph
``while`` loop over batch indices of the in-memory data), so Python adds nothing
per step, and it picks up a GPU without any change. TensorFlow is imported when
an engine is built, never at module import.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from pcm.errors import DataError, ParameterError
from pcm.nn.config import TrainConfig

__all__ = ["Engine", "check_arrays", "evaluate_stacked", "predict_stacked", "l1_vector"]


def check_arrays(model, x, y, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` as arrays, checked against the stacked ``model`` (one error line if not)."""
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim != 2 or x.shape[1] != model.n_inputs:
        raise DataError(f"inputs must have shape (samples, {model.n_inputs}), got {x.shape}",
                        variable=f"x ({name})")
    need = max(model.targets) + 1
    if y.ndim != 2 or y.shape[0] != x.shape[0] or y.shape[1] < need:
        raise DataError(f"outputs must have shape ({x.shape[0]}, >= {need}), got {y.shape}",
                        variable=f"y ({name})")
    if x.shape[0] == 0:
        raise DataError("no samples", variable=f"x ({name})")
    return x, y



def l1_vector(model, l1) -> np.ndarray:
    """The L1 weight of every network, ``(N,)`` float64, from one value or one per network.

    A per-network λ lets networks that differ only in their loss (a λ sweep) train
    as one stack: ``model.repeat(k)`` copies and ``np.repeat(lambdas, N)`` weights.

    Raises
    ------
    ParameterError
        Wrong length, a negative or non-finite value, or a penalty on a model without
        an input layer.
    """
    values = np.asarray(l1, dtype=np.float64)
    if values.ndim == 0:
        values = np.full(model.n_networks, float(values))
    if values.shape != (model.n_networks,):
        raise ParameterError("l1", f"expected one value or one per network "
                             f"({model.n_networks}), got shape {values.shape}")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ParameterError("l1", f"every L1 weight must be finite and >= 0, got "
                             f"{values[~(np.isfinite(values) & (values >= 0))][:3].tolist()}")
    if np.any(values > 0) and not model.has_input_layer:
        raise ParameterError("l1", "the L1 penalty needs a model with an input layer")
    return values


def _penalty_scale(model, l1) -> np.ndarray:
    return l1_vector(model, l1) / float(model.n_inputs * model.n_inputs)


class _QuietRetracing(logging.Filter):
    """Drop TF's "triggered tf.function retracing" warning: every engine traces its own
    functions once by design (one per model), which TF's detector mistakes for a bug."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


_tf_logger = logging.getLogger("tensorflow")
if not any(isinstance(f, _QuietRetracing) for f in _tf_logger.filters):
    _tf_logger.addFilter(_QuietRetracing())


class Engine:
    """Compiled train/eval functions for one model, optimizer and data set."""

    def __init__(self, model, x, y, config: TrainConfig, l1, *,
                 train: bool = True) -> None:
        import keras
        import tensorflow as tf

        self.tf = tf
        self.model = model
        self.n = int(x.shape[0])
        self.batch_size = int(config.batch_size)
        self.steps = math.ceil(self.n / self.batch_size)
        var_dtype = model.dense[0].kernel.dtype
        self.loss_dtype = tf.float64 if var_dtype == "float64" else tf.float32
        data_dtype = self.loss_dtype
        self.targets = tf.constant(np.asarray(model.targets, dtype=np.int32))
        self.penalty_scale = _penalty_scale(model, l1)  # (N,): one lambda per network
        self.penalty_weights = tf.constant(self.penalty_scale,
                                           dtype=self.loss_dtype.as_numpy_dtype)
        self.variables = list(model.trainable_variables)
        n_in, n_out = int(x.shape[1]), int(y.shape[1])
        if train:  # evaluation needs neither the data set on the device nor Adam moments
            # tf.identity places the in-memory data set on the default device (a GPU if any)
            self.x = tf.identity(tf.constant(np.asarray(x, dtype=data_dtype.as_numpy_dtype)))
            self.y = tf.identity(tf.constant(np.asarray(y, dtype=data_dtype.as_numpy_dtype)))
            self.optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)
            self.optimizer.build(self.variables)
            # fixed signatures: one trace per engine; fresh closures keep TF's retracing
            # detector (keyed on the Python function) quiet when many engines are built
            index = tf.TensorSpec([], tf.int32)
            self.train_chunk = tf.function(
                lambda perm, start, stop: self._train_chunk(perm, start, stop),
                input_signature=[tf.TensorSpec([None], tf.int32), index, index])
        self.eval_batch = tf.function(
            lambda xb, yb: self._eval_batch(xb, yb),
            input_signature=[tf.TensorSpec([None, n_in], data_dtype),
                             tf.TensorSpec([None, n_out], data_dtype)])

    def penalty(self):
        """Per-network L1 penalty ``(N,)`` (zeros without L1)."""
        tf = self.tf
        if not np.any(self.penalty_scale):
            return tf.zeros([self.model.n_networks], self.loss_dtype)
        kernel = tf.cast(self.model.input_kernel, self.loss_dtype)
        return self.penalty_weights * tf.reduce_sum(tf.abs(kernel), axis=[1, 2])

    def _losses(self, xb, yb, training: bool):
        tf = self.tf
        pred = tf.cast(self.model(xb, training=training), self.loss_dtype)
        target = tf.gather(yb, self.targets, axis=1)
        return tf.reduce_mean(tf.square(pred - target), axis=0)  # (N,)

    def _train_chunk(self, perm, start, stop):
        tf = self.tf
        total = tf.zeros([self.model.n_networks], self.loss_dtype)
        for i in tf.range(start, stop):
            lo = i * self.batch_size
            hi = tf.minimum(lo + self.batch_size, self.n)
            idx = perm[lo:hi]
            xb = tf.gather(self.x, idx)
            yb = tf.gather(self.y, idx)
            with tf.GradientTape() as tape:
                per_net = self._losses(xb, yb, True) + self.penalty()
                loss = tf.reduce_sum(per_net)
            grads = tape.gradient(loss, self.variables)
            self.optimizer.apply_gradients(zip(grads, self.variables, strict=True))
            total += per_net * tf.cast(hi - lo, self.loss_dtype)
        return total

    def _eval_batch(self, xb, yb):
        tf = self.tf
        sse = self._losses(xb, yb, False) * tf.cast(tf.shape(xb)[0], self.loss_dtype)
        return sse

    def evaluate(self, x, y, batch_size: int) -> np.ndarray:
        """Per-network mean squared error on ``(x, y)`` (no penalty)."""
        tf = self.tf
        total = np.zeros(self.model.n_networks)
        dt = self.loss_dtype.as_numpy_dtype
        for lo in range(0, len(x), batch_size):
            xb = tf.constant(np.asarray(x[lo:lo + batch_size], dtype=dt))
            yb = tf.constant(np.asarray(y[lo:lo + batch_size], dtype=dt))
            total += self.eval_batch(xb, yb).numpy()
        return total / len(x)


def evaluate_stacked(model, x, y, *, batch_size: int = 8192) -> np.ndarray:
    """Mean squared error of every network of ``model`` on ``(x, y)``, shape ``(N,)``.

    Network ``n`` is scored on column ``model.targets[n]`` of ``y``.
    """
    x, y = check_arrays(model, x, y, "evaluation")
    engine = Engine(model, x[:1], y[:1], TrainConfig(hidden_units=model.hidden_units), 0.0,
                     train=False)
    return engine.evaluate(x, y, batch_size)


def predict_stacked(model, x, *, batch_size: int = 8192) -> np.ndarray:
    """Predictions ``(samples, N)`` of all networks, in batches, as float32 numpy."""
    import tensorflow as tf

    fn = tf.function(lambda xb: tf.cast(model(xb, training=False), tf.float32),
                     reduce_retracing=True)
    dt = np.float64 if model.dense[0].kernel.dtype == "float64" else np.float32
    parts = [fn(tf.constant(np.asarray(x[lo:lo + batch_size], dtype=dt))).numpy()
             for lo in range(0, len(x), batch_size)]
    return np.concatenate(parts, axis=0) if parts else np.zeros((0, model.n_networks))

