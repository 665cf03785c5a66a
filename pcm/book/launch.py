"""Launch buttons of the book: honest or absent.

The book shows a repository button and Binder/Colab launch buttons only when it is
built for a real repository (``make html BOOK_REPOSITORY=owner/name``). Then

* :func:`book_config` adds the repository and launch-button settings to the book's
  ``_config.yml`` (which carries none), for ``jupyter-book build --config``;
* :func:`add_setup_cell` puts a first cell into each executed notebook that installs
  ``pcm`` from that repository when ``pcm`` is not importable (a fresh Colab or
  Binder kernel). The cell is tagged ``remove-cell``, so the book does not show it.

Without a repository, :func:`remove_setup_cell` takes such a cell out again, so no
page and no downloadable notebook names a repository. :func:`setup` is a Sphinx
extension (listed in ``_config.yml``) that drops sphinx-thebe's scripts, which name a
CDN, from every page while live code (``launch_buttons.thebe``) is off.

Command line, used by ``make html`` (:func:`prepare_book`)::

    pcm book book/notebooks --repository owner/name \\
        --config _config.yml --write-config _build/_config.launch.yml

An empty ``--repository`` (``BOOK_REPOSITORY`` unset) means "no repository".
"""

from __future__ import annotations

import copy
import errno
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import nbformat
import yaml

from pcm.errors import PCMError

__all__ = ["BRANCH", "NOTEBOOKS_BRANCH", "SETUP_TAG", "RepositoryError", "check_repository", "repository_url",
           "setup_cell", "add_setup_cell", "remove_setup_cell", "book_config",
           "rewrite_notebooks", "setup", "prepare_book", "BookConfigError"]

#: Branch that the setup cell installs ``pcm`` from.
BRANCH = "main"

#: Branch that the Binder and Colab buttons open: the deploy (``.github/workflows/pages.yml``)
#: force-pushes there the tree of ``main`` with the executed ``book/notebooks/*.ipynb``, which
#: ``main`` does not track, so every button opens a notebook that exists.
NOTEBOOKS_BRANCH = "book-notebooks"

#: Tag that marks the setup cell (with ``remove-cell``, which hides it in the book).
SETUP_TAG = "pcm-launch-setup"

#: Settings added to the book configuration when a repository is given.
LAUNCH_BUTTONS = {
    "notebook_interface": "jupyterlab",
    "binderhub_url": "https://mybinder.org",
    "colab_url": "https://colab.research.google.com",
}

# GitHub: owner 1-39 characters (letters, digits, inner hyphens), name letters, digits, ._-
_REPOSITORY = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,37}[A-Za-z0-9])?/[A-Za-z0-9._-]+")


class RepositoryError(PCMError, ValueError):
    """``BOOK_REPOSITORY`` is not of the form ``owner/name``."""


class BookConfigError(PCMError, ValueError):
    """The book's configuration cannot be read, or its options do not go together."""


def check_repository(repository: str) -> str:
    """Validate a GitHub repository given as ``owner/name``.

    Parameters
    ----------
    repository : str
        For example ``octocat/pcmasking-book``.

    Returns
    -------
    str
        ``repository`` without surrounding white space.

    Raises
    ------
    RepositoryError
        If it is not ``owner/name`` (a URL, a missing owner, a ``.git`` suffix, ...).
    """
    value = repository.strip()
    if (not _REPOSITORY.fullmatch(value) or value.endswith(".git")
            or value.split("/")[1] in {".", ".."}):
        raise RepositoryError(
            f"BOOK_REPOSITORY must be a GitHub repository as owner/name "
            f"(e.g. octocat/pcmasking-book), got {repository!r}")
    return value


def repository_url(repository: str) -> str:
    """The web address of a GitHub repository ``owner/name``.

    Parameters
    ----------
    repository : str
        ``owner/name``.

    Returns
    -------
    str
        ``https://github.com/owner/name``.
    """
    return f"https://github.com/{check_repository(repository)}"


def setup_cell(repository: str) -> nbformat.NotebookNode:
    """The first cell of a launched notebook: install ``pcm`` unless it is importable.

    Parameters
    ----------
    repository : str
        ``owner/name`` of the GitHub repository that holds the ``pcm`` package.

    Returns
    -------
    nbformat.NotebookNode
        A code cell, without outputs, tagged ``remove-cell`` (hidden in the book) and
        :data:`SETUP_TAG`. It runs ``pip install "pcm @ git+URL@main"`` only when
        ``import pcm`` fails, so it does nothing where ``pcm`` is installed.
    """
    url = repository_url(repository)
    source = (
        f"# Setup for Colab and Binder: install pcm from {url} unless it is installed.\n"
        "import importlib\n"
        "import subprocess\n"
        "import sys\n"
        "\n"
        "try:\n"
        "    import pcm  # noqa: F401\n"
        "except ImportError:\n"
        "    subprocess.check_call([sys.executable, \"-m\", \"pip\", \"install\", \"--quiet\",\n"
        f"                           \"pcm @ git+{url}@{BRANCH}\"])\n"
        "    importlib.invalidate_caches()\n"
        "    import pcm  # noqa: F401"
    )
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["remove-cell", SETUP_TAG]})
    cell["id"] = SETUP_TAG
    return cell


