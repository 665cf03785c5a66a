"""Training loop of a stacked model: resume, epochs, validation, early stopping, checkpoints.

:func:`train_stacked` trains every network of a :class:`pcm.nn.networks.StackedMLP`
together with one :class:`pcm.nn.engine.Engine`. It is a short sequence of small
steps a reader can follow one at a time:

- :func:`_resume` restores weights, Adam moments and history from a matching
  per-epoch checkpoint (``checkpoint_dir/state.npz``);
- :func:`_train_epoch` runs one epoch in a few compiled calls;
- :func:`_validate` scores every network on the validation data;
- :meth:`_Progress.early_stop` keeps each network's best weights (``patience``);
- :func:`_save_checkpoint` writes the whole state atomically after every epoch.

Learning rate (``schedule="step"``): ``learning_rate / lr_divisor ** (epoch //
lr_every)`` (reference: 1e-3 divided by 5 every 3 epochs). ``schedule="plateau"``
trains to convergence: the rate is divided by ``lr_divisor`` once the stack's summed
validation loss has gone ``plateau_patience`` epochs without a relative decrease of
``plateau_min_delta`` (:meth:`_Progress.plateau`), ``epochs`` is a cap, and early
stopping (``patience``) counts only decreases of that relative size. A network has
*converged* (history ``converged``) when it ended ``patience`` epochs (without early
stopping: ``lr_every``) past its last such decrease. Early stopping acts per network:
every network keeps training until ALL networks have gone ``patience`` epochs without a lower
validation loss, and each network's final weights are those of its own best
validation epoch. Shuffling depends only on ``(seed, epoch)``, so a run killed and
restarted ends with the same weights as an uninterrupted run; a finished
checkpoint makes a re-run return at once.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr
from tqdm import tqdm

from pcm.data.streaming import DiskSplit
from pcm.errors import DataError, ParameterError
from pcm.nn.checkpoint import CHECKPOINT_FILE, load_state, save_state
from pcm.nn.config import TrainConfig, epoch_permutation, learning_rate_at
from pcm.nn.engine import Engine, check_arrays, check_split, l1_vector, make_strategy
from pcm.variables import output_labels

__all__ = ["train_stacked", "checkpoint_fingerprint", "l1_summary"]

#: Smallest loss (squared normalised output) that ``plateau_min_delta`` is taken of.
CONVERGENCE_FLOOR = 1e-6

log = logging.getLogger(__name__)


def _digest(*arrays: np.ndarray, stride_to: int | None = None) -> str:
    h = hashlib.blake2b(digest_size=12)
    for a in arrays:
        a = np.ascontiguousarray(a)
        if stride_to is not None and a.shape[0] > stride_to:
            a = np.ascontiguousarray(a[:: a.shape[0] // stride_to])
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()



def _data_digest(x, y) -> str:
    """Checksum of in-memory data (strided rows), or a streamed split's identity."""
    return x.digest() if isinstance(x, DiskSplit) else _digest(x, y, stride_to=4096)


def _check_data(model, x, y, name: str) -> tuple:
    """``(x, y)`` checked; a streamed split comes back as ``(split, None)``."""
    if isinstance(x, DiskSplit):
        return check_split(model, x, name), None
    return check_arrays(model, x, y, name)


