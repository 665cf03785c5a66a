"""ClimSim conversion (``pcm data climsim``): tiny files written here, and the real sample."""

from __future__ import annotations

import json
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr

from pcm.cli import main
from pcm.data.cbrain import file_catalogue, sample_grid
from pcm.data.checks import check_file
from pcm.data.climsim import (
    GRID_INFO,
    MLI_INPUTS,
    MLO_OUTPUTS,
    convert_climsim,
    find_pairs,
    interleaved_split,
)
from pcm.data.datasets import load_split
from pcm.data.normalization import Normalization
from pcm.errors import DataError
from pcm.variables import SPCAM, catalogue_from_attrs, climsim_catalogue

N_COL, N_LEV = 4, 3
HYAM = np.array([0.001, 0.05, 0.0])
HYBM = np.array([0.0, 0.4, 0.95])
LEVELS = (HYAM + HYBM) * 1000.0  # hPa at P0 = 1e5 Pa

#: The real sample, where the project's shared folder sits beside the clone.
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "climsim"


def _grid(folder: Path, n_lev: int = N_LEV) -> Path:
    path = folder / GRID_INFO
    with netCDF4.Dataset(path, "w", format="NETCDF3_64BIT_DATA") as nc:
        nc.createDimension("ncol", N_COL)
        nc.createDimension("lev", n_lev)
        nc.createDimension("ilev", n_lev + 1)
        for name, dims, values in (
            ("lat", ("ncol",), [-45.0, -10.0, 10.0, 45.0]),
            ("lon", ("ncol",), [0.0, 90.0, 180.0, 270.0]),
            ("area", ("ncol",), [1.0, 2.0, 2.0, 1.0]),
            ("hyam", ("lev",), HYAM[:n_lev]),
            ("hybm", ("lev",), HYBM[:n_lev]),
            ("hyai", ("ilev",), np.zeros(n_lev + 1)),
            ("P0", (), 1e5),
        ):
            nc.createVariable(name, "f8", dims)[...] = values
    return path


def _pair(folder: Path, step: int, *, n_col: int = N_COL, n_lev: int = N_LEV,
          drop: str | None = None, bad: tuple[str, str] | None = None,
          extra: bool = True) -> tuple[Path, Path]:
    """One mli/mlo pair of step ``step`` (day ``step + 1`` of January, year 8)."""
    rng = np.random.default_rng(step)
    month = folder / "train" / "0008-01"
    month.mkdir(parents=True, exist_ok=True)
    stamp = f"0008-01-{step + 1:02d}-{1200 * step:05d}"
    paths = (month / f"E3SM-MMF.mli.{stamp}.nc", month / f"E3SM-MMF.mlo.{stamp}.nc")
    state = {"state_t": 250 + 10 * rng.random((n_lev, n_col)),
             "state_q0001": 1e-3 * rng.random((n_lev, n_col)),
             "state_v": rng.normal(size=(n_lev, n_col)), "state_u": rng.normal(size=(n_lev, n_col))}
    content = {
        "mli": {**state, "state_ps": 1e5 + rng.normal(size=n_col),
                **{v: rng.random(n_col) * 100 for v in MLI_INPUTS[4:]},
                **({"pbuf_ozone": rng.random((n_lev, n_col)), "cam_in_ALDIF": rng.random(n_col)}
                   if extra else {})},
        "mlo": {"state_t": state["state_t"] + rng.normal(size=(n_lev, n_col)),
                "state_q0001": state["state_q0001"] + 1e-5 * rng.normal(size=(n_lev, n_col)),
                "state_v": state["state_v"], "state_u": state["state_u"],
                **{v: rng.random(n_col) for v in MLO_OUTPUTS}},
    }
    for kind, path in zip(("mli", "mlo"), paths, strict=True):
        with netCDF4.Dataset(path, "w", format="NETCDF3_64BIT_DATA") as nc:
            nc.createDimension("ncol", n_col)
            nc.createDimension("lev", n_lev)
            nc.createVariable("ymd", "i4", ())[...] = 80101 + step
            nc.createVariable("tod", "i4", ())[...] = 1200 * step
            for name, values in content[kind].items():
                if name == drop:
                    continue
                values = np.array(values)
                if bad is not None and bad == (kind, name):
                    values.flat[1] = np.nan if kind == "mli" else np.inf
                dims = ("lev", "ncol") if values.ndim == 2 else ("ncol",)
                nc.createVariable(name, "f8", dims)[...] = values
    return paths


