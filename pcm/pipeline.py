"""``pcm run``: resolve the run parameters and execute the six notebooks in order.

The notebooks in ``notebooks/`` are the single source of the method's
narrative and of the calls into :mod:`pcm`. :func:`run`

1. merges the parameters (preset <- params YAML <- ``--set key=value``) and
   validates the whole set before anything runs (:class:`~pcm.errors.ParameterError`);
2. executes each notebook into ``RUN/notebooks/NN_name.ipynb``, passing it only
   the parameters its ``parameters`` cell declares (``data.train`` is called
   ``data_train`` inside a notebook; ``run_dir`` is always supplied);
3. records, per step, the parameters used, the artefacts written and a
   fingerprint (size, modification time, SHA-256 of the content) of every file
   the step reads — the data files of the manifest and the artefacts of the
   earlier steps — in ``RUN/pipeline_state.json``; a later run on the same
   directory skips a step whose artefacts open and hold what they should
   (:meth:`pcm.rundir.RunDir.artefact_problem`) and whose parameters, input
   files, notebook source and ``pcm`` code are unchanged (and whose upstream
   steps were skipped too). Training phases also resume from their per-epoch
   checkpoints, so a re-run step whose inputs did not change is fast;
4. optionally hands the executed notebooks to :func:`pcm.book.write_book`.

One run at a time uses a run directory: a second ``pcm run`` on it stops at once
with "another pcm run is using DIR (pid N)" (a :mod:`filelock` lock,
``RUN/.pcm-run.lock``). With user data whose train file holds no usable time
series (too few steps, shuffled), the causally-informed baseline is skipped
with a one-line notice before anything trains (an error if ``causal: true``
was set explicitly). The notebooks talk to each other only through the run
directory.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import yaml
from filelock import FileLock, Timeout

from pcm.baselines.causal.data import causal_feasibility
from pcm.book import clean_notebook, write_book
from pcm.errors import DataError, ParameterError, PCMError
from pcm.io import output_dir, read_json, write_json
from pcm.presets import PARAMETERS, flatten, notebook_name, validate
from pcm.presets import preset as preset_values
from pcm.rundir import RunDir

__all__ = ["Step", "STEPS", "NotebookError", "NOTEBOOK_DIR", "run", "resolve_parameters",
           "parse_override", "declared_parameters", "step_parameters", "run_lock",
           "check_causal_feasibility", "execute_notebook", "REAL_DATA_NOTEBOOK",
           "run_real_data_chapter"]

#: Where the clean parameterized notebook sources live (repository checkout).
NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"

#: Name of the per-step record inside a run directory.
STATE_FILE = "pipeline_state.json"

#: Parameter every notebook receives: the run directory.
RUN_DIR_PARAMETER = "run_dir"

#: Lock file that keeps a second ``pcm run`` off a run directory, and the file naming
#: the process that holds it.
LOCK_FILE = ".pcm-run.lock"
PID_FILE = ".pcm-run.pid"

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
        (:meth:`pcm.rundir.RunDir.artefact_problem`).
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
         optional=("models/search_final.keras", "history_search_final.nc"),
         phases=("masking_vectors", "threshold_search")),
    Step("04_finetuning", "fine-tuning (masking phase)", ("models/pcmasking.keras",),
         optional=("causal_masks.nc", "models/causal.keras", "history_causal.nc"),
         phases=("finetune", "causal_discovery", "causal_training")),
    Step("05_r2_evaluation", "R2 evaluation", ("r2.nc",), phases=("r2",)),
    Step("06_shap_drivers", "SHAP and physical drivers", ("shap.nc", "summary.json"),
         phases=("shap",)),
)


#: The real-data chapter: not a step of the pipeline, it reads finished runs
#: (:func:`run_real_data_chapter`).
REAL_DATA_NOTEBOOK = Step("07_real_data", "real data: published SPCAM masks and ClimSim", ())


class NotebookError(PCMError):
    """A notebook of the pipeline failed; the message names notebook, cell and output."""


# -- parameters -------------------------------------------------------------------------


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


def _user_keys(params_file: str | os.PathLike | None, overrides: Iterable[str]) -> set[str]:
    """Keys set explicitly by the user (params file or ``--set``), not by the preset."""
    keys = set(_read_params_file(params_file)) if params_file is not None else set()
    return keys | {parse_override(o)[0] for o in overrides}


def check_causal_feasibility(params: dict[str, Any], *, explicit: bool) -> str | None:
    """Turn the causal baseline off for user data without usable time series.

    Synthetic data are checked by :func:`pcm.presets.validate`. ClimSim data are
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


