"""The steps of the pipeline, and what a run directory records about each of them.

:data:`STEPS` lists the six notebooks in order with the artefacts each writes.
``RUN/pipeline_state.json`` records, per step, the parameters used, the notebook
source and ``pcm`` code digests, and a fingerprint (size, modification time,
SHA-256 of the content) of every file the step reads — the data files of the
manifest and the artefacts of the earlier steps. :func:`stale_reason` says why a
step must run again (or None when it is up to date), :func:`forget_outputs` removes
what a step wrote before it re-runs, so nothing stale survives.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pcm.errors import PCMError
from pcm.io import read_json, write_json
from pcm.params.presets import PARAMETERS, notebook_name
from pcm.run.rundir import RunDir

__all__ = ["Step", "STEPS", "REAL_DATA_NOTEBOOK", "NOTEBOOK_DIR", "PACKAGED_NOTEBOOKS",
           "notebook_dir", "RUN_DIR_PARAMETER",
           "STATE_FILE", "load_state", "comparable", "source_digest", "code_digest",
           "step_inputs", "Fingerprints", "changed_input", "stale_reason", "forget_outputs"]

#: Where an installed wheel holds the notebook sources (package data; setup.py copies
#: ``notebooks/*.ipynb`` there when it builds the wheel).
PACKAGED_NOTEBOOKS = "_notebooks"


def notebook_dir() -> Path:
    """The folder of the clean parameterized notebook sources.

    ``pcm/_notebooks`` of an installed wheel (found with :mod:`importlib.resources`),
    else ``notebooks/`` of the checkout that ``pcm`` is imported from (an editable
    install, or the repository on ``sys.path``). docs/architecture.md, "Installing".
    """
    packaged = resources.files("pcm").joinpath(PACKAGED_NOTEBOOKS)
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent.parent / "notebooks"


#: Where the clean parameterized notebook sources live (:func:`notebook_dir`).
NOTEBOOK_DIR = notebook_dir()

#: Name of the per-step record inside a run directory.
STATE_FILE = "pipeline_state.json"

#: Parameter every notebook receives: the run directory.
RUN_DIR_PARAMETER = "run_dir"

#: Names of the path parameters inside a notebook (``data_train``, ...): files a step reads.
_PATH_PARAMETERS = {notebook_name(k) for k, p in PARAMETERS.items() if p.kind == "path"}


@dataclass(frozen=True)
class Step:
    """One notebook of the pipeline.

    Parameters
    ----------
    name : str
        Notebook file stem (``"02_premasking"``).
    title : str
        What the progress line says.
    artefacts : tuple of str
        Paths, relative to the run directory, that the step writes; the step
        is complete when all open and hold what they should
        (:meth:`pcm.run.rundir.RunDir.artefact_problem`).
    optional : tuple of str
        Paths the step writes only for some parameters (the causally-informed
        comparison); removed with the artefacts before the step re-runs, so
        that no stale result of an earlier configuration survives.
    phases : tuple of str
        Keys of ``RUN/seconds.json`` that the step records; dropped before it
        re-runs, for the same reason.
    """

    name: str
    title: str
    artefacts: tuple[str, ...]
    optional: tuple[str, ...] = ()
    phases: tuple[str, ...] = ()

    @property
    def filename(self) -> str:
        return f"{self.name}.ipynb"


#: The pipeline, in order.
STEPS: tuple[Step, ...] = (
    Step("01_data", "data preparation", ("data/manifest.json",)),
    Step("02_premasking", "pre-masking and unconstrained baseline",
         ("models/premask.keras", "models/unconstrained.keras"),
         phases=("premask", "unconstrained")),
    Step("03_masking_vectors_thresholds", "masking vectors and threshold search",
         ("masking_vectors.nc", "thresholds.nc", "masks.nc"),
         optional=("models/search_final.keras", "history_search_final.nc",
                   "paper_rule_thresholds.nc", "paper_rule_masks.nc"),
         phases=("masking_vectors", "threshold_search", "paper_rule_search")),
    Step("04_finetuning", "fine-tuning (masking phase)", ("models/pcmasking.keras",),
         optional=("causal_masks.nc", "models/causal.keras", "history_causal.nc",
                   "models/paper_rule.keras", "history_paper_rule_finetune.nc"),
         phases=("finetune", "paper_rule_finetune", "causal_discovery", "causal_training")),
    Step("05_r2_evaluation", "R2 evaluation", ("r2.nc",), phases=("r2",)),
    Step("06_shap_drivers", "SHAP and physical drivers", ("shap.nc", "summary.json"),
         phases=("shap",)),
)


#: The real-data chapter: not a step of the pipeline, it reads finished runs
#: (:func:`pcm.run.pipeline.run_real_data_chapter`).
REAL_DATA_NOTEBOOK = Step("07_real_data", "real data: published SPCAM masks and ClimSim", ())


def load_state(root: Path) -> dict[str, Any]:
    path = root / STATE_FILE
    if not path.exists():
        return {"steps": {}}
    try:
        state = read_json(path)
    except (json.JSONDecodeError, OSError):
        return {"steps": {}}
    return state if isinstance(state.get("steps"), dict) else {"steps": {}}


def comparable(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k != RUN_DIR_PARAMETER}


def source_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def code_digest() -> str:
    """Digest of the ``pcm`` package's sources: a code change invalidates every step."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent.parent
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def step_inputs(root: Path, index: int, params: Mapping[str, Any]) -> list[Path]:
    """The files step ``STEPS[index]`` reads: user data files among its parameters, and
    for later steps the data files of the manifest and the earlier steps' artefacts."""
    files = [Path(v) for k, v in params.items() if k in _PATH_PARAMETERS and v]
    if index > 0:
        try:
            named = RunDir(root).manifest().get("files", {})
        except (PCMError, OSError, ValueError, AttributeError):
            named = {}
        files += [Path(v) for v in named.values() if isinstance(v, str)]
        for earlier in STEPS[:index]:
            files += [root / a for a in earlier.artefacts]
            files += [root / o for o in earlier.optional if (root / o).exists()]
    return sorted({f.absolute() for f in files if f.is_file()})


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


