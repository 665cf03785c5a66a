"""Step 3 on a run: the rankings and selections beyond the L1 row norm.

The pure rules are in :mod:`pcm.method.ranking` and :mod:`pcm.method.selection`; this
module applies them to a run directory for :func:`pcm.method.masking.search_thresholds`
and :func:`pcm.method.masking.compute_masking_vectors`:

* :func:`ranking_vectors` -- the masking vector of ``ranking`` (``gradient_input``,
  ``integrated_gradients``: of ``models/premask.keras`` on validation samples;
  ``adaptive_l1``: a second pre-masking stage continuing from the pre-masking
  weights with adaptive penalty weights; ``stability``: ``stability_runs`` fresh
  pre-masking networks per output with random penalty weights, ONE stack;
  ``screen``: no network, the order in which the conditional screen eliminates the
  inputs of every output, :func:`pcm.method.selection.elimination_ranking`);
* :func:`knockoff_masks` -- ``selection: knockoff``: a pre-masking stack on the inputs
  and their Gaussian knockoffs, the statistic ``W = v - v~`` and the knockoff(+) cut;
* :func:`screen_masks` -- ``screen: partial_correlation`` on the training samples.

The extra stacks train with the run's pre-masking hyper-parameters (read from
``history_premask.nc``, schedule included) and checkpoint under
``checkpoints/ranking_<name>/`` (resumable).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from pcm.data.streaming import DiskSplit, choose_in_memory, split_nbytes
from pcm.errors import DataError, ParameterError
from pcm.method.ranking import (
    RANKINGS,
    adaptive_weights,
    gradient_input,
    ig_alphas,
    integrated_gradients,
    random_penalty_weights,
    selection_frequency,
    weighted_start,
)
from pcm.method.selection import (
    elimination_ranking,
    fit_gaussian_knockoffs,
    knockoff_select,
    partial_f_screen,
    sample_knockoffs,
)
from pcm.nn.config import TrainConfig
from pcm.nn.gradients import input_gradients
from pcm.nn.trainer import train_stacked
from pcm.params.config import SearchConfig
from pcm.run.rundir import RunDir

__all__ = ["premask_train_config", "ranking_vectors", "knockoff_masks", "screen_sample",
           "screen_masks"]


def premask_train_config(run: RunDir) -> TrainConfig:
    """The run's pre-masking hyper-parameters, from ``history_premask.nc``."""
    attrs = run.history("premask").attrs
    patience = int(attrs.get("patience", -1))
    return TrainConfig(hidden_units=tuple(int(u) for u in np.atleast_1d(attrs["hidden_units"])),
                       epochs=int(attrs["epochs_requested"]), batch_size=int(attrs["batch_size"]),
                       learning_rate=float(attrs["learning_rate"]),
                       lr_divisor=float(attrs["lr_divisor"]), lr_every=int(attrs["lr_every"]),
                       l1=float(np.atleast_1d(attrs["l1"])[0]), seed=int(attrs["seed"]),
                       compute_dtype=str(attrs["compute_dtype"]),
                       max_train_samples=int(attrs["n_train"]),
                       patience=patience if patience > 0 else None,
                       schedule=str(attrs.get("schedule", "step")),
                       plateau_patience=int(attrs.get("plateau_patience", 2)),
                       plateau_min_delta=float(attrs.get("plateau_min_delta", 1e-3)))


def _ordered(run: RunDir, premask) -> np.ndarray:
    """Index of the pre-masking network of each output 0..n-1."""
    where = {t: n for n, t in enumerate(premask.targets)}
    n_out = run.catalogue.n_outputs
    if sorted(where) != list(range(n_out)):
        raise DataError("the pre-masking model lacks networks for some outputs",
                        path=run.model("premask"))
    return np.array([where[o] for o in range(n_out)])


