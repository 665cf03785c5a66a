"""Build hook of ``pcm``: the chapter notebooks travel inside the package.

Everything else is declared in ``pyproject.toml``. The notebooks stay tracked once, in
``notebooks/`` (the book's sources); building a wheel copies ``notebooks/*.ipynb`` to
``pcm/_notebooks/`` inside the wheel, where :data:`pcm.run.steps.NOTEBOOK_DIR` finds them
through :mod:`importlib.resources`. An editable install (``pip install -e .``) copies
nothing: ``pcm`` then reads ``notebooks/`` of the checkout. ``MANIFEST.in`` puts the
notebooks into the sdist, so a wheel built from it has them too
(docs/architecture.md, "Installing").
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

#: The notebook sources, relative to this file, and where a wheel holds them.
SOURCE = "notebooks"
PACKAGED = ("pcm", "_notebooks")


class BuildPyWithNotebooks(build_py):
    """``build_py`` that also copies ``notebooks/*.ipynb`` to ``pcm/_notebooks/``."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):  # the checkout's notebooks/ is used
            return
        notebooks = sorted((Path(__file__).resolve().parent / SOURCE).glob("*.ipynb"))
        if not notebooks:
            raise SystemExit(
                f"setup.py: no {SOURCE}/*.ipynb to package (is the sdist "
                "missing MANIFEST.in's notebooks?)"
            )
        target = Path(self.build_lib, *PACKAGED)
        self.mkpath(str(target))
        for notebook in notebooks:
            self.copy_file(str(notebook), str(target / notebook.name))


setup(cmdclass={"build_py": BuildPyWithNotebooks})
