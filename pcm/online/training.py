"""The networks the testbed couples, trained on a truth run with the method's own steps.

Per training seed, :func:`train_models` writes a truth run of the testbed (the
aquaplanet with the proxy injected, :func:`pcm.online.testbed.truth_fields`) into an
ordinary run directory (CBRAIN files, norm, manifest) and trains, with the functions
of :mod:`pcm.method` and :mod:`pcm.baselines.causal` (one stacked trainer for all):

* ``unconstrained``: every input;
* ``pcmasking_relative``: PCMasking with the ``selection: relative`` rule, fine-tuned;
* ``pcmasking_paper``: PCMasking with the published rule
  (:data:`pcm.params.presets.PAPER_RULE`: the lowest last-epoch training loss over 20
  thresholds up to the 70th percentile of the row norms; the search network at the
  chosen threshold is the final one);
* ``causal``: the causally-informed networks (PC1 per column on the truth time
  series), when ``causal`` is on.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pcm.baselines.causal import run_causal_training, run_discovery
from pcm.data import synthetic
from pcm.data.cbrain_write import write_cbrain
from pcm.data.normalization import compute_norm, write_norm
from pcm.data.splits import split_steps
from pcm.io import write_netcdf
from pcm.method.finetune import run_finetune
from pcm.method.masking import compute_masking_vectors, search_thresholds
from pcm.method.premask import run_premask, run_unconstrained
from pcm.online.testbed import Proxy, truth_fields
from pcm.params import presets
from pcm.params.config import CausalConfig, FinetuneConfig, PremaskConfig, SearchConfig
from pcm.run.rundir import RunDir

__all__ = ["ONLINE_TRAINING", "NETWORK_KINDS", "TrainingPlan", "write_training_data",
           "train_models"]

#: Network kinds coupled online, in the order of the tables.
NETWORK_KINDS = ("unconstrained", "pcmasking_paper", "pcmasking_relative", "causal")

#: Run parameters of the networks (overrides of the ``ci`` preset): small, so that three
#: seeds train within the book's budget on two cores.
ONLINE_TRAINING: dict[str, Any] = {
    "hidden_layers": 2, "hidden_units": 32, "epochs": 12, "finetune_epochs": 4,
    "batch_size": 128, "lr_every": 4, "search_epochs": 4, "causal_columns": 8,
    "causal_quantiles": 3, "causal_epochs": 8,
}

#: The published threshold rule (:data:`pcm.params.presets.PAPER_RULE`, its grid included),
#: the search network at the chosen threshold kept as the final network (as the ``paper``
#: preset does).
PAPER_RULE = {**presets.PAPER_RULE, "search_final": True}
#: The relative rule at the default ``selection_ratio`` (masks read off the masking vectors
#: alone, no search), fine-tuned.
RELATIVE_RULE = {"selection": "relative", "search_final": False}


@dataclass(frozen=True)
class TrainingPlan:
    """What to train for one seed.

    Parameters
    ----------
    seed : int
        Seed of the truth run and of the networks.
    steps : int
        Half-hourly steps of the truth run (train 70 %, valid 15 %, test 15 %).
    n_lat, n_lon : int
        Columns of the truth run.
    causal : bool
        Also the causally-informed networks.
    overrides : dict
        Run parameters over :data:`ONLINE_TRAINING`.
    """

    seed: int
    steps: int = 96
    n_lat: int = 8
    n_lon: int = 8
    causal: bool = True
    overrides: dict[str, Any] = field(default_factory=dict)

    def parameters(self, **more: Any) -> dict[str, Any]:
        """The resolved run parameters (``ci`` preset <- :data:`ONLINE_TRAINING` <- ...)."""
        params = presets.preset("ci")
        params.update(ONLINE_TRAINING)
        params.update(self.overrides)
        params.update(more)
        params["seed"] = int(self.seed)
        return params


def write_training_data(run: RunDir, plan: TrainingPlan, proxy: Proxy) -> dict[str, Path]:
    """The truth run of ``plan`` as the run's data: CBRAIN splits, norm, drivers, manifest."""
    fields, _ = truth_fields(plan.steps, seed=plan.seed, n_lat=plan.n_lat, n_lon=plan.n_lon,
                             proxy=proxy)
    run.data_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, sel in split_steps(plan.steps).items():
        paths[name] = write_cbrain(fields.isel(time=sel), run.data_dir / f"{name}.nc")
    paths["norm"] = write_norm(compute_norm(paths["train"]), run.data_dir / "norm.nc")
    drivers = synthetic.true_drivers().rename("drivers").to_dataset()
    drivers["drivers"].attrs.update(units="1")
    paths["drivers"] = write_netcdf(drivers, run.data_dir / "drivers.nc")
    run.write_manifest(paths, source="synthetic")
    return paths


def _keep(run: RunDir, kind: str, masks: str | None) -> None:
    """Copy ``models/pcmasking.keras`` (and the mask file) under the name ``kind``."""
    shutil.copyfile(run.model("pcmasking"), run.model(kind))
    if masks:
        shutil.copyfile(run.artefact("masks.nc"), run.artefact(f"masks_{kind}.nc"))


def train_models(run: RunDir, plan: TrainingPlan, proxy: Proxy, *,
                 progress: bool = False) -> dict[str, float]:
    """Write the truth-run data and train every network kind of :data:`NETWORK_KINDS`.

    Writes ``models/<kind>.keras`` for each kind trained (and ``masks_<kind>.nc``
    for the two PCMasking rules), besides the method's usual artefacts.

    Returns
    -------
    dict
        Wall seconds per phase (``data``, ``premask``, ``unconstrained``,
        ``pcmasking_relative``, ``pcmasking_paper``, ``causal``).
    """
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    write_training_data(run, plan, proxy)
    seconds["data"] = time.perf_counter() - t0
    params = plan.parameters()
    t0 = time.perf_counter()
    run_premask(run, PremaskConfig.from_parameters(params), progress=progress)
    compute_masking_vectors(run)
    seconds["premask"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    run_unconstrained(run, PremaskConfig.from_parameters(params), progress=progress)
    seconds["unconstrained"] = time.perf_counter() - t0
    for kind, rule in (("pcmasking_relative", RELATIVE_RULE), ("pcmasking_paper", PAPER_RULE)):
        t0 = time.perf_counter()
        rule_params = plan.parameters(**rule)
        search_thresholds(run, SearchConfig.from_parameters(rule_params), progress=progress)
        run_finetune(run, FinetuneConfig.from_parameters(rule_params), progress=progress)
        _keep(run, kind, "masks.nc")
        seconds[kind] = time.perf_counter() - t0
    if plan.causal:
        t0 = time.perf_counter()
        config = CausalConfig.from_parameters(params)
        run_discovery(run, config, n_jobs=1)
        run_causal_training(run, config, progress=progress)
        seconds["causal"] = time.perf_counter() - t0
    return seconds
