"""The built book as a reader sees it: offline, in a browser, with honest buttons.

A small book is built with ``make html`` (the real target, ``execute_notebooks: off``)
from the book's chapters and the ``ci`` reference notebooks in ``tests/notebooks``.
Those notebooks carry no images (``tests/refresh_notebooks.py`` strips them), so each
``<Figure ...>`` output gets a small stand-in PNG: the image path through myst-nb,
``_images/`` and the page is the one the real figures take.

The browser test opens every page in headless Chromium (Debian's ``chromium``; the
Makefile installs it where apt-get is available, otherwise the test is skipped) with
the network disabled, and checks that every equation was typeset by MathJax, every
image loaded, every internal link resolves and no page shows an error.

The pages are also read as a reader reads them (``test_pages_read_true``): no table is
wider than its column, no file name is turned into a web link, no phrase speaks of the
project's history, and no number that the run does not produce is typed into the text.
``PCM_BOOK_HTML=_build/html`` points those checks at a full book built by ``make book``
instead of the small one.
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

from pcm.book.launch import NOTEBOOKS_BRANCH, SETUP_TAG
from pcm.experiments.chapter import NOTEBOOK as EXPERIMENTS
from pcm.online.runner import NOTEBOOK as ONLINE
from pcm.params.presets import parameters_markdown

#: Book builds and the browser: make test runs them, make test-fast does not.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "tests" / "notebooks").glob("*.ipynb"))
REPOSITORY = "octo-org/pcm-book"

#: What must not appear in any page: CDN hosts and scripts or stylesheets from the web.
CDN = re.compile(r"cdn\.jsdelivr|unpkg\.com|cdnjs|mathjax@|googleapis|"
                 r"<script[^>]*\ssrc=\"(?:https?:)?//|<link[^>]*\shref=\"(?:https?:)?//")
#: Phrases about the project's own history (how the book came about), not about the method.
HISTORY = re.compile(r"\bthe issue (?:that|which)\b|\bthis change\b|\bearlier rule\b|"
                     r"\bscience notes\b|\bduring development\b|\bdid not fit the time\b|"
                     r"\bthe book's earlier\b|"
                     r"\b(?:measured|run) (?:on [^.]{0,40})?in (?:January|February|March|April|"
                     r"May|June|July|August|September|October|November|December) \d{4}",
                     re.IGNORECASE)
#: Numbers of other runs typed into the text (measured once, not produced by this run):
#: each figure below stood in the book without the run that built it.
FOREIGN_NUMBERS = (
    "0.81 (0.80–0.82)", "0.885–0.902", "10 min 12 s", "ratio 9.4", "52.9 s", "498.9 s",
    "0.3904", "238 h", "516 h", "ratio 2.2", "1.00 / 0.11 / 0.16", "0.21 / 0.36 / 0.22",
    "0.20 / 0.58 / 0.27", "about 83 %", "0.75–0.95", "one pre-masking run: 5",
    "share 0.25 gave 0.91",
)
#: A float printed at full precision (``(325, 51.63473615900148)``): not formatted for a reader.
RAW_FLOAT = re.compile(r"\d\.\d{9,}")
#: A score of magnitude above 1e3 (an R² over entries that barely vary): the book prints
#: such values as "< -1" or leaves them out.
HUGE_NEGATIVE = re.compile(r"(?<![\w.])[-\u2212]\d{4,}(?:\.\d+)?(?![\d,])|"
                           r"(?<![\w.])[-\u2212]\d(?:\.\d+)?e\+?(?:0?[3-9]|[1-9]\d)\b")
#: A file name auto-linked as a web address (``train.nc`` -> ``http://train.nc``).
FILE_LINK = re.compile(r'href="https?://[^"/]*\.(?:nc|yml|yaml|json|csv|ipynb|keras)/?"')


@pytest.fixture(scope="module")
def built_html(request) -> Path:
    """The HTML to read: ``PCM_BOOK_HTML`` (a full ``make book``) or the small book."""
    given = os.environ.get("PCM_BOOK_HTML")
    return Path(given).resolve() if given else request.getfixturevalue("book")["html"]


class _Text(HTMLParser):
    """The text of a page as a reader sees it (no scripts, styles or hidden sources)."""

    SKIP = {"script", "style", "noscript", "template"}

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        self._skip += tag in self.SKIP

    def handle_endtag(self, tag):
        self._skip -= tag in self.SKIP and self._skip > 0

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def page_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return re.sub(r"\s+", " ", " ".join(parser.parts))


def reading_problems(html_dir: Path) -> list[str]:
    """Every place where a built page links a file name to the web, speaks of the
    project's history, prints a raw float or states a number of another run."""
    problems = []
    for page in _pages(html_dir):
        name = str(page.relative_to(html_dir))
        html = page.read_text()
        text = page_text(html)
        problems += [f"{name}: file name linked to the web: {m.group()}"
                     for m in FILE_LINK.finditer(html)]
        problems += [f"{name}: history phrase: ...{text[max(0, m.start() - 40):m.end() + 20]}..."
                     for m in HISTORY.finditer(text)]
        problems += [f"{name}: raw float: ...{text[max(0, m.start() - 30):m.end()]}..."
                     for m in RAW_FLOAT.finditer(text)]
        problems += [f"{name}: number of another run typed into the text: {n!r}"
                     for n in FOREIGN_NUMBERS if n in text]
        problems += [f"{name}: score of magnitude above 1e3: "
                     f"...{text[max(0, m.start() - 30):m.end()]}"
                     for m in HUGE_NEGATIVE.finditer(text)]
    return problems


