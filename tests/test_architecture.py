"""The layers of ``pcm`` import only downward, and nothing hides a cycle inside a function.

Every ``import`` of every module is read from its source (those inside functions
included). A module may import modules of a lower layer, and of its own layer as
long as the module graph stays acyclic. Imports inside functions are allowed only
for the heavy libraries of :data:`LAZY_IMPORTS`, and in the command line's handlers
(:data:`LAZY_IMPORTERS`); ``docs/architecture.md`` explains the layers.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pcm"

#: The layers, bottom up: a module may import from its own and lower layers only.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("pcm", "pcm.errors", "pcm.io", "pcm.variables", "pcm.book.exercises"),
    ("pcm.data",),
    ("pcm.params.presets",),
    ("pcm.nn", "pcm.analysis"),
    ("pcm.params.config",),
    ("pcm.run.rundir",),
    ("pcm.run.phase",),
    ("pcm.baselines",),
    ("pcm.method",),
    ("pcm.book.pages", "pcm.book.launch", "pcm.run.steps", "pcm.params.run_parameters",
     "pcm.book.real_data"),
    ("pcm.run.pipeline", "pcm.run.dry_run"),
    ("pcm.experiments.sweep", "pcm.experiments.chapter", "pcm.experiments.worlds",
     "pcm.experiments.selection_grid"),
    ("pcm.experiments.chapter_sweeps",),
    ("pcm.online",),
    ("pcm.cli", "pcm.__main__"),
)

#: Libraries that may be imported inside a function, and why: importing them is slow
#: (TensorFlow, and everything that imports it) or they are needed by one rare path.
LAZY_IMPORTS: dict[str, str] = {
    "tensorflow": "seconds to import; only training, prediction and SHAP need it",
    "keras": "imports TensorFlow",
    "pcm.nn.networks": "defines Keras classes, so importing it imports TensorFlow",
    "shap": "imports TensorFlow; only the reference DeepExplainer path",
    "tigramite": "slow import; only causal discovery (and its worker processes)",
    "distributed": "slow import; only the parallel causal discovery and the ClimSim "
                   "converter (dask cluster)",
    "dask": "slow import, with distributed: the configuration of its local workers",
    "papermill": "slow import; only notebook execution",
    "ipykernel": "only the kernel manager of notebook execution",
    "jupyter_client": "only the kernel manager of notebook execution",
    "cartopy": "slow import; only map figures",
    "docutils": "only inside the Sphinx build (the book's launch extension)",
}

#: Modules whose functions may import any module of a lower layer, and why. They are in
#: the top layer, which no other layer may import, so no cycle can hide in their functions
#: (and the cycle test reads those imports too).
LAZY_IMPORTERS: dict[str, str] = {
    "pcm.cli": "each command imports what it runs when it runs: `pcm data climsim` starts "
               "in about 0.5 s instead of the 1.4-2 s that importing every command takes",
}

#: Libraries that starting the command line (``import pcm.cli``) must not import: each
#: command imports them when it runs (the converter's workers are forked from a light
#: process, and ``pcm --help`` answers at once).
NOT_AT_START = ("tensorflow", "keras", "scipy", "matplotlib", "distributed", "tigramite",
                "papermill", "shap")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, bool, int]]:
    """``(imported module, inside a function, line)`` for every import of a module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[str, bool, int]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                found.extend((alias.name, in_function, child.lineno) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                names = [f"{child.module}.{alias.name}" for alias in child.names]
                # "from pcm.data import synthetic" imports the module pcm.data.synthetic
                found.extend((n if _is_module(n) else child.module, in_function, child.lineno)
                             for n in names)
            visit(child, nested)

    visit(tree, False)
    return found


def _is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (PACKAGE.parent / rel.with_suffix(".py")).exists() or \
        (PACKAGE.parent / rel / "__init__.py").exists()


def _layer(module: str) -> int:
    best = None
    for rank, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (rank, len(prefix))
    if best is None:
        raise AssertionError(f"module {module} belongs to no layer of LAYERS")
    return best[0]


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


#: What ``ls pcm/`` shows: the packages that group modules by job, and the few modules
#: every layer uses (docs/architecture.md, "Layers").
TOP_LEVEL = {"packages": {"analysis", "baselines", "book", "data", "experiments", "method", "nn",
                          "online", "params", "run"},
             "modules": {"__init__", "__main__", "cli", "errors", "io", "variables"}}


def test_the_tree_shows_the_layers():
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert packages == TOP_LEVEL["packages"]
    assert modules == TOP_LEVEL["modules"], "a new module at the top of pcm/: put it in its package"
    assert len(modules - {"__init__", "__main__"}) <= 10


def test_the_tests_mirror_the_packages():
    tests = PACKAGE.parent / "tests"
    folders = {p.name for p in tests.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    assert folders - {"notebooks"} <= TOP_LEVEL["packages"], "a test folder that is no package"
    for folder in folders - {"notebooks"}:
        assert list((tests / folder).glob("test_*.py")), folder


def test_every_module_has_a_layer():
    for module in MODULES:
        _layer(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_downward_and_functions_import_only_heavy_libraries(module):
    problems = []
    for name, in_function, line in _imports(MODULES[module]):
        top = name.split(".")[0]
        lazy_allowed = module in LAZY_IMPORTERS or any(
            name == lazy or name.startswith(lazy + ".") for lazy in LAZY_IMPORTS)
        if in_function and not lazy_allowed:
            problems.append(f"line {line}: import of {name} inside a function "
                            "(only the libraries of LAZY_IMPORTS may be imported lazily)")
        if top == "pcm" and name != "pcm" and _layer(name) > _layer(module):
            problems.append(f"line {line}: upward import of {name} (layer {_layer(name)}) "
                            f"from layer {_layer(module)}")
    assert not problems, f"{module}:\n" + "\n".join(problems)


def test_module_graph_has_no_cycle():
    graph = {m: {n for n, _, _ in _imports(p) if n.startswith("pcm.") and n in MODULES and n != m}
             for m, p in MODULES.items()}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_the_checker_sees_upward_and_lazy_imports(tmp_path):
    # the checks above must be able to fail: an upward import and a lazy pcm import
    source = ("from pcm.run.pipeline import run\n\n"
              "def f():\n    from pcm.run.rundir import RunDir\n    return RunDir\n")
    path = tmp_path / "probe.py"
    path.write_text(source)
    found = _imports(path)
    assert ("pcm.run.pipeline", False, 1) in found
    assert ("pcm.run.rundir", True, 4) in found
    assert _layer("pcm.run.pipeline") > _layer("pcm.data.cbrain")


def test_the_command_line_starts_without_heavy_libraries():
    code = ("import json, sys; import pcm.cli; "
            f"print(json.dumps([m for m in {list(NOT_AT_START)!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=PACKAGE.parent)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
