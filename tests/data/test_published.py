"""The paper's own SPCAM masks, packaged as one netCDF file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import xarray as xr

from pcm.analysis.figures import mask_overview
from pcm.data.published import (
    PUBLISHED_FILE,
    build_published_masks,
    inputs_kept,
    published_masks,
)
from pcm.errors import DataError
from pcm.variables import input_labels, output_labels

matplotlib.use("Agg")

#: The reference artefacts, where the project's shared folder sits beside the clone.
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / \
    "pcmasking_published"
needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"published reference artefacts not found at {SHARED} "
    "(the project's shared folder beside the clone)")

#: n_inputs of every output as published in the reference repository's
#: num_inputs_per_var_train table (thresholds.json of the shared folder).
PUBLISHED_N_INPUTS = {
    "tphystnd-3.64": 71, "tphystnd-7.59": 83, "tphystnd-14.36": 84, "tphystnd-24.61": 84,
    "tphystnd-38.27": 83, "tphystnd-54.6": 83, "tphystnd-72.01": 83, "tphystnd-87.82": 70,
    "tphystnd-103.32": 53, "tphystnd-121.55": 45, "tphystnd-142.99": 31, "tphystnd-168.23": 70,
    "tphystnd-197.91": 51, "tphystnd-232.83": 50, "tphystnd-273.91": 38, "tphystnd-322.24": 46,
    "tphystnd-379.1": 37, "tphystnd-445.99": 51, "tphystnd-524.69": 53, "tphystnd-609.78": 62,
    "tphystnd-691.39": 47, "tphystnd-763.4": 51, "tphystnd-820.86": 44, "tphystnd-859.53": 54,
    "tphystnd-887.02": 48, "tphystnd-912.64": 47, "tphystnd-936.2": 51, "tphystnd-957.49": 46,
    "tphystnd-976.33": 42, "tphystnd-992.56": 46, "phq-3.64": 0, "phq-7.59": 0, "phq-14.36": 0,
    "phq-24.61": 0, "phq-38.27": 0, "phq-54.6": 0, "phq-72.01": 0, "phq-87.82": 0,
    "phq-103.32": 0, "phq-121.55": 0, "phq-142.99": 0, "phq-168.23": 63, "phq-197.91": 82,
    "phq-232.83": 83, "phq-273.91": 84, "phq-322.24": 62, "phq-379.1": 58, "phq-445.99": 39,
    "phq-524.69": 46, "phq-609.78": 54, "phq-691.39": 40, "phq-763.4": 51, "phq-820.86": 49,
    "phq-859.53": 41, "phq-887.02": 45, "phq-912.64": 32, "phq-936.2": 35, "phq-957.49": 33,
    "phq-976.33": 31, "phq-992.56": 29, "fsnt": 54, "fsns": 53, "flnt": 84, "flns": 52,
    "prect": 57,
}


def test_packaged_file_is_declared_package_data():
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"data/published/*.nc"' in pyproject and '"data/published/LICENSE"' in pyproject
    assert PUBLISHED_FILE.is_file()
    assert (PUBLISHED_FILE.parent / "LICENSE").read_text().startswith("MIT License")


def test_packaged_masks_reproduce_the_published_numbers_of_inputs():
    ds = published_masks()
    assert list(ds["output"].values) == output_labels()
    assert list(ds["input"].values) == input_labels()
    assert ds["masking_vector"].dtype == np.float32  # as published
    kept = inputs_kept(ds)
    # every output: the strict rule reproduces the published count
    np.testing.assert_array_equal(kept.values, ds["n_inputs_published"].values)
    for label, n in PUBLISHED_N_INPUTS.items():
        assert int(kept.sel(output=label)) == n, label
    assert int(kept.sum()) == 2961
    assert round(float(kept.mean()), 1) == 45.6
    assert int(kept.min()) == 0 and int(kept.max()) == 84
    # the moistening above 143 hPa keeps no input at all, the level below does
    empty = [o for o in output_labels() if int(kept.sel(output=o)) == 0]
    assert empty == [f"phq-{p}" for p in ("3.64", "7.59", "14.36", "24.61", "38.27", "54.6",
                                           "72.01", "87.82", "103.32", "121.55", "142.99")]
    assert int(kept.sel(output="phq-168.23")) == 63
    for name in ("masking_vector", "threshold", "mask"):
        assert ds[name].attrs["long_name"] and ds[name].attrs["units"] == "1"


@needs_shared
def test_build_from_the_shared_files_gives_the_packaged_file(tmp_path):
    out = build_published_masks(SHARED, tmp_path / "masks.nc")
    with xr.open_dataset(out) as built, xr.open_dataset(PUBLISHED_FILE) as packaged:
        xr.testing.assert_identical(built.load(), packaged.load())
    table = json.loads((SHARED / "thresholds.json").read_text())
    ds = published_masks(out)
    for label in output_labels():
        assert float(ds["threshold"].sel(output=label)) == table[label]["threshold"]
        assert int(inputs_kept(ds).sel(output=label)) == table[label]["n_inputs"]


@needs_shared
def test_build_refuses_thresholds_that_do_not_reproduce_the_counts(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(SHARED / "masking_vectors", src / "masking_vectors")
    table = json.loads((SHARED / "thresholds.json").read_text())
    table["prect"]["n_inputs"] += 1
    (src / "thresholds.json").write_text(json.dumps(table))
    with pytest.raises(DataError, match="prect"):
        build_published_masks(src, tmp_path / "masks.nc")
    del table["fsnt"]
    (src / "thresholds.json").write_text(json.dumps(table))
    with pytest.raises(DataError, match="thresholds.json: no entry for 1 outputs: fsnt"):
        build_published_masks(src, tmp_path / "masks.nc")


def test_missing_file_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="missing"):
        published_masks(tmp_path / "none.nc")


def test_mask_overview_figure():
    ds = published_masks()
    fig = mask_overview(ds, title="Published SPCAM masks")
    fig.canvas.draw()
    matrix, bars = fig.axes[0], fig.axes[1]
    assert matrix.images[0].get_array().shape == (65, 94)
    assert [t.get_text() for t in matrix.child_axes[0].get_xticklabels()] == [
        "QBP", "TBP", "VBP", "2-D"]
    widths = [p.get_width() for p in bars.patches]
    np.testing.assert_array_equal(widths, inputs_kept(ds).values)
    assert bars.get_title() == "2961 inputs in all"


@pytest.mark.slow
def test_real_data_chapter_runs_without_climsim(tmp_path, capsys):
    """The seventh notebook, executed for real: published masks only (no ClimSim run)."""
    import nbformat

    from pcm.cli import main

    assert main(["real-data", "--book-dir", str(tmp_path)]) == 0
    nb = nbformat.read(tmp_path / "07_real_data.ipynb", as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.get("outputs", []))
    assert "2961 inputs kept in all, 45.6 per output (range 0-84 of 94)" in text
    assert "phq-3.64" in text and "No ClimSim run given" in text
    # without a ClimSim run, nothing about ClimSim but how to add it
    assert not [c for c in nb.cells if "climsim" in c.metadata.get("tags", [])]
    source = "\n".join(c.source for c in nb.cells)
    assert "mask_overview(climsim_mask" not in source and "hardly ever moistens" not in source
    markdown = "".join(o.get("data", {}).get("text/markdown", "") for c in nb.cells
                       for o in c.get("outputs", []))
    assert "This build ran no ClimSim data" in markdown
    assert main(["real-data", "--book-dir", str(tmp_path), "--climsim-run", str(tmp_path)]) == 2
    assert "no masks.nc" in capsys.readouterr().err
