"""Training of all PCMasking networks at once: one compiled step for a whole stack.

PCMasking trains one small MLP per output (65 of them, and 65 x 20 during the
threshold search). :func:`train_stacked` trains every network of a
:class:`pcm.networks.StackedMLP` in one custom loop: the loss is the SUM over
networks of each network's mean squared error on its own target column (plus,
for pre-masking networks, the L1 penalty ``l1 * ||W_in||_1 / (94*94)`` of its
input kernel). Because the networks share no weight and Adam is element-wise,
this trains each network exactly as if it were trained alone (tested to 1e-10
in float64 against separate Keras models).

The loop runs many optimizer steps inside one ``tf.function`` (a graph
``while`` loop over batch indices of the in-memory data), so Python adds
nothing per step, and it picks up a GPU without any change.

Phases used by the notebooks (each reads and writes a :class:`pcm.rundir.RunDir`):

- :func:`run_premask` -> ``models/premask.keras``, ``history_premask.nc``
- :func:`run_unconstrained` -> ``models/unconstrained.keras``, ``history_unconstrained.nc``
- :func:`run_finetune` -> ``models/pcmasking.keras``, ``history_finetune.nc``

(masking vectors and the threshold search live in :mod:`pcm.masking`). Each
phase adds its wall seconds to ``RUN/seconds.json`` (``{"premask": s, ...}``).

Learning rate: ``learning_rate / lr_divisor ** (epoch // lr_every)`` (reference:
1e-3 divided by 5 every 3 epochs). Early stopping (``patience``) acts per
network: every network keeps training until ALL networks have gone
``patience`` epochs without a lower validation loss, and each network's final
weights are those of its own best validation epoch.

Resume: after every epoch the whole state (weights, Adam moments, epoch,
history, early-stopping bookkeeping) is written atomically to
``checkpoint_dir/state.npz``. Shuffling depends only on ``(seed, epoch)``, so a
run killed and restarted ends with the same weights as an uninterrupted run.
A finished checkpoint makes a re-run return at once.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from pcm.errors import DataError, ParameterError
from pcm.io import atomic_path, write_netcdf
from pcm.variables import output_labels

__all__ = [
    "train_phase",
    "TrainConfig",
    "COMPUTE_DTYPES",
    "train_stacked",
    "checkpoint_fingerprint",
    "epoch_permutation",
    "learning_rate_at",
    "evaluate_stacked",
    "predict_stacked",
    "load_arrays",
    "load_stacked",
    "save_stacked",
    "export_networks",
    "read_history",
    "run_premask",
    "run_unconstrained",
    "run_finetune",
]

log = logging.getLogger(__name__)

#: ``compute_dtype`` values and the Keras dtype policy each one selects.
COMPUTE_DTYPES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float64": "float64"}

#: Number of inputs (the L1 penalty is normalised by N_INPUTS**2).
N_INPUTS = 94


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training phase.

    Parameters
    ----------
    hidden_units : tuple of int
        Width of each hidden layer (reference ``(256,) * 9``).
    epochs : int
        Number of epochs (reference 9).
    batch_size : int
        Mini-batch size (1024). The last, partial batch of an epoch is used.
    learning_rate : float
        Initial Adam learning rate (1e-3).
    lr_divisor, lr_every : float, int
        The learning rate is divided by ``lr_divisor`` every ``lr_every`` epochs.
    l1 : float
        Sparsity weight lambda of the pre-masking phase; the penalty of a
        network is ``l1 * ||W_in||_1 / (94*94)``.
    patience : int or None
        Early-stopping patience in epochs (per network, best weights restored);
        None disables early stopping.
    seed : int
        Seed of initial weights and shuffling.
    compute_dtype : {"float32", "bfloat16", "float64"}
        "bfloat16" computes in bfloat16 with float32 master weights (Keras
        policy ``mixed_bfloat16``); "float64" is meant for tests.
    max_train_samples : int or None
        Use at most this many training samples (None: all).
    """

    hidden_units: tuple[int, ...] = (256,) * 9
    epochs: int = 9
    batch_size: int = 1024
    learning_rate: float = 1e-3
    lr_divisor: float = 5.0
    lr_every: int = 3
    l1: float = 1e-3
    patience: int | None = None
    seed: int = 0
    compute_dtype: str = "float32"
    max_train_samples: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden_units", tuple(int(u) for u in self.hidden_units))
        if not self.hidden_units or min(self.hidden_units) < 1:
            raise ParameterError("hidden_units", f"need one or more positive widths, got "
                                 f"{self.hidden_units}")
        for key in ("epochs", "batch_size", "lr_every"):
            if int(getattr(self, key)) < 1:
                raise ParameterError(key, f"must be a positive integer, got {getattr(self, key)}")
        if self.learning_rate <= 0 or self.lr_divisor <= 0:
            raise ParameterError("learning_rate", "learning_rate and lr_divisor must be > 0")
        if self.l1 < 0:
            raise ParameterError("l1", f"must be >= 0, got {self.l1}")
        if self.patience is not None and int(self.patience) < 1:
            raise ParameterError("patience", f"must be a positive integer or None, "
                                 f"got {self.patience}")
        if self.compute_dtype not in COMPUTE_DTYPES:
            raise ParameterError("compute_dtype", f"expected one of {sorted(COMPUTE_DTYPES)}, "
                                 f"got {self.compute_dtype!r}")
        if self.max_train_samples is not None and int(self.max_train_samples) < 1:
            raise ParameterError("max_train_samples", "must be a positive integer or None")

    @property
    def dtype_policy(self) -> str:
        """Keras dtype policy name of ``compute_dtype``."""
        return COMPUTE_DTYPES[self.compute_dtype]