def _is_setup_cell(cell: Mapping[str, Any]) -> bool:
    return SETUP_TAG in cell.get("metadata", {}).get("tags", [])


def remove_setup_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of a notebook without the setup cell of :func:`setup_cell`.

    Parameters
    ----------
    nb : nbformat.NotebookNode
        A notebook (not modified).

    Returns
    -------
    nbformat.NotebookNode
        The notebook without any cell tagged :data:`SETUP_TAG`.
    """
    out = copy.deepcopy(nb)
    out.cells = [cell for cell in out.cells if not _is_setup_cell(cell)]
    return out


def add_setup_cell(nb: nbformat.NotebookNode, repository: str) -> nbformat.NotebookNode:
    """A copy of a notebook whose first cell installs ``pcm`` from ``repository``.

    Idempotent: a setup cell already present (for this or another repository) is
    replaced, so there is always exactly one, first.

    Parameters
    ----------
    nb : nbformat.NotebookNode
        A notebook (not modified).
    repository : str
        ``owner/name`` of the GitHub repository.

    Returns
    -------
    nbformat.NotebookNode
        The notebook with :func:`setup_cell` as its first cell.

    Raises
    ------
    RepositoryError
        If ``repository`` is not ``owner/name``.
    """
    cell = setup_cell(repository)
    out = remove_setup_cell(nb)
    if (out.get("nbformat", 4), out.get("nbformat_minor", 0)) < (4, 5):
        del cell["id"]  # cell ids exist from nbformat 4.5 on
    out.cells.insert(0, cell)
    return out


def _merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def book_config(config: Mapping[str, Any], repository: str | None) -> dict[str, Any]:
    """The Jupyter Book configuration with repository and launch buttons, or without.

    Parameters
    ----------
    config : mapping
        The book's ``_config.yml``, as loaded by ``yaml.safe_load`` (not modified).
    repository : str or None
        ``owner/name``; ``None`` or an empty string for a book without buttons.

    Returns
    -------
    dict
        A copy of ``config``. With a repository, ``repository.url`` is
        ``https://github.com/owner/name`` (branch :data:`NOTEBOOKS_BRANCH`, where the deploy
        publishes the executed notebooks), Binder and Colab
        launch buttons and the repository button are on. Without, any
        ``repository`` and ``launch_buttons`` settings are removed and the
        repository, issues and edit buttons are off.

    Raises
    ------
    RepositoryError
        If ``repository`` is given but not ``owner/name``.
    """
    out = copy.deepcopy(dict(config))
    if repository and repository.strip():
        return _merge(out, {
            "repository": {"url": repository_url(repository), "path_to_book": "",
                           "branch": NOTEBOOKS_BRANCH},
            "launch_buttons": LAUNCH_BUTTONS,
            "html": {"use_repository_button": True},
        })
    out.pop("repository", None)
    out.pop("launch_buttons", None)
    html = out.setdefault("html", {})
    for button in ("use_repository_button", "use_issues_button", "use_edit_page_button"):
        html[button] = False
    return out


def rewrite_notebooks(folder: str | Path, repository: str | None) -> list[Path]:
    """Add (or, without a repository, remove) the setup cell in every notebook of a folder.

    Parameters
    ----------
    folder : path-like
        Folder with the executed notebooks of the book (``book/notebooks``); the
        ``*.ipynb`` files directly inside it are rewritten in place.
    repository : str or None
        ``owner/name``; ``None`` or empty to remove setup cells.

    Returns
    -------
    list of Path
        The notebooks rewritten, sorted.

    Raises
    ------
    RepositoryError
        If ``repository`` is given but not ``owner/name`` (checked before any file
        is touched).
    FileNotFoundError
        If ``folder`` is not a directory.
    """
    folder = Path(folder)
    if repository and repository.strip():
        repository = check_repository(repository)
    else:
        repository = None
    if not folder.is_dir():
        raise FileNotFoundError(errno.ENOENT, "no such folder of executed notebooks",
                                str(folder))
    paths = sorted(folder.glob("*.ipynb"))
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        new = add_setup_cell(nb, repository) if repository else remove_setup_cell(nb)
        if new != nb:
            nbformat.write(new, path)
    return paths


# -- Sphinx extension ----------------------------------------------------------------------

def _is_thebe_script(script: Any) -> bool:
    filename = str(getattr(script, "filename", "") or "")
    body = str(getattr(script, "attributes", {}).get("body", ""))
    return filename.endswith("sphinx-thebe.js") or "THEBE_JS_URL" in body or "thebe@" in filename


def _thebe_on(app: Any) -> bool:
    launch = (app.config.html_theme_options or {}).get("launch_buttons") or {}
    return bool(launch.get("thebe"))


def _drop_thebe_scripts(app: Any, pagename: str, templatename: str,
                        context: dict[str, Any], doctree: Any) -> None:
    if not _thebe_on(app) and "script_files" in context:
        context["script_files"] = [s for s in context["script_files"]
                                   if not _is_thebe_script(s)]


def _drop_thebe_config(app: Any, doctree: Any, docname: str) -> None:
    # sphinx-thebe appends a <script type="text/x-thebe-config"> naming a Binder
    # repository (binder-examples/... by default) and a kernelName script to every page.
    from docutils import nodes

    if _thebe_on(app):
        return
    for node in list(doctree.findall(nodes.raw)):
        text = node.astext()
        if "text/x-thebe-config" in text or text.startswith("<script>kernelName"):
            node.parent.remove(node)


#: ``|SHAP|`` outside inline literals: in a docstring an absolute value, in
#: reStructuredText a substitution reference (book/api.md would fail to build).
_ABSOLUTE_VALUE = re.compile(r"(?<![\\\w|])\|(\w+)\|(?![\w|])")
_INLINE_LITERAL = re.compile(r"(``.+?``)")


def _absolute_values_as_text(app: Any, what: str, name: str, obj: Any, options: Any,
                             lines: list[str]) -> None:
    """autodoc-process-docstring: ``|x|`` stays text (escaped), inline literals untouched."""
    for i, line in enumerate(lines):
        parts = _INLINE_LITERAL.split(line)
        lines[i] = "".join(part if k % 2 else _ABSOLUTE_VALUE.sub(r"\\|\1\\|", part)
                           for k, part in enumerate(parts))


def setup(app: Any) -> dict[str, Any]:
    """Sphinx extension: no thebe script or configuration unless thebe is on.

    sphinx-thebe, which Jupyter Book always loads, puts into every page a script naming
    ``https://unpkg.com/thebe@...`` and a configuration naming a Binder repository.
    While ``launch_buttons.thebe`` is off (always, in this book) both are removed.
    For the API reference (``book/api.md``, autodoc), an absolute value written ``|x|``
    in a docstring is kept as text.

    Parameters
    ----------
    app : sphinx.application.Sphinx
        The Sphinx application.

    Returns
    -------
    dict
        Extension metadata (safe for parallel reading and writing).
    """
    app.connect("html-page-context", _drop_thebe_scripts)
    app.connect("doctree-resolved", _drop_thebe_config, priority=900)  # after sphinx-thebe
    app.setup_extension("sphinx.ext.autodoc")
    app.connect("autodoc-process-docstring", _absolute_values_as_text)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


# -- the `pcm book` command ------------------------------------------------------------

def prepare_book(notebooks: str | os.PathLike, repository: str = "",
                 config: str | os.PathLike | None = None,
                 write_config: str | os.PathLike | None = None) -> None:
    """``pcm book``: prepare the book's notebooks and the configuration to build with.

    Parameters
    ----------
    notebooks : path
        Folder of executed notebooks (``book/notebooks``); their setup cell is added
        (with ``repository``) or removed.
    repository : str
        GitHub ``owner/name`` (``BOOK_REPOSITORY``); empty: no launch buttons.
    config, write_config : path, optional
        The book's ``_config.yml`` to read, and where to write the configuration with or
        without buttons (both or neither).

    Raises
    ------
    BookConfigError
        ``config`` without ``write_config`` (or the reverse), or a YAML error in it.
    RepositoryError
        ``repository`` is not ``owner/name``.
    """
    if (config is None) != (write_config is None):
        raise BookConfigError("--config and --write-config go together")
    book = None
    if config is not None:
        try:
            book = book_config(yaml.safe_load(Path(config).read_text()) or {}, repository)
        except yaml.YAMLError as exc:
            raise BookConfigError(f"{config}: not valid YAML: "
                                  f"{' '.join(str(exc).split())}") from None
    rewrite_notebooks(Path(notebooks), repository)
    if book is not None and write_config is not None:
        out = Path(write_config)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(yaml.safe_dump(book, sort_keys=False, allow_unicode=True))
