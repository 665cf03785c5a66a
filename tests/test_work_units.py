"""make test's pytest-xdist units of work (tests/conftest.py)."""

from __future__ import annotations

from xdist_units import NBVAL_UNIT, work_unit


def test_notebook_cells_share_one_unit_and_test_files_are_units():
    assert work_unit("tests/notebooks/01_data.ipynb::Cell 3") == NBVAL_UNIT
    assert work_unit("tests/notebooks/06_shap_drivers.ipynb::Cell 0") == NBVAL_UNIT
    assert work_unit("tests/nn/test_training.py::test_resume[premask-l1]") == (
        "tests/nn/test_training.py"
    )
    assert work_unit("tests/io/test_io.py::TestX::test_y") == "tests/io/test_io.py"
