"""The experiments chapter's sweeps: the runs of ``08_experiments`` that need no finished run.

Its λ sweep, architecture sweep and worlds section train their own small runs; they do
not read the run the chapter is executed on. :func:`chapter_runs` turns the notebook's
parameters into the arguments of those three calls (the notebook itself calls them
through it), and :func:`prepare` runs them ahead of the notebook (``pcm experiments
--prepare``): ``make book`` starts it beside ``pcm run`` at the lowest CPU priority, and
the notebook, executed after the run with the same parameters, finds every point finished
(a sweep recomputes a point only when its parameters differ). Measured on 2 cores the
same day (2026-12-05): ``make book`` 953 s that way against 1033 s with the sweeps inside the
notebook after the pipeline; at normal priority beside the pipeline, 1071 s.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from pcm.experiments.chapter import NOTEBOOK
from pcm.experiments.sweep import run_sweep
from pcm.experiments.worlds import run_worlds
from pcm.run.pipeline import notebook_parameters

__all__ = ["chapter_runs", "prepare"]


def chapter_runs(parameters: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The keyword arguments of the chapter's sweeps, from its notebook's parameters.

    Parameters
    ----------
    parameters : mapping
        The names of the notebook's parameters cell (``run_dir``, ``sweep_dir``,
        ``sweep_preset``, ``sweep_overrides``, ``lambdas``, ``hidden_layers``, ``worlds``,
        ``worlds_methods``, ``worlds_overrides``, ``worlds_dir``); extra names are ignored.

    Returns
    -------
    dict
        ``lambda`` and ``architecture``: arguments of
        :func:`pcm.experiments.sweep.run_sweep`; ``worlds``: of
        :func:`pcm.experiments.worlds.run_worlds` (without its figure, which the
        chapter draws itself).
    """
    run_dir = parameters["run_dir"]
    sweep_dir = parameters["sweep_dir"] or f"{run_dir}/experiments/sweeps"
    sweep_set = [f"{k}={json.dumps(v)}" for k, v in parameters["sweep_overrides"].items()]
    worlds_set = [f"{k}={json.dumps(v)}" for k, v in parameters["worlds_overrides"].items()]
    return {
        "lambda": {
            "preset": parameters["sweep_preset"],
            "grid": {"l1": parameters["lambdas"]},
            "out": f"{sweep_dir}/lambda",
            "overrides": sweep_set,
        },
        "architecture": {
            "preset": parameters["sweep_preset"],
            "grid": {"hidden_layers": parameters["hidden_layers"]},
            "out": f"{sweep_dir}/architecture",
            "overrides": sweep_set,
        },
        "worlds": {
            "worlds": parameters["worlds"],
            "methods": parameters["worlds_methods"],
            "out": parameters["worlds_dir"] or f"{run_dir}/experiments/worlds",
            "preset": "ci",
            "overrides": worlds_set,
            "figure": False,
        },
    }


def prepare(
    run_dir: str | os.PathLike, parameters: Mapping[str, Any] | None = None, progress: bool = False
) -> None:
    """Run the chapter's sweeps and worlds (:func:`chapter_runs`) before its notebook.

    They do not read the run, so they may run before or beside ``pcm run``; the
    notebook, executed later with the same parameters, finds every point finished
    (a sweep recomputes a point only when its parameters differ).

    Parameters
    ----------
    run_dir : path-like
        The run directory the notebook will be executed on (it need not exist yet).
    parameters : mapping, optional
        Notebook parameters that differ from its parameters cell (as ``--set``).
    progress : bool
        Per-point progress lines.

    Raises
    ------
    ParameterError
        A name that is not a parameter of the notebook.
    """
    runs = chapter_runs(
        {**notebook_parameters(NOTEBOOK, parameters or {}), "run_dir": str(run_dir)}
    )
    run_sweep(**runs["lambda"], progress=progress)
    run_sweep(**runs["architecture"], progress=progress)
    run_worlds(**runs["worlds"], progress=progress)
