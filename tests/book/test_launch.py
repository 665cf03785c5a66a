"""pcm.book.launch: the setup cell of launched notebooks, the book configuration, `pcm book`."""

from __future__ import annotations

import copy
import subprocess
import sys
from types import SimpleNamespace

import nbformat
import pytest
import yaml

from pcm import cli
from pcm.book import launch
from pcm.book.launch import (
    SETUP_TAG,
    RepositoryError,
    add_setup_cell,
    book_config,
    check_repository,
    remove_setup_cell,
    rewrite_notebooks,
    setup_cell,
)


def _notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Title"),
                nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]})]
    return nb


@pytest.mark.parametrize("repository", ["octocat/pcm", "a/b", "Org-1/my.repo_2", " o/n "])
def test_valid_repositories(repository):
    assert check_repository(repository) == repository.strip()


@pytest.mark.parametrize("repository", [
    "pcm", "https://github.com/o/n", "o/n/extra", "o/", "/n", "-o/n", "o/n.git", "o/..",
    "o n/x", "o/n?x", ""])
def test_invalid_repositories_name_the_variable(repository):
    with pytest.raises(RepositoryError, match=r"BOOK_REPOSITORY must be .*owner/name"):
        check_repository(repository)


def test_setup_cell_is_hidden_and_installs_from_the_repository():
    cell = setup_cell("octocat/pcm-book")
    assert cell.cell_type == "code" and cell.outputs == [] and cell.execution_count is None
    assert cell.metadata["tags"] == ["remove-cell", SETUP_TAG]
    assert "pcm @ git+https://github.com/octocat/pcm-book@main" in cell.source
    compile(cell.source, "<setup>", "exec")


def _run_setup(source: str, monkeypatch, installed: bool) -> list:
    calls = []

    def fake_check_call(args):
        calls.append(args)
        monkeypatch.delitem(sys.modules, "pcm")  # "installed": import pcm works again

    monkeypatch.setattr(subprocess, "check_call", fake_check_call)
    if not installed:
        monkeypatch.setitem(sys.modules, "pcm", None)  # import pcm raises ImportError
    exec(compile(source, "<setup>", "exec"), {})
    return calls


def test_setup_cell_does_nothing_where_pcm_is_importable(monkeypatch):
    assert _run_setup(setup_cell("o/n").source, monkeypatch, installed=True) == []


def test_setup_cell_installs_pcm_where_it_is_missing(monkeypatch):
    calls = _run_setup(setup_cell("o/n").source, monkeypatch, installed=False)
    assert calls == [[sys.executable, "-m", "pip", "install", "--quiet",
                      "pcm @ git+https://github.com/o/n@main"]]


def test_add_setup_cell_is_first_pure_and_idempotent():
    nb = _notebook()
    original = copy.deepcopy(nb)
    once = add_setup_cell(nb, "o/n")
    assert nb == original  # input untouched
    assert once.cells[0].metadata["tags"] == ["remove-cell", SETUP_TAG]
    assert once.cells[1:] == nb.cells
    assert add_setup_cell(once, "o/n") == once
    other = add_setup_cell(once, "other/repo")
    assert len(other.cells) == len(once.cells)
    assert "github.com/other/repo@main" in other.cells[0].source
    assert "github.com/o/n" not in str(other.cells)
    nbformat.validate(once)


def test_add_setup_cell_on_an_old_notebook_format_is_valid():
    nb = _notebook()
    nb.nbformat_minor = 4
    for cell in nb.cells:
        del cell["id"]
    out = add_setup_cell(nb, "o/n")
    assert "id" not in out.cells[0]
    nbformat.validate(out)


def test_remove_setup_cell_restores_the_notebook():
    nb = _notebook()
    assert remove_setup_cell(add_setup_cell(nb, "o/n")) == nb
    assert remove_setup_cell(nb) == nb


def test_add_setup_cell_rejects_a_bad_repository():
    with pytest.raises(RepositoryError):
        add_setup_cell(_notebook(), "not a repository")


