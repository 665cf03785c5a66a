"""Atomic writes, the run directory and one-line errors."""

import pytest
import xarray as xr

from pcm.errors import DataError, ParameterError
from pcm.io import atomic_path, read_json, write_json, write_netcdf
from pcm.rundir import RunDir


def test_atomic_path_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "a.json"
    write_json({"v": 1}, target)
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert read_json(target) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_write_netcdf_round_trip(tmp_path):
    ds = xr.Dataset({"a": ("x", [1.0, 2.0], {"units": "K", "long_name": "a"})})
    xr.testing.assert_identical(xr.load_dataset(write_netcdf(ds, tmp_path / "sub" / "a.nc")), ds)


def test_errors_name_file_variable_and_key():
    err = DataError("expected 30 levels, found 29", path="train.nc", variable="TBP")
    assert str(err) == "train.nc: variable 'TBP': expected 30 levels, found 29"
    assert str(ParameterError("data.train", "no such file")) == (
        "parameter 'data.train': no such file")


def test_rundir_manifest(tmp_path):
    run = RunDir(tmp_path / "run")
    with pytest.raises(DataError, match="run the data-preparation step first"):
        run.manifest()
    run.write_manifest({"train": "data/train.nc", "plus4K": None}, source="synthetic")
    assert run.source == "synthetic"
    assert run.data_path("train").is_absolute()
    assert run.data_path("plus4K") is None and run.data_path("minus4K") is None
    assert run.model("pcmasking").name == "pcmasking.keras"
    assert RunDir.of(run) is run and RunDir.of(str(run.root)).root == run.root


def test_record_seconds_merges_phases(tmp_path):
    run = RunDir(tmp_path)
    run.record_seconds(premask=1.5)
    run.record_seconds(causal_discovery=2.0, premask=1.25)
    assert read_json(tmp_path / "seconds.json") == {"premask": 1.25, "causal_discovery": 2.0}
