"""Step 2 of the method: pre-masking networks, and the unconstrained baseline.

Pre-masking trains one network per output (all of them as one stacked model)
whose square input layer carries the L1 penalty ``l1 * ||W_in||_1 / n_inputs**2``;
the unconstrained baseline has the same hidden and output layers, no input layer,
no penalty and no mask. Both read a :class:`~pcm.params.config.PremaskConfig`.
"""

from __future__ import annotations

import time

import xarray as xr

from pcm.params.config import PremaskConfig
from pcm.run.phase import train_phase
from pcm.run.rundir import RunDir

__all__ = ["run_premask", "run_unconstrained"]


def _train(run: RunDir, config: PremaskConfig, *, premask: bool, progress: bool) -> xr.Dataset:
    from pcm.nn.networks import StackedMLP

    t0 = time.perf_counter()
    l1 = float(config.l1) if premask else 0.0
    train = config.train_config(hidden_units=config.hidden, epochs=config.epochs, l1=l1)
    catalogue = run.catalogue
    model = StackedMLP(catalogue.n_outputs, train.hidden_units, n_inputs=catalogue.n_inputs,
                       input_layer=premask, seed=config.seed, dtype=train.dtype_policy)
    name = "premask" if premask else "unconstrained"
    return train_phase(run, name, name, model, train, l1=l1, progress=progress, t0=t0)


def run_premask(run: RunDir, config: PremaskConfig, *, progress: bool = True) -> xr.Dataset:
    """Pre-masking phase: one network per output with an L1-penalised input layer.

    Writes ``models/premask.keras``, ``history_premask.nc`` and
    ``seconds.json["premask"]``; resumes from ``checkpoints/premask``.

    Parameters
    ----------
    run : RunDir
        Run directory with a data manifest.
    config : PremaskConfig
        Architecture, epochs, lambda and optimisation.
    progress : bool
        Per-epoch lines on stderr.

    Returns
    -------
    xarray.Dataset
        The training history (see :func:`pcm.nn.trainer.train_stacked`).
    """
    return _train(run, config, premask=True, progress=progress)


def run_unconstrained(run: RunDir, config: PremaskConfig, *,
                      progress: bool = True) -> xr.Dataset:
    """Unconstrained baseline: same hidden/output layers, no input layer, no L1, no mask.

    Writes ``models/unconstrained.keras``, ``history_unconstrained.nc`` and
    ``seconds.json["unconstrained"]``; its own ``seed``-initialised weights
    (``config.l1`` is not used).
    """
    return _train(run, config, premask=False, progress=progress)