def test_pages_read_true(built_html):
    problems = reading_problems(built_html)
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)


def test_the_reading_checks_catch_what_they_look_for(tmp_path):
    page = tmp_path / "book" / "p.html"
    page.parent.mkdir()
    page.write_text('<p>writes <a href="http://train.nc">train.nc</a>; as the issue that '
                    "asked for it says, (325, 51.63473615900148) and a ratio 9.4; R² "
                    "-5545.5 and -2.8e+14.</p><script>this change</script>")
    found = reading_problems(tmp_path)
    assert len(found) == 6, found
    assert [f.split(": ")[1] for f in found] == [
        "file name linked to the web", "history phrase", "raw float",
        "number of another run typed into the text", "score of magnitude above 1e3",
        "score of magnitude above 1e3"]
    page.write_text("<p>writes <code>train.nc</code>; R² 0.812, -0.93, &lt; -1, -180° "
                    "longitude, 10,091,520 samples, 1544.3 s.</p>")
    assert reading_problems(tmp_path) == []


#: What no page may contain without BOOK_REPOSITORY: buttons and links to a repository.
REPOSITORY_TRACES = re.compile(r"github\.com/|mybinder\.org|colab\.research|binder-examples|"
                               r"btn-source-repository|launch-binder|launch-colab|"
                               r"x-thebe-config|executablebooks")


def _figure_png(label: str) -> str:
    """A small PNG (base64) standing in for a figure the reference notebooks dropped."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 1.2), dpi=50)
    fig.text(0.5, 0.5, f"stand-in for {label}", ha="center", va="center")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode()


def _with_figures(nb: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, int]:
    count = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            text = output.get("data", {}).get("text/plain", "")
            if output.get("output_type") == "display_data" and text.startswith("<Figure"):
                output["data"]["image/png"] = _figure_png(text)
                count += 1
    return nb, count


def make_mini_book(src: Path) -> int:
    """Copy the book skeleton, the chapters and the reference notebooks into ``src``.

    Returns the number of figures (stand-in images) in the notebooks.
    """
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "_static", src / "_static")
    notebooks = src / "book" / "notebooks"
    notebooks.mkdir(parents=True)
    for path in [*(ROOT / "book").glob("*.md"), ROOT / "book" / "references.bib"]:
        shutil.copy(path, src / "book" / path.name)
    figures = 0
    for path in NOTEBOOKS:
        nb, count = _with_figures(nbformat.read(path, as_version=4))
        nbformat.write(nb, notebooks / path.name)
        figures += count
    shutil.copy(EXPERIMENTS, notebooks / EXPERIMENTS.name)  # the chapter's source, unexecuted
    shutil.copy(ONLINE, notebooks / ONLINE.name)  # likewise
    (notebooks / "claims_table.md").write_text(
        "| the paper's claim | measured | this run | verdict |\n|---|---|---|---|\n"
        "| skill like unconstrained networks | mean control R² | 0.86 vs 0.85 | holds |\n")
    (notebooks / "results_tables.md").write_text(
        "| output | unconstrained | pcmasking |\n|---|---|---|\n| PRECT | 0.81 | 0.80 |\n")
    (notebooks / "parameters_table.md").write_text(parameters_markdown())
    return figures


def make_html(src: Path, repository: str = "") -> subprocess.CompletedProcess:
    """Run the Makefile's ``html`` target on the book in ``src`` (no install step)."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("no `make` on PATH: the book is built by `make html`")
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    return subprocess.run(
        [make, "--no-print-directory", "-C", str(ROOT), "-o", ".venv/.installed-stamp", "html",
         f"BOOK_SRC={src}", f"BIN={Path(sys.executable).parent}",
         f"BOOK_REPOSITORY={repository}"],
        capture_output=True, text=True, timeout=600, env=env)


