"""The experiments chapter's sweeps: one set of arguments for ``--prepare`` and the notebook."""

from __future__ import annotations

import json

import pytest

from pcm.cli import main
from pcm.errors import ParameterError, PCMError
from pcm.experiments import chapter_sweeps
from pcm.experiments.chapter import NOTEBOOK
from pcm.experiments.chapter_sweeps import chapter_runs, prepare
from pcm.run.pipeline import notebook_defaults


def test_notebook_defaults_reads_every_assignment_of_the_parameters_cell():
    defaults = notebook_defaults(NOTEBOOK)
    # papermill.inspect_notebook skips these two lines (':' and '=' in the string, '>=' in
    # the comment): a --set of them was refused as "not a parameter"
    assert defaults["worlds_methods"][0] == "paper"
    assert "worlds_full_dir" in defaults
    assert defaults["sweep_overrides"]["causal"] is False


def test_notebook_defaults_names_a_line_that_is_not_a_literal(tmp_path):
    nb = json.loads(NOTEBOOK.read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    cell["source"] = "lambdas = [1.0]\nsteps = 3 * n\n"
    bad = tmp_path / "bad.ipynb"
    bad.write_text(json.dumps(nb))
    with pytest.raises(PCMError, match="'steps' .*line 2.* not a Python literal"):
        notebook_defaults(bad)


def test_prepare_runs_the_calls_the_notebook_makes(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(chapter_sweeps, "run_sweep", lambda **kw: calls.append(("sweep", kw)))
    monkeypatch.setattr(chapter_sweeps, "run_worlds", lambda **kw: calls.append(("worlds", kw)))
    prepare(tmp_path / "run", {"lambdas": [0.5], "worlds": [3]})
    expected = chapter_runs(
        {
            **notebook_defaults(NOTEBOOK),
            "lambdas": [0.5],
            "worlds": [3],
            "run_dir": str(tmp_path / "run"),
        }
    )
    assert [kw for _, kw in calls] == [
        {**expected[k], "progress": False} for k in ("lambda", "architecture", "worlds")
    ]
    assert calls[0][1]["grid"] == {"l1": [0.5]} and calls[2][1]["worlds"] == [3]
    assert calls[0][1]["out"] == f"{tmp_path / 'run'}/experiments/sweeps/lambda"
    assert "data.steps=48" in calls[0][1]["overrides"]
    # the notebook passes the same dictionaries to the same functions
    source = "".join("".join(c["source"]) for c in json.loads(NOTEBOOK.read_text())["cells"])
    for call in (
        'run_sweep(**runs["lambda"])',
        'run_sweep(**runs["architecture"])',
        'run_worlds(**runs["worlds"])',
        "runs = chapter_runs(globals())",
    ):
        assert call in source


def test_prepare_refuses_an_unknown_parameter_before_running(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(chapter_sweeps, "run_sweep", lambda **kw: pytest.fail("ran"))
    with pytest.raises(ParameterError, match="lambda_values"):
        prepare(tmp_path, {"lambda_values": [1.0]})
    status = main(
        ["experiments", "--run", str(tmp_path), "--prepare", "--set", "lambda_values=[1]"]
    )
    err = capsys.readouterr().err
    assert status != 0 and "lambda_values" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
