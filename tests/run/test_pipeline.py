"""Tests of `pcm run`: parameters, presets, resume, failures.

(pcm.run.pipeline, pcm.params.presets)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import numpy as np
import pytest
import xarray as xr
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from pcm.book.pages import render_results_markdown
from pcm.cli import main
from pcm.errors import ParameterError, PCMError
from pcm.method.prepare import prepare_data
from pcm.params import run_parameters
from pcm.params.config import DataConfig
from pcm.params.presets import PARAMETERS, PRESETS, preset, validate
from pcm.params.run_parameters import parse_override, resolve_parameters
from pcm.run import pipeline
from pcm.run.pipeline import NotebookError, declared_parameters, step_parameters
from pcm.run.steps import NOTEBOOK_DIR, STEPS

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


#: Variables of the netCDF artefacts as the real steps write them (subset).
FAKE_VARIABLES = {"masking_vectors.nc": ("masking_vector",),
                  "thresholds.nc": ("loss", "threshold", "chosen_index"),
                  "masks.nc": ("mask", "threshold"), "r2.nc": ("r2",), "shap.nc": ("shap",)}


def write_fake_artefact(root: Path, name: str) -> None:
    """A small artefact that opens and holds what the real step writes."""
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if name == "data/manifest.json":
        files = {}
        for split in ("train", "valid", "test", "norm"):
            data = root / "data" / f"{split}.nc"
            if not data.exists():  # like notebook 1 with user data: never rewritten
                data.write_text(f"{split} data")
            files[split] = str(data)
        path.write_text(json.dumps({"source": "synthetic", "files": files}))
    elif name == "summary.json":
        path.write_text(json.dumps({"r2": {"pcmasking": {"control": {"PRECT": 0.5}}},
                                    "drivers": {}, "seconds": {}}))
    elif name.endswith(".nc"):
        variables = FAKE_VARIABLES.get(name, ("value",))
        xr.Dataset({v: ("x", np.zeros(2)) for v in variables}).to_netcdf(path)
    elif name.endswith(".keras"):
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("config.json", "{}")
            archive.writestr("model.weights.h5", b"weights")
    else:
        path.write_text("x")


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
            write_fake_artefact(root, name)

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


def _never(*args, **kwargs):  # executor that must not be reached
    raise AssertionError("a notebook was executed despite invalid parameters")


# -- parameters --------------------------------------------------------------------------


def test_every_preset_is_valid_and_differs_in_size():
    for name in PRESETS:
        if PRESETS[name].get("data.source") == "climsim":  # needs pcm data climsim's folder
            with pytest.raises(ParameterError, match="data.dir.*required"):
                validate(preset(name))
            continue
        assert validate(preset(name))["data.source"] == "synthetic"
    assert preset("ci")["data.steps"] * preset("ci")["data.n_lat"] \
        < preset("tutorial")["data.steps"] * preset("tutorial")["data.n_lat"]
    assert preset("paper")["hidden_layers"] == 9 and preset("paper")["hidden_units"] == 256
    assert preset("paper")["n_thresholds"] == 20 and preset("paper")["batch_size"] == 1024


def test_climsim_preset_reads_the_converted_folder_and_skips_causal(tmp_path, capsys):
    folder = tmp_path / "climsim"
    folder.mkdir()
    for name in ("train.nc", "valid.nc", "test.nc"):
        (folder / name).write_text("")
    with pytest.raises(ParameterError, match="lacks norm.nc .*pcm data climsim"):
        resolve_parameters("climsim", None, [f"data.dir={folder}"])
    (folder / "norm.nc").write_text("")
    params = resolve_parameters("climsim", None, [f"data.dir={folder}"])
    assert params["data.dir"] == str(folder.resolve()) and params["causal"] is False
    assert "snapshots" in run_parameters.check_causal_feasibility(dict(params), explicit=False)
    with pytest.raises(ParameterError, match="causal.*snapshots"):  # asked for explicitly
        run_parameters.check_causal_feasibility({**params, "causal": True}, explicit=True)
    with pytest.raises(ParameterError, match="data.train.*not used when data.source is climsim"):
        resolve_parameters("climsim", None, [f"data.dir={folder}", f"data.train={folder}/x"])
    with pytest.raises(ParameterError, match="data.dir.*only used when data.source is climsim"):
        resolve_parameters("ci", None, [f"data.dir={folder}"])
    config = DataConfig.from_parameters(params)
    assert config.paths == {k: str(folder.resolve() / f"{k}.nc")
                            for k in ("train", "valid", "test", "norm")}
    # the notice comes once, before any notebook runs
    with pytest.raises(NotebookError, match="a notebook was executed"):
        pipeline.run(preset="climsim", overrides=[f"data.dir={folder}"], out=tmp_path / "run",
                     executor=_never)
    out = capsys.readouterr().out
    assert out.count("causally-informed baseline skipped") == 1
    assert out.index("causally-informed baseline skipped") < out.index("[1/6]")


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


@pytest.mark.parametrize(("override", "key", "hint"), [
    ("EPOCHS=3", "EPOCHS", "did you mean 'epochs'"),
    ("DATA.TRAIN=x.nc", "DATA.TRAIN", "did you mean 'data.train'"),
    ("selection=VAL_LOSS", "selection", "did you mean 'val_loss'"),
])
def test_parameter_in_the_wrong_case_gets_a_hint(override, key, hint):
    with pytest.raises(ParameterError, match=hint) as info:
        resolve_parameters("ci", overrides=[override])
    assert info.value.key == key


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
    monkeypatch.setattr(pipeline, "code_digest", lambda: "another version")
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


@pytest.mark.slow
def test_prepare_data_synthetic_writes_manifest(tmp_path):
    from pcm.run.rundir import RunDir

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
    from pcm.run.rundir import RunDir

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
    refs = Path(__file__).parents[1] / "notebooks"
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


# -- reliability of resume: fingerprints, artefact checks, lock (issue 13) --------------------


def test_replaced_data_file_reruns_the_steps_that_read_it(tmp_path, fake_notebooks, capsys):
    out = tmp_path / "run"
    pipeline.run(preset="ci", out=out, notebooks_dir=fake_notebooks, executor=FakeExecutor())
    state = json.loads((out / "pipeline_state.json").read_text())
    recorded = state["steps"]["02_premasking"]["inputs"]["data/train.nc"]
    assert set(recorded) >= {"size", "mtime_ns", "sha256"}
    assert "data/manifest.json" in state["steps"]["02_premasking"]["inputs"]
    assert "models/premask.keras" in state["steps"]["03_masking_vectors_thresholds"]["inputs"]

    # same path, same size, even the old modification time: only the content differs
    train = out / "data" / "train.nc"
    before = train.stat()
    train.write_text(train.read_text().upper())
    os.utime(train, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert train.stat().st_size == before.st_size
    capsys.readouterr()
    again = FakeExecutor()
    pipeline.run(preset="ci", out=out, notebooks_dir=fake_notebooks, executor=again)
    assert again.names == [s.name for s in STEPS[1:]]  # step 1 reads no file
    assert "runs again: input data/train.nc changed" in capsys.readouterr().out

    os.utime(train)  # touched, content unchanged: nothing reruns
    touched = FakeExecutor()
    pipeline.run(preset="ci", out=out, notebooks_dir=fake_notebooks, executor=touched)
    assert touched.calls == []


def test_truncated_or_incomplete_artefact_is_rerun_on_resume(tmp_path, fake_notebooks, capsys):
    out = tmp_path / "run"
    pipeline.run(preset="ci", out=out, notebooks_dir=fake_notebooks, executor=FakeExecutor())

    shap = out / "shap.nc"  # the last step's artefact: no later step fingerprints it
    shap.write_bytes(shap.read_bytes()[: shap.stat().st_size // 2])
    capsys.readouterr()
    truncated = FakeExecutor()
    pipeline.run(preset="ci", out=out, notebooks_dir=fake_notebooks, executor=truncated)
    assert truncated.names == ["06_shap_drivers"]
    assert "runs again: shap.nc: unreadable netCDF" in capsys.readouterr().out

    xr.Dataset({"other": ("x", np.zeros(2))}).to_netcdf(out / "r2.nc")  # readable, wrong
    wrong = FakeExecutor()
    pipeline.run(preset="ci", out=out, notebooks_dir=fake_notebooks, executor=wrong)
    assert wrong.names == ["05_r2_evaluation", "06_shap_drivers"]
    assert "r2.nc: lacks variable 'r2'" in capsys.readouterr().out

    model = out / "models" / "premask.keras"
    model.write_bytes(model.read_bytes()[:-20])
    keras = FakeExecutor()
    pipeline.run(preset="ci", out=out, notebooks_dir=fake_notebooks, executor=keras)
    assert keras.names == [s.name for s in STEPS[1:]]


_HOLD_LOCK = """
import sys, time
from pcm.run.rundir import run_lock
with run_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_second_run_on_a_locked_run_directory_stops_naming_the_pid(tmp_path, fake_notebooks,
                                                                   capsys):
    out = tmp_path / "run"
    out.mkdir()
    repo = Path(pipeline.__file__).resolve().parents[2]  # pcm/run/pipeline.py -> checkout
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(repo), os.environ.get("PYTHONPATH")) if p)}
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(out)], env=env,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(PCMError) as info:
            pipeline.run(preset="ci", out=out, notebooks_dir=fake_notebooks, executor=_never)
        assert str(info.value).startswith(
            f"another pcm run is using {out.resolve()} (pid {holder.pid})")
        assert main(["run", "--preset", "ci", "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("pcm: error: another pcm run is using")
        assert not (out / "pipeline_state.json").exists()
    finally:
        holder.kill()
        holder.wait()
    after = FakeExecutor()  # the lock dies with its process
    pipeline.run(preset="ci", out=out, notebooks_dir=fake_notebooks, executor=after)
    assert len(after.calls) == 6


# -- user data without time series: the causal baseline is skipped before training ------------


def _spcam_params(tmp_path: Path, train: Path, extra: str = "") -> Path:
    from pcm.data.normalization import compute_norm, write_norm

    norm = write_norm(compute_norm(train), tmp_path / "norm.nc")
    params = tmp_path / "spcam.yml"
    params.write_text(f"data:\n  source: spcam\n  train: {train}\n  valid: {train}\n"
                      f"  test: {train}\n  norm: {norm}\n{extra}")
    return params


@pytest.mark.parametrize(("steps", "problem"), [
    (3, "only 3 time steps per column"),
    (20, "looks shuffled"),  # independent draws per step: no persistence
])
def test_user_data_without_time_series_skips_causal_before_training(tmp_path, fake_notebooks,
                                                                    capsys, steps, problem):
    from test_cbrain import fake_fields

    from pcm.data import cbrain_write

    train = cbrain_write.write_cbrain(fake_fields(steps=steps, n_lat=2, n_lon=4), tmp_path / "t.nc")
    _write_notebook(fake_notebooks / "04_finetuning.ipynb", ["finetune_epochs", "causal"])
    params = _spcam_params(tmp_path, train)
    fake = FakeExecutor()
    pipeline.run(preset="ci", params_file=params, out=tmp_path / "run",
                 notebooks_dir=fake_notebooks, executor=fake)
    assert dict(fake.calls)["04_finetuning"]["causal"] is False
    notices = [line for line in capsys.readouterr().out.splitlines() if "causal" in line]
    assert len(notices) == 1
    assert notices[0].startswith("notice: causally-informed baseline skipped")
    assert problem in notices[0] and str(train) in notices[0]

    # asked for explicitly: an error before anything runs
    params = _spcam_params(tmp_path, train, extra="causal: true\n")
    with pytest.raises(ParameterError, match=problem) as info:
        pipeline.run(preset="ci", params_file=params, out=tmp_path / "run2",
                     notebooks_dir=fake_notebooks, executor=_never)
    assert info.value.key == "causal"
    assert not (tmp_path / "run2").exists()


@pytest.mark.slow
def test_continuous_user_data_keeps_the_causal_baseline(tmp_path):
    from pcm.baselines.causal.data import causal_feasibility
    from pcm.data.datasets import write_synthetic_dataset

    files = write_synthetic_dataset(tmp_path / "d", steps=40, seed=0, n_lat=2, n_lon=4)
    assert causal_feasibility(files["train"]) is None
    params = validate({**preset("ci"), "data.source": "spcam", "data.train": str(files["train"]),
                       "data.valid": str(files["valid"]), "data.test": str(files["test"]),
                       "data.norm": str(files["norm"])})
    assert run_parameters.check_causal_feasibility(params, explicit=False) is None
    assert params["causal"] is True


# -- one line for YAML errors -----------------------------------------------------------------


def test_yaml_syntax_error_is_one_line_with_file_line_and_column(tmp_path, capsys):
    bad = tmp_path / "bad.yml"
    bad.write_text("epochs: 3\nl1: [0.1, 0.2\nseed: 1\n")
    status = main(["run", "--preset", "ci", "--params", str(bad), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1
    assert err[0].startswith(f"pcm: error: parameter 'params': {bad}, line 3, column 5: "
                             "not valid YAML: ")
    assert not (tmp_path / "r").exists()


def test_out_below_a_file_is_one_error_line(tmp_path, capsys):
    afile = tmp_path / "file"
    afile.write_text("x")
    assert main(["run", "--preset", "ci", "--out", str(afile / "sub")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"pcm: error: --out {afile / 'sub'}: cannot create the directory: "
                   f"{afile} is a file, not a directory"]
    assert main(["run", "--preset", "ci", "--out", str(afile)]) == 2
    assert capsys.readouterr().err == f"pcm: error: --out {afile}: exists and is not a directory\n"


def test_real_data_chapter_gets_run_paths_relative_to_the_kernel_directory(tmp_path,
                                                                           monkeypatch):
    """Executed chapters show no machine-specific paths: runs below the working directory
    are passed relative to it, others stay absolute."""
    run_below = tmp_path / "work" / "runs" / "tutorial"
    run_outside = tmp_path / "elsewhere" / "climsim"
    for run in (run_below, run_outside):
        run.mkdir(parents=True)
        (run / "masks.nc").write_bytes(b"")
    monkeypatch.chdir(tmp_path / "work")
    seen: dict = {}

    def executor(src, dst, parameters, cwd):
        seen.update(parameters)
        nbformat.write(new_notebook(cells=[new_code_cell("pass")]), dst)

    pipeline.run_real_data_chapter(tmp_path / "book", climsim_run=run_outside,
                                   synthetic_run=run_below, executor=executor)
    assert seen == {"synthetic_run": "runs/tutorial", "climsim_run": str(run_outside)}


def test_claims_verdicts_follow_the_numbers():
    from pcm.book.pages import claims, claims_markdown

    def summary(pcm_r2, unc_r2, share, ratio, ratio_all=None):
        cost = {"ratio": ratio, "causal_columns": 32, "grid_columns": 512}
        if ratio_all is not None:
            cost["ratio_all_columns"] = ratio_all
        return {"r2": {m: {"control": {"PRECT": v, "PHQ": v}} for m, v in
                       (("pcmasking", pcm_r2), ("unconstrained", unc_r2), ("causal", unc_r2))},
                "shap_nondriver_share": {"pcmasking": share, "unconstrained": 0.6},
                "drivers": {"pcmasking": {"precision": 0.45}}, "cost": cost}

    verdicts = [r["verdict"] for r in claims(summary(0.86, 0.85, 0.24, 0.46, 2.22))]
    assert verdicts[0] == "holds" and verdicts[2] == "holds"
    assert verdicts[1].startswith("partly: reduced, not removed")
    assert verdicts[3] == "partly: cheaper, not three times (on the extrapolated ratio)"
    verdicts = [r["verdict"] for r in claims(summary(0.70, 0.85, 0.03, 3.1))]
    assert verdicts[0].startswith("does not hold") and verdicts[1] == "holds"
    assert verdicts[3] == "holds"
    shifted = summary(0.86, 0.85, 0.24, 3.0)
    shifted["r2"]["pcmasking"]["minus4K"] = {"PRECT": 0.54}
    shifted["r2"]["unconstrained"]["minus4K"] = {"PRECT": 0.71}
    robust = [r for r in claims(shifted) if r["claim"] == "robust at ±4 K"]
    assert robust[0]["verdict"] == ("does not hold at minus4K; below by more than 0.02 on "
                                    "PRECT at minus4K")
    assert robust[0]["this run"] == "minus4K: 0.54 vs 0.71"
    text = claims_markdown(summary(0.86, 0.85, 0.7, 0.9))
    assert "0.90 side by side (discovery on all 512 columns) | does not hold |" in text
    assert "| spurious links removed |" in text and "| does not hold |" in text
    assert "the paper's rule" not in text  # only where it ran beside the run's selection
    beside = summary(0.86, 0.85, 0.03, 0.9)
    beside["r2"]["paper_rule"] = {"control": {"PRECT": 0.60, "PHQ": 0.60}}
    beside["shap_nondriver_share"]["paper_rule"] = 0.5
    beside["cost"]["ratio_paper_rule"] = 2.8
    paper = [r["verdict"] for r in claims(beside, "paper_rule")]
    assert paper[0].startswith("does not hold") and paper[1].startswith("partly")
    assert paper[3] == "holds"
    text = claims_markdown(beside)
    assert ("| skill like unconstrained networks | mean control R² over the variables, "
            "PCMasking vs unconstrained | the paper's rule | 0.60 vs 0.85 |") in text
    assert "| this run's selection | 0.03 vs 0.60; precision 0.45 | holds |" in text
    assert "converged (" not in text  # no training record: no caveat
    beside["training"] = {"unconstrained": {"schedule": "step", "converged": False,
                                            "converged_share": 0.0},
                          "causal": {"schedule": "plateau", "converged": True}}
    verdicts = [r["verdict"] for r in claims(beside)]
    assert verdicts[0] == ("holds; the unconstrained networks had not converged (`schedule: "
                           "step`, 0 % converged), so their skill may be understated")
    assert "converged" not in verdicts[2]  # the causally-informed networks converged
