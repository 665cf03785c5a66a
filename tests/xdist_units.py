"""make test's pytest-xdist units of work (used by tests/conftest.py)."""

from __future__ import annotations

#: The unit of work of the nbval notebooks (all of ``tests/notebooks/*.ipynb``).
NBVAL_UNIT = "nbval"


def work_unit(nodeid: str) -> str:
    """The unit of work of a test: ``nbval`` for a notebook cell, else the test's file."""
    path = nodeid.split("::", 1)[0]
    return NBVAL_UNIT if path.endswith(".ipynb") else path
