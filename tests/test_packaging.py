"""Set-up contracts: environment.yml mirrors pyproject.toml; CI runs the documented command."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!;\[ ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["test"]
    return {_name(r): r.replace(" ", "") for r in reqs}


def _environment_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    return {_name(r): r.replace(" ", "") for r in pip if not r.startswith("-e")}


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    assert _environment_requirements() == _pyproject_requirements()


def test_the_installed_jupyter_book_reads_config_yml():
    """Jupyter Book 2 ignores ``_config.yml``/``_toc.yml``: the environment must hold v1."""
    from importlib.metadata import version

    assert version("jupyter-book").split(".")[0] == "1"


def test_constraints_pin_every_dependency():
    pinned = {_name(line) for line in (ROOT / "constraints.txt").read_text().splitlines()
              if "==" in line}
    missing = {n for n in _pyproject_requirements() if n not in pinned}
    assert not missing, f"constraints.txt does not pin {missing}"


def test_ci_runs_the_documented_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert readme.index("make book") < readme.index("make test")


def test_the_licence_is_an_spdx_expression_and_its_files_exist():
    # setuptools deprecates ``license = {text = ...}`` (builds refused from 2027-02-18)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] and all((ROOT / f).is_file() for f in project["license-files"])
    assert "MIT License" in (ROOT / "LICENSE").read_text()
