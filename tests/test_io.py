"""Atomic writes, the run directory and one-line errors."""

import errno
import os
import stat
from pathlib import Path

import pytest
import xarray as xr

from pcm.errors import DataError, ParameterError, PCMError
from pcm.io import atomic_path, file_problem, output_dir, read_json, write_json, write_netcdf
from pcm.run.rundir import RunDir


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


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_artefacts_get_the_mode_the_umask_gives(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        written = [write_json({"v": 1}, tmp_path / "a.json"),
                   write_netcdf(xr.Dataset({"a": ("x", [1.0])}), tmp_path / "a.nc")]
        with atomic_path(tmp_path / "raw.bin") as tmp:
            tmp.write_bytes(b"\0")
        written.append(tmp_path / "raw.bin")
        write_json({"v": 2}, tmp_path / "a.json")  # replacing keeps the umask's mode too
    finally:
        os.umask(previous)
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in written} == \
        {p.name: oct(mode) for p in written}


def test_output_dir_names_the_path_and_the_problem(tmp_path, monkeypatch):
    afile = tmp_path / "file"
    afile.write_text("x")
    assert output_dir(tmp_path / "new" / "deep").is_dir()
    with pytest.raises(PCMError, match=rf"^--out {afile}: exists and is not a directory$"):
        output_dir(afile)
    with pytest.raises(PCMError, match=rf"^--out {afile}/sub/x: cannot create the directory: "
                                       rf"{afile} is a file, not a directory$"):
        output_dir(afile / "sub" / "x")

    def refuse(self, *args, **kwargs):  # tests run as root: simulate a read-only parent
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(PCMError, match=r"^--out .*/locked: cannot create the directory: "
                                       "permission denied$"):
        output_dir(tmp_path / "locked")


def test_file_problem_opens_each_kind(tmp_path):
    nc = write_netcdf(xr.Dataset({"mask": ("x", [1, 0])}), tmp_path / "m.nc")
    assert file_problem(nc, ("mask",)) is None
    assert file_problem(nc, ("threshold",)) == "lacks variable 'threshold'"
    nc.write_bytes(nc.read_bytes()[:100])
    assert file_problem(nc).startswith("unreadable netCDF")
    js = write_json({"a": 1}, tmp_path / "s.json")
    assert file_problem(js, ("a",)) is None and file_problem(js, ("b",)) == "lacks key 'b'"
    js.write_text('{"a": 1')
    assert file_problem(js).startswith("unreadable JSON")
    assert file_problem(tmp_path / "none.nc") == "missing"
    (tmp_path / "e.keras").write_bytes(b"")
    assert file_problem(tmp_path / "e.keras") == "empty"
    (tmp_path / "t.keras").write_bytes(b"PK\x03\x04 truncated")
    assert file_problem(tmp_path / "t.keras").startswith("unreadable Keras file")