def test_book_config_with_and_without_repository():
    config = {"title": "t", "html": {"use_repository_button": False, "extra_footer": "f"},
              "repository": {"url": "https://github.com/stale/old"},
              "launch_buttons": {"colab_url": "https://colab.research.google.com"}}
    original = copy.deepcopy(config)
    with_repo = book_config(config, "o/n")
    assert config == original
    assert with_repo["repository"] == {"url": "https://github.com/o/n", "path_to_book": "",
                                       "branch": launch.NOTEBOOKS_BRANCH}
    assert with_repo["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
    assert with_repo["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert with_repo["html"] == {"use_repository_button": True, "extra_footer": "f"}
    without = book_config(config, "")
    assert "repository" not in without and "launch_buttons" not in without
    assert without["html"]["use_repository_button"] is False
    assert without["html"]["use_issues_button"] is False
    assert without["html"]["extra_footer"] == "f"
    assert book_config(config, None) == without


def test_rewrite_notebooks_adds_then_removes(tmp_path):
    for name in ("01_a.ipynb", "02_b.ipynb"):
        nbformat.write(_notebook(), tmp_path / name)
    (tmp_path / "notes.md").write_text("not a notebook")
    paths = rewrite_notebooks(tmp_path, "o/n")
    assert [p.name for p in paths] == ["01_a.ipynb", "02_b.ipynb"]
    for path in paths:
        assert nbformat.read(path, as_version=4).cells[0].metadata["tags"][1] == SETUP_TAG
    rewrite_notebooks(tmp_path, "")
    for path in paths:
        assert nbformat.read(path, as_version=4) == _notebook_without_ids(path)


def _notebook_without_ids(path):
    # the written notebook equals a fresh one up to the random cell ids
    nb, fresh = nbformat.read(path, as_version=4), _notebook()
    for a, b in zip(nb.cells, fresh.cells, strict=True):
        b["id"] = a["id"]
    return fresh


def test_rewrite_notebooks_checks_the_repository_before_touching_files(tmp_path):
    nbformat.write(_notebook(), tmp_path / "01.ipynb")
    before = (tmp_path / "01.ipynb").read_bytes()
    with pytest.raises(RepositoryError):
        rewrite_notebooks(tmp_path, "bad")
    assert (tmp_path / "01.ipynb").read_bytes() == before


def test_cli_writes_notebooks_and_config(tmp_path):
    nbformat.write(_notebook(), tmp_path / "01.ipynb")
    (tmp_path / "_config.yml").write_text("title: T\nhtml:\n  use_repository_button: false\n")
    out = tmp_path / "_build" / "_config.launch.yml"
    assert cli.main(["book", str(tmp_path), "--repository", "o/n", "--config",
                     str(tmp_path / "_config.yml"), "--write-config", str(out)]) == 0
    config = yaml.safe_load(out.read_text())
    assert config["title"] == "T" and config["repository"]["url"] == "https://github.com/o/n"
    assert SETUP_TAG in nbformat.read(tmp_path / "01.ipynb", as_version=4).cells[0].metadata.tags


def test_cli_bad_repository_is_one_error_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pcm", "book", str(tmp_path),
                           "--repository", "https://github.com/o/n"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("pcm: error: BOOK_REPOSITORY must be")
    assert "owner/name" in lines[0] and "'https://github.com/o/n'" in lines[0]


@pytest.mark.parametrize("case", ["missing folder", "yaml error", "missing config"])
def test_cli_other_errors_are_one_line(tmp_path, capsys, case):
    (tmp_path / "nb").mkdir()
    folder, config = tmp_path / "nb", tmp_path / "_config.yml"
    if case == "missing folder":
        folder = tmp_path / "nope"
        config.write_text("title: T\n")
    elif case == "yaml error":
        config.write_text("title: [unclosed\nhtml: x\n")
    args = ["book", str(folder), "--repository", "o/n", "--config", str(config),
            "--write-config", str(tmp_path / "out.yml")]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pcm: error: "), err
    assert not (tmp_path / "out.yml").exists()


def test_sphinx_extension_drops_thebe_only_when_thebe_is_off():
    def script(filename, body=""):
        return SimpleNamespace(filename=filename, attributes={"body": body} if body else {})

    scripts = [script("_static/jquery.js"),
               script(None, 'const THEBE_JS_URL = "https://unpkg.com/thebe@0.8.2/lib/index.js"'),
               script("_static/sphinx-thebe.js"), script("mathjax/tex-chtml.js")]
    for thebe, kept in ((False, ["_static/jquery.js", "mathjax/tex-chtml.js"]),
                        (True, [s.filename for s in scripts])):
        app = SimpleNamespace(config=SimpleNamespace(
            html_theme_options={"launch_buttons": {"thebe": thebe}}))
        context = {"script_files": list(scripts)}
        launch._drop_thebe_scripts(app, "page", "page.html", context, None)
        assert [s.filename for s in context["script_files"]] == kept


def test_docstring_absolute_values_stay_text_for_autodoc():
    lines = ["mean |SHAP| on non-drivers, ``|IG|`` as a literal", "| a | b |", "x |c|d"]
    launch._absolute_values_as_text(None, "function", "f", None, None, lines)
    assert lines == [r"mean \|SHAP\| on non-drivers, ``|IG|`` as a literal", "| a | b |",
                     "x |c|d"]
