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

Streaming: given a :class:`pcm.data.streaming.DiskSplit` instead of arrays, the
engine reads the epoch's shuffle windows (:func:`pcm.data.streaming.epoch_windows`)
one window ahead in a reader thread (:func:`prefetched`: the next window is read and
normalised while the current one trains) and runs each window's batches in one
compiled call, as the in-memory loop does; validation reads the split block by block.
``tf.data.Dataset.from_generator`` with ``prefetch`` did the same job at 2.3 times the
CPU time (its threads' system time; ``benchmarks/streaming.py``), so it is not used.

Several devices: with a ``tf.distribute.MirroredStrategy`` (:func:`make_strategy`;
the model's variables must have been created in its scope) each global batch is cut
into one contiguous slice per replica; a replica's loss is its slice's summed
squared error divided by the *global* batch size plus ``penalty / replicas``, and
Keras' optimizer sums the replicas' gradients, so a step equals the single-device
step up to rounding (tested in float64 on two logical CPU devices).
``MultiWorkerMirroredStrategy`` (several hosts, chosen when ``TF_CONFIG`` names a
cluster) has the same replica interface: every worker computes the same sample order
from the seed and trains its slice of each global batch (not tested here: no cluster).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext as _nullcontext

import numpy as np

from pcm.data.streaming import DiskSplit, epoch_windows
from pcm.errors import DataError, ParameterError
from pcm.nn.config import TrainConfig

__all__ = ["Engine", "prefetched", "check_arrays", "check_split", "evaluate_stacked",
           "predict_stacked", "l1_vector", "make_strategy", "device_count"]


def check_split(model, split: DiskSplit, name: str) -> DiskSplit:
    """A streamed split checked against the stacked ``model`` (one error line if not)."""
    if split.n_inputs != model.n_inputs:
        raise DataError(f"inputs must have {model.n_inputs} columns, the split has "
                        f"{split.n_inputs}", path=split.path, variable=f"x ({name})")
    need = max(model.targets) + 1
    if split.n_outputs < need:
        raise DataError(f"outputs must have >= {need} columns, the split has "
                        f"{split.n_outputs}", path=split.path, variable=f"y ({name})")
    if split.n == 0:
        raise DataError("no samples", path=split.path, variable=f"x ({name})")
    return split


def device_count(requested: int | None = None) -> tuple[str, list[str]]:
    """``(kind, names)`` of the devices a strategy for ``requested`` devices uses.

    ``None``: every GPU (none or one: no strategy needed). ``k``: the first ``k``
    GPUs, or, without enough GPUs, the first ``k`` (logical) CPU devices.
    """
    import tensorflow as tf

    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    if requested is None:
        return "GPU", gpus
    k = int(requested)
    if k < 1:
        raise ParameterError("devices", f"must be a positive integer or null, got {requested}")
    if len(gpus) >= k:
        return "GPU", gpus[:k]
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(cpus) >= k:
        return "CPU", cpus[:k]
    raise ParameterError("devices", f"{k} devices asked for, but this machine has "
                         f"{len(gpus)} GPU(s) and {len(cpus)} logical CPU device(s)")


def make_strategy(devices: int | None = None):
    """The distribution strategy of a training, or None for one device.

    ``MultiWorkerMirroredStrategy`` when the environment variable ``TF_CONFIG`` names a
    cluster of several workers (several hosts; every worker runs the same command on
    the same data files), else a ``MirroredStrategy`` over the devices of
    :func:`device_count` when there are two or more.
    """
    import tensorflow as tf

    cluster = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster", {})
    if sum(len(cluster.get(role, ())) for role in ("chief", "worker")) > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    _, names = device_count(devices)
    if len(names) < 2:
        return None
    return tf.distribute.MirroredStrategy(names)


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


def prefetched(windows: Iterator[tuple[np.ndarray, np.ndarray]]
               ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield from ``windows`` while one reader thread fetches the next item.

    Every ``next`` runs in the same single worker thread, so the file is only ever read
    by one thread; the iterator is exhausted (or closed) before this returns.
    """
    done = object()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pcm-reader") as pool:
        pending: Future = pool.submit(next, windows, done)  # an item or `done`
        try:
            while True:
                item = pending.result()
                if item is done:
                    return
                pending = pool.submit(next, windows, done)
                yield item
        finally:
            pending.cancel()
            try:
                pending.result()
            except Exception:  # noqa: BLE001 - already raised to the caller, or closing
                pass
            pool.submit(getattr(windows, "close", lambda: None)).result()


class Engine:
    """Compiled train/eval functions for one model, optimizer and data set.

    ``x`` may be a :class:`~pcm.data.streaming.DiskSplit` (``y`` is then ignored):
    the engine streams it. ``strategy``: a ``tf.distribute`` strategy in whose scope
    ``model`` was built (None: the default device).
    """

    def __init__(self, model, x, y, config: TrainConfig, l1, *,
                 train: bool = True, strategy=None) -> None:
        import tensorflow as tf

        self.tf = tf
        self.strategy = strategy
        self.split = x if isinstance(x, DiskSplit) else None
        if self.split is not None:
            y = np.empty((0, x.n_outputs))
        if strategy is None:
            self._build(model, x, y, config, l1, train)
        else:
            with strategy.scope():
                self._build(model, x, y, config, l1, train)

    def _build(self, model, x, y, config: TrainConfig, l1, train: bool) -> None:
        import keras

        tf = self.tf
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
        self.data_dtype = data_dtype
        self.n_in, self.n_out = n_in, n_out
        if train:  # evaluation needs neither the data set on the device nor Adam moments
            if self.split is None:
                # tf.identity places the in-memory data set on the default device (a GPU
                # if any); with a strategy it stays on the host and batches are sent out
                with tf.device("/cpu:0") if self.strategy is not None else _nullcontext():
                    self.x = tf.identity(tf.constant(np.asarray(
                        x, dtype=data_dtype.as_numpy_dtype)))
                    self.y = tf.identity(tf.constant(np.asarray(
                        y, dtype=data_dtype.as_numpy_dtype)))
            self.optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)
            self.optimizer.build(self.variables)
            # fixed signatures: one trace per engine; fresh closures keep TF's retracing
            # detector (keyed on the Python function) quiet when many engines are built
            index = tf.TensorSpec([], tf.int32)
            if self.split is None:
                self.train_chunk = tf.function(
                    lambda perm, start, stop: self._train_chunk(perm, start, stop),
                    input_signature=[tf.TensorSpec([None], tf.int32), index, index])
            else:
                self.train_window = tf.function(
                    lambda xw, yw: self._train_window(xw, yw),
                    input_signature=[tf.TensorSpec([None, n_in], data_dtype),
                                     tf.TensorSpec([None, n_out], data_dtype)])
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

    def _step(self, xb, yb):
        """One optimizer step on a batch; its per-network loss (N,)."""
        tf = self.tf
        if self.strategy is not None:
            parts = self.strategy.run(self._replica_step, args=(xb, yb))
            return self.strategy.reduce(tf.distribute.ReduceOp.SUM, parts, axis=None)
        with tf.GradientTape() as tape:
            per_net = self._losses(xb, yb, True) + self.penalty()
            loss = tf.reduce_sum(per_net)
        grads = tape.gradient(loss, self.variables)
        self.optimizer.apply_gradients(zip(grads, self.variables, strict=True))
        return per_net

    def _replica_step(self, xb, yb):
        """A replica's share of a step: its slice of the global batch (module docstring)."""
        tf = self.tf
        ctx = tf.distribute.get_replica_context()
        replicas = ctx.num_replicas_in_sync
        count = tf.shape(xb)[0]
        per = (count + replicas - 1) // replicas
        lo = tf.minimum(tf.cast(ctx.replica_id_in_sync_group, tf.int32) * per, count)
        hi = tf.minimum(lo + per, count)
        xs, ys = xb[lo:hi], yb[lo:hi]
        with tf.GradientTape() as tape:
            pred = tf.cast(self.model(xs, training=True), self.loss_dtype)
            target = tf.gather(ys, self.targets, axis=1)
            sse = tf.reduce_sum(tf.square(pred - target), axis=0)
            per_net = sse / tf.cast(count, self.loss_dtype) + self.penalty() / replicas
            loss = tf.reduce_sum(per_net)
        grads = tape.gradient(loss, self.variables)
        self.optimizer.apply_gradients(zip(grads, self.variables, strict=True))
        return per_net

    def _train_chunk(self, perm, start, stop):
        tf = self.tf
        total = tf.zeros([self.model.n_networks], self.loss_dtype)
        for i in tf.range(start, stop):
            lo = i * self.batch_size
            hi = tf.minimum(lo + self.batch_size, self.n)
            idx = perm[lo:hi]
            xb = tf.gather(self.x, idx)
            yb = tf.gather(self.y, idx)
            per_net = self._step(xb, yb)
            total += per_net * tf.cast(hi - lo, self.loss_dtype)
        return total

    def _train_window(self, xw, yw):
        """Every batch of one shuffle window, in order (the window is already shuffled)."""
        tf = self.tf
        total = tf.zeros([self.model.n_networks], self.loss_dtype)
        rows = tf.shape(xw)[0]
        for i in tf.range((rows + self.batch_size - 1) // self.batch_size):
            lo = i * self.batch_size
            hi = tf.minimum(lo + self.batch_size, rows)
            per_net = self._step(xw[lo:hi], yw[lo:hi])
            total += per_net * tf.cast(hi - lo, self.loss_dtype)
        return total

    def train_streamed(self, seed: int, epoch: int, on_window=None) -> np.ndarray:
        """One streamed epoch; summed per-network loss times samples (as ``train_chunk``).

        One reader thread reads and normalises the next window while the current one
        trains (:func:`prefetched`). ``on_window(rows)`` is called after each window
        (progress bars).
        """
        total = np.zeros(self.model.n_networks)
        for xw, yw in prefetched(epoch_windows(self.split, seed, epoch, self.batch_size)):
            total += self.train_window(xw, yw).numpy()
            if on_window is not None:
                on_window(int(xw.shape[0]))
        return total

    def _eval_batch(self, xb, yb):
        tf = self.tf
        sse = self._losses(xb, yb, False) * tf.cast(tf.shape(xb)[0], self.loss_dtype)
        return sse

    def evaluate(self, x, y, batch_size: int) -> np.ndarray:
        """Per-network mean squared error on ``(x, y)`` (no penalty).

        ``x`` may be a :class:`~pcm.data.streaming.DiskSplit` (read block by block).
        """
        tf = self.tf
        total = np.zeros(self.model.n_networks)
        dt = self.loss_dtype.as_numpy_dtype
        if isinstance(x, DiskSplit):
            for bx, by in x.iter_blocks():
                for lo in range(0, len(bx), batch_size):
                    total += self.eval_batch(
                        tf.constant(np.asarray(bx[lo:lo + batch_size], dtype=dt)),
                        tf.constant(np.asarray(by[lo:lo + batch_size], dtype=dt))).numpy()
            return total / len(x)
        for lo in range(0, len(x), batch_size):
            xb = tf.constant(np.asarray(x[lo:lo + batch_size], dtype=dt))
            yb = tf.constant(np.asarray(y[lo:lo + batch_size], dtype=dt))
            total += self.eval_batch(xb, yb).numpy()
        return total / len(x)


def evaluate_stacked(model, x, y, *, batch_size: int = 8192) -> np.ndarray:
    """Mean squared error of every network of ``model`` on ``(x, y)``, shape ``(N,)``.

    Network ``n`` is scored on column ``model.targets[n]`` of ``y``. ``x`` may be a
    :class:`~pcm.data.streaming.DiskSplit` (``y`` None): it is read block by block.
    """
    if isinstance(x, DiskSplit):
        check_split(model, x, "evaluation")
        engine = Engine(model, x, None, TrainConfig(hidden_units=model.hidden_units), 0.0,
                        train=False)
        return engine.evaluate(x, None, batch_size)
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

