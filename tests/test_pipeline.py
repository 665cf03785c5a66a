"""Tests of `pcm run`: parameters, presets, resume, failures (pcm.pipeline, pcm.presets)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from pcm import pipeline
from pcm.book import render_results_markdown
from pcm.cli import main
from pcm.config import DataConfig
from pcm.errors import ParameterError, PCMError
from pcm.method.prepare import prepare_data
from pcm.pipeline import (
    NOTEBOOK_DIR,
    STEPS,
    NotebookError,
    declared_parameters,
    parse_override,
    resolve_parameters,
    step_parameters,
)
from pcm.presets import PARAMETERS, PRESETS, preset, validate

# Parameters each fake notebook declares (run_dir always).
FAKE_DECLARED = {
    "01_data": ["seed", "data_source", "data_steps"],
    "02_premasking": ["seed", "epochs", "l1"],
    "03_masking_vectors_thresholds": ["n_thresholds", "selection"],
    "04_finetuning": ["finetune_epochs"],
    "05_r2_evaluation": ["eval_samples"],
    "06_shap_drivers": ["shap_samples"],
}


def _params_cell(names: list[str]) -> nbformat.NotebookNode:
    lines = ['run_dir = "runs/x"'] + [f"{n} = {PARAMETERS_BY_NB[n]!r}" for n in names]
    cell = new_code_cell("\n".join(lines))
    cell.metadata["tags"] = ["parameters"]
    return cell


PARAMETERS_BY_NB = {k.replace(".", "_"): p.default for k, p in PARAMETERS.items()}


def _write_notebook(path: Path, names: list[str], body: str = "pass") -> None:
    nb = new_notebook(cells=[new_markdown_cell("# fake"), _params_cell(names),
                             new_code_cell(body)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture
def fake_notebooks(tmp_path: Path) -> Path:
    src = tmp_path / "nb_src"
    src.mkdir()
    for step in STEPS:
        _write_notebook(src / step.filename, FAKE_DECLARED[step.name])
    return src


class FakeExecutor:
    """Stands in for papermill: records calls, writes the output notebook and artefacts."""

    def __init__(self, fail_on: str | None = None, skip_artefacts: bool = False) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.fail_on = fail_on
        self.skip_artefacts = skip_artefacts

    def __call__(self, src: Path, dst: Path, parameters: dict, cwd: Path) -> None:
        self.calls.append((src.stem, parameters))
        shutil.copy(src, dst)
        if src.stem == self.fail_on:
            raise RuntimeError("kernel died")
        if self.skip_artefacts:
            return
        root = (cwd / parameters["run_dir"]).resolve()
        step = next(s for s in STEPS if s.name == src.stem)
        for name in step.artefacts:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text("x")
        if step.name == "06_shap_drivers":
            (root / "summary.json").write_text(json.dumps(
                {"r2": {"pcmasking": {"control": {"PRECT": 0.5}}}}))

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


def _never(*args, **kwargs):  # executor that must not be reached
    raise AssertionError("a notebook was executed despite invalid parameters")


# -- parameters --------------------------------------------------------------------------


def test_every_preset_is_valid_and_differs_in_size():
    for name in PRESETS:
        assert validate(preset(name))["data.source"] == "synthetic"
    assert preset("ci")["data.steps"] * preset("ci")["data.n_lat"] \
        < preset("tutorial")["data.steps"] * preset("tutorial")["data.n_lat"]
    assert preset("paper")["hidden_layers"] == 9 and preset("paper")["hidden_units"] == 256
    assert preset("paper")["n_thresholds"] == 20 and preset("paper")["batch_size"] == 1024


def test_merge_order_preset_file_cli(tmp_path):
    params = tmp_path / "p.yml"
    params.write_text("epochs: 5\nl1: 1e-2\ndata:\n  steps: 30\n")
    merged = resolve_parameters("ci", params, [])
    assert merged["epochs"] == 5
    assert merged["l1"] == pytest.approx(0.01)  # YAML 1.1 "1e-2" string -> float
    assert merged["data.steps"] == 30
    assert merged["hidden_units"] == PRESETS["ci"]["hidden_units"]
    merged = resolve_parameters("ci", params, ["epochs=7", "data.n_lat=4"])
    assert merged["epochs"] == 7 and merged["data.n_lat"] == 4


def test_parse_override_reads_yaml_values():
    assert parse_override("epochs=3") == ("epochs", 3)
    assert parse_override("l1=1e-3") == ("l1", 1e-3)
    assert parse_override("max_samples=null") == ("max_samples", None)
    assert parse_override("selection=train_loss") == ("selection", "train_loss")
    with pytest.raises(ParameterError, match="KEY=VALUE"):
        parse_override("epochs")


@pytest.mark.parametrize(("override", "key", "message"), [
    ("epoch=3", "epoch", "unknown parameter.*did you mean 'epochs'"),
    ("data.trian=x.nc", "data.trian", "unknown parameter.*did you mean 'data.train'"),
    ("epochs=three", "epochs", "expected an integer"),
    ("epochs=2.5", "epochs", "expected an integer"),
    ("hidden_units=0", "hidden_units", ">= 1"),
    ("selection=best", "selection", "must be one of"),
    ("data.source=era5", "data.source", "must be one of"),
    ("l1=true", "l1", "expected a number"),
    ("data.train=x.nc", "data.train", "only used when data.source is spcam"),
    ("causal=3", "causal", "expected true or false"),
    ("data.steps=12", "causal", "at least 12 training time steps"),  # 8 train steps
])
def test_invalid_parameters_stop_before_any_notebook(tmp_path, fake_notebooks, override, key,
                                                     message):
    with pytest.raises(ParameterError, match=message) as info:
        pipeline.run(preset="ci", overrides=[override], out=tmp_path / "run",
                     notebooks_dir=fake_notebooks, executor=_never)
    assert info.value.key == key
    assert not (tmp_path / "run").exists()


def test_spcam_paths_are_checked(tmp_path, fake_notebooks):
    existing = tmp_path / "train.nc"
    existing.write_text("")
    params = tmp_path / "spcam.yml"
    params.write_text("data:\n  source: spcam\n  train: train.nc\n  valid: missing.nc\n"
                      "  test: train.nc\n  norm: train.nc\n")
    with pytest.raises(ParameterError, match="file not found") as info:
        pipeline.run(preset="ci", params_file=params, out=tmp_path / "run",
                     notebooks_dir=fake_notebooks, executor=_never)
    assert info.value.key == "data.valid"
    params.write_text("data:\n  source: spcam\n  train: train.nc\n  valid: train.nc\n"
                      "  test: train.nc\n")
    with pytest.raises(ParameterError, match="required") as info:
        resolve_parameters("ci", params)
    assert info.value.key == "data.norm"
    params.write_text("data:\n  source: spcam\n  train: train.nc\n  valid: train.nc\n"
                      "  test: train.nc\n  norm: train.nc\n")
    merged = resolve_parameters("ci", params)
    assert merged["data.train"] == str(existing.resolve())  # relative to the params file
    assert merged["data.plus4K"] is None


def test_params_file_errors(tmp_path):
    with pytest.raises(ParameterError, match="not found"):
        resolve_parameters("ci", tmp_path / "nope.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("- a list\n")
    with pytest.raises(ParameterError, match="mapping"):
        resolve_parameters("ci", bad)
    with pytest.raises(ParameterError, match="unknown preset"):
        resolve_parameters("fast")


def test_cli_reports_one_line_and_exit_2(tmp_path, capsys):
    status = main(["run", "--preset", "ci", "--set", "epochs=-1", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert status == 2
    assert err.strip().count("\n") == 0
    assert err.startswith("pcm: error: parameter 'epochs': must be >= 1")
    assert not (tmp_path / "r").exists()


# -- notebooks and their parameters ------------------------------------------------------


def test_real_notebooks_declare_only_run_parameters():
    params = validate(preset("ci"))
    for step in STEPS:
        declared = declared_parameters(NOTEBOOK_DIR / step.filename)
        assert declared[0] == "run_dir", step.filename
        passed = step_parameters(declared, params, "runs/x", step.filename)
        assert set(passed) == set(declared)


def test_undeclared_notebook_parameter_is_reported():
    with pytest.raises(PCMError, match="'learning_rat'.*not a run parameter"):
        step_parameters(["run_dir", "learning_rat"], validate(preset("ci")), "r", "02.ipynb")


def test_each_notebook_gets_only_what_it_declares(tmp_path, fake_notebooks, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake = FakeExecutor()
    pipeline.run(preset="ci", overrides=["l1=0.01"], out="runs/a",
                 notebooks_dir=fake_notebooks, executor=fake)
    assert fake.names == [s.name for s in STEPS]
    calls = dict(fake.calls)
    assert calls["02_premasking"] == {"run_dir": "runs/a", "seed": 0,
                                      "epochs": PRESETS["ci"]["epochs"], "l1": 0.01}
    assert set(calls["04_finetuning"]) == {"run_dir", "finetune_epochs"}


# -- resume --------------------------------------------------------------------------------


def test_resume_skips_complete_steps_and_reruns_downstream(tmp_path, fake_notebooks, capsys):
    out = tmp_path / "run"
    first = FakeExecutor()
    pipeline.run(preset="ci", out=out, notebooks_dir=fake_notebooks, executor=first)
    assert len(first.calls) == 6
    assert "[2/6] pre-masking" in capsys.readouterr().out
    state = json.loads((out / "pipeline_state.json").read_text())
    assert state["steps"]["03_masking_vectors_thresholds"]["params"]["n_thresholds"] == \
        PRESETS["ci"]["n_thresholds"]

    again = FakeExecutor()
    pipeline.run(preset="ci", out=out, notebooks_dir=fake_notebooks, executor=again)
    assert again.calls == []
    assert "up to date, skipped" in capsys.readouterr().out

    changed = FakeExecutor()  # a parameter that only step 3 declares
    pipeline.run(preset="ci", overrides=["n_thresholds=4"], out=out,
                 notebooks_dir=fake_notebooks, executor=changed)
    assert PRESETS["ci"]["n_thresholds"] != 4
    assert changed.names == [s.name for s in STEPS[2:]]

    (out / "r2.nc").unlink()  # an artefact of step 5 went missing
    missing = FakeExecutor()
    pipeline.run(preset="ci", overrides=["n_thresholds=4"], out=out,
                 notebooks_dir=fake_notebooks, executor=missing)
    assert missing.names == ["05_r2_evaluation", "06_shap_drivers"]

    _write_notebook(fake_notebooks / "04_finetuning.ipynb", FAKE_DECLARED["04_finetuning"],
                    body="x = 1")  # an edited notebook re-runs ...
    (out / "causal_masks.nc").write_text("stale")  # ... without stale optional results
    (out / "seconds.json").write_text(json.dumps({"premask": 3.0, "causal_discovery": 9.0}))
    edited = FakeExecutor()
    pipeline.run(preset="ci", overrides=["n_thresholds=4"], out=out,
                 notebooks_dir=fake_notebooks, executor=edited)
    assert edited.names == [s.name for s in STEPS[3:]]
    assert not (out / "causal_masks.nc").exists()
    assert json.loads((out / "seconds.json").read_text()) == {"premask": 3.0}


def test_code_change_reruns_everything(tmp_path, fake_notebooks, monkeypatch):
    out = tmp_path / "run"
    pipeline.run(preset="ci", out=out, notebooks_dir=fake_notebooks, executor=FakeExecutor())
    monkeypatch.setattr(pipeline, "_code_digest", lambda: "another version")
    again = FakeExecutor()
    pipeline.run(preset="ci", out=out, notebooks_dir=fake_notebooks, executor=again)
    assert again.names == [s.name for s in STEPS]


def test_failed_step_is_rerun(tmp_path, fake_notebooks):
    out = tmp_path / "run"
    with pytest.raises(NotebookError, match="03_masking_vectors_thresholds.ipynb failed"):
        pipeline.run(preset="ci", out=out, notebooks_dir=fake_notebooks,
                     executor=FakeExecutor(fail_on="03_masking_vectors_thresholds"))
    state = json.loads((out / "pipeline_state.json").read_text())
    assert state["steps"]["03_masking_vectors_thresholds"]["status"] == "failed"
    retry = FakeExecutor()
    pipeline.run(preset="ci", out=out, notebooks_dir=fake_notebooks, executor=retry)
    assert retry.names == [s.name for s in STEPS[2:]]


def test_interrupt_is_one_line_and_resumable(tmp_path, fake_notebooks):
    def interrupted(src, dst, parameters, cwd):
        raise KeyboardInterrupt

    out = tmp_path / "run"
    with pytest.raises(NotebookError, match="interrupted in notebook 01_data.ipynb.*resume"):
        pipeline.run(preset="ci", out=out, notebooks_dir=fake_notebooks, executor=interrupted)
    retry = FakeExecutor()
    pipeline.run(preset="ci", out=out, notebooks_dir=fake_notebooks, executor=retry)
    assert len(retry.calls) == 6


def test_missing_artefacts_are_an_error(tmp_path, fake_notebooks):
    with pytest.raises(NotebookError, match="did not write data/manifest.json"):
        pipeline.run(preset="ci", out=tmp_path / "run", notebooks_dir=fake_notebooks,
                     executor=FakeExecutor(skip_artefacts=True))


def test_book_dir_gets_notebooks_and_results(tmp_path, fake_notebooks):
    book = tmp_path / "book" / "notebooks"
    pipeline.run(preset="ci", out=tmp_path / "run", book_dir=book,
                 notebooks_dir=fake_notebooks, executor=FakeExecutor())
    assert sorted(p.name for p in book.glob("*.ipynb")) == [s.filename for s in STEPS]
    text = (book / "results_tables.md").read_text()
    assert "| PRECT | 0.50 |" in text
    assert "preset `ci`" in text and "8 x 16 grid" in text


def test_render_results_markdown_handles_missing_numbers():
    text = render_results_markdown({
        "r2": {"unconstrained": {"control": {"PRECT": 0.81}},
               "pcmasking": {"control": {"PRECT": None}, "plus4K": {"PRECT": 0.5}}},
        "drivers": {"pcmasking": {"precision": 0.9, "recall": None, "f1": 0.5}},
        "shap_nondriver_share": {"pcmasking": 0.1},
        "seconds": {"premask": 12.3},
    })
    assert "| PRECT | 0.81 | – |" in text
    assert "plus4K" in text
    assert "| pcmasking | 0.90 | – | 0.50 | 0.10 |" in text
    assert "| premask | 12 |" in text


# -- one real papermill run -------------------------------------------------------------


def test_failing_notebook_names_notebook_cell_and_output(tmp_path, fake_notebooks, capsys,
                                                        monkeypatch):
    # A user-level "python3" kernelspec that runs another program must not be used.
    bogus = tmp_path / "jupyter" / "kernels" / "python3"
    bogus.mkdir(parents=True)
    (bogus / "kernel.json").write_text(json.dumps(
        {"argv": ["/bin/false", "{connection_file}"], "display_name": "x", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    _write_notebook(fake_notebooks / "01_data.ipynb", ["seed"],
                    body="print('seed is', seed)\nraise ValueError('no data here')")
    out = tmp_path / "run"
    with pytest.raises(NotebookError) as info:
        pipeline.run(preset="ci", overrides=["seed=7"], out=out, notebooks_dir=fake_notebooks)
    message = str(info.value)
    partial = out / "notebooks" / "01_data.ipynb"
    assert "notebook 01_data.ipynb failed in cell" in message
    assert "print('seed is', seed)" in message
    assert "ValueError: no data here" in message
    assert f"partial output saved to {partial.resolve()}" in message
    assert "\n" not in message
    assert "seed is 7" in capsys.readouterr().out  # cell output streamed to the log
    nb = nbformat.read(partial, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1
    assert "seed = 7" in injected[0].source and "epochs" not in injected[0].source


# -- data preparation (notebook 1) ---------------------------------------------------------


def test_prepare_data_synthetic_writes_manifest(tmp_path):
    from pcm.rundir import RunDir

    run = RunDir(tmp_path / "run")
    config = DataConfig.from_parameters(dict(data_source="synthetic", data_steps=6, seed=1,
                                             data_n_lat=2, data_n_lon=4))
    files = prepare_data(run, config)
    assert {"train", "valid", "test", "norm", "drivers"} <= set(files)
    assert run.source == "synthetic"
    assert run.data_path("train") == files["train"].absolute()
    assert run.data_path("train").parent == run.data_dir


def test_prepare_data_spcam_validates_user_files(tmp_path):
    from pcm.errors import DataError
    from pcm.rundir import RunDir

    bad = tmp_path / "train.nc"
    bad.write_text("not netCDF")
    run = RunDir(tmp_path / "run")
    with pytest.raises(DataError, match="train.nc"):
        prepare_data(run, DataConfig.from_parameters(dict(
            data_source="spcam", data_train=bad, data_valid=bad, data_test=bad, data_norm=bad)))
    assert not run.manifest_path.exists()
    with pytest.raises(ParameterError, match="required"):
        prepare_data(run, DataConfig.from_parameters(dict(data_source="spcam", data_train=bad)))


# -- nbval references ------------------------------------------------------------------------


def test_nbval_references_are_fresh():
    """tests/notebooks/ must be re-created (tests/refresh_notebooks.py) when a notebook
    source or the ci preset changes; nbval alone would keep testing the old cells."""
    refs = Path(__file__).parent / "notebooks"
    params = validate(preset("ci"))
    for step in STEPS:
        source = nbformat.read(NOTEBOOK_DIR / step.filename, as_version=4)
        ref = nbformat.read(refs / step.filename, as_version=4)
        injected = [c for c in ref.cells if "injected-parameters" in c.metadata.get("tags", [])]
        cells = [c.source for c in ref.cells if c not in injected]
        hint = f"{step.filename}: run `make refresh-nbval`"
        assert cells == [c.source for c in source.cells], hint
        assert len(injected) == 1, hint
        namespace: dict = {}
        exec(injected[0].source, namespace)  # noqa: S102 - literal assignments by papermill
        namespace.pop("__builtins__")
        expected = step_parameters(declared_parameters(NOTEBOOK_DIR / step.filename), params,
                                   "_nbval_run", step.filename)
        assert namespace == expected, hint
        assert "papermill" not in ref.metadata, hint
