"""One training phase of a run: load the run's data, train a stacked model, record it.

Shared by every phase that trains networks — pre-masking, unconstrained,
fine-tuning (:mod:`pcm.method`) and the causally-informed networks
(:mod:`pcm.baselines.causal`) — so that resume, artefacts and timing are the same
for all of them.
"""

from __future__ import annotations

import time

import xarray as xr

from pcm.data.checks import check_training_set
from pcm.io import write_netcdf
from pcm.nn.config import TrainConfig
from pcm.nn.saving import save_stacked
from pcm.nn.trainer import train_stacked
from pcm.run.rundir import RunDir

__all__ = ["train_phase"]


def train_phase(run: RunDir, phase: str, kind: str, model, config: TrainConfig, *,
                l1: float | tuple[float, ...], progress: bool, t0: float,
                attrs: dict | None = None,
                seconds_key: str | None = None) -> xr.Dataset:
    """Train ``model`` on the run's train/valid data and write the phase's artefacts.

    Warns (:func:`pcm.data.checks.check_training_set`) when every training output is
    constant or the training set is smaller than one batch. Resumes from
    ``checkpoints/<phase>``, saves ``models/<kind>.keras`` and
    ``history_<phase>.nc`` (with ``attrs`` added), and records the phase's wall
    seconds (under ``seconds_key``, default ``phase``), including epochs trained by
    earlier, interrupted sessions, counted from ``t0`` (``time.perf_counter()``).

    Parameters
    ----------
    run : RunDir
        The run directory.
    phase, kind : str
        Name of the phase (checkpoints, history) and of the model kind (model file).
    model : pcm.nn.networks.StackedMLP
        Trained in place.
    config : TrainConfig
        Hyper-parameters; ``config.max_train_samples`` caps train and validation data;
        ``config.in_memory`` and ``config.memory_budget_mb`` decide whether each split
        is loaded or streamed from disk (:meth:`pcm.run.rundir.RunDir.training_data`).
    l1 : float or tuple of float
        L1 weight on the input kernel (pre-masking only, else 0); one per network for
        a stack of several λ values (:mod:`pcm.experiments.sweep`).
    progress : bool
        Per-epoch lines on stderr.
    t0 : float
        When the phase started.
    attrs : dict, optional
        Extra attributes of the history.
    seconds_key : str, optional
        Key of ``seconds.json``.

    Returns
    -------
    xarray.Dataset
        The training history.
    """
    x, y, xv, yv = run.training_data(config.max_train_samples, config.compute_dtype,
                                     in_memory=config.in_memory,
                                     memory_budget_mb=config.memory_budget_mb)
    if y is not None:  # a streamed split (larger than the memory budget) is not checked
        check_training_set(y, config.batch_size, path=run.data_path("train"))
    hist = train_stacked(model, x, y, config, x_val=xv, y_val=yv, l1=l1,
                         checkpoint_dir=run.checkpoints(phase), desc=phase, progress=progress,
                         labels=run.catalogue.output_labels())
    save_stacked(model, run.model(kind))
    # wall time of this call plus the epochs trained by earlier (interrupted) sessions
    seconds = time.perf_counter() - t0 + hist.attrs["seconds_previous_sessions"]
    hist.attrs["phase_seconds"] = seconds
    hist.attrs["model_file"] = str(run.model(kind))
    hist.attrs.update(attrs or {})
    write_netcdf(hist, run.artefact(f"history_{phase}.nc"))
    run.record_seconds(**{seconds_key or phase: seconds})
    return hist