def _build(tmp_path_factory: pytest.TempPathFactory, name: str, repository: str) -> dict:
    src = tmp_path_factory.mktemp(name)
    figures = make_mini_book(src)
    start = time.perf_counter()
    proc = make_html(src, repository)
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # `make html` executed the real-data chapter (published masks) itself: its figures too
    chapter = nbformat.read(src / "book" / "notebooks" / "07_real_data.ipynb", as_version=4)
    figures += sum("image/png" in o.get("data", {}) for c in chapter.cells
                   for o in c.get("outputs", []))
    return {"src": src, "html": src / "_build" / "html", "figures": figures,
            "seconds": seconds}


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    """The mini book built without BOOK_REPOSITORY."""
    return _build(tmp_path_factory, "book", "")


@pytest.fixture(scope="module")
def repository_book(tmp_path_factory):
    """The mini book built with BOOK_REPOSITORY=octo-org/pcm-book."""
    return _build(tmp_path_factory, "repobook", REPOSITORY)


def _pages(html: Path) -> list[Path]:
    return sorted(p for p in html.rglob("*.html")
                  if not p.relative_to(html).parts[0].startswith(("_static", "_images")))


# -- the built HTML, read as text ---------------------------------------------------------


def test_no_page_names_a_cdn_or_a_repository(book):
    pages = _pages(book["html"])
    assert len(pages) >= len(NOTEBOOKS) + 6, pages
    cdn, repository = [], []
    for page in pages:
        text = page.read_text()
        name = str(page.relative_to(book["html"]))
        cdn += [f"{name}: {m.group()}" for m in CDN.finditer(text)]
        repository += [f"{name}: {m.group()}" for m in REPOSITORY_TRACES.finditer(text)]
    assert not cdn, f"pages name a CDN: {cdn[:10]}"
    assert not repository, f"pages name a repository without BOOK_REPOSITORY: {repository[:10]}"
    # the downloadable notebooks carry no setup cell either
    for path in (book["html"] / "_sources" / "book" / "notebooks").glob("*.ipynb"):
        assert SETUP_TAG not in path.read_text(), path.name
    # MathJax is the bundled copy
    method = (book["html"] / "book" / "method.html").read_text()
    assert 'src="../_static/mathjax/tex-chtml.js"' in method
    assert (book["html"] / "_static" / "mathjax" / "tex-chtml.js").stat().st_size > 100_000
    assert list((book["html"] / "_static" / "mathjax" / "output" / "chtml" / "fonts").rglob(
        "*.woff"))


def test_with_book_repository_buttons_and_setup_cells(repository_book):
    html = repository_book["html"]
    url = f"https://github.com/{REPOSITORY}"
    for page in _pages(html):
        text = page.read_text()
        assert CDN.search(text) is None, f"{page.name} names a CDN"
        assert "x-thebe-config" not in text and "binder-examples" not in text, page
        if page.parent.name == "notebooks":
            assert "btn-source-repository-button" in text and f'href="{url}"' in text
            nb = f"book/notebooks/{page.stem}.ipynb"
            # the buttons open the executed notebooks on the branch the deploy publishes
            branch = NOTEBOOKS_BRANCH
            assert f"https://mybinder.org/v2/gh/{REPOSITORY}/{branch}?urlpath=lab/tree/{nb}" in text
            assert f"https://colab.research.google.com/github/{REPOSITORY}/blob/{branch}/{nb}" \
                in text
            assert "git+" not in text and SETUP_TAG not in text  # setup cell not shown
    for path in (repository_book["src"] / "book" / "notebooks").glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        assert SETUP_TAG in nb.cells[0].metadata["tags"], path.name
        assert f"git+{url}@main" in nb.cells[0].source
        assert sum(SETUP_TAG in c.metadata.get("tags", []) for c in nb.cells) == 1


def test_bad_book_repository_is_one_clear_error(tmp_path):
    make_mini_book(tmp_path)
    before = (tmp_path / "book" / "notebooks" / "01_data.ipynb").read_bytes()
    proc = make_html(tmp_path, "https://github.com/octo-org/pcm-book")
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if "pcm: error" in line]
    assert len(errors) == 1 and "BOOK_REPOSITORY" in errors[0] and "owner/name" in errors[0]
    assert (tmp_path / "book" / "notebooks" / "01_data.ipynb").read_bytes() == before
    assert not (tmp_path / "_build" / "html").exists()


