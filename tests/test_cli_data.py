"""``pcm data synthetic`` and ``pcm data check`` through pcm.cli.main."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from test_cbrain import fake_fields, foreign_columns, write_foreign

from pcm.cli import main
from pcm.data import cbrain, cbrain_write, datasets
from pcm.data.normalization import compute_norm, write_norm


@pytest.fixture
def data(tmp_path):
    path = cbrain_write.write_cbrain(fake_fields(), tmp_path / "train.nc")
    return path, write_norm(compute_norm(path), tmp_path / "norm.nc")


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pcm: error: ")
    return err[0]


@pytest.mark.slow
def test_data_synthetic_writes_all_files(tmp_path, capsys):
    out = tmp_path / "syn"
    assert main(["data", "synthetic", "--out", str(out), "--steps", "4", "--seed", "3",
                 "--lat", "2", "--lon", "4"]) == 0
    names = {p.name for p in out.iterdir()}
    assert names == {"train.nc", "valid.nc", "test.nc", "plus4K.nc", "minus4K.nc", "norm.nc",
                     "drivers.nc"}
    printed = capsys.readouterr().out
    assert "train" in printed and str(out / "norm.nc") in printed
    assert cbrain.sample_grid(out / "train.nc")["lat"].size == 2
    assert main(["data", "check", str(out / "test.nc"), "--norm", str(out / "norm.nc")]) == 0
    assert "OK: all values finite" in capsys.readouterr().out


def test_data_synthetic_bad_grid_is_exit_2(tmp_path, capsys):
    assert main(["data", "synthetic", "--out", str(tmp_path), "--steps", "4",
                 "--lat", "100"]) == 2
    assert "'lat'" in one_error_line(capsys)


def test_data_check_prints_report(data, capsys):
    path, norm = data
    assert main(["data", "check", str(path), "--norm", str(norm)]) == 0
    out = capsys.readouterr().out
    assert "96 samples x 159 columns" in out and "norm file" in out and "matches" in out


def test_data_check_foreign_file(tmp_path, capsys):
    write_foreign(tmp_path / "f.nc", foreign_columns(cbrain.SAMPLES_PER_T42_STEP))
    assert main(["data", "check", str(tmp_path / "f.nc")]) == 0
    assert "assumed full T42" in capsys.readouterr().out


@pytest.mark.parametrize(("case", "expected"), [
    ("missing", "variable 'FLNT': missing"),
    ("levels", "variable 'PHQ': has 31 columns"),
    ("nan", "variable 'QBP': (qbp-3.64): 1 non-finite values"),
    ("inf", "variable 'LHFLX': (lhflx): 1 non-finite values"),
    ("text", "not a readable netCDF file"),
    ("absent", "file not found"),
])
def test_data_check_bad_input_is_exit_2(tmp_path, capsys, case, expected):
    path = tmp_path / "bad.nc"
    n = cbrain.SAMPLES_PER_T42_STEP
    if case == "missing":
        write_foreign(path, foreign_columns(n, drop="FLNT"))
    elif case == "levels":
        write_foreign(path, foreign_columns(n, levels={"PHQ": 31}))
    elif case in ("nan", "inf"):
        cols = foreign_columns(n)
        cols["QBP" if case == "nan" else "LHFLX"][100, 0] = np.nan if case == "nan" else np.inf
        write_foreign(path, cols)
    elif case == "text":
        path.write_text("hello")
    assert main(["data", "check", str(path)]) == 2
    line = one_error_line(capsys)
    assert expected in line
    assert "bad.nc" in line


@pytest.mark.parametrize(("case", "expected"), [
    ("no_tphystnd", "variable 'TPHYSTND': missing from the norm file"),
    ("units", "variable 'TBP': norm file"),
    ("not_norm", "lacks the coordinate 'var_names'"),
])
def test_data_check_mismatching_norm_is_exit_2(tmp_path, data, capsys, case, expected):
    path, norm = data
    ds = xr.load_dataset(norm)
    names = ds["var_names"].values.astype(str)
    bad = tmp_path / "bad_norm.nc"
    if case == "no_tphystnd":
        write_norm(ds.isel(var_names=np.flatnonzero(names != "TPHYSTND")), bad)
    elif case == "units":  # statistics of TBP in degrees Celsius
        for stat in ("mean", "min", "max"):
            ds[stat].values[names == "TBP"] -= 273.15
        ds["std_by_var"].loc["TBP"] = 0.2
        for stat in ("min", "max"):
            ds[stat].values[names == "TBP"] = ds["mean"].values[names == "TBP"]
        write_norm(ds, bad)
    else:
        xr.Dataset({"mean": ("x", [1.0])}).to_netcdf(bad)
    assert main(["data", "check", str(path), "--norm", str(bad)]) == 2
    line = one_error_line(capsys)
    assert expected in line and "bad_norm.nc" in line


def test_out_errors_are_one_line_naming_path_and_problem(tmp_path, capsys, monkeypatch):
    afile = tmp_path / "file"
    afile.write_text("x")
    assert main(["data", "synthetic", "--out", str(afile), "--steps", "6"]) == 2
    assert one_error_line(capsys) == f"pcm: error: --out {afile}: exists and is not a directory"
    notebooks = Path(__file__).resolve().parents[1] / "notebooks"
    assert main(["exercises", "--src", str(notebooks), "--out", str(afile)]) == 2
    assert one_error_line(capsys) == f"pcm: error: --out {afile}: exists and is not a directory"
    assert main(["exercises", "--src", str(notebooks), "--out", str(afile / "sub")]) == 2
    assert one_error_line(capsys) == (f"pcm: error: --out {afile / 'sub'}: cannot create the "
                                      f"directory: {afile} is a file, not a directory")

    def refuse(fields, path, *args, **kwargs):  # as root nothing is unwritable: simulate
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(datasets, "write_cbrain", refuse)
    assert main(["data", "synthetic", "--out", str(tmp_path / "syn"), "--steps", "6",
                 "--lat", "2", "--lon", "4"]) == 2
    assert one_error_line(capsys) == (f"pcm: error: {tmp_path / 'syn' / 'train.nc'}: "
                                      "Permission denied")


def test_data_synthetic_files_follow_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        assert main(["data", "synthetic", "--out", str(tmp_path / "syn"), "--steps", "6",
                     "--lat", "2", "--lon", "4"]) == 0
    finally:
        os.umask(previous)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "syn").iterdir()}
    assert len(modes) == 7 and set(modes.values()) == {0o644}
