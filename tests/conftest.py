"""Test-session hooks shared by every folder of ``tests/``.

``make test`` runs pytest on two processes (pytest-xdist, ``-n 2``). Each test file is one
unit of work, run whole by one process, so that a module-scoped fixture (a trained run, a
built book) is computed once; the nbval notebooks are one unit together, because they share
one run directory in file order (``tests/notebooks/conftest.py``). Without pytest-xdist
(``make test-fast``, a plain ``pytest``) the scheduler hook is not called.
"""

from __future__ import annotations

from typing import Any

import pytest
from xdist_units import work_unit


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """pytest-xdist's scope scheduler, with :func:`work_unit` as the scope."""
    from xdist.scheduler import LoadScopeScheduling

    class FileScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return FileScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put the notebooks first, in their file order.

    They are the longest unit and run one after the other: started first, they run beside
    the rest instead of after it.
    """
    items.sort(key=lambda item: item.path.suffix != ".ipynb")  # a stable sort