def declared_parameters(notebook: str | os.PathLike) -> list[str]:
    """Names declared in a notebook's cell tagged ``parameters``."""
    import papermill

    return list(papermill.inspect_notebook(str(notebook)))


def step_parameters(declared: Sequence[str], params: Mapping[str, Any], run_dir: str,
                    notebook: str = "") -> dict[str, Any]:
    """The parameters one notebook receives: those it declares, by notebook name.

    Raises
    ------
    PCMError
        If the notebook declares a name that is not a run parameter (a bug in
        the notebook, reported before anything runs).
    """
    by_name = {notebook_name(k): k for k in params}
    out: dict[str, Any] = {}
    for name in declared:
        if name == RUN_DIR_PARAMETER:
            out[name] = run_dir
        elif name in by_name:
            out[name] = params[by_name[name]]
        else:
            raise PCMError(f"notebook {notebook}: parameters cell declares {name!r}, which is "
                           "not a run parameter (see pcm.presets.PARAMETERS)")
    return out


# -- notebooks --------------------------------------------------------------------------

def _current_env_kernel_manager() -> type:
    """A kernel manager that always starts ``python3`` of this very environment.

    A ``python3`` kernelspec in the user's Jupyter folder would otherwise take
    precedence and could run another Python, without ``pcm`` installed.
    """
    from ipykernel.kernelspec import RESOURCES, get_kernel_dict
    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.manager import AsyncKernelManager

    class CurrentEnvKernelManager(AsyncKernelManager):
        @property
        def kernel_spec(self) -> KernelSpec:
            if self._kernel_spec is None:
                self._kernel_spec = KernelSpec(resource_dir=RESOURCES, **get_kernel_dict())
            return self._kernel_spec

    return CurrentEnvKernelManager


def execute_notebook(src: Path, dst: Path, parameters: dict[str, Any], cwd: Path) -> None:
    """Execute notebook ``src`` into ``dst`` with papermill, in this environment's kernel."""
    import papermill

    papermill.execute_notebook(
        str(src), str(dst), parameters=parameters, kernel_name="python3",
        progress_bar=False, log_output=False, stdout_file=sys.stdout, stderr_file=sys.stderr,
        cwd=str(cwd), extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
        kernel_manager_class=_current_env_kernel_manager(),
    )


def _failure_message(step: Step, err: BaseException, dst: Path) -> str:
    cell = getattr(err, "cell_index", None)
    source = (getattr(err, "source", "") or "").strip().splitlines()
    first = next((line for line in source if line.strip() and not line.startswith("#")),
                 source[0] if source else "")
    ename = getattr(err, "ename", type(err).__name__)
    evalue = (getattr(err, "evalue", None) or str(err)).strip().splitlines()
    evalue = evalue[-1] if evalue else ""
    where = f"cell {cell} ({first.strip()[:60]!r})" if cell is not None else "kernel"
    return (f"notebook {step.filename} failed in {where}: {ename}: {evalue}; "
            f"partial output saved to {dst}")


# -- state ------------------------------------------------------------------------------


def _load_state(root: Path) -> dict[str, Any]:
    path = root / STATE_FILE
    if not path.exists():
        return {"steps": {}}
    try:
        state = read_json(path)
    except (json.JSONDecodeError, OSError):
        return {"steps": {}}
    return state if isinstance(state.get("steps"), dict) else {"steps": {}}


def _comparable(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k != RUN_DIR_PARAMETER}


