"""The Jupyter Book configuration: toc, bibliography, launch buttons, offline build."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from pcm.book.launch import book_config
from pcm.experiments.chapter import NOTEBOOK as EXPERIMENTS
from pcm.online.runner import NOTEBOOK as ONLINE
from pcm.params.presets import PARAMETERS, PRESETS, parameters_markdown
from pcm.run.steps import REAL_DATA_NOTEBOOK, STEPS

ROOT = Path(__file__).resolve().parents[2]


def _config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text())


def _toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc["parts"]:
        files += [c["file"] for c in part["chapters"]]
    return files


def test_config_is_offline_and_never_executes():
    config = _config()
    assert config["execute"]["execute_notebooks"] == "off"
    assert config["only_build_toc_files"] is True
    assert "intersphinx_mapping" not in str(config)
    for pattern in (".venv", "runs", "tests", "notebooks", "_build", ".dev"):
        assert pattern in config["exclude_patterns"]
    assert (ROOT / config["bibtex_bibfiles"][0]).is_file()


def test_launch_and_repository_buttons_only_with_book_repository():
    config = _config()
    # _config.yml names no repository: `make html BOOK_REPOSITORY=owner/name` adds it
    assert "repository" not in config and "launch_buttons" not in config
    assert "github.com" not in (ROOT / "_config.yml").read_text()
    assert config["html"]["use_repository_button"] is False
    assert config["sphinx"]["config"]["html_theme_options"]["use_download_button"] is True
    with_repo = book_config(config, "octocat/pcm-book")
    assert with_repo["repository"]["url"] == "https://github.com/octocat/pcm-book"
    assert with_repo["repository"]["path_to_book"] == ""
    assert with_repo["launch_buttons"]["binderhub_url"] and with_repo["launch_buttons"]["colab_url"]
    assert with_repo["html"]["use_repository_button"] is True
    makefile = (ROOT / "Makefile").read_text()
    assert "BOOK_REPOSITORY ?=\n" in makefile and '--repository "$(BOOK_REPOSITORY)"' in makefile


def test_mathjax_is_bundled_and_thebe_scripts_dropped():
    extensions = _config()["sphinx"]["extra_extensions"]
    assert "sphinx-mathjax-offline" in extensions and "pcm.book.launch" in extensions
    assert "mathjax_path" not in str(_config())  # a CDN path would override the bundled copy


def test_toc_lists_chapters_and_the_nine_notebooks():
    files = _toc_files()
    assert [f for f in files if f.startswith("book/notebooks/")] == [
        f"book/notebooks/{s.name}" for s in (*STEPS, REAL_DATA_NOTEBOOK)] + [
        f"book/notebooks/{EXPERIMENTS.stem}", f"book/notebooks/{ONLINE.stem}"]
    for name in files:
        if not name.startswith("book/notebooks/"):
            assert (ROOT / f"{name}.md").is_file(), name
    for chapter in ("intro", "method", "data", "results", "exercises"):
        assert f"book/{chapter}" in files


def test_every_citation_is_in_the_bibliography():
    bib = (ROOT / "book" / "references.bib").read_text()
    keys = set(re.findall(r"@\w+\{([^,]+),", bib))
    assert {"kuehbacher2024", "rasp2018", "iglesias2024", "lundberg2017", "runge2019"} <= keys
    texts = [p.read_text() for p in (ROOT / "book").glob("*.md")]
    texts += [c.source for path in [*(ROOT / "notebooks" / s.filename
                                      for s in (*STEPS, REAL_DATA_NOTEBOOK)),
                                    EXPERIMENTS, ONLINE]
              for c in nbformat.read(path, as_version=4).cells]
    cited = {k.strip() for t in texts for group in re.findall(r"\{cite[:\w]*\}`([^`]+)`", t)
             for k in group.split(",")}
    assert cited, "no citations found"
    assert cited <= keys, cited - keys


def test_citation_cff():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"].startswith("1.2")
    assert "2406.03920" in str(cff)


@pytest.mark.slow
def test_book_builds_offline_with_warnings_as_errors(tmp_path):
    """Build the book from the notebook sources (unexecuted) in a scratch copy."""
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "book", tmp_path / "book",
                    ignore=shutil.ignore_patterns("notebooks", "_build"))
    (tmp_path / "book" / "notebooks").mkdir()
    for step in (*STEPS, REAL_DATA_NOTEBOOK):
        shutil.copy(ROOT / "notebooks" / step.filename, tmp_path / "book" / "notebooks")
    shutil.copy(EXPERIMENTS, tmp_path / "book" / "notebooks")
    shutil.copy(ONLINE, tmp_path / "book" / "notebooks")
    for name in ("results_tables.md", "claims_table.md"):
        (tmp_path / "book" / "notebooks" / name).write_text("| a |\n|---|\n| 1 |\n")
    (tmp_path / "book" / "notebooks" / "parameters_table.md").write_text(parameters_markdown())
    jb = Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run([str(jb), "build", str(tmp_path), "--warningiserror", "--keep-going",
                           "--quiet"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    html = tmp_path / "_build" / "html"
    assert (html / "book" / "notebooks" / "03_masking_vectors_thresholds.html").is_file()
    assert "dropdown" in (html / "book" / "exercises.html").read_text()


def test_intro_preset_table_matches_presets():
    intro = (ROOT / "book" / "intro.md").read_text()
    for name, values in PRESETS.items():
        layers = values.get("hidden_layers", PARAMETERS["hidden_layers"].default)
        units = values.get("hidden_units", PARAMETERS["hidden_units"].default)
        row = next(line for line in intro.splitlines() if line.startswith(f"| `{name}` |"))
        assert f"{layers} × {units}" in row, (name, row)


def test_parameters_table_lists_every_parameter():
    table = parameters_markdown()
    for key in PARAMETERS:
        assert f"| `{key}` |" in table
    headers = [line for line in table.splitlines() if line.startswith("| parameter |")]
    assert sum(h.count("`") for h in headers) == 2 * len(PRESETS)  # every preset, once