# -- the built HTML, in a browser without network -----------------------------------------

CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions",
    # the network is off: every request to a host goes to a closed port, no name resolves
    "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
    "--host-resolver-rules=MAP * ~NOTFOUND",
]

# Runs in the page once it has loaded: waits for MathJax and the images, then reports.
INSPECT_PAGE = """async () => {
  if (document.querySelector('.math')) {
    for (let i = 0; i < 40 && !(window.MathJax && MathJax.startup && MathJax.startup.promise);
         i++) await new Promise(r => setTimeout(r, 50));
    if (window.MathJax && MathJax.startup && MathJax.startup.promise)
      await MathJax.startup.promise;
  }
  const images = [...document.images];
  images.forEach(img => { img.loading = 'eager'; });
  await Promise.all(images.map(img => img.decode().catch(() => null)));
  const prose = document.body.cloneNode(true);
  prose.querySelectorAll('pre, code, script, style, mjx-container, .math')
       .forEach(e => e.remove());
  const math = [...document.querySelectorAll('.math')];
  const errorSelector = '.output.error, .output.traceback, .output.stderr, .stderr, ' +
                        '.system-message, .problematic';
  return {
    mathjax: Boolean(window.MathJax && MathJax.version),
    math: math.length,
    rendered: math.filter(e => e.querySelector('mjx-container')).length,
    mathErrors: document.querySelectorAll('mjx-merror').length,
    prose: prose.textContent,
    images: images.map(i => ({src: i.currentSrc || i.src,
                              ok: i.complete && i.naturalWidth > 0})),
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
    ids: [...document.querySelectorAll('[id], a[name]')].map(e => e.id || e.name),
    errors: [...document.querySelectorAll(errorSelector)].map(e => e.outerHTML.slice(0, 300)),
    text: document.body.innerText,
  };
}"""

REDIRECT = re.compile(r'^<meta http-equiv="Refresh" content="0; url=([^"]+)" />\s*$')
RAW_TEX = re.compile(r"\\[()\[\]]|\$\$|\\(?:begin|frac|mathbb|mathrm|sum|lVert)\b")


def _chromium() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


def _check_links(pages: dict[Path, dict], html: Path) -> tuple[int, list[str]]:
    ids = {page: set(info["ids"]) for page, info in pages.items()}
    checked, broken = 0, []
    for page, info in pages.items():
        for href in info["links"]:
            parts = urlsplit(href)
            if parts.scheme != "file":
                continue
            target = Path(unquote(parts.path))
            if target.is_dir():
                target = target / "index.html"
            checked += 1
            where = f"{page.relative_to(html)} -> {href}"
            if not target.is_file():
                broken.append(f"{where}: no such file")
            elif parts.fragment and target.suffix == ".html":
                known = ids.get(target)
                if known is None:
                    known = set(re.findall(r'\sid="([^"]+)"', target.read_text()))
                if unquote(parts.fragment) not in known:
                    broken.append(f"{where}: no anchor #{parts.fragment}")
    return checked, broken


