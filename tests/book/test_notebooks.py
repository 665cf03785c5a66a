"""The notebooks' parameters cells declare exactly their steps' configurations, with the
defaults of :data:`pcm.params.presets.PARAMETERS` (one place for names and defaults)."""

from __future__ import annotations

import json

import nbformat
import pytest

from pcm.params.config import STEP_CONFIGS, PremaskConfig
from pcm.run.steps import NOTEBOOK_DIR, RUN_DIR_PARAMETER, STEPS


def _parameters_cell(step) -> dict:
    nb = nbformat.read(NOTEBOOK_DIR / step.filename, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{step.filename}: expected one cell tagged 'parameters'"
    namespace: dict = {}
    exec(cells[0].source, namespace)  # noqa: S102 - literal assignments only
    namespace.pop("__builtins__")
    return namespace


def test_every_step_has_its_configurations():
    assert list(STEP_CONFIGS) == [step.name for step in STEPS]


@pytest.mark.parametrize("step", STEPS, ids=[s.name for s in STEPS])
def test_parameters_cell_matches_the_step_configs(step):
    declared = _parameters_cell(step)
    assert RUN_DIR_PARAMETER in declared
    declared.pop(RUN_DIR_PARAMETER)
    expected: dict = {}
    for config in STEP_CONFIGS[step.name]:
        expected.update(config.defaults())
    assert sorted(declared) == sorted(expected), step.filename
    for name, value in expected.items():
        assert declared[name] == value and type(declared[name]) is type(value), \
            f"{step.filename}: {name} = {declared[name]!r}, PARAMETERS default {value!r}"


def test_config_from_parameters_takes_notebook_or_dotted_names_and_defaults():
    config = PremaskConfig.from_parameters({"epochs": 3, "hidden_units": 8, "unrelated": 1})
    assert config.epochs == 3 and config.hidden == (8,) * PremaskConfig.defaults()["hidden_layers"]
    assert config.l1 == PremaskConfig.defaults()["l1"]
    train = config.train_config(hidden_units=config.hidden, epochs=config.epochs, l1=config.l1)
    assert (train.epochs, train.l1, train.max_train_samples) == (3, config.l1, None)


@pytest.mark.parametrize("path", sorted(NOTEBOOK_DIR.glob("*.ipynb")), ids=lambda p: p.name)
def test_notebook_cells_have_unique_ids(path):
    # read as plain JSON: nbformat's reader would add missing ids (with a warning)
    cells = json.loads(path.read_text())["cells"]
    missing = [i for i, cell in enumerate(cells) if "id" not in cell]
    assert not missing, f"{path.name}: cells {missing} have no id (nbformat >= 4.5)"
    ids = [cell["id"] for cell in cells]
    assert len(set(ids)) == len(ids), f"{path.name}: repeated cell ids"


def test_a_notebook_opened_on_its_own_uses_a_scratch_run_at_ci_size(tmp_path):
    from pcm.errors import DataError
    from pcm.io import write_json
    from pcm.params.presets import preset
    from pcm.params.run_parameters import standalone_parameters

    scratch = tmp_path / "scratch"
    data = _parameters_cell(STEPS[0])
    assert data[RUN_DIR_PARAMETER] is None  # pcm run injects it; None: opened by hand
    got = standalone_parameters("01_data", data, scratch=scratch)
    ci = preset("ci")
    assert got["run_dir"] == str(scratch)
    assert got["data_n_lat"] == ci["data.n_lat"] != data["data_n_lat"]
    assert set(got) == set(data)  # only the names the parameters cell declares
    # a later notebook needs the earlier steps' artefacts in the scratch run
    premask = _parameters_cell(STEPS[1])
    with pytest.raises(DataError, match="run notebook 01_data first"):
        standalone_parameters("02_premasking", premask, scratch=scratch)
    (scratch / "data").mkdir(parents=True)
    (scratch / "data" / "manifest.json").write_text("{}")
    got = standalone_parameters("02_premasking", premask, scratch=scratch)
    assert got["hidden_units"] == ci["hidden_units"] != premask["hidden_units"]
    # the parameters recorded for the scratch run win over the preset
    write_json({"steps": {}, "preset": "ci", "params": {**ci, "hidden_units": 7}},
               scratch / "pipeline_state.json")
    assert standalone_parameters("02_premasking", premask, scratch=scratch)["hidden_units"] == 7


@pytest.mark.parametrize("path", sorted(NOTEBOOK_DIR.glob("*.ipynb")), ids=lambda p: p.name)
def test_papermill_reads_every_line_of_the_parameters_cell(path, caplog):
    """papermill inspects the parameters cell when it executes a notebook and logs
    "Unable to parse line" (on the command's stderr) for a line with two ``=``, e.g. in
    its comment."""
    from papermill.translators import PythonTranslator

    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    for cell in cells:
        with caplog.at_level("WARNING", logger="papermill"):
            PythonTranslator.inspect(cell)
    assert not caplog.records, [r.getMessage() for r in caplog.records]
