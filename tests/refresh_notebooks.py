"""Re-create the nbval reference notebooks in tests/notebooks/ after an intended change.

Runs the whole pipeline with the ``ci`` preset in a temporary directory, with
``run_dir = "_nbval_run"`` relative to the kernels' working directory (exactly
what nbval does in tests/notebooks/), strips papermill's timing metadata and the
images (nbval does not compare them) and writes the six notebooks here::

    python tests/refresh_notebooks.py        # or: make refresh-nbval

Review the diff (`git diff tests/notebooks`) before committing.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

import nbformat

from pcm.book.pages import clean_notebook
from pcm.run.pipeline import run
from pcm.run.steps import STEPS

HERE = Path(__file__).resolve().parent / "notebooks"
RUN_NAME = "_nbval_run"


def strip_images(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drop image data (nbval skips it) to keep the references small."""
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data")
            if data:
                for key in [k for k in data if k.startswith("image/")]:
                    del data[key]
    return nb


def _path_patterns() -> list[tuple[str, str]]:
    """The sanitize patterns that mask paths (nbval applies them to both sides anyway)."""
    text = (HERE / "sanitize.cfg").read_text()
    pairs = re.findall(r"^regex: (.*)$\n^replace: (.*)$", text, flags=re.MULTILINE)
    return [(regex, replace) for regex, replace in pairs if replace == "PATH"]


def strip_paths(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Mask machine-specific paths in stream outputs, so none is committed."""
    patterns = _path_patterns()
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                for regex, replace in patterns:
                    output["text"] = re.sub(regex, replace, output["text"])
    return nb


def main() -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cwd = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="pcm-nbval-") as tmp:
        os.chdir(tmp)
        try:
            root = run(preset="ci", out=RUN_NAME)
            for step in STEPS:
                nb = nbformat.read(Path(tmp) / root / "notebooks" / step.filename,
                                   as_version=4)
                nbformat.write(strip_paths(strip_images(clean_notebook(nb))),
                               HERE / step.filename)
                print(f"refreshed {HERE / step.filename}")
        finally:
            os.chdir(cwd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