def test_every_page_renders_offline_in_chromium(book, capsys):
    chromium = _chromium()
    if chromium is None:
        pytest.skip("no Chromium: install Debian's `chromium` package (`make test` does it "
                    "where apt-get is available) or set CHROMIUM=/path/to/chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    html = book["html"]
    start = time.perf_counter()
    pages: dict[Path, dict] = {}
    outside: list[str] = []
    failed: list[str] = []
    js_errors: list[str] = []
    redirects: dict[Path, Path] = {}
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True,
                                     args=CHROMIUM_FLAGS, chromium_sandbox=False)
        context = browser.new_context(offline=True)  # and DevTools network emulation: offline
        page = context.new_page()
        page.on("request", lambda r: outside.append(r.url)
                if not r.url.startswith(("file:", "data:", "blob:", "about:")) else None)
        page.on("requestfailed", lambda r: failed.append(f"{r.url} ({r.failure})"))
        page.on("pageerror", lambda e: js_errors.append(str(e)))
        for path in _pages(html):
            redirect = REDIRECT.search(path.read_text())
            if redirect:  # jupyter-book's index.html: only a redirect to the first chapter
                redirects[path] = path.parent / redirect.group(1)
                continue
            page.goto(path.as_uri(), wait_until="load", timeout=30_000)
            pages[path] = page.evaluate(INSPECT_PAGE)
        # what the pages asked for and what failed; the probe below is not counted
        asked, failures = list(outside), list(failed)
        # the network is really off: a fetch from the page fails
        probe = page.evaluate("() => fetch('https://cdn.jsdelivr.net/npm/mathjax@3/es5/"
                              "tex-chtml.js').then(r => 'status ' + r.status, e => 'failed')")
        browser.close()
    seconds = time.perf_counter() - start
    links, broken = _check_links(pages, html)

    report = [f"browser check of the book, network disabled (Chromium {chromium}): "
              f"{len(pages)} pages"]
    for path, info in pages.items():
        loaded = sum(i["ok"] for i in info["images"])
        report.append(f"  {str(path.relative_to(html)):50s} "
                      f"{info['rendered']:3d}/{info['math']:<3d} equations rendered "
                      f"{loaded:2d}/{len(info['images']):<2d} images loaded")
    for path, target in redirects.items():
        report.append(f"  {str(path.relative_to(html)):50s} redirects to "
                      f"{target.relative_to(html)}")
    total_math = sum(i["rendered"] for i in pages.values())
    total_images = sum(sum(x["ok"] for x in i["images"]) for i in pages.values())
    report.append(f"  total: {len(pages)} pages, {total_math} equations rendered by MathJax, "
                  f"{total_images} images loaded, {links} internal links resolved, "
                  f"{len(asked)} requests off the machine; build {book['seconds']:.1f} s, "
                  f"browser {seconds:.1f} s")
    with capsys.disabled():
        print("\n" + "\n".join(report))

    assert probe == "failed", f"the network is not disabled: {probe}"
    assert not asked, f"pages asked the network for {sorted(set(asked))}"
    assert not failures, failures
    assert not js_errors, js_errors
    assert not broken, broken
    assert all(target in pages for target in redirects.values()), redirects
    assert pages[html / "book" / "method.html"]["math"] >= 10
    # the figures of the chapters (Sphinx's own index pages draw icons of their own)
    chapter_images = sum(sum(x["ok"] for x in info["images"]) for path, info in pages.items()
                         if path.is_relative_to(html / "book"))
    assert chapter_images == book["figures"] > 0
    for path, info in pages.items():
        name = path.relative_to(html)
        if info["math"]:
            assert info["mathjax"], f"{name}: MathJax did not load"
        assert info["rendered"] == info["math"], f"{name}: equations left to MathJax unrendered"
        assert not info["mathErrors"], f"{name}: MathJax reports {info['mathErrors']} TeX errors"
        raw = RAW_TEX.search(info["prose"])
        assert not raw, f"{name}: raw LaTeX in the page: ...{raw.group()}..."
        bad = [i["src"] for i in info["images"] if not i["ok"]]
        assert not bad, f"{name}: images not loaded: {bad}"
        assert not info["errors"], f"{name}: error output: {info['errors']}"
        assert "Traceback (most recent call last)" not in info["text"], name


# Runs in a loaded page: every table wider than the column that holds it (cut off, or
# only readable by scrolling sideways).
CLIPPED_TABLES = """() => [...document.querySelectorAll('.bd-article table')].filter(t => {
  const box = t.parentElement;
  return Math.max(t.scrollWidth, t.getBoundingClientRect().width) > box.clientWidth + 1 ||
         t.scrollWidth > t.clientWidth + 1;
}).map(t => t.innerText.replace(/\\s+/g, ' ').slice(0, 70) +
            ` (${Math.round(t.scrollWidth)} px in ${t.parentElement.clientWidth} px)`)"""


def test_wide_tables_fit_their_column(built_html):
    chromium = _chromium()
    if chromium is None:
        pytest.skip("no Chromium: install Debian's `chromium` package or set CHROMIUM")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    clipped: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True,
                                     args=CHROMIUM_FLAGS, chromium_sandbox=False)
        # the book's width on a laptop screen: the text column beside the navigation
        page = browser.new_context(offline=True, viewport={"width": 1280, "height": 800}
                                   ).new_page()
        for path in _pages(built_html):
            if REDIRECT.search(path.read_text()):
                continue
            page.goto(path.as_uri(), wait_until="load", timeout=30_000)
            clipped += [f"{path.relative_to(built_html)}: {t}"
                        for t in page.evaluate(CLIPPED_TABLES)]
        browser.close()
    assert not clipped, f"{len(clipped)} tables wider than their column:\n" + "\n".join(clipped)