def _sample(folder: Path, steps: int = 6, **bad) -> Path:
    src = folder / "ClimSim_low-res"
    src.mkdir(parents=True)
    _grid(src)
    for step in range(steps):
        _pair(src, step, **(bad if step == steps - 1 else {}))
    return src


# --------------------------------------------------------------------------- catalogue
def test_climsim_catalogue_sizes_labels_and_round_trip():
    cat = climsim_catalogue(np.linspace(0.1, 990.0, 60))
    assert (cat.n_inputs, cat.n_outputs, cat.n_levels) == (184, 128, 60)
    assert cat.input_labels()[0] == "state_t-0.1" and cat.input_labels()[-1] == "pbuf_lhflx"
    assert cat.output_labels()[-1] == "cam_out_solld"
    assert cat.variable_of_label("ptend_q0001-990") == "ptend_q0001"
    assert cat.output_scale["ptend_t"] == SPCAM.output_scale["TPHYSTND"]
    assert cat.output_scale["ptend_q0001"] == SPCAM.output_scale["PHQ"]
    assert list(cat.input_groups()) == ["state_t", "state_q0001", "state_v", "2-D"]
    assert catalogue_from_attrs(cat.attrs()) == cat != SPCAM
    assert catalogue_from_attrs({}) is SPCAM
    with pytest.raises(ValueError, match="unknown catalogue"):
        catalogue_from_attrs({"pcm_catalogue": "icon"})
    with pytest.raises(ValueError, match="not unique"):
        climsim_catalogue([1.0, 1.001] + list(range(2, 60)))


def test_interleaved_split_spreads_every_split_over_the_period():
    split = interleaved_split(99)
    counts = {k: split.count(k) for k in ("train", "valid", "test")}
    assert counts == {"train": 69, "valid": 15, "test": 15}
    for name in ("valid", "test"):  # in every third of the year
        where = [i for i, s in enumerate(split) if s == name]
        assert min(where) < 33 and any(33 <= i < 66 for i in where) and max(where) >= 66
    assert interleaved_split(3) == ["train", "valid", "test"]


# --------------------------------------------------------------------------- conversion
@pytest.mark.slow
def test_convert_tiny_files(tmp_path):
    src = _sample(tmp_path, steps=6)
    paths = convert_climsim(src, tmp_path / "out", progress=False)
    cat = climsim_catalogue(LEVELS)
    split = interleaved_split(6)
    manifest = json.loads(paths["manifest"].read_text())
    assert [s["split"] for s in manifest["steps"]] == split
    assert manifest["n_inputs"] == 3 * N_LEV + 4 and manifest["n_outputs"] == 2 * N_LEV + 8

    # the first training step, column by column, against the source files
    first = manifest["steps"][0]["mli"]
    with xr.open_dataset(src / first) as mli, \
            xr.open_dataset(src / first.replace(".mli.", ".mlo.")) as mlo:
        expect_in = np.concatenate([mli["state_t"].values.T, mli["state_q0001"].values.T,
                                    mli["state_v"].values.T]
                                   + [mli[v].values[:, None] for v in MLI_INPUTS[3:]], axis=1)
        heating = (mlo["state_t"] - mli["state_t"]).values.T / 1200.0
        moistening = (mlo["state_q0001"] - mli["state_q0001"]).values.T / 1200.0
        expect_out = np.concatenate([heating, moistening]
                                    + [mlo[v].values[:, None] for v in MLO_OUTPUTS], axis=1)
    with xr.open_dataset(paths["train"]) as ds:
        assert ds.attrs["pcm_catalogue"] == "climsim"
        assert list(ds["var_names"].values) == cat.expand_var_names(cat.all_variables)
        rows = ds["vars"].values[:N_COL]
        assert ds["vars"].shape == (split.count("train") * N_COL, cat.n_inputs + cat.n_outputs)
        np.testing.assert_allclose(ds["lev"].values, LEVELS)
    np.testing.assert_allclose(rows[:, :cat.n_inputs], expect_in, rtol=1e-6)
    np.testing.assert_allclose(rows[:, cat.n_inputs:], expect_out, rtol=1e-5, atol=1e-12)
    assert file_catalogue(paths["train"]) == cat

    grid = sample_grid(paths["valid"])
    assert grid["unstructured"] and grid["n_time"] == split.count("valid")
    np.testing.assert_array_equal(grid["area"], [1.0, 2.0, 2.0, 1.0])

    # the pipeline's reader sizes everything from the catalogue; outputs in energy units
    norm = Normalization.from_file(paths["norm"], warn=False)
    assert norm.catalogue == cat and norm.input_labels()[0] == "state_t-1"
    x, y = load_split(paths["train"], norm)
    assert x.shape == (split.count("train") * N_COL, 13) and y.shape[1] == 14
    np.testing.assert_allclose(y[:N_COL, :N_LEV], heating * 1004.64, rtol=1e-5)
    assert "climsim catalogue" in check_file(paths["test"], norm=paths["norm"])