def _sample_rows(run: RunDir, split: str, n: int, stream: int, config: SearchConfig
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows of a split, drawn without replacement (seeded by ``config.seed`` and
    ``stream``), in file order. A split over ``data.memory_budget_mb`` is read block by
    block (:meth:`pcm.data.streaming.DiskSplit.read_rows`), never whole."""
    x, y = run.split_data(split, max_samples=config.max_samples,
                          in_memory=config.data_in_memory,
                          memory_budget_mb=config.data_memory_budget_mb)
    rng = np.random.default_rng([int(config.seed), stream])
    rows = np.sort(rng.choice(len(x), min(int(n), len(x)), replace=False))
    if isinstance(x, DiskSplit):  # streamed
        return x.read_rows(rows)
    return np.asarray(x[rows]), np.asarray(y[rows])


def _validation_sample(run: RunDir, config: SearchConfig) -> np.ndarray:
    xv, _ = _sample_rows(run, "valid", config.ranking_samples, 3, config)
    return np.asarray(xv, dtype=np.float32)


def _train(run: RunDir, model, name: str, config: TrainConfig, progress: bool,
           data: tuple | None = None) -> None:
    """Train a ranking's networks on the run's splits (streamed past the memory budget), or
    on ``data`` ``(x, y, x_valid, y_valid)`` (the knockoffs' doubled inputs)."""
    if data is None:
        data = run.training_data(config.max_train_samples, config.compute_dtype,
                                 in_memory=config.in_memory,
                                 memory_budget_mb=config.memory_budget_mb)
    x, y, xv, yv = data
    train_stacked(model, x, y, config, x_val=xv,
                  y_val=yv, checkpoint_dir=run.checkpoints(f"ranking_{name}"),
                  desc=f"ranking {name}", progress=progress,
                  labels=run.catalogue.output_labels())


def _effective_norms(model) -> np.ndarray:
    """Row norms of the effective (masked) input kernel, ``(networks, inputs)``."""
    kernel = np.asarray(model.input_kernel) * np.asarray(model.mask)[:, :, None]
    return np.linalg.norm(kernel, axis=2)


def ranking_vectors(run: RunDir, config: SearchConfig, *, progress: bool = False) -> np.ndarray:
    """The masking vector of ``config.ranking``, ``(outputs, inputs)`` in output order.

    ``row_norm`` is :func:`pcm.method.masking.compute_masking_vectors` itself; the
    other rankings are described in the module docstring.
    """
    from pcm.nn.networks import StackedMLP

    if config.ranking not in RANKINGS:
        raise ParameterError("ranking", f"expected one of {', '.join(RANKINGS)}, "
                             f"got {config.ranking!r}")
    if config.ranking == "screen":  # no network: the screen's elimination order
        x, y = screen_sample(run, config)
        return elimination_ranking(x, y, np.tile(x.std(axis=0) > 0, (y.shape[1], 1)))
    premask = run.load_model("premask")
    order = _ordered(run, premask)
    if config.ranking == "row_norm":
        return premask.masking_vectors()[order]
    if config.ranking in ("gradient_input", "integrated_gradients"):
        x = _validation_sample(run, config)
        if config.ranking == "gradient_input":
            return gradient_input(input_gradients(premask, x), x)[order]
        alphas = ig_alphas(config.ranking_steps)
        mean = sum(input_gradients(premask, x, scale=a) for a in alphas) / len(alphas)
        return integrated_gradients(mean[None], x)[order]  # one "step": the path mean
    train = premask_train_config(run)
    if config.ranking == "adaptive_l1":
        model = premask.select(np.arange(premask.n_networks))
        weights = adaptive_weights(premask.masking_vectors(), config.adaptive_gamma)
        kernel, mask = weighted_start(np.asarray(premask.input_kernel), weights)
        model.input_kernel.assign(kernel.astype(np.asarray(premask.input_kernel).dtype))
        model.set_mask(mask)
        _train(run, model, "adaptive_l1", train, progress)
        return _effective_norms(model)[order]
    # stability: B fresh pre-masking networks per output, random penalty weights, one stack
    runs, n_out = int(config.stability_runs), run.catalogue.n_outputs
    model = StackedMLP(n_out * runs, train.hidden_units, n_inputs=run.catalogue.n_inputs,
                       input_layer=True, targets=np.tile(np.arange(n_out), runs),
                       seed=train.seed + 1, dtype=train.dtype_policy)
    weights = random_penalty_weights((model.n_networks, model.n_inputs),
                                     config.stability_weakness, config.seed)
    kernel, mask = weighted_start(np.asarray(model.input_kernel), weights)
    model.input_kernel.assign(kernel.astype(np.asarray(model.input_kernel).dtype))
    model.set_mask(mask)
    _train(run, model, "stability", train, progress)
    each = _effective_norms(model).reshape(runs, n_out, -1)
    return selection_frequency(each, config.selection_ratio)


def _knockoff_splits(run: RunDir, train: TrainConfig, config: SearchConfig
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x, y, x_valid, y_valid)`` for the knockoffs' network, in bounded memory.

    A split whose rows fit ``data.memory_budget_mb`` with their knockoffs (four times the
    inputs while ``[X, X~]`` is built, and the outputs) is used whole, as ``data.in_memory``
    allows; a larger one contributes a seeded sample of as many rows as fit, read block
    by block (:func:`_sample_rows`), never whole. The knockoffs are one draw per row, so
    they cannot be streamed like the splits.
    """
    dtype = "float64" if train.compute_dtype == "float64" else "float32"
    catalogue = run.catalogue
    row = split_nbytes(1, 4 * catalogue.n_inputs + catalogue.n_outputs, dtype)
    data: list[np.ndarray] = []
    for split, stream in (("train", 6), ("valid", 7)):
        n = min(run.split_samples(split), int(train.max_train_samples))
        if choose_in_memory(config.data_in_memory, n * row, config.data_memory_budget_mb):
            x, y = run.arrays(split, max_samples=train.max_train_samples, dtype=dtype)
        else:
            fit = int(float(config.data_memory_budget_mb) * 2**20 // row)
            if fit < 1:
                raise ParameterError("data.memory_budget_mb", f"too small for the knockoffs: "
                                     f"one row with its knockoffs takes {row} bytes")
            x, y = _sample_rows(run, split, min(n, fit), stream, config)
        run.check_outputs(split, y)
        data += [np.asarray(x, dtype=dtype), np.asarray(y, dtype=dtype)]
    x, y, xv, yv = data
    return x, y, xv, yv


def knockoff_masks(run: RunDir, config: SearchConfig, *, progress: bool = False
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    """``selection: knockoff``: masks, statistics ``W (outputs, inputs)``, cuts ``T`` and
    the training and validation samples the knockoffs' network saw.

    The knockoffs are fitted on the training inputs and drawn for the training and
    validation inputs (seed ``config.seed``); a pre-masking stack on ``[X, X~]`` (twice
    the inputs, λ scaled by 4 so that each weight pays the run's penalty) gives the
    row norms ``v`` of the inputs and ``v~`` of their knockoffs. Splits too large for
    the memory budget with their knockoffs are subsampled (:func:`_knockoff_splits`).
    """
    from pcm.nn.networks import StackedMLP

    train = premask_train_config(run)
    x, y, xv, yv = _knockoff_splits(run, train, config)
    fit = fit_gaussian_knockoffs(x[:: max(1, len(x) // 50_000)])
    x2 = np.hstack([x, sample_knockoffs(fit, x, config.seed)])
    xv2 = np.hstack([xv, sample_knockoffs(fit, xv, config.seed + 1)])
    n_in, n_out = run.catalogue.n_inputs, run.catalogue.n_outputs
    model = StackedMLP(n_out, train.hidden_units, n_inputs=2 * n_in, input_layer=True,
                       seed=train.seed + 2, dtype=train.dtype_policy)
    doubled = replace(train, l1=4.0 * float(train.l1))
    _train(run, model, "knockoff", doubled, progress, data=(x2, y, xv2, yv))
    v = model.masking_vectors()
    w = v[:, :n_in] - v[:, n_in:]
    masks, cuts = knockoff_select(w, config.knockoff_fdr, plus=config.knockoff_plus)
    return masks, w, cuts, (len(x), len(xv))


def screen_sample(run: RunDir, config: SearchConfig) -> tuple[np.ndarray, np.ndarray]:
    """``screen_samples`` training samples (seeded): what the screen and its ranking read
    (bounded memory, :func:`_sample_rows`)."""
    return _sample_rows(run, "train", config.screen_samples, 5, config)


def screen_masks(run: RunDir, config: SearchConfig,
                 masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``screen: partial_correlation`` on ``screen_samples`` training samples (seeded)."""
    x, y = screen_sample(run, config)
    return partial_f_screen(x, y, masks, config.screen_alpha, config.screen_min_share)