def l1_summary(values: np.ndarray) -> float | list[float]:
    """One float when every network has the same λ (as before per-network λ), else the list."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    return float(values[0]) if values.size and np.all(values == values[0]) else values.tolist()


def checkpoint_fingerprint(model, x, y, x_val, y_val, config: TrainConfig, l1) -> dict:
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
        "l1": l1 if isinstance(l1, list) else float(l1),
        "patience": config.patience,
        "seed": config.seed,
        **({"schedule": config.schedule, "plateau_patience": config.plateau_patience,
            "plateau_min_delta": config.plateau_min_delta}
           if config.schedule != "step" else {}),
        "data": _data_digest(x, y),
        "val_data": None if x_val is None else _data_digest(x_val, y_val),
        "initial_weights": _digest(*weights),
    }


def _history_dataset(model, loss, val_loss, lrs, seconds, best_epoch, converged, *,
                     desc: str, config: TrainConfig, l1: float, n_train: int, n_val: int,
                     resumed_from: int, labels: Sequence[str] | None = None) -> xr.Dataset:
    labels = output_labels() if labels is None else list(labels)
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
    penalty_note = " + L1 penalty" if np.any(np.asarray(l1) > 0) else ""
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
        "converged": (("network",), np.asarray(converged, dtype=np.int8),
                      {"long_name": "1: the validation loss stopped decreasing (the network "
                                    "ended the convergence window past its last decrease), "
                                    "0: still decreasing at the epoch cap",
                       "units": "1"}),
    }
    attrs = {
        "phase": desc or "training",
        "seconds": float(np.sum(seconds)),
        "l1": np.asarray(l1, dtype=np.float64) if isinstance(l1, list) else float(l1),
        "batch_size": config.batch_size,
        "learning_rate": config.learning_rate,
        "lr_divisor": config.lr_divisor,
        "lr_every": config.lr_every,
        "epochs_requested": config.epochs,
        "schedule": config.schedule,
        "plateau_patience": int(config.plateau_patience),
        "plateau_min_delta": float(config.plateau_min_delta),
        "convergence_window": _window(config),
        "converged_share": float(np.mean(converged)) if len(converged) else float("nan"),
        "learning_rate_final": float(lrs[-1]) if len(lrs) else float(config.learning_rate),
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


def _window(config: TrainConfig) -> int:
    """Epochs without a decrease after which a network counts as converged."""
    return int(config.patience) if config.patience else int(config.lr_every)


def _use_bar(progress: bool) -> bool:
    return bool(progress) and hasattr(sys.stderr, "isatty") and sys.stderr.isatty()



@dataclass
class _Progress:
    """Everything the loop carries from epoch to epoch (and a checkpoint stores)."""

    n_networks: int
    patience: int | None
    loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    seconds: list = field(default_factory=list)
    best_val: np.ndarray = None
    best_epoch: np.ndarray = None
    wait: np.ndarray = None
    best_weights: list = field(default_factory=list)
    epoch: int = 0
    stopped_early: bool = False
    min_delta: float = 0.0
    ref_val: np.ndarray = None
    lr_now: float = float("nan")
    plateau_best: float = float("inf")
    plateau_wait: int = 0

    def __post_init__(self) -> None:
        self.best_val = np.full(self.n_networks, np.inf)
        self.best_epoch = np.zeros(self.n_networks, dtype=np.int64)
        self.wait = np.zeros(self.n_networks, dtype=np.int64)
        self.ref_val = np.full(self.n_networks, np.inf)

    def track(self, val: np.ndarray) -> np.ndarray:
        """Update best loss/epoch and the wait since the last decrease; return improved."""
        improved = val < self.best_val
        self.best_val = np.where(improved, val, self.best_val)
        self.best_epoch = np.where(improved, self.epoch, self.best_epoch)
        # a decrease must exceed min_delta of the loss, and of 1e-6 for nearly constant
        # outputs (Adam moves their tiny losses by relative amounts at any rate)
        first = ~np.isfinite(self.ref_val)
        ref = np.where(first, 0.0, self.ref_val)
        margin = self.min_delta * np.maximum(ref, CONVERGENCE_FLOOR) if self.min_delta else 0.0
        decreased = first | (val < ref - margin)
        self.ref_val = np.where(decreased, val, self.ref_val)
        self.wait = np.where(decreased, 0, self.wait + 1)
        return improved

    def plateau(self, val: np.ndarray, config: TrainConfig) -> None:
        """``schedule="plateau"``: divide the rate after ``plateau_patience`` flat epochs."""
        total = float(np.sum(val))
        if total < self.plateau_best * (1.0 - config.plateau_min_delta):
            self.plateau_best, self.plateau_wait = total, 0
            return
        self.plateau_wait += 1
        if self.plateau_wait >= config.plateau_patience:
            self.lr_now, self.plateau_wait = self.lr_now / config.lr_divisor, 0

    def converged(self, window: int) -> np.ndarray:
        """Per network: ended at least ``window`` epochs past its last decrease."""
        return self.wait >= window

    def record(self, train_loss: np.ndarray, val: np.ndarray, lr: float, seconds: float) -> None:
        """Append one finished epoch to the history."""
        self.loss.append(train_loss)
        self.val_loss.append(val)
        self.lr.append(lr)
        self.seconds.append(seconds)
        self.epoch += 1

    def early_stop(self, val: np.ndarray, trainable: list) -> None:
        """Keep each network's best weights; stop once every network waited ``patience``."""
        improved = self.track(val)
        if improved.any():
            for k, var in enumerate(trainable):
                current = np.asarray(var)
                self.best_weights[k][improved] = current[improved]
        self.stopped_early = bool(np.all(self.wait >= self.patience))