def learning_rate_at(config: TrainConfig, epoch: int) -> float:
    """Learning rate of (0-based) ``epoch``: ``lr / lr_divisor ** (epoch // lr_every)``."""
    return float(config.learning_rate / config.lr_divisor ** (epoch // config.lr_every))


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """Sample order of ``epoch``; depends only on ``(seed, epoch)`` so resume is exact."""
    return np.random.default_rng([int(seed), int(epoch)]).permutation(n)


# ---------------------------------------------------------------------------
# the stacked trainer
# ---------------------------------------------------------------------------
def _check_arrays(model, x, y, name: str) -> tuple[np.ndarray, np.ndarray]:
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


def _digest(*arrays: np.ndarray, stride_to: int | None = None) -> str:
    h = hashlib.blake2b(digest_size=12)
    for a in arrays:
        a = np.ascontiguousarray(a)
        if stride_to is not None and a.shape[0] > stride_to:
            a = np.ascontiguousarray(a[:: a.shape[0] // stride_to])
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _penalty_scale(model, l1: float) -> float:
    return float(l1) / float(model.n_inputs * model.n_inputs)


class _QuietRetracing(logging.Filter):
    """Drop TF's "triggered tf.function retracing" warning: every engine traces its own
    functions once by design (one per model), which TF's detector mistakes for a bug."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


_tf_logger = logging.getLogger("tensorflow")
if not any(isinstance(f, _QuietRetracing) for f in _tf_logger.filters):
    _tf_logger.addFilter(_QuietRetracing())


class _Engine:
    """Compiled train/eval functions for one model, optimizer and data set."""

    def __init__(self, model, x, y, config: TrainConfig, l1: float, *,
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
        self.penalty_scale = _penalty_scale(model, l1)
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
        if self.penalty_scale == 0.0:
            return tf.zeros([self.model.n_networks], self.loss_dtype)
        kernel = tf.cast(self.model.input_kernel, self.loss_dtype)
        return self.penalty_scale * tf.reduce_sum(tf.abs(kernel), axis=[1, 2])

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
    x, y = _check_arrays(model, x, y, "evaluation")
    engine = _Engine(model, x[:1], y[:1], TrainConfig(hidden_units=model.hidden_units), 0.0,
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


def checkpoint_fingerprint(model, x, y, x_val, y_val, config: TrainConfig, l1: float) -> dict:
    """What a checkpoint must match to be resumed: layout, data checksums, hyper-parameters."""
    weights = [np.asarray(w) for w in model.weights]
    return {
        "version": 1,
        "n_networks": model.n_networks,
        "hidden_units": list(model.hidden_units),
        "input_layer": bool(model.has_input_layer),
        "targets": list(model.targets),
        "dtype_policy": str(model.dtype_policy.name),
        "n_train": int(x.shape[0]),
        "n_val": 0 if x_val is None else int(x_val.shape[0]),
        "batch_size": config.batch_size,
        "learning_rate": config.learning_rate,
        "lr_divisor": config.lr_divisor,
        "lr_every": config.lr_every,
        "l1": float(l1),
        "patience": config.patience,
        "seed": config.seed,
        "data": _digest(x, y, stride_to=4096),
        "val_data": None if x_val is None else _digest(x_val, y_val, stride_to=4096),
        "initial_weights": _digest(*weights),
    }


def _history_dataset(model, loss, val_loss, lrs, seconds, best_epoch, *, desc: str,
                     config: TrainConfig, l1: float, n_train: int, n_val: int,
                     resumed_from: int) -> xr.Dataset:
    labels = output_labels()
    n_epochs = len(lrs)
    loss = np.asarray(loss, dtype=np.float64).reshape(n_epochs, model.n_networks)
    val_loss = np.asarray(val_loss, dtype=np.float64).reshape(n_epochs, model.n_networks)
    coords = {
        "epoch": ("epoch", np.arange(1, n_epochs + 1), {"long_name": "epoch (1-based)",
                                                        "units": "1"}),
        "network": ("network", np.arange(model.n_networks),
                    {"long_name": "index of the network in the stack", "units": "1"}),
        "output": ("network", np.array([labels[t] if t < len(labels) else str(t)
                                        for t in model.targets]),
                   {"long_name": "output predicted by the network"}),
    }
    penalty_note = " + L1 penalty" if l1 > 0 else ""
    data = {
        "loss": (("epoch", "network"), loss,
                 {"long_name": f"training loss (MSE{penalty_note}), mean over the epoch",
                  "units": "1 (squared normalised output)"}),
        "val_loss": (("epoch", "network"), val_loss,
                     {"long_name": f"validation loss (MSE{penalty_note}) after the epoch",
                      "units": "1 (squared normalised output)"}),
        "learning_rate": (("epoch",), np.asarray(lrs, dtype=np.float64),
                          {"long_name": "Adam learning rate", "units": "1"}),
        "epoch_seconds": (("epoch",), np.asarray(seconds, dtype=np.float64),
                          {"long_name": "wall time of the epoch", "units": "s"}),
        "best_epoch": (("network",), np.asarray(best_epoch, dtype=np.int32),
                       {"long_name": "epoch whose weights the network keeps (1-based)",
                        "units": "1"}),
    }
    attrs = {
        "phase": desc or "training",
        "seconds": float(np.sum(seconds)),
        "l1": float(l1),
        "batch_size": config.batch_size,
        "learning_rate": config.learning_rate,
        "lr_divisor": config.lr_divisor,
        "lr_every": config.lr_every,
        "epochs_requested": config.epochs,
        "patience": -1 if config.patience is None else int(config.patience),
        "seed": config.seed,
        "compute_dtype": config.compute_dtype,
        "hidden_units": list(model.hidden_units),
        "n_train": n_train,
        "n_val": n_val,
        "resumed_from_epoch": resumed_from,
        "seconds_previous_sessions": float(np.sum(seconds[:resumed_from])),
    }
    return xr.Dataset(data, coords=coords, attrs=attrs)


def _use_bar(progress: bool) -> bool:
    return bool(progress) and hasattr(sys.stderr, "isatty") and sys.stderr.isatty()


def train_stacked(model, x, y, config: TrainConfig, *, x_val=None, y_val=None,
                  l1: float | None = None, checkpoint_dir: str | os.PathLike | None = None,
                  desc: str = "", progress: bool = False,
                  on_epoch_end: Callable[[int, xr.Dataset], None] | None = None,
                  steps_per_call: int | None = None) -> xr.Dataset:
    """Train all networks of a stacked model together, in place.

    Parameters
    ----------
    model : pcm.networks.StackedMLP
        Trained in place. Network ``n`` learns column ``model.targets[n]`` of ``y``.
    x, y : array
        Normalised inputs ``(samples, 94)`` and outputs ``(samples, >= max target + 1)``,
        held in memory.
    config : TrainConfig
        Hyper-parameters (``hidden_units`` and ``compute_dtype`` describe the
        model and are not used here; the model's own dtype policy rules).
    x_val, y_val : array, optional
        Validation data; needed for ``config.patience``.
    l1 : float, optional
        L1 weight lambda on the input kernel (pre-masking models only). None
        (default) means ``config.l1`` for a model with input layer and 0 otherwise.
    checkpoint_dir : path-like, optional
        Folder for the per-epoch checkpoint; an existing matching checkpoint is
        resumed (a finished one returns at once).
    desc : str
        Phase name for the progress bar, log lines and history attrs.
    progress : bool
        Show a tqdm bar on stderr (only if stderr is a terminal) and one line per
        epoch (``premask: epoch 3/9 loss=... (12.3 s)``): a ``logging`` INFO record
        of logger ``pcm.training`` always, printed to stderr as well when logging
        is not configured.
    on_epoch_end : callable, optional
        Called as ``on_epoch_end(epoch, history)`` (1-based) after each epoch's
        checkpoint is written.
    steps_per_call : int, optional
        Optimizer steps run per compiled call (default: about 20 calls per epoch).

    Returns
    -------
    xarray.Dataset
        History: ``loss`` and ``val_loss`` (epoch, network) — both include the
        L1 penalty where there is one, as Keras reports them — ``learning_rate``
        and ``epoch_seconds`` (epoch), ``best_epoch`` (network); attrs record the
        hyper-parameters, ``seconds`` (training wall time over all sessions) and
        ``seconds_previous_sessions`` (the part spent before a resume).
    """
    from pcm.checkpoint import load_state, save_state

    x, y = _check_arrays(model, x, y, "training")
    if (x_val is None) != (y_val is None):
        raise ParameterError("x_val", "give both x_val and y_val, or neither")
    if x_val is not None:
        x_val, y_val = _check_arrays(model, x_val, y_val, "validation")
    if config.patience is not None and x_val is None:
        raise ParameterError("patience", "early stopping needs validation data (x_val, y_val)")
    if l1 is None:
        l1 = config.l1 if model.has_input_layer else 0.0
    if l1 > 0 and not model.has_input_layer:
        raise ParameterError("l1", "the L1 penalty needs a model with an input layer")
    if config.max_train_samples is not None:
        x, y = x[: config.max_train_samples], y[: config.max_train_samples]

    label = desc or "training"
    n_networks = model.n_networks
    fingerprint = checkpoint_fingerprint(model, x, y, x_val, y_val, config, l1)
    engine = _Engine(model, x, y, config, l1)
    trainable = engine.variables

    loss_hist: list[np.ndarray] = []
    val_hist: list[np.ndarray] = []
    lr_hist: list[float] = []
    sec_hist: list[float] = []
    best_val = np.full(n_networks, np.inf)
    best_epoch = np.zeros(n_networks, dtype=np.int64)
    wait = np.zeros(n_networks, dtype=np.int64)
    best_weights = [np.asarray(v).copy() for v in trainable] if config.patience else []
    start_epoch, finished, stopped_early = 0, False, False

    state = load_state(checkpoint_dir, fingerprint)
    if state is not None and int(state["epoch"]) <= config.epochs:
        for k, var in enumerate(model.weights):
            var.assign(state[f"weight_{k}"])
        for k, var in enumerate(engine.optimizer.variables):
            var.assign(state[f"optimizer_{k}"])
        start_epoch = int(state["epoch"])
        # more epochs than before may be asked for: only early stopping is final
        stopped_early = bool(state["stopped_early"])
        finished = stopped_early or start_epoch >= config.epochs
        loss_hist = list(state["hist_loss"])
        val_hist = list(state["hist_val_loss"])
        lr_hist = list(state["hist_lr"])
        sec_hist = list(state["hist_seconds"])
        best_val, best_epoch, wait = state["best_val"], state["best_epoch"], state["wait"]
        if config.patience:
            best_weights = [state[f"best_{k}"] for k in range(len(trainable))]
        log.info("%s: resuming after epoch %d/%d from %s", label, start_epoch, config.epochs,
                 checkpoint_dir)
    elif checkpoint_dir is not None and (Path(checkpoint_dir) / "state.npz").exists():
        log.warning("%s: the checkpoint in %s does not match (other data, model, "
                    "hyper-parameters, or more epochs done than requested); starting afresh",
                    label, checkpoint_dir)
    resumed_from = start_epoch

    def history() -> xr.Dataset:
        return _history_dataset(
            model, loss_hist, val_hist, lr_hist, sec_hist,
            best_epoch if config.patience else np.full(n_networks, len(lr_hist)),
            desc=label, config=config, l1=l1, n_train=len(x),
            n_val=0 if x_val is None else len(x_val), resumed_from=resumed_from)

    tf = engine.tf
    steps = engine.steps
    per_call = steps_per_call or max(1, math.ceil(steps / 20))
    show_bar = _use_bar(progress)
    for epoch in range(start_epoch, config.epochs):
        if finished:
            break
        t0 = time.perf_counter()
        lr = learning_rate_at(config, epoch)
        engine.optimizer.learning_rate.assign(lr)
        perm = tf.constant(epoch_permutation(engine.n, config.seed, epoch).astype(np.int32))
        total = np.zeros(n_networks)
        bar = None
        if show_bar:
            from tqdm.auto import tqdm

            bar = tqdm(total=steps, desc=f"{label} {epoch + 1}/{config.epochs}",
                       file=sys.stderr, leave=False, unit="step")
        for s0 in range(0, steps, per_call):
            s1 = min(steps, s0 + per_call)
            total += engine.train_chunk(perm, tf.constant(s0, tf.int32),
                                        tf.constant(s1, tf.int32)).numpy()
            if bar is not None:
                bar.update(s1 - s0)
        if bar is not None:
            bar.close()
        train_loss = total / engine.n
        if not np.all(np.isfinite(train_loss)):
            bad = np.flatnonzero(~np.isfinite(train_loss))
            raise DataError(f"{label}: training loss is not finite in epoch {epoch + 1} for "
                            f"networks {bad.tolist()[:10]}; check the data for NaN/inf or "
                            f"lower the learning rate", variable="loss")
        if x_val is not None:
            val = engine.evaluate(x_val, y_val, max(config.batch_size, 4096))
            val = val + engine.penalty().numpy()
        else:
            val = np.full(n_networks, np.nan)
        seconds = time.perf_counter() - t0
        loss_hist.append(train_loss)
        val_hist.append(val)
        lr_hist.append(lr)
        sec_hist.append(seconds)

        if config.patience:
            improved = val < best_val
            best_val = np.where(improved, val, best_val)
            best_epoch = np.where(improved, epoch + 1, best_epoch)
            wait = np.where(improved, 0, wait + 1)
            if improved.any():
                for k, var in enumerate(trainable):
                    current = np.asarray(var)
                    best_weights[k][improved] = current[improved]
            stopped_early = bool(np.all(wait >= config.patience))
        done = epoch + 1
        finished = stopped_early or done >= config.epochs

        if checkpoint_dir is not None:
            arrays = {f"weight_{k}": np.asarray(v) for k, v in enumerate(model.weights)}
            arrays.update({f"optimizer_{k}": np.asarray(v)
                           for k, v in enumerate(engine.optimizer.variables)})
            arrays.update({f"best_{k}": w for k, w in enumerate(best_weights)})
            arrays.update(epoch=np.array(done), stopped_early=np.array(int(stopped_early)),
                          hist_loss=np.array(loss_hist), hist_val_loss=np.array(val_hist),
                          hist_lr=np.array(lr_hist), hist_seconds=np.array(sec_hist),
                          best_val=best_val, best_epoch=best_epoch, wait=wait)
            save_state(checkpoint_dir, fingerprint, arrays)

        msg = (f"{label}: epoch {done}/{config.epochs} loss={np.sum(train_loss):.6g}"  # summed
               + (f" val_loss={np.sum(val):.6g}" if x_val is not None else "")
               + f" lr={lr:.3g} ({seconds:.1f} s)")
        log.info(msg)
        if progress and not log.hasHandlers():  # no logging set up: still show the line
            print(msg, file=sys.stderr, flush=True)
        if on_epoch_end is not None:
            on_epoch_end(done, history())

    if config.patience:
        for var, best in zip(trainable, best_weights, strict=True):
            var.assign(best)
    return history()


# ---------------------------------------------------------------------------
# run-directory helpers
# ---------------------------------------------------------------------------
def load_arrays(run, split: str, *, max_samples: int | None = None,
                dtype: str = "float32") -> tuple[np.ndarray, np.ndarray]:
    """Normalised ``(x, y)`` of one split of a run (``pcm.datasets.load_split``).

    Parameters
    ----------
    run : pcm.rundir.RunDir
        The run whose manifest names the data files.
    split : str
        "train", "valid", "test", "plus4K" or "minus4K".
    max_samples : int, optional
        Read at most this many samples.
    """
    path = run.data_path(split)
    if path is None:
        raise DataError(f"the data manifest names no {split!r} file", path=run.manifest_path)
    norm = run.data_path("norm")
    if norm is None:
        raise DataError("the data manifest names no 'norm' file", path=run.manifest_path)
    from pcm.datasets import load_split

    return load_split(path, norm, max_samples=max_samples, dtype=dtype)


def save_stacked(model, path: str | os.PathLike) -> Path:
    """Save a stacked model atomically in the native ``.keras`` format."""
    with atomic_path(path) as tmp:
        model.save(tmp)
    return Path(path)


def load_stacked(path: str | os.PathLike, *, compute_dtype: str | None = None):
    """Load a stacked model (``safe_mode=True``), optionally in another dtype policy.

    Parameters
    ----------
    path : path-like
        A ``.keras`` file written by :func:`save_stacked`.
    compute_dtype : {"float32", "bfloat16", "float64"}, optional
        Rebuild the model with this compute dtype (weights are copied).
    """
    import keras

    import pcm.networks  # noqa: F401  (registers the custom classes)

    path = Path(path)
    if not path.exists():
        raise DataError("model file not found; run the phase that writes it first", path=path)
    model = keras.saving.load_model(path, safe_mode=True)
    if compute_dtype is not None:
        model = with_dtype(model, compute_dtype)
    return model


def with_dtype(model, compute_dtype: str):
    """``model`` itself if it already computes in ``compute_dtype``, else a converted copy."""
    from pcm.networks import StackedMLP

    if compute_dtype not in COMPUTE_DTYPES:
        raise ParameterError("compute_dtype", f"expected one of {sorted(COMPUTE_DTYPES)}")
    policy = COMPUTE_DTYPES[compute_dtype]
    if model.dtype_policy.name == policy:
        return model
    new = StackedMLP(model.n_networks, model.hidden_units, n_inputs=model.n_inputs,
                     input_layer=model.has_input_layer, targets=model.targets,
                     negative_slope=model.negative_slope, seed=model.seed, dtype=policy)
    for src, dst in zip(model.weights, new.weights, strict=True):
        dst.assign(np.asarray(src).astype(dst.dtype))
    return new


def export_networks(model, out_dir: str | os.PathLike, *,
                    labels: Sequence[str] | None = None) -> list[Path]:
    """Write every network of a stack as its own plain ``.keras`` model.

    Files are named after the network's output label (``tphystnd-691.39.keras``);
    if several networks predict the same output, ``_<n>`` is appended. Each is a
    ``keras.Sequential`` of Dense + LeakyReLU layers (mask folded in), loadable
    with ``keras.saving.load_model(path, safe_mode=True)`` without :mod:`pcm`.

    Returns
    -------
    list of Path
        The written files, in network order.
    """
    out_dir = Path(out_dir)
    if labels is None:
        names = output_labels()
        labels = [names[t] for t in model.targets]
    if len(labels) != model.n_networks:
        raise ParameterError("labels", f"need {model.n_networks} labels, got {len(labels)}")
    dup = len(set(labels)) != len(labels)
    paths = []
    for n, lab in enumerate(labels):
        path = out_dir / (f"{lab}_{n}.keras" if dup else f"{lab}.keras")
        with atomic_path(path) as tmp:
            model.export_network(n).save(tmp)
        paths.append(path)
    return paths


def read_history(run, phase: str) -> xr.Dataset:
    """The training history ``RUN/history_<phase>.nc`` (premask, unconstrained, finetune)."""
    path = run.artefact(f"history_{phase}.nc")
    if not Path(path).exists():
        raise DataError(f"no history of phase {phase!r}: run that phase first", path=path)
    with xr.open_dataset(path) as ds:
        return ds.load()


def _hidden(hidden_layers: int, hidden_units) -> tuple[int, ...]:
    if isinstance(hidden_units, (int, np.integer)):
        if int(hidden_layers) < 1:
            raise ParameterError("hidden_layers", f"must be >= 1, got {hidden_layers}")
        return (int(hidden_units),) * int(hidden_layers)
    return tuple(int(u) for u in hidden_units)


def _load_train_valid(run, max_train_samples, max_val_samples, compute_dtype):
    dtype = "float64" if compute_dtype == "float64" else "float32"
    x, y = load_arrays(run, "train", max_samples=max_train_samples, dtype=dtype)
    cap = max_train_samples if max_val_samples is None else max_val_samples
    xv, yv = load_arrays(run, "valid", max_samples=cap, dtype=dtype)
    n_out = len(output_labels())
    for name, arr in (("train", y), ("valid", yv)):
        if arr.shape[1] != n_out:
            raise DataError(f"expected {n_out} outputs, got {arr.shape[1]}",
                            path=run.data_path(name))
    return x, y, xv, yv


def train_phase(run, phase: str, kind: str, model, config: TrainConfig, *, l1: float,
                max_val_samples, progress: bool, t0: float,
                attrs: dict | None = None, seconds_key: str | None = None) -> xr.Dataset:
    """Train ``model`` on the run's train/valid data and write the phase's artefacts.

    Shared by every training phase (pre-masking, unconstrained, fine-tuning,
    causally-informed): resumes from ``checkpoints/<phase>``, saves
    ``models/<kind>.keras`` and ``history_<phase>.nc`` (with ``attrs`` added), and
    records the phase's wall seconds (under ``seconds_key``, default ``phase``),
    including epochs trained by earlier, interrupted sessions, started at ``t0``.
    """
    x, y, xv, yv = _load_train_valid(run, config.max_train_samples, max_val_samples,
                                     config.compute_dtype)
    hist = train_stacked(model, x, y, config, x_val=xv, y_val=yv, l1=l1,
                         checkpoint_dir=run.checkpoints(phase), desc=phase, progress=progress)
    save_stacked(model, run.model(kind))
    # wall time of this call plus the epochs trained by earlier (interrupted) sessions
    seconds = time.perf_counter() - t0 + hist.attrs["seconds_previous_sessions"]
    hist.attrs["phase_seconds"] = seconds
    hist.attrs["model_file"] = str(run.model(kind))
    hist.attrs.update(attrs or {})
    write_netcdf(hist, run.artefact(f"history_{phase}.nc"))
    run.record_seconds(**{seconds_key or phase: seconds})
    return hist


def run_premask(run, *, hidden_layers: int = 9, hidden_units: int = 256, epochs: int = 9,
                batch_size: int = 1024, learning_rate: float = 1e-3, l1: float = 1e-3,
                patience: int | None = None, seed: int = 0,
                max_train_samples: int | None = None, max_val_samples: int | None = None,
                compute_dtype: str = "float32", lr_divisor: float = 5.0, lr_every: int = 3,
                progress: bool = True) -> xr.Dataset:
    """Pre-masking phase: 65 networks with an L1-penalised input layer.

    Writes ``models/premask.keras``, ``history_premask.nc`` and
    ``seconds.json["premask"]``; resumes from ``checkpoints/premask``.
    ``max_val_samples`` (None) defaults to ``max_train_samples``.

    Returns
    -------
    xarray.Dataset
        The training history (see :func:`train_stacked`).
    """
    from pcm.networks import StackedMLP

    t0 = time.perf_counter()
    config = TrainConfig(hidden_units=_hidden(hidden_layers, hidden_units), epochs=epochs,
                         batch_size=batch_size, learning_rate=learning_rate,
                         lr_divisor=lr_divisor, lr_every=lr_every, l1=l1, patience=patience,
                         seed=seed, compute_dtype=compute_dtype,
                         max_train_samples=max_train_samples)
    model = StackedMLP(len(output_labels()), config.hidden_units, input_layer=True,
                       seed=seed, dtype=config.dtype_policy)
    return train_phase(run, "premask", "premask", model, config, l1=l1,
                        max_val_samples=max_val_samples, progress=progress, t0=t0)


def run_unconstrained(run, *, hidden_layers: int = 9, hidden_units: int = 256,
                      epochs: int = 9, batch_size: int = 1024, learning_rate: float = 1e-3,
                      patience: int | None = None, seed: int = 0,
                      max_train_samples: int | None = None,
                      max_val_samples: int | None = None, compute_dtype: str = "float32",
                      lr_divisor: float = 5.0, lr_every: int = 3,
                      progress: bool = True) -> xr.Dataset:
    """Unconstrained baseline: same hidden/output layers, no input layer, no L1, no mask.

    Writes ``models/unconstrained.keras``, ``history_unconstrained.nc`` and
    ``seconds.json["unconstrained"]``; its own ``seed``-initialised weights.
    """
    from pcm.networks import StackedMLP

    t0 = time.perf_counter()
    config = TrainConfig(hidden_units=_hidden(hidden_layers, hidden_units), epochs=epochs,
                         batch_size=batch_size, learning_rate=learning_rate,
                         lr_divisor=lr_divisor, lr_every=lr_every, l1=0.0, patience=patience,
                         seed=seed, compute_dtype=compute_dtype,
                         max_train_samples=max_train_samples)
    model = StackedMLP(len(output_labels()), config.hidden_units, input_layer=False,
                       seed=seed, dtype=config.dtype_policy)
    return train_phase(run, "unconstrained", "unconstrained", model, config, l1=0.0,
                        max_val_samples=max_val_samples, progress=progress, t0=t0)


def run_finetune(run, *, epochs: int = 9, batch_size: int = 1024,
                 learning_rate: float = 1e-3, patience: int | None = None, seed: int = 0,
                 max_train_samples: int | None = None, max_val_samples: int | None = None,
                 compute_dtype: str = "float32", lr_divisor: float = 5.0, lr_every: int = 3,
                 progress: bool = True) -> xr.Dataset:
    """Masking phase: fine-tune masked networks that start from the pre-masking weights.

    Reads ``models/premask.keras`` and ``masks.nc``; the masking networks drop
    the input layer, multiply the inputs by the final masks and start from the
    pre-masking hidden and output weights. Writes ``models/pcmasking.keras``,
    ``history_finetune.nc`` and ``seconds.json["finetune"]``. ``seed`` only
    drives the shuffling (the weights come from the pre-masking model).
    """
    from pcm.masking import read_masks

    t0 = time.perf_counter()
    premask = load_stacked(run.model("premask"))
    masks = read_masks(run)
    model = with_dtype(premask.to_masking(masks), compute_dtype)
    config = TrainConfig(hidden_units=model.hidden_units, epochs=epochs, batch_size=batch_size,
                         learning_rate=learning_rate, lr_divisor=lr_divisor,
                         lr_every=lr_every, l1=0.0, patience=patience, seed=seed,
                         compute_dtype=compute_dtype, max_train_samples=max_train_samples)
    return train_phase(run, "finetune", "pcmasking", model, config, l1=0.0,
                        max_val_samples=max_val_samples, progress=progress, t0=t0)

