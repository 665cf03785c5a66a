"""Hyper-parameters of one training run of a stacked model, and the schedule they imply.

:class:`TrainConfig` is what the training engine (:mod:`pcm.nn.trainer`) needs;
the method's steps build one from their step configuration
(:meth:`pcm.params.config.TrainingStep.train_config`). Its defaults are those of the run
parameters (:data:`pcm.params.presets.PARAMETERS`), so they are declared in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pcm.errors import ParameterError
from pcm.params.presets import PARAMETERS

__all__ = ["COMPUTE_DTYPES", "SCHEDULES", "TrainConfig", "learning_rate_at", "epoch_permutation"]

#: ``compute_dtype`` values and the Keras dtype policy each one selects.
COMPUTE_DTYPES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float64": "float64"}


#: Learning-rate schedules (:attr:`TrainConfig.schedule`).
SCHEDULES = ("step", "plateau")


def _default(key: str):
    return field(default=PARAMETERS[key].default)


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
        ``schedule="step"``: the learning rate is divided by ``lr_divisor`` every
        ``lr_every`` epochs.
    schedule : {"step", "plateau"}
        "plateau": the learning rate is divided by ``lr_divisor`` once the stack's summed
        validation loss has gone ``plateau_patience`` epochs without a relative decrease
        of ``plateau_min_delta``; ``epochs`` is then a cap and ``patience`` (early
        stopping) is required. Needs validation data.
    plateau_patience : int
        Epochs without improvement before the learning rate drops ("plateau").
    plateau_min_delta : float
        Relative decrease of the summed validation loss that counts as improvement.
    l1 : float or tuple of float
        Sparsity weight lambda of the pre-masking phase; the penalty of a
        network is ``l1 * ||W_in||_1 / (n_inputs**2)``. A tuple gives one lambda
        per network of the stack.
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
    in_memory, memory_budget_mb : str, float
        ``data.in_memory`` (auto, true, false) and ``data.memory_budget_mb``: whether the
        run's splits are loaded or streamed from disk (:mod:`pcm.data.streaming`).
    devices : int or None
        Devices of the training (a ``MirroredStrategy`` when more than one; None:
        every GPU).
    """

    hidden_units: tuple[int, ...] = (PARAMETERS["hidden_units"].default,) * \
        PARAMETERS["hidden_layers"].default
    epochs: int = _default("epochs")
    batch_size: int = _default("batch_size")
    learning_rate: float = _default("learning_rate")
    lr_divisor: float = _default("lr_divisor")
    lr_every: int = _default("lr_every")
    l1: float | tuple[float, ...] = _default("l1")
    patience: int | None = None
    schedule: str = _default("schedule")
    plateau_patience: int = _default("plateau_patience")
    plateau_min_delta: float = _default("plateau_min_delta")
    seed: int = _default("seed")
    compute_dtype: str = _default("compute_dtype")
    max_train_samples: int | None = _default("max_samples")
    in_memory: str = _default("data.in_memory")
    memory_budget_mb: float = _default("data.memory_budget_mb")
    devices: int | None = _default("devices")

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
        if np.ndim(self.l1):  # one lambda per network (a sweep trained as one stack)
            object.__setattr__(self, "l1", tuple(float(v) for v in np.ravel(self.l1)))
        if not np.all(np.asarray(self.l1, dtype=float) >= 0):
            raise ParameterError("l1", f"must be >= 0, got {self.l1}")
        if self.patience is not None and int(self.patience) < 1:
            raise ParameterError("patience", f"must be a positive integer or None, "
                                 f"got {self.patience}")
        if self.schedule not in SCHEDULES:
            raise ParameterError("schedule", f"expected one of {', '.join(SCHEDULES)}, "
                                 f"got {self.schedule!r}")
        if self.schedule == "plateau" and self.patience is None:
            raise ParameterError("stop_patience", "schedule plateau trains to convergence: "
                                 "it needs an early-stopping patience")
        if int(self.plateau_patience) < 1 or not 0 <= float(self.plateau_min_delta) < 1:
            raise ParameterError("plateau_patience", "plateau_patience must be >= 1 and "
                                 "plateau_min_delta in [0, 1)")
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
    """Learning rate of (0-based) ``epoch``: ``lr / lr_divisor ** (epoch // lr_every)``.

    The ``"step"`` schedule; under ``"plateau"`` the trainer divides the rate itself.
    """
    return float(config.learning_rate / config.lr_divisor ** (epoch // config.lr_every))


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """Sample order of ``epoch``; depends only on ``(seed, epoch)`` so resume is exact."""
    return np.random.default_rng([int(seed), int(epoch)]).permutation(n)