def _check_training_inputs(model, x, y, x_val, y_val, config: TrainConfig,
                           l1: float | Sequence[float] | None) -> tuple:
    """Validated ``(x, y, x_val, y_val, l1)``; ``l1=None`` means the config's for pre-masking."""
    x, y = _check_data(model, x, y, "training")
    if (x_val is None) != (y_val is None) and not isinstance(x_val, DiskSplit):
        raise ParameterError("x_val", "give both x_val and y_val, or neither")
    if x_val is not None:
        x_val, y_val = _check_data(model, x_val, y_val, "validation")
    if config.patience is not None and x_val is None:
        raise ParameterError("patience", "early stopping needs validation data (x_val, y_val)")
    if l1 is None:
        l1 = config.l1 if model.has_input_layer else 0.0
    l1 = l1_summary(l1_vector(model, l1))
    if config.max_train_samples is not None and y is not None:  # a DiskSplit is capped
        x, y = x[: config.max_train_samples], y[: config.max_train_samples]  # when opened
    return x, y, x_val, y_val, l1


def _resume(model, engine: Engine, progress: _Progress, checkpoint_dir, fingerprint: dict,
            config: TrainConfig, label: str) -> None:
    """Restore weights, optimizer and history from a matching checkpoint, if any."""
    state = load_state(checkpoint_dir, fingerprint)
    if state is not None and int(state["epoch"]) <= config.epochs:
        for k, var in enumerate(model.weights):
            var.assign(state[f"weight_{k}"])
        for k, var in enumerate(engine.optimizer.variables):
            var.assign(state[f"optimizer_{k}"])
        progress.epoch = int(state["epoch"])
        # more epochs than before may be asked for: only early stopping is final
        progress.stopped_early = bool(state["stopped_early"])
        progress.loss = list(state["hist_loss"])
        progress.val_loss = list(state["hist_val_loss"])
        progress.lr = list(state["hist_lr"])
        progress.seconds = list(state["hist_seconds"])
        progress.best_val = state["best_val"]
        progress.best_epoch = state["best_epoch"]
        progress.wait = state["wait"]
        if "ref_val" in state:  # written since the convergence record
            progress.ref_val = state["ref_val"]
        if config.schedule == "plateau":
            progress.lr_now = float(state["lr_now"])
            progress.plateau_best = float(state["plateau_best"])
            progress.plateau_wait = int(state["plateau_wait"])
        if config.patience:
            progress.best_weights = [state[f"best_{k}"] for k in range(len(engine.variables))]
        log.info("%s: resuming after epoch %d/%d from %s", label, progress.epoch,
                 config.epochs, checkpoint_dir)
    elif checkpoint_dir is not None and (Path(checkpoint_dir) / CHECKPOINT_FILE).exists():
        log.warning("%s: the checkpoint in %s does not match (other data, model, "
                    "hyper-parameters, or more epochs done than requested); starting afresh",
                    label, checkpoint_dir)


def _train_epoch(engine: Engine, config: TrainConfig, epoch: int, label: str, per_call: int,
                 show_bar: bool) -> np.ndarray:
    """Run one epoch; return each network's mean training loss over it."""
    tf = engine.tf
    steps = engine.steps
    total = np.zeros(engine.model.n_networks)
    bar = None
    if show_bar:
        bar = tqdm(total=steps, desc=f"{label} {epoch + 1}/{config.epochs}",
                   file=sys.stderr, leave=False, unit="step")
    if engine.split is not None:  # streamed from disk (pcm.data.streaming)
        total = engine.train_streamed(config.seed, epoch, on_window=None if bar is None else (
            lambda rows: bar.update(math.ceil(rows / engine.batch_size))))
        steps = 0
    else:
        perm = tf.constant(epoch_permutation(engine.n, config.seed, epoch).astype(np.int32))
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
    return train_loss


