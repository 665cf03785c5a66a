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
   (:meth:`pcm.run.rundir.RunDir.artefact_problem`) and whose parameters, input
   files, notebook source and ``pcm`` code are unchanged (and whose upstream
   steps were skipped too). Training phases also resume from their per-epoch
   checkpoints, so a re-run step whose inputs did not change is fast;
4. optionally hands the executed notebooks to :func:`pcm.book.pages.write_book`.

One run at a time uses a run directory: a second ``pcm run`` on it stops at once
with "another pcm run is using DIR (pid N)" (a :mod:`filelock` lock,
``RUN/.pcm-run.lock``). With user data whose train file holds no usable time
series (too few steps, shuffled), the causally-informed baseline is skipped
with a one-line notice before anything trains (an error if ``causal: true``
was set explicitly). The notebooks talk to each other only through the run
directory.
"""

from __future__ import annotations

import ast
import copy
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import nbformat

from pcm.book.pages import CLIMSIM_TAG, clean_notebook, drop_cells, write_book
from pcm.errors import ParameterError, PCMError
from pcm.io import output_dir, write_json
from pcm.params.presets import notebook_name
from pcm.params.run_parameters import check_causal_feasibility, resolve_parameters, user_keys
from pcm.run.rundir import run_lock
from pcm.run.steps import (
    NOTEBOOK_DIR,
    REAL_DATA_NOTEBOOK,
    RUN_DIR_PARAMETER,
    STATE_FILE,
    STEPS,
    Fingerprints,
    Step,
    code_digest,
    comparable,
    forget_outputs,
    load_state,
    source_digest,
    stale_reason,
    step_inputs,
)

__all__ = ["NotebookError", "run", "declared_parameters", "notebook_defaults",
           "notebook_parameters", "step_parameters",
           "execute_notebook", "run_real_data_chapter"]

class NotebookError(PCMError):
    """A notebook of the pipeline failed; the message names notebook, cell and output."""


def notebook_defaults(notebook: str | os.PathLike) -> dict[str, Any]:
    """The names a notebook's cell tagged ``parameters`` assigns, with their default values.

    Each line of that cell is ``name = literal`` (a Python literal, possibly over several
    lines). Parsed with :mod:`ast`, not :func:`papermill.inspect_notebook`, whose line
    parser skips an assignment whose string holds ``:`` or ``=``.

    Raises
    ------
    PCMError
        The notebook has no parameters cell, or an assignment in it is not a literal.
    """
    cells = [c for c in nbformat.read(notebook, as_version=4).cells
             if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise PCMError(f"{Path(notebook).name}: no cell tagged 'parameters'")
    defaults: dict[str, Any] = {}
    for node in ast.parse(cells[0].source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)):
            raise PCMError(f"{Path(notebook).name}: parameters cell line {node.lineno} is not "
                           "'name = value'")
        try:
            defaults[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError:
            raise PCMError(f"{Path(notebook).name}: parameter {node.targets[0].id!r} (line "
                           f"{node.lineno}) is not a Python literal") from None
    return defaults


def notebook_parameters(notebook: str | os.PathLike,
                        given: Mapping[str, Any]) -> dict[str, Any]:
    """A notebook's parameter defaults (:func:`notebook_defaults`) updated with ``given``.

    Raises
    ------
    ParameterError
        A name of ``given`` that the notebook's parameters cell does not assign.
    """
    defaults = notebook_defaults(notebook)
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ParameterError(unknown[0], f"not a parameter of {Path(notebook).name}; expected "
                             f"one of {', '.join(defaults)}")
    return {**defaults, **given}


def declared_parameters(notebook: str | os.PathLike) -> list[str]:
    """Names declared in a notebook's cell tagged ``parameters``."""
    return list(notebook_defaults(notebook))


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
                           "not a run parameter (see pcm.params.presets.PARAMETERS)")
    return out


# -- notebooks --------------------------------------------------------------------------
#: Said when the package's own notebooks are missing (pcm.run.steps.notebook_dir).
_MISSING_NOTEBOOKS = (" (this pcm has no notebooks: install it from a checkout or from a "
                      "wheel built with its setup.py, docs/architecture.md 'Installing')")


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


def failure_message(notebook: str, err: BaseException, dst: Path) -> str:
    """One line naming the notebook, the failed cell (index and first code line), the error
    and where the partial output was saved."""
    cell = getattr(err, "cell_index", None)
    source = (getattr(err, "source", "") or "").strip().splitlines()
    first = next((line for line in source if line.strip() and not line.startswith("#")),
                 source[0] if source else "")
    ename = getattr(err, "ename", type(err).__name__)
    evalue = (getattr(err, "evalue", None) or str(err)).strip().splitlines()
    evalue = evalue[-1] if evalue else ""
    where = f"cell {cell} ({first.strip()[:60]!r})" if cell is not None else "kernel"
    return (f"notebook {notebook} failed in {where}: {ename}: {evalue}; "
            f"partial output saved to {dst}")