@pytest.mark.filterwarnings("ignore::pcm.data.normalization.ZeroVarianceWarning")
@pytest.mark.slow
def test_a_climsim_file_never_meets_a_spcam_norm(tmp_path, synthetic_norm):
    paths = convert_climsim(_sample(tmp_path, steps=3), tmp_path / "out", progress=False)
    with pytest.raises(DataError, match="holds climsim data .* is for spcam"):
        load_split(paths["train"], synthetic_norm)


@pytest.fixture
def synthetic_norm(tmp_path):
    from pcm.data.datasets import write_synthetic_dataset

    return write_synthetic_dataset(tmp_path / "syn", steps=3, n_lat=2, n_lon=2)["norm"]


def test_include_selects_files_and_extra_variables_are_ignored(tmp_path):
    src = _sample(tmp_path, steps=5)
    pairs = find_pairs(src, ["*.0008-01-0[1-3]-*"])
    assert [p[0].name for p in pairs] == [f"E3SM-MMF.mli.0008-01-{d:02d}-{1200 * (d - 1):05d}.nc"
                                          for d in (1, 2, 3)]
    assert len(find_pairs(src, ["train/0008-01/*"])) == 5
    with pytest.raises(DataError, match="no ClimSim input files .* matching"):
        find_pairs(src, ["train/0009-*/*"])


def _one_line_error(src, out, match, path_part, capsys):
    with pytest.raises(DataError, match=match) as err:
        convert_climsim(src, out, progress=False)
    assert "\n" not in str(err.value) and path_part in str(err.value)
    assert main(["data", "climsim", "--src", str(src), "--out", str(out), "--quiet"]) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("pcm: error: ") and "\n" not in line and path_part in line
    assert not (out / "train.nc").exists()


def test_mli_without_mlo(tmp_path, capsys):
    src = _sample(tmp_path, steps=4)
    mli, mlo = _pair(src, 7)
    mlo.unlink()
    _one_line_error(src, tmp_path / "out", "no matching output file E3SM-MMF.mlo", mli.name,
                    capsys)


def test_find_pairs_names_a_step_given_twice_or_a_file_misnamed(tmp_path):
    src = _sample(tmp_path, steps=3)
    assert [p[0].name for p in find_pairs(src)] == sorted(
        p.name for p in src.rglob("*.mli.*.nc"))  # by date; January's days sort by name
    copy = src / "more" / "0008-01"
    copy.mkdir(parents=True)
    for path in _pair(src, 1):
        (copy / path.name).write_bytes(path.read_bytes())
    with pytest.raises(DataError, match="the same time step as") as err:
        find_pairs(src)
    assert "\n" not in str(err.value) and "0008-01-02-01200" in str(err.value)
    for path in copy.iterdir():
        path.rename(copy / path.name.replace("-01200.nc", "-1200.nc"))
    with pytest.raises(DataError, match="not named like a ClimSim step") as err:
        find_pairs(src)
    assert "-1200.nc" in str(err.value)


