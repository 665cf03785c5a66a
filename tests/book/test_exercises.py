"""Tests of the student copies (pcm.book.exercises, `pcm exercises`)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from pcm.book.exercises import EXERCISE_TAG, SOLUTION_TAG, student_copy, write_student_copies
from pcm.cli import main
from pcm.errors import PCMError
from pcm.experiments.chapter import NOTEBOOK as EXPERIMENTS
from pcm.online.runner import NOTEBOOK as ONLINE
from pcm.run.steps import NOTEBOOK_DIR, REAL_DATA_NOTEBOOK, STEPS


def _notebook() -> nbformat.NotebookNode:
    params = new_code_cell("epochs = 2")
    params.metadata["tags"] = ["parameters"]
    ran = new_code_cell("print(epochs)", execution_count=3,
                        outputs=[new_output("stream", name="stdout", text="2\n")])
    answer = new_code_cell("secret = 42\nprint(secret)",
                           outputs=[new_output("stream", name="stdout", text="42\n")])
    answer.metadata["tags"] = [SOLUTION_TAG, "hide-cell"]
    prose = new_markdown_cell("The answer is 42 because ...")
    prose.metadata["tags"] = [SOLUTION_TAG]
    return new_notebook(cells=[new_markdown_cell("# Title"), params, ran, answer, prose])


def test_student_copy_replaces_solutions_and_clears_outputs():
    nb = _notebook()
    copy = student_copy(nb)
    assert [c.cell_type for c in copy.cells] == [c.cell_type for c in nb.cells]
    text = "\n".join(c.source for c in copy.cells)
    assert "secret" not in text and "42" not in text
    exercise = [c for c in copy.cells if EXERCISE_TAG in c.metadata.get("tags", [])]
    assert len(exercise) == 2
    assert exercise[0].source.startswith("# your answer") and exercise[0].outputs == []
    assert all(c.outputs == [] and c.execution_count is None
               for c in copy.cells if c.cell_type == "code")
    assert copy.cells[1].metadata["tags"] == ["parameters"]  # parameters cell kept
    assert nb.cells[3].source.startswith("secret")  # the original is untouched
    nbformat.validate(copy)


def test_write_student_copies(tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("b.ipynb", "a.ipynb"):
        nbformat.write(_notebook(), src / name)
    (src / "notes.txt").write_text("not a notebook")
    written = write_student_copies(src, tmp_path / "student")
    assert [p.name for p in written] == ["a.ipynb", "b.ipynb"]
    assert all(p.parent == tmp_path / "student" for p in written)
    copy = nbformat.read(written[0], as_version=4)
    assert not any(SOLUTION_TAG in c.metadata.get("tags", []) for c in copy.cells)


def test_write_student_copies_errors(tmp_path: Path):
    with pytest.raises(PCMError, match="no notebooks"):
        write_student_copies(tmp_path, tmp_path / "out")
    nbformat.write(_notebook(), tmp_path / "a.ipynb")
    with pytest.raises(PCMError, match="overwrite the sources"):
        write_student_copies(tmp_path, tmp_path)


def test_every_book_notebook_has_an_exercise_with_solution(tmp_path: Path):
    for step in (*STEPS, REAL_DATA_NOTEBOOK):
        nb = nbformat.read(NOTEBOOK_DIR / step.filename, as_version=4)
        solutions = [c for c in nb.cells if SOLUTION_TAG in c.metadata.get("tags", [])]
        assert solutions, f"{step.filename} has no cell tagged {SOLUTION_TAG!r}"
        assert all("hide-cell" in c.metadata["tags"] for c in solutions), step.filename
        assert any("## Exercises" in c.source for c in nb.cells if c.cell_type == "markdown")


def test_cli_writes_the_copies(tmp_path: Path, capsys):
    assert main(["exercises", "--src", str(NOTEBOOK_DIR), "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.split()
    assert sorted(Path(p).name for p in printed) == [
        s.filename for s in (*STEPS, REAL_DATA_NOTEBOOK)] + [EXPERIMENTS.name, ONLINE.name]


ROOT = Path(__file__).resolve().parents[2]
BOOK_NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))  # the sources


@pytest.mark.parametrize("path", BOOK_NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_ends_with_summary_exercises_whats_next(path: Path):
    nb = nbformat.read(path, as_version=4)
    headings = [line for c in nb.cells if c.cell_type == "markdown"
                for line in c.source.splitlines() if line.startswith("## ")]
    assert headings[-3:] == ["## Summary", "## Exercises", "## What's next?"], path.name
    # the solution cells follow their exercise, before "What's next?"
    starts = {h: i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"
              for h in ("## Exercises", "## What's next?") if c.source.startswith(h)}
    solutions = [i for i, c in enumerate(nb.cells)
                 if SOLUTION_TAG in c.metadata.get("tags", [])]
    assert all(starts["## Exercises"] < i < starts["## What's next?"] for i in solutions), \
        path.name


def test_exercises_chapter_links_every_notebooks_exercises_section():
    # an index (one row per chapter, linking its section), not a copy of the exercises
    text = (ROOT / "book" / "exercises.md").read_text()
    for path in BOOK_NOTEBOOKS:
        assert text.count(f"(notebooks/{path.name}#exercises)") == 1, path.name
