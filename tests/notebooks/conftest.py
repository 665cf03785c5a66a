"""nbval regression notebooks: the six notebooks executed with the ``ci`` preset.

The notebooks were executed by ``tests/refresh_notebooks.py`` with
``run_dir = "_nbval_run"``; nbval starts each kernel in this folder, so they
recreate and share ``tests/notebooks/_nbval_run`` (in file order, 01 -> 06).
The run directory is wiped before the first cell of ``01_data.ipynb`` so every
test session starts from scratch (no resumed checkpoints).

Numbers are compared within a tolerance (``tests/nbval_tolerance.py`` states it and
why): nbval's output comparison is wrapped so that, after ``sanitize.cfg`` has masked
paths and timings on both sides, every fresh number that agrees with its reference
counterpart is written as in the reference; a number that disagrees stays and fails
the cell with nbval's usual diff.
"""

from __future__ import annotations

import copy
import shutil
import sys
from pathlib import Path

from nbval.plugin import IPyNbCell

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: nbval_tolerance
from nbval_tolerance import align_numbers  # noqa: E402

RUN_DIR = Path(__file__).parent / "_nbval_run"
_wiped = False


def pytest_runtest_setup(item):
    global _wiped
    if not _wiped and Path(str(item.fspath)).name == "01_data.ipynb":
        shutil.rmtree(RUN_DIR, ignore_errors=True)
        _wiped = True


def _fields(outputs, skip_compare):
    """``(key, container, field)`` of every compared string, in nbval's order.

    nbval groups the outputs of a cell by key (a stream's name, an output's keys, the
    MIME types of its ``data``) and compares the values of each key in order; the
    pairs returned here are the ones it will compare.
    """
    found = []
    for output in outputs:
        if output.get("output_type") == "stream":
            found.append((output.get("name"), output, "text"))
            continue
        for key, value in output.items():
            if key in skip_compare:
                continue
            if key == "data":
                found += [(mime, value, mime) for mime in value if mime not in skip_compare]
            else:
                found.append((key, output, key))
    return [
        (key, container, field)
        for key, container, field in found
        if isinstance(container[field], str)
    ]


_compare_outputs = IPyNbCell.compare_outputs


def compare_outputs(self, test, ref, skip_compare=None):
    """nbval's comparison, with the numbers of ``test`` aligned to ``ref`` first."""
    skip = skip_compare or self.parent.skip_compare
    test, ref = copy.deepcopy(test), copy.deepcopy(ref)
    by_key: dict = {}
    for key, container, field in _fields(ref, skip):
        container[field] = self.sanitize(container[field])
        by_key.setdefault(key, []).append(container[field])
    seen: dict = {}
    for key, container, field in _fields(test, skip):
        fresh = self.sanitize(container[field])
        index = seen[key] = seen.get(key, -1) + 1
        references = by_key.get(key, [])
        container[field] = (
            align_numbers(references[index], fresh) if index < len(references) else fresh
        )
    # both sides are sanitized now: nbval's own pass must not apply the patterns twice
    self.sanitize = lambda s: s
    try:
        return _compare_outputs(self, test, ref, skip_compare)
    finally:
        del self.sanitize


IPyNbCell.compare_outputs = compare_outputs