@pytest.mark.parametrize("dim", ["ncol", "lev"])
@pytest.mark.slow
def test_mismatched_ncol_or_lev(tmp_path, capsys, dim):
    src = _sample(tmp_path, steps=4)
    mli, _ = _pair(src, 7, **({"n_col": N_COL + 1} if dim == "ncol" else {"n_lev": N_LEV + 1}))
    _one_line_error(src, tmp_path / "out", f"dimension '{dim}' has .* the grid-info file",
                    mli.name, capsys)


@pytest.mark.parametrize("variable", ["pbuf_SHFLX", "cam_out_PRECC", "state_q0001"])
@pytest.mark.slow
def test_missing_variable(tmp_path, capsys, variable):
    src = _sample(tmp_path, steps=3)
    mli, mlo = _pair(src, 7, drop=variable)
    path = mli if variable in MLI_INPUTS else mlo
    _one_line_error(src, tmp_path / "out", f"variable '{variable}': missing", path.name, capsys)


@pytest.mark.parametrize("kind,variable", [("mli", "state_t"), ("mlo", "cam_out_FLWDS")])
@pytest.mark.slow
def test_nan_or_inf(tmp_path, capsys, kind, variable):
    src = _sample(tmp_path, steps=4)
    mli, mlo = _pair(src, 7, bad=(kind, variable))
    path = mli if kind == "mli" else mlo
    _one_line_error(src, tmp_path / "out", f"variable '{variable}': 1 non-finite values",
                    path.name, capsys)


@pytest.mark.slow
def test_files_that_are_not_climsim(tmp_path, capsys):
    src = _sample(tmp_path, steps=3)
    mli, _ = _pair(src, 7)
    mli.unlink()
    with netCDF4.Dataset(mli, "w", format="NETCDF3_64BIT_DATA") as nc:  # CBRAIN-like, no ncol
        nc.createDimension("sample", 4)
        nc.createVariable("vars", "f4", ("sample",))[...] = np.zeros(4)
    _one_line_error(src, tmp_path / "out", "no dimension 'ncol': not a ClimSim input", mli.name,
                    capsys)
    mli.write_text("not netCDF at all\n")
    _one_line_error(src, tmp_path / "out", "not a readable netCDF file", mli.name, capsys)


def test_missing_grid_info(tmp_path, capsys):
    src = _sample(tmp_path, steps=3)
    (src / GRID_INFO).unlink()
    _one_line_error(src, tmp_path / "out", f"no {GRID_INFO}", str(src), capsys)


# --------------------------------------------------------------------------- real sample
@pytest.mark.skipif(not SHARED.is_dir(), reason=f"the real ClimSim sample is not at {SHARED} "
                    "(the project's shared folder beside the clone)")
@pytest.mark.slow
def test_real_climsim_sample(tmp_path):
    paths = convert_climsim(SHARED, tmp_path / "out", progress=False)
    manifest = json.loads(paths["manifest"].read_text())
    assert len(manifest["steps"]) == 99  # 97 reduced pairs + 2 unmodified (all variables)
    assert (manifest["n_inputs"], manifest["n_outputs"], manifest["n_columns"]) == (184, 128, 384)
    norm = Normalization.from_file(paths["norm"], warn=False)
    assert norm.catalogue.n_levels == 60
    assert norm.catalogue.input_labels()[59] == "state_t-992.64"
    x, y = load_split(paths["test"], norm)
    assert x.shape == (15 * 384, 184) and y.shape == (15 * 384, 128)
    assert np.abs(x).max() < 2  # normalised by the training range: test data lie near it
    grid = sample_grid(paths["train"])
    assert grid["area"].sum() == pytest.approx(4 * np.pi)
    # the moistening far above the clouds never varies, like SPCAM's PHQ above 143 hPa
    zero = norm.zero_variance_labels()
    assert zero and all(z.startswith("ptend_q0001-") for z in zero)
