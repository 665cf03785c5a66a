"""Step 4 of the method: fine-tuning the masked networks (the masking phase).

The masking networks drop the pre-masking input layer, multiply the inputs by
the final masks (``masks.nc``) and start from the pre-masking hidden and output
weights; they are then trained for ``finetune_epochs`` without penalty.

With ``search_final`` (the published pipeline) there is no fine-tuning: the search
networks at the chosen thresholds (``models/search_final.keras``, written by the
threshold search) become ``models/pcmasking.keras`` as they are.
"""

from __future__ import annotations

import time

import numpy as np
import xarray as xr

from pcm.errors import DataError
from pcm.io import write_netcdf
from pcm.nn.saving import save_stacked, with_dtype
from pcm.params.config import FinetuneConfig
from pcm.run.phase import train_phase
from pcm.run.rundir import RunDir

__all__ = ["run_finetune", "finetune_phase"]


def finetune_phase(kind: str = "pcmasking") -> str:
    """Phase name of the fine-tuning of a model kind (history, checkpoints, seconds):
    ``finetune`` for the run's own masks, ``paper_rule_finetune`` beside them."""
    return "finetune" if kind == "pcmasking" else f"{kind}_finetune"


def run_finetune(run: RunDir, config: FinetuneConfig, *, kind: str = "pcmasking",
                 progress: bool = True) -> xr.Dataset:
    """Fine-tune masked networks that start from the pre-masking weights.

    Reads ``models/premask.keras`` and ``masks.nc``; writes ``models/pcmasking.keras``,
    ``history_finetune.nc`` and ``seconds.json["finetune"]``. ``config.seed`` only
    drives the shuffling (the weights come from the pre-masking model). With
    ``kind="paper_rule"``: the paper's rule's masks (``paper_rule_masks.nc``) to
    ``models/paper_rule.keras``, ``history_paper_rule_finetune.nc``.

    Parameters
    ----------
    run : RunDir
        Run directory after the threshold search.
    config : FinetuneConfig
        Epochs and optimisation.
    kind : {"pcmasking", "paper_rule"}
        Whose masks (:data:`pcm.run.rundir.MASK_FILES`).
    progress : bool
        Per-epoch lines on stderr.

    Returns
    -------
    xarray.Dataset
        The training history.
    """
    t0 = time.perf_counter()
    if config.search_final and kind == "pcmasking":
        return _adopt_search_networks(run, t0)
    premask = run.load_model("premask")
    masks = run.mask(kind).values
    model = with_dtype(premask.to_masking(masks), config.compute_dtype)
    train = config.train_config(hidden_units=model.hidden_units, epochs=config.finetune_epochs)
    return train_phase(run, finetune_phase(kind), kind, model, train, l1=0.0,
                       progress=progress, t0=t0)


def _adopt_search_networks(run: RunDir, t0: float) -> xr.Dataset:
    """``search_final``: the chosen search networks become the PCMasking networks."""
    path = run.model("search_final")
    if not path.exists():
        raise DataError("search_final is set but the threshold search kept no networks: run "
                        "the threshold search with search_final: true", path=path)
    model = run.load_model("search_final")
    if not np.array_equal(model.get_mask(), run.mask("pcmasking").values):
        raise DataError("the kept search networks do not match masks.nc: run the threshold "
                        "search again", path=path)
    save_stacked(model, run.model("pcmasking"))
    hist = run.history("search_final")
    seconds = time.perf_counter() - t0
    hist.attrs.update({"phase_seconds": seconds, "model_file": str(run.model("pcmasking")),
                       "no_retraining": 1})
    write_netcdf(hist, run.artefact("history_finetune.nc"))
    run.record_seconds(finetune=seconds)
    return hist
