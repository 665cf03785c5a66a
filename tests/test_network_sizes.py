"""Every network is sized by its run's catalogue: SPCAM (94 -> 65) is not assumed.

A ``pcm sweep --preset climsim`` on a tiny made-up ClimSim-layout folder
(:mod:`pcm.data.climsim_sample`, converted by ``pcm data climsim``'s converter) trains
networks of the folder's catalogue, and a source scan keeps every ``StackedMLP`` that
``pcm`` builds sized explicitly.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import xarray as xr  # noqa: E402

from pcm.cli import main  # noqa: E402
from pcm.data.cbrain import file_catalogue  # noqa: E402
from pcm.data.climsim import convert_climsim  # noqa: E402
from pcm.data.climsim_sample import write_climsim_tree  # noqa: E402
from pcm.errors import ParameterError  # noqa: E402
from pcm.nn.saving import load_stacked  # noqa: E402
from pcm.run.rundir import RunDir  # noqa: E402

PACKAGE = Path(__file__).resolve().parents[1] / "pcm"

#: The made-up ClimSim folder: 16 columns, 5 levels (19 inputs, 18 outputs), 12 steps.
N_COL, N_LEV, N_STEPS = 16, 5, 12

#: A sweep point as small as the method allows.
TINY = [
    "hidden_layers=1",
    "hidden_units=4",
    "epochs=2",
    "finetune_epochs=1",
    "batch_size=32",
    "n_thresholds=2",
    "search_epochs=1",
    "shap_background=4",
    "shap_samples=4",
]


def _unsized_networks() -> list[str]:
    """``file:line`` of every ``StackedMLP(...)`` call in ``pcm`` without ``n_inputs=``."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "StackedMLP"
                and not any(k.arg in ("n_inputs", None) for k in node.keywords)
            ):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    return found


def test_every_network_pcm_builds_names_its_inputs():
    assert not _unsized_networks(), "StackedMLP without n_inputs= (default: SPCAM's 94)"


def test_a_manifest_of_climsim_data_names_its_catalogue(tmp_path):
    run = RunDir(tmp_path / "run")
    run.write_manifest({"train": "train.nc"}, source="synthetic")
    assert run.catalogue.name == "spcam"
    with pytest.raises(ParameterError, match="catalogue.*required for climsim data"):
        run.write_manifest({"train": "train.nc"}, source="climsim")


@pytest.fixture(scope="module")
def climsim_dir(tmp_path_factory) -> Path:
    """A converted ClimSim-layout folder (``data.dir`` of the climsim preset)."""
    root = tmp_path_factory.mktemp("climsim")
    src = write_climsim_tree(root / "tree", N_STEPS, n_col=N_COL, n_lev=N_LEV, seed=4)
    convert_climsim(src, root / "data", workers=1, progress=False)
    return root / "data"


@pytest.mark.slow
def test_climsim_sweep_sizes_every_network_from_the_catalogue(climsim_dir, tmp_path, capsys):
    catalogue = file_catalogue(climsim_dir / "train.nc")
    n_in, n_out = catalogue.n_inputs, catalogue.n_outputs
    assert (n_in, n_out) == (3 * N_LEV + 4, 2 * N_LEV + 8)  # not SPCAM's 94 and 65
    out = tmp_path / "sweep"
    sets = [a for s in [f"data.dir={climsim_dir}", *TINY] for a in ("--set", s)]
    assert (
        main(["sweep", "--preset", "climsim", "--grid", "l1=0.1,0.001", "--out", str(out), *sets])
        == 0
    )
    assert f"pre-masking 2 x {n_out} networks as one stack" in capsys.readouterr().out

    (stack,) = (out / "stacks").iterdir()  # both λ in one stack of 2 x n_out networks
    premask = load_stacked(stack / "models" / "premask_stack.keras")
    assert (premask.n_networks, premask.n_inputs) == (2 * n_out, n_in)
    for point in ("l1-0.1", "l1-0.001"):
        run = RunDir(out / "points" / point)
        assert run.catalogue == catalogue
        for kind in ("premask", "unconstrained", "pcmasking"):
            model = run.load_model(kind)
            assert (model.n_networks, model.n_inputs) == (n_out, n_in), (point, kind)
        assert run.mask("pcmasking").shape == (n_out, n_in)

    table = xr.load_dataset(out / "sweep.nc")
    assert table.sizes["point"] == 2 and (out / "sweep.csv").is_file()
    assert table["l1"].values.tolist() == [0.1, 0.001]
    # R² columns per ClimSim output variable, none of SPCAM's
    assert "r2_pcmasking_ptend_t" in table and "r2_pcmasking_cam_out_PRECC" in table
    assert not any("TPHYSTND" in name for name in table.data_vars)
    assert ((table["inputs_kept"] >= 0) & (table["inputs_kept"] <= n_in)).all()