def _validate(engine: Engine, x_val, y_val, config: TrainConfig) -> np.ndarray:
    """Validation loss of every network (penalty included), NaN without validation data."""
    if x_val is None:
        return np.full(engine.model.n_networks, np.nan)
    val = engine.evaluate(x_val, y_val, max(config.batch_size, 4096))
    return val + engine.penalty().numpy()


def _save_checkpoint(checkpoint_dir, fingerprint: dict, model, engine: Engine,
                     progress: _Progress) -> None:
    """Write weights, Adam moments and history of the finished epochs atomically."""
    arrays = {f"weight_{k}": np.asarray(v) for k, v in enumerate(model.weights)}
    arrays.update({f"optimizer_{k}": np.asarray(v)
                   for k, v in enumerate(engine.optimizer.variables)})
    arrays.update({f"best_{k}": w for k, w in enumerate(progress.best_weights)})
    arrays.update(epoch=np.array(progress.epoch),
                  stopped_early=np.array(int(progress.stopped_early)),
                  hist_loss=np.array(progress.loss), hist_val_loss=np.array(progress.val_loss),
                  hist_lr=np.array(progress.lr), hist_seconds=np.array(progress.seconds),
                  best_val=progress.best_val, best_epoch=progress.best_epoch,
                  wait=progress.wait, ref_val=progress.ref_val,
                  lr_now=np.array(progress.lr_now),
                  plateau_best=np.array(progress.plateau_best),
                  plateau_wait=np.array(progress.plateau_wait))
    save_state(checkpoint_dir, fingerprint, arrays)


def _report(label: str, config: TrainConfig, progress: _Progress, has_val: bool,
            show: bool) -> None:
    """One line per epoch: a logging record, printed too when logging is not set up."""
    msg = (f"{label}: epoch {progress.epoch}/{config.epochs} "
           f"loss={np.sum(progress.loss[-1]):.6g}"  # summed over networks
           + (f" val_loss={np.sum(progress.val_loss[-1]):.6g}" if has_val else "")
           + f" lr={progress.lr[-1]:.3g} ({progress.seconds[-1]:.1f} s)")
    log.info(msg)
    if show and not log.hasHandlers():
        print(msg, file=sys.stderr, flush=True)


