"""nbval regression notebooks: the six notebooks executed with the ``ci`` preset.

The notebooks were executed by ``tests/refresh_notebooks.py`` with
``run_dir = "_nbval_run"``; nbval starts each kernel in this folder, so they
recreate and share ``tests/notebooks/_nbval_run`` (in file order, 01 -> 06).
The run directory is wiped before the first cell of ``01_data.ipynb`` so every
test session starts from scratch (no resumed checkpoints).
"""

from __future__ import annotations

import shutil
from pathlib import Path

RUN_DIR = Path(__file__).parent / "_nbval_run"
_wiped = False


def pytest_runtest_setup(item):
    global _wiped
    if not _wiped and Path(str(item.fspath)).name == "01_data.ipynb":
        shutil.rmtree(RUN_DIR, ignore_errors=True)
        _wiped = True
