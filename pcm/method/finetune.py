"""Step 4 of the method: fine-tuning the masked networks (the masking phase).

The masking networks drop the pre-masking input layer, multiply the inputs by
the final masks (``masks.nc``) and start from the pre-masking hidden and output
weights; they are then trained for ``finetune_epochs`` without penalty.
"""

from __future__ import annotations

import time

import xarray as xr

from pcm.config import FinetuneConfig
from pcm.nn.saving import with_dtype
from pcm.phase import train_phase
from pcm.rundir import RunDir

__all__ = ["run_finetune"]


def run_finetune(run: RunDir, config: FinetuneConfig, *, progress: bool = True) -> xr.Dataset:
    """Fine-tune masked networks that start from the pre-masking weights.

    Reads ``models/premask.keras`` and ``masks.nc``; writes ``models/pcmasking.keras``,
    ``history_finetune.nc`` and ``seconds.json["finetune"]``. ``config.seed`` only
    drives the shuffling (the weights come from the pre-masking model).

    Parameters
    ----------
    run : RunDir
        Run directory after the threshold search.
    config : FinetuneConfig
        Epochs and optimisation.
    progress : bool
        Per-epoch lines on stderr.

    Returns
    -------
    xarray.Dataset
        The training history.
    """
    t0 = time.perf_counter()
    premask = run.load_model("premask")
    masks = run.mask("pcmasking").values
    model = with_dtype(premask.to_masking(masks), config.compute_dtype)
    train = config.train_config(hidden_units=model.hidden_units, epochs=config.finetune_epochs)
    return train_phase(run, "finetune", "pcmasking", model, train, l1=0.0, progress=progress,
                       t0=t0)
