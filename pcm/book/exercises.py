"""Student copies of the notebooks: the same notebooks without the solutions.

Convention (documented in the book's exercises chapter): in the notebook
sources, a solution is a cell tagged ``solution``; the sources also tag it
``hide-cell`` so that the book shows it collapsed. A student copy replaces every
``solution`` cell by an empty cell of the same type tagged ``exercise`` (a code
cell holds ``# your answer here``), and clears all outputs and execution counts.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat

from pcm.errors import PCMError

__all__ = ["SOLUTION_TAG", "EXERCISE_TAG", "student_copy", "write_student_copies"]

#: Tag that marks a solution cell in the notebook sources.
SOLUTION_TAG = "solution"

#: Tag of the empty cell a student copy puts in its place.
EXERCISE_TAG = "exercise"

_PLACEHOLDER = {"code": "# your answer here\n", "markdown": "*Your answer here.*\n"}


def student_copy(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Return a copy of ``nb`` with solutions replaced by empty exercise cells.

    Parameters
    ----------
    nb : nbformat.NotebookNode
        A version-4 notebook.

    Returns
    -------
    nbformat.NotebookNode
        A new notebook; ``nb`` is not modified.
    """
    out = nbformat.from_dict(nb)
    out = nbformat.v4.upgrade(out) if out.get("nbformat", 4) < 4 else out
    cells = []
    for cell in out.cells:
        tags = list(cell.get("metadata", {}).get("tags", []))
        if SOLUTION_TAG in tags:
            kind = cell.cell_type if cell.cell_type in _PLACEHOLDER else "markdown"
            new = (nbformat.v4.new_code_cell(_PLACEHOLDER[kind]) if kind == "code"
                   else nbformat.v4.new_markdown_cell(_PLACEHOLDER[kind]))
            new.metadata["tags"] = [EXERCISE_TAG]
            if "id" in cell:
                new["id"] = cell["id"]
            cell = new
        elif cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cells.append(cell)
    out.cells = cells
    out.metadata.pop("papermill", None)
    return out


def write_student_copies(src: str | os.PathLike, out: str | os.PathLike) -> list[Path]:
    """Write student copies of every notebook in ``src`` to ``out``.

    Parameters
    ----------
    src : path-like
        Folder of notebooks (the clean sources, ``notebooks/``), or one notebook.
    out : path-like
        Destination folder (created); existing copies are overwritten.

    Returns
    -------
    list of Path
        The written notebooks, in name order.

    Raises
    ------
    PCMError
        If ``src`` holds no notebook or a notebook cannot be read.
    """
    src = Path(src)
    files = [src] if src.is_file() else sorted(src.glob("*.ipynb"))
    if not files:
        raise PCMError(f"no notebooks (*.ipynb) found in {src}")
    out_dir = Path(out)
    if out_dir.resolve() == files[0].parent.resolve():
        raise PCMError(f"{out_dir}: the student copies must not overwrite the sources")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in files:
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception as err:  # noqa: BLE001 - one line for the user
            raise PCMError(f"{path}: not a readable notebook ({err.__class__.__name__})") from None
        dst = out_dir / path.name
        nbformat.write(student_copy(nb), dst)
        written.append(dst)
    return written