def _source_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _code_digest() -> str:
    """Digest of the ``pcm`` package's sources: a code change invalidates every step."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _step_inputs(root: Path, index: int, params: Mapping[str, Any]) -> list[Path]:
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


class _Fingerprints:
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


def _changed_input(root: Path, record: Mapping[str, Any], current: Iterable[Path],
                   prints: _Fingerprints) -> str | None:
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


def _stale_reason(root: Path, index: int, record: Mapping[str, Any] | None,
                  params: Mapping[str, Any], source: str, code: str,
                  prints: _Fingerprints) -> str | None:
    """Why step ``STEPS[index]`` must run again, or None if its recorded results stand."""
    step = STEPS[index]
    if not record or record.get("status") != "done":
        return "not finished before"
    if record.get("code") != code:
        return "the pcm code changed"
    if record.get("params") != json.loads(json.dumps(_comparable(params))):
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
    changed = _changed_input(root, record, _step_inputs(root, index, params), prints)
    if changed:
        return f"input {changed} changed"
    return None


def _forget_outputs(root: Path, step: Step) -> None:
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


# -- the run ----------------------------------------------------------------------------

Executor = Callable[[Path, Path, dict[str, Any], Path], None]


def run(*, preset: str = "tutorial", params_file: str | os.PathLike | None = None,
        overrides: Iterable[str] = (), out: str | os.PathLike | None = None,
        book_dir: str | os.PathLike | None = None,
        notebooks_dir: str | os.PathLike | None = None,
        executor: Executor | None = None) -> Path:
    """Run the six notebooks of the pipeline into a run directory.

    Parameters
    ----------
    preset : str
        ``ci``, ``tutorial`` (default) or ``paper``.
    params_file : path-like, optional
        YAML parameters overriding the preset.
    overrides : iterable of str
        ``key=value`` strings overriding preset and file.
    out : path-like, optional
        Run directory (default ``runs/PRESET``).
    book_dir : path-like, optional
        Where to copy the executed notebooks for the book (``book/notebooks``).
    notebooks_dir : path-like, optional
        Folder of the notebook sources (default: ``notebooks/`` of the checkout).
    executor : callable, optional
        ``executor(src, dst, parameters, cwd)``; default papermill (for tests).

    Returns
    -------
    Path
        The run directory.

    Raises
    ------
    ParameterError
        Invalid parameters (nothing has run).
    NotebookError
        A notebook failed; names the notebook, the cell and the partial output.
    """
    overrides = list(overrides)
    params = resolve_parameters(preset, params_file, overrides)
    notice = check_causal_feasibility(
        params, explicit="causal" in _user_keys(params_file, overrides))
    src_dir = Path(notebooks_dir) if notebooks_dir is not None else NOTEBOOK_DIR
    root = Path(out) if out is not None else Path("runs") / preset
    cwd = Path.cwd()
    root_abs = root.resolve()
    try:
        run_dir_value = os.path.relpath(root_abs, cwd)
    except ValueError:
        run_dir_value = str(root_abs)
    if run_dir_value.startswith(".."):
        run_dir_value = str(root_abs)

    # Everything a notebook needs is checked before the first one runs.
    plan: list[tuple[Step, Path, dict[str, Any]]] = []
    for step in STEPS:
        src = src_dir / step.filename
        if not src.is_file():
            raise PCMError(f"notebook source not found: {src}")
        declared = declared_parameters(src)
        plan.append((step, src, step_parameters(declared, params, run_dir_value, step.filename)))

    output_dir(root)
    with run_lock(root_abs):
        if notice:
            print(notice, flush=True)
        _run_steps(root_abs, plan, preset=preset, params=params, cwd=cwd,
                   execute=executor or execute_notebook)
        if book_dir is not None:
            write_book(Path(book_dir), [root_abs / "notebooks" / s.filename for s in STEPS],
                       root_abs / "summary.json", _load_state(root_abs))
            print(f"executed notebooks copied to {book_dir}", flush=True)
    print(f"run directory: {root}", flush=True)
    return root


@contextmanager
def run_lock(root: str | os.PathLike) -> Iterator[None]:
    """Hold the lock of a run directory; refuse at once if another process holds it.

    Parameters
    ----------
    root : path-like
        An existing run directory.

    Raises
    ------
    PCMError
        ``another pcm run is using DIR (pid N)``.
    """
    root = Path(root)
    lock = FileLock(root / LOCK_FILE, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        try:
            pid = (root / PID_FILE).read_text().strip() or "unknown"
        except OSError:
            pid = "unknown"
        raise PCMError(f"another pcm run is using {root} (pid {pid}); wait for it to finish "
                       "or choose another --out") from None
    try:
        (root / PID_FILE).write_text(f"{os.getpid()}\n")
        yield
    finally:
        (root / PID_FILE).unlink(missing_ok=True)
        lock.release()


def _run_steps(root_abs: Path, plan: list[tuple[Step, Path, dict[str, Any]]], *, preset: str,
               params: dict[str, Any], cwd: Path, execute: Executor) -> None:
    """Run the steps of ``plan`` that are not up to date (the run directory is locked)."""
    (root_abs / "notebooks").mkdir(exist_ok=True)
    state = _load_state(root_abs)
    state.update(preset=preset, params=params)
    upstream_ran = False
    code = _code_digest()
    prints = _Fingerprints()
    n = len(plan)
    for i, (step, src, step_params) in enumerate(plan, start=1):
        dst = root_abs / "notebooks" / step.filename
        record = state["steps"].get(step.name)
        source = _source_digest(src)
        if not upstream_ran:
            reason = _stale_reason(root_abs, i - 1, record, step_params, source, code, prints)
            if reason is None:
                # same content; refresh the recorded times so the next run need not hash
                record["inputs"] = prints.record(
                    root_abs, _step_inputs(root_abs, i - 1, step_params), record["inputs"])
                print(f"[{i}/{n}] {step.title}: up to date, skipped", flush=True)
                continue
            if record and record.get("status") == "done":
                print(f"[{i}/{n}] {step.title}: runs again: {reason}", flush=True)
        print(f"[{i}/{n}] {step.title} ({step.filename}) ...", flush=True)
        upstream_ran = True
        _forget_outputs(root_abs, step)
        inputs = prints.record(root_abs, _step_inputs(root_abs, i - 1, step_params))
        state["steps"][step.name] = {"status": "running",
                                     "params": _comparable(step_params),
                                     "source": source,
                                     "code": code,
                                     "artefacts": list(step.artefacts),
                                     "inputs": inputs}
        write_json(state, root_abs / STATE_FILE)
        start = time.perf_counter()
        try:
            execute(src, dst, copy.deepcopy(step_params), cwd)
        except PCMError:
            raise
        except KeyboardInterrupt:
            state["steps"][step.name]["status"] = "interrupted"
            write_json(state, root_abs / STATE_FILE)
            raise NotebookError(f"interrupted in notebook {step.filename}; partial output saved "
                                f"to {dst}; run the same command again to resume") from None
        except Exception as err:  # papermill, kernel death, ...
            state["steps"][step.name]["status"] = "failed"
            write_json(state, root_abs / STATE_FILE)
            raise NotebookError(_failure_message(step, err, dst)) from None
        seconds = time.perf_counter() - start
        missing = [a for a in step.artefacts if not (root_abs / a).exists()]
        if missing:
            state["steps"][step.name]["status"] = "failed"
            write_json(state, root_abs / STATE_FILE)
            raise NotebookError(f"notebook {step.filename} finished but did not write "
                                f"{', '.join(missing)}; output saved to {dst}")
        state["steps"][step.name].update(status="done", seconds=round(seconds, 1))
        write_json(state, root_abs / STATE_FILE)
        print(f"[{i}/{n}] {step.title}: done in {seconds:.0f} s", flush=True)
    write_json(state, root_abs / STATE_FILE)


def run_real_data_chapter(book_dir: str | os.PathLike, *,
                          climsim_run: str | os.PathLike | None = None,
                          synthetic_run: str | os.PathLike | None = None,
                          notebooks_dir: str | os.PathLike | None = None,
                          executor: Executor | None = None) -> Path:
    """Execute the real-data chapter (``07_real_data.ipynb``) into the book folder.

    Parameters
    ----------
    book_dir : path-like
        Where the executed notebook goes (``book/notebooks``).
    climsim_run : path-like, optional
        Run directory of ``pcm run --preset climsim``; without it the chapter shows
        the published SPCAM masks and says how to add ClimSim.
    synthetic_run : path-like, optional
        A finished synthetic run (``runs/tutorial``), read side by side.
    notebooks_dir : path-like, optional
        Folder of the notebook sources (default: ``notebooks/`` of the checkout).
    executor : callable, optional
        ``executor(src, dst, parameters, cwd)``; default papermill (for tests).

    Returns
    -------
    Path
        The executed notebook in ``book_dir``.

    Raises
    ------
    PCMError
        A given run directory has no ``masks.nc`` (the run has not finished).
    NotebookError
        The notebook failed (names the cell).
    """
    step = REAL_DATA_NOTEBOOK
    params: dict[str, Any] = {}
    for key, value in (("climsim_run", climsim_run), ("synthetic_run", synthetic_run)):
        if value is not None and not (Path(value) / "masks.nc").is_file():
            raise PCMError(f"--{key.replace('_', '-')} {value}: no masks.nc; finish that run "
                           "first (pcm run)")
        params[key] = None if value is None else str(Path(value).resolve())
    src = (Path(notebooks_dir) if notebooks_dir is not None else NOTEBOOK_DIR) / step.filename
    if not src.is_file():
        raise PCMError(f"notebook source not found: {src}")
    book = Path(book_dir)
    book.mkdir(parents=True, exist_ok=True)
    dst = book / step.filename
    print(f"[chapter] {step.title} ({step.filename}) ...", flush=True)
    try:
        (executor or execute_notebook)(src, dst, params, Path.cwd())
    except PCMError:
        raise
    except Exception as err:  # papermill, kernel death, ...
        raise NotebookError(_failure_message(step, err, dst)) from None
    nbformat.write(clean_notebook(nbformat.read(dst, as_version=4)), dst)
    return dst

