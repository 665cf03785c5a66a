"""The parameters of a run: preset <- params YAML <- ``--set key=value``, validated whole.

:func:`resolve_parameters` merges the three sources and validates the result with
:func:`pcm.params.presets.validate` before anything runs; :func:`check_causal_feasibility`
switches the causally-informed baseline off, with a one-line notice, for data that
cannot support it (snapshots, too few or shuffled time steps).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from pcm.baselines.causal.data import causal_feasibility
from pcm.errors import DataError, ParameterError
from pcm.params.presets import PARAMETERS, flatten, notebook_name, validate
from pcm.params.presets import preset as preset_values
from pcm.run.steps import STATE_FILE, STEPS, load_state

__all__ = ["parse_override", "resolve_parameters", "user_keys", "check_causal_feasibility",
           "SCRATCH_RUN", "standalone_parameters"]


def parse_override(text: str) -> tuple[str, Any]:
    """Parse one ``--set key=value``; the value is read as YAML (``3``, ``1e-3``, ``null``)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ParameterError(key or text, f"expected KEY=VALUE in --set, got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        raise ParameterError(key, f"cannot read value {raw!r}: {err.__class__.__name__}") from None
    if isinstance(value, str) and _looks_like_float(value):
        value = float(value)  # YAML 1.1 reads "1e-3" as a string
    return key, value


def _looks_like_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return any(c in text.lower() for c in ".e") and text.strip().lower() not in ("nan", "inf")


def _read_params_file(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ParameterError("params", f"params file not found: {path}")
    try:
        tree = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ParameterError("params", _yaml_message(path, err)) from None
    if tree is None:
        return {}
    if not isinstance(tree, Mapping):
        raise ParameterError("params", f"{path}: expected a mapping of parameters at top level")
    flat = flatten(tree)
    for key, value in flat.items():
        if isinstance(value, str) and _looks_like_float(value):
            flat[key] = float(value)
    return flat


def _yaml_message(path: Path, err: yaml.YAMLError) -> str:
    """``FILE, line L, column C: not valid YAML: PROBLEM`` (one line)."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
    problem = getattr(err, "problem", None) or err.__class__.__name__
    context = getattr(err, "context", None)
    detail = f"{problem} ({context})" if context else problem
    return f"{where}: not valid YAML: {' '.join(str(detail).split())}"


def user_keys(params_file: str | os.PathLike | None, overrides: Iterable[str]) -> set[str]:
    """Keys set explicitly by the user (params file or ``--set``), not by the preset."""
    keys = set(_read_params_file(params_file)) if params_file is not None else set()
    return keys | {parse_override(o)[0] for o in overrides}


def check_causal_feasibility(params: dict[str, Any], *, explicit: bool) -> str | None:
    """Turn the causal baseline off for user data without usable time series.

    Synthetic data are checked by :func:`pcm.params.presets.validate`. ClimSim data are
    snapshots: the baseline is always skipped, with the notice. For ``spcam``
    data with ``causal`` on, the train file's first time steps are read
    (:func:`pcm.baselines.causal.data.causal_feasibility`) before anything trains.

    Parameters
    ----------
    params : dict
        Validated parameters; ``causal`` is set to False in place when the
        baseline is skipped.
    explicit : bool
        Whether the user set ``causal`` (file or ``--set``) rather than the preset.

    Returns
    -------
    str or None
        The one-line notice when the baseline is skipped.

    Raises
    ------
    ParameterError
        When ``causal: true`` was set explicitly and the data cannot support it.
    """
    if params.get("data.source") == "climsim":
        if params.get("causal") and explicit:
            raise ParameterError("causal", "ClimSim data are snapshots, not contiguous time "
                                 "series, and the causally-informed baseline needs time "
                                 "series; set causal: false")
        params["causal"] = False
        return ("notice: causally-informed baseline skipped (causal: false): ClimSim data "
                "are snapshots, not contiguous time series")
    if not params.get("causal") or params.get("data.source") != "spcam":
        return None
    train = params["data.train"]
    try:
        problem = causal_feasibility(train, seed=int(params.get("seed", 0)))
    except DataError as err:  # unknown grid, ...: notebook 1 reports malformed files
        problem = str(err).removeprefix(f"{train}: ")
    if problem is None:
        return None
    if explicit:
        raise ParameterError("causal", f"{train}: {problem}; set causal: false")
    params["causal"] = False
    return (f"notice: causally-informed baseline skipped (causal: false): {train}: {problem}")


def resolve_parameters(preset: str = "tutorial", params_file: str | os.PathLike | None = None,
                       overrides: Iterable[str] = ()) -> dict[str, Any]:
    """Merge preset <- params file <- ``--set`` overrides and validate the result.

    Parameters
    ----------
    preset : str
        ``ci``, ``tutorial`` or ``paper``.
    params_file : path-like, optional
        YAML file; nested mappings address dotted keys (``data: {train: P}``).
        Relative data paths are resolved against the file's folder.
    overrides : iterable of str
        ``key=value`` strings; values parsed with YAML; relative paths are
        resolved against the current directory.

    Returns
    -------
    dict
        Flat, validated parameters (dotted keys).

    Raises
    ------
    ParameterError
        On the first invalid key or value, before anything is executed.
    """
    values = preset_values(preset)
    from_file = _read_params_file(params_file) if params_file is not None else {}
    from_cli = dict(parse_override(o) for o in overrides)
    # Relative paths in the file are relative to the file; on the command line to the cwd.
    if params_file is not None:
        base = Path(params_file).resolve().parent
        for key, value in from_file.items():
            if key in PARAMETERS and PARAMETERS[key].kind == "path" and isinstance(value, str):
                path = Path(value).expanduser()
                from_file[key] = str(path if path.is_absolute() else base / path)
    values.update(from_file)
    values.update(from_cli)
    return validate(values)


#: Where a notebook opened on its own (``run_dir = None``) keeps its run, relative to
#: the kernel's working directory: a scratch run, never the book's.
SCRATCH_RUN = "runs/scratch-ci"


def standalone_parameters(step: str, namespace: Mapping[str, Any], *,
                          scratch: str | os.PathLike = SCRATCH_RUN) -> dict[str, Any]:
    """The parameters of a notebook opened on its own, outside ``pcm run``.

    ``pcm run`` always injects ``run_dir``; a notebook whose ``run_dir`` is None was
    opened by hand (Jupyter's "Run all"). It then works in the scratch run
    ``scratch``, with the parameters recorded there by an earlier run
    (``pipeline_state.json``) or else those of the ``ci`` preset, so that it never
    overwrites another run and trains small networks.

    Parameters
    ----------
    step : str
        The notebook's name (``"03_masking_vectors_thresholds"``).
    namespace : mapping
        The notebook's globals: only the names its ``parameters`` cell declares
        (those in ``namespace``) are returned.
    scratch : path-like
        The scratch run directory.

    Returns
    -------
    dict
        Notebook names -> values, ``run_dir`` included (update the globals with it).

    Raises
    ------
    DataError
        The scratch run lacks the artefacts of the steps before ``step``: the message
        says which notebook to run first.
    """
    root = Path(scratch)
    state = load_state(root) if (root / STATE_FILE).exists() else {}
    params = dict(state.get("params") or preset_values("ci"))
    names = [s.name for s in STEPS]
    earlier = STEPS[:names.index(step)] if step in names else STEPS
    for previous in earlier:
        missing = [a for a in previous.artefacts if not (root / a).exists()]
        if missing:
            raise DataError(f"the scratch run of a notebook opened on its own (run_dir = "
                            f"None) lacks {missing[0]}: run notebook {previous.name} first "
                            f"the same way, or `pcm run --preset ci --out {root}`",
                            path=root)
    out = {notebook_name(k): v for k, v in params.items() if notebook_name(k) in namespace}
    out["run_dir"] = str(root)
    return out