def train_stacked(model, x, y, config: TrainConfig, *, x_val=None, y_val=None,
                  l1: float | Sequence[float] | None = None,
                  checkpoint_dir: str | os.PathLike | None = None,
                  desc: str = "", progress: bool = False,
                  on_epoch_end: Callable[[int, xr.Dataset], None] | None = None,
                  steps_per_call: int | None = None, first_epoch: int = 0,
                  labels: Sequence[str] | None = None) -> xr.Dataset:
    """Train all networks of a stacked model together, in place.

    Parameters
    ----------
    model : pcm.nn.networks.StackedMLP
        Trained in place. Network ``n`` learns column ``model.targets[n]`` of ``y``.
    x, y : array
        Normalised inputs ``(samples, n_inputs)`` and outputs ``(samples, >= max
        target + 1)``, held in memory; or ``x`` a :class:`pcm.data.streaming.DiskSplit`
        and ``y`` None: the split is streamed from disk in shuffled windows (its
        module docstring gives the order; ``max_train_samples`` is applied when the
        split is opened). ``x_val`` may be a split too. ``config.devices`` > 1 trains
        under a ``tf.distribute.MirroredStrategy`` (:mod:`pcm.nn.engine`).
    config : TrainConfig
        Hyper-parameters (``hidden_units`` and ``compute_dtype`` describe the
        model and are not used here; the model's own dtype policy rules).
    x_val, y_val : array, optional
        Validation data; needed for ``config.patience``.
    l1 : float or sequence of float, optional
        L1 weight lambda on the input kernel (pre-masking models only): one value,
        or one per network (a λ sweep as one stack; see :meth:`StackedMLP.repeat`).
        None (default) means ``config.l1`` for a model with input layer and 0
        otherwise.
    checkpoint_dir : path-like, optional
        Folder for the per-epoch checkpoint; an existing matching checkpoint is
        resumed (a finished one returns at once).
    desc : str
        Phase name for the progress bar, log lines and history attrs.
    progress : bool
        Show a tqdm bar on stderr (only if stderr is a terminal) and one line per
        epoch (``premask: epoch 3/9 loss=... (12.3 s)``): a ``logging`` INFO record
        of logger ``pcm.nn.trainer`` always, printed to stderr as well when logging
        is not configured.
    on_epoch_end : callable, optional
        Called as ``on_epoch_end(epoch, history)`` (1-based) after each epoch's
        checkpoint is written.
    steps_per_call : int, optional
        Optimizer steps run per compiled call (default: about 20 calls per epoch).
    first_epoch : int
        Continue a schedule: train epochs ``first_epoch .. config.epochs - 1`` (0-based),
        with their learning rates and sample orders, from the model's current weights
        (a fresh Adam state). Used by successive halving, whose rounds continue one
        schedule. The history holds the epochs trained here.
    labels : sequence of str, optional
        Output labels of the data's catalogue, naming each network's output in
        the history (default: the SPCAM outputs).

    Returns
    -------
    xarray.Dataset
        History: ``loss`` and ``val_loss`` (epoch, network) — both include the
        L1 penalty where there is one, as Keras reports them — ``learning_rate``
        and ``epoch_seconds`` (epoch), ``best_epoch`` (network); attrs record the
        hyper-parameters, ``seconds`` (training wall time over all sessions) and
        ``seconds_previous_sessions`` (the part spent before a resume).
    """
    x, y, x_val, y_val, l1 = _check_training_inputs(model, x, y, x_val, y_val, config, l1)
    if not 0 <= int(first_epoch) <= config.epochs:
        raise ParameterError("first_epoch", f"must lie in [0, epochs={config.epochs}], "
                             f"got {first_epoch}")
    label = desc or "training"
    fingerprint = checkpoint_fingerprint(model, x, y, x_val, y_val, config, l1)
    if first_epoch:
        fingerprint["first_epoch"] = int(first_epoch)
    strategy = make_strategy(config.devices)
    target = model
    if strategy is not None:  # a mirrored copy trains; its weights come back at the end
        with strategy.scope():
            model = target.select(range(target.n_networks))
    engine = Engine(model, x, y, config, l1, strategy=strategy)
    state = _Progress(model.n_networks, config.patience,
                      min_delta=config.plateau_min_delta if config.schedule == "plateau" else 0.0,
                      lr_now=float(config.learning_rate))
    state.epoch = int(first_epoch)
    if config.schedule == "plateau" and x_val is None:
        raise ParameterError("schedule", "schedule plateau needs validation data (x_val, y_val)")
    if config.patience:
        state.best_weights = [np.asarray(v).copy() for v in engine.variables]
    _resume(model, engine, state, checkpoint_dir, fingerprint, config, label)
    resumed_from = state.epoch - int(first_epoch)

    def history() -> xr.Dataset:
        best = state.best_epoch if config.patience else np.full(model.n_networks, state.epoch)
        converged = state.converged(_window(config)) if x_val is not None \
            else np.zeros(model.n_networks, dtype=bool)
        return _history_dataset(model, state.loss, state.val_loss, state.lr, state.seconds,
                                best, converged, desc=label, config=config, l1=l1, n_train=len(x),
                                n_val=0 if x_val is None else len(x_val),
                                resumed_from=resumed_from, labels=labels)

    per_call = steps_per_call or max(1, math.ceil(engine.steps / 20))
    show_bar = _use_bar(progress)
    while state.epoch < config.epochs and not state.stopped_early:
        t0 = time.perf_counter()
        lr = learning_rate_at(config, state.epoch) if config.schedule == "step" \
            else state.lr_now
        engine.optimizer.learning_rate.assign(lr)
        train_loss = _train_epoch(engine, config, state.epoch, label, per_call, show_bar)
        val = _validate(engine, x_val, y_val, config)
        state.record(train_loss, val, lr, time.perf_counter() - t0)
        if config.patience:
            state.early_stop(val, engine.variables)
        elif x_val is not None:
            state.track(val)
        if config.schedule == "plateau":
            state.plateau(val, config)
        if checkpoint_dir is not None:
            _save_checkpoint(checkpoint_dir, fingerprint, model, engine, state)
        _report(label, config, state, x_val is not None, progress)
        if on_epoch_end is not None:
            on_epoch_end(state.epoch, history())

    if config.patience:
        for var, best in zip(engine.variables, state.best_weights, strict=True):
            var.assign(best)
    if target is not model:
        for dst, src in zip(target.weights, model.weights, strict=True):
            dst.assign(np.asarray(src))
    return history()