class Fingerprints:
    """Size, modification time and SHA-256 of files, each file hashed once per run.

    A file whose size, ``mtime``, ``ctime`` and inode match a recorded
    fingerprint keeps the recorded hash (nothing has written to it since);
    any other file is hashed again, and only a change of size or content counts.
    """

    def __init__(self) -> None:
        self._hashes: dict[tuple, str] = {}

    @staticmethod
    def _stat_key(path: Path) -> tuple:
        st = path.stat()
        return (str(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)

    def of(self, path: Path, recorded: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The fingerprint of ``path`` (reusing ``recorded``'s hash if the file is untouched)."""
        key = self._stat_key(path)
        if key not in self._hashes:
            if recorded and recorded.get("stat") == list(key[1:]):
                self._hashes[key] = recorded["sha256"]
            else:
                self._hashes[key] = _file_digest(path)
        return {"size": key[1], "mtime_ns": key[2], "stat": list(key[1:]),
                "sha256": self._hashes[key]}

    def record(self, root: Path, files: Iterable[Path],
               recorded: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
        """Fingerprints by name (relative to ``root`` where inside it)."""
        recorded = recorded or {}
        out = {}
        for path in files:
            name = _input_name(root, path)
            out[name] = self.of(path, recorded.get(name))
        return out


def _input_name(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def changed_input(root: Path, record: Mapping[str, Any], current: Iterable[Path],
                   prints: Fingerprints) -> str | None:
    """Name of the first input that differs from the step record, or None."""
    recorded = record.get("inputs")
    if not isinstance(recorded, dict):
        return "(no fingerprints recorded)"
    current = {_input_name(root, p): p for p in current}
    for name in sorted(set(recorded) | set(current)):
        if name not in current:
            return f"{name} (gone)"
        if name not in recorded:
            return f"{name} (new)"
        now = prints.of(current[name], recorded[name])
        if (now["size"], now["sha256"]) != (recorded[name].get("size"),
                                            recorded[name].get("sha256")):
            return name
    return None


def stale_reason(root: Path, index: int, record: Mapping[str, Any] | None,
                  params: Mapping[str, Any], source: str, code: str,
                  prints: Fingerprints) -> str | None:
    """Why step ``STEPS[index]`` must run again, or None if its recorded results stand."""
    step = STEPS[index]
    if not record or record.get("status") != "done":
        return "not finished before"
    if record.get("code") != code:
        return "the pcm code changed"
    if record.get("params") != json.loads(json.dumps(comparable(params))):
        return "its parameters changed"
    if record.get("source") != source:
        return "the notebook changed"
    run = RunDir(root)
    for name in dict.fromkeys([*step.artefacts, f"notebooks/{step.filename}",
                               *record.get("artefacts", [])]):
        problem = run.artefact_problem(name)
        if problem:
            return f"{name} is {problem}" if problem in ("missing", "empty") else \
                f"{name}: {problem}"
    changed = changed_input(root, record, step_inputs(root, index, params), prints)
    if changed:
        return f"input {changed} changed"
    return None


def forget_outputs(root: Path, step: Step) -> None:
    """Remove what a step wrote last time, so nothing stale survives its re-run."""
    for name in (*step.artefacts, *step.optional):
        (root / name).unlink(missing_ok=True)
    seconds = root / "seconds.json"
    if step.phases and seconds.exists():
        try:
            recorded = read_json(seconds)
        except (json.JSONDecodeError, OSError):
            recorded = {}
        kept = {k: v for k, v in recorded.items() if k not in step.phases}
        if kept != recorded:
            write_json(kept, seconds)
