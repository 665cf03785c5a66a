"""The chapter notebooks ship inside the package: a wheel holds them as ``pcm/_notebooks``.

``notebooks/*.ipynb`` are tracked once; ``setup.py`` copies them into every wheel it
builds (from the tree, as ``pip install .`` does, and from the sdist, which
``MANIFEST.in`` gives them), and :data:`pcm.run.steps.NOTEBOOK_DIR` finds the packaged
copy of an installed ``pcm`` with :mod:`importlib.resources` (docs/architecture.md,
"Installing").
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from pcm.run.steps import NOTEBOOK_DIR, REAL_DATA_NOTEBOOK, STEPS

ROOT = Path(__file__).resolve().parents[1]

#: What a build reads: the project files and the two trees.
BUILD_FILES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE")
BUILD_TREES = ("pcm", "notebooks")


def _sources() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((ROOT / "notebooks").glob("*.ipynb"))}


def test_the_notebook_folder_holds_every_chapter():
    names = {p.name for p in NOTEBOOK_DIR.glob("*.ipynb")}
    chapters = {s.filename for s in STEPS} | {REAL_DATA_NOTEBOOK.filename}
    assert chapters | {"08_experiments.ipynb", "09_online.ipynb"} <= names
    assert NOTEBOOK_DIR == ROOT / "notebooks"  # a checkout reads its own notebooks/
    assert not (ROOT / "pcm" / "_notebooks").exists()  # no copy to go stale in the checkout


def _copy_project(dst: Path) -> Path:
    dst.mkdir()
    for name in BUILD_FILES:
        shutil.copy2(ROOT / name, dst / name)
    for name in BUILD_TREES:
        shutil.copytree(
            ROOT / name,
            dst / name,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "_notebooks"),
        )
    return dst


def _build(src: Path, hook: str, out: Path) -> Path:
    """Run a PEP 517 hook of setuptools (this environment's, no download) in ``src``."""
    code = f"from setuptools import build_meta as b; print(b.{hook}({str(out)!r}))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=src, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return out / done.stdout.strip().splitlines()[-1]


def _wheel_notebooks(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as zf:
        return {
            Path(n).name: zf.read(n)
            for n in zf.namelist()
            if n.startswith("pcm/_notebooks/") and n.endswith(".ipynb")
        }


@pytest.mark.slow
def test_wheels_hold_the_notebooks_and_an_installed_pcm_finds_them(tmp_path):
    sources = _sources()
    assert len(sources) == 9
    src = _copy_project(tmp_path / "project")
    dist = tmp_path / "dist"
    dist.mkdir()

    wheel = _build(src, "build_wheel", dist)  # pip install . (in-tree build)
    assert _wheel_notebooks(wheel) == sources

    sdist = _build(src, "build_sdist", dist)  # pip install pcm-*.tar.gz, python -m build
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    (unpacked,) = (tmp_path / "unpacked").iterdir()
    assert sorted(p.name for p in (unpacked / "notebooks").glob("*.ipynb")) == list(sources)
    from_sdist = tmp_path / "dist_sdist"
    from_sdist.mkdir()
    assert _wheel_notebooks(_build(unpacked, "build_wheel", from_sdist)) == sources

    # installed (unpacked on sys.path, outside any checkout): the packaged copy is found
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    code = "import pcm.run.steps as s; print(s.NOTEBOOK_DIR)"
    env = {**os.environ, "PYTHONPATH": str(site), "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = Path(done.stdout.strip().splitlines()[-1])
    assert found == site / "pcm" / "_notebooks"
    assert {p.name: p.read_bytes() for p in found.glob("*.ipynb")} == sources