# -- the run ----------------------------------------------------------------------------

Executor = Callable[[Path, Path, dict[str, Any], Path], None]


def _notebook_path(path: Path, cwd: Path) -> str:
    """``path`` as a notebook parameter: relative to the kernels' working directory where it
    lies below it (so executed notebooks show no machine-specific paths), else absolute."""
    try:
        relative = os.path.relpath(path, cwd)
    except ValueError:  # another drive
        return str(path)
    return str(path) if relative.startswith("..") else relative


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
        Folder of the notebook sources (default: :data:`pcm.run.steps.NOTEBOOK_DIR`).
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
        params, explicit="causal" in user_keys(params_file, overrides))
    src_dir = Path(notebooks_dir) if notebooks_dir is not None else NOTEBOOK_DIR
    root = Path(out) if out is not None else Path("runs") / preset
    cwd = Path.cwd()
    root_abs = root.resolve()
    run_dir_value = _notebook_path(root_abs, cwd)

    # Everything a notebook needs is checked before the first one runs.
    plan: list[tuple[Step, Path, dict[str, Any]]] = []
    for step in STEPS:
        src = src_dir / step.filename
        if not src.is_file():
            raise PCMError(f"notebook source not found: {src}"
                           + ("" if notebooks_dir is not None else _MISSING_NOTEBOOKS))
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
                       root_abs / "summary.json", load_state(root_abs))
            print(f"executed notebooks copied to {book_dir}", flush=True)
    print(f"run directory: {root}", flush=True)
    return root


def _run_steps(root_abs: Path, plan: list[tuple[Step, Path, dict[str, Any]]], *, preset: str,
               params: dict[str, Any], cwd: Path, execute: Executor) -> None:
    """Run the steps of ``plan`` that are not up to date (the run directory is locked)."""
    (root_abs / "notebooks").mkdir(exist_ok=True)
    state = load_state(root_abs)
    state.update(preset=preset, params=params)
    upstream_ran = False
    code = code_digest()
    prints = Fingerprints()
    n = len(plan)
    for i, (step, src, step_params) in enumerate(plan, start=1):
        dst = root_abs / "notebooks" / step.filename
        record = state["steps"].get(step.name)
        source = source_digest(src)
        if not upstream_ran:
            reason = stale_reason(root_abs, i - 1, record, step_params, source, code, prints)
            if reason is None:
                # same content; refresh the recorded times so the next run need not hash
                record["inputs"] = prints.record(
                    root_abs, step_inputs(root_abs, i - 1, step_params), record["inputs"])
                print(f"[{i}/{n}] {step.title}: up to date, skipped", flush=True)
                continue
            if record and record.get("status") == "done":
                print(f"[{i}/{n}] {step.title}: runs again: {reason}", flush=True)
        print(f"[{i}/{n}] {step.title} ({step.filename}) ...", flush=True)
        upstream_ran = True
        forget_outputs(root_abs, step)
        inputs = prints.record(root_abs, step_inputs(root_abs, i - 1, step_params))
        state["steps"][step.name] = {"status": "running",
                                     "params": comparable(step_params),
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
            raise NotebookError(failure_message(step.filename, err, dst)) from None
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
        Folder of the notebook sources (default: :data:`pcm.run.steps.NOTEBOOK_DIR`).
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
        params[key] = None if value is None else _notebook_path(Path(value).resolve(), Path.cwd())
    src = (Path(notebooks_dir) if notebooks_dir is not None else NOTEBOOK_DIR) / step.filename
    if not src.is_file():
        raise PCMError(f"notebook source not found: {src}"
                       + ("" if notebooks_dir is not None else _MISSING_NOTEBOOKS))
    book = Path(book_dir)
    book.mkdir(parents=True, exist_ok=True)
    dst = book / step.filename
    print(f"[chapter] {step.title} ({step.filename}) ...", flush=True)
    try:
        (executor or execute_notebook)(src, dst, params, Path.cwd())
    except PCMError:
        raise
    except Exception as err:  # papermill, kernel death, ...
        raise NotebookError(failure_message(step.filename, err, dst)) from None
    executed = clean_notebook(nbformat.read(dst, as_version=4))
    if climsim_run is None:  # no ClimSim result to show: only how to add it stays
        drop_cells(executed, CLIMSIM_TAG)
    nbformat.write(executed, dst)
    return dst

