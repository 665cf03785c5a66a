"""The CBRAIN layout: writing, lazy reading, column mapping, grid, checking."""

from __future__ import annotations

import netCDF4
import numpy as np
import pytest
import xarray as xr

from pcm.data import cbrain, cbrain_write, checks
from pcm.errors import DataError
from pcm.variables import (
    INPUT_VARIABLES,
    LEVELS_HPA,
    OUTPUT_VARIABLES,
    VARIABLES,
    gaussian_grid,
)

ALL = INPUT_VARIABLES + OUTPUT_VARIABLES

#: Typical magnitude and spread of each variable (enough for realistic ranges).
_SCALE = {"QBP": (5e-3, 3e-3), "TBP": (250.0, 20.0), "VBP": (0.0, 10.0), "PS": (1e5, 1e3),
          "SOLIN": (300.0, 300.0), "SHFLX": (10.0, 10.0), "LHFLX": (70.0, 50.0),
          "TPHYSTND": (0.0, 4e-5), "PHQ": (0.0, 3e-8), "FSNT": (200.0, 100.0),
          "FSNS": (150.0, 100.0), "FLNT": (230.0, 40.0), "FLNS": (50.0, 20.0),
          "PRECT": (3e-8, 1e-7)}


def fake_fields(steps: int = 3, n_lat: int = 4, n_lon: int = 8, seed: int = 0) -> xr.Dataset:
    """Random fields shaped like pcm.data.synthetic.generate's output (independent of it)."""
    rng = np.random.default_rng(seed)
    grid = gaussian_grid(n_lat, n_lon)
    data = {}
    for name in ALL:
        var = VARIABLES[name]
        mean, spread = _SCALE[name]
        dims = ("time", "lev", "lat", "lon") if var.three_d else ("time", "lat", "lon")
        shape = (steps, 30, n_lat, n_lon) if var.three_d else (steps, n_lat, n_lon)
        values = (mean + spread * rng.standard_normal(shape)).astype("f4")
        data[name] = (dims, values, {"units": var.units, "long_name": var.long_name})
    return xr.Dataset(data, coords={"time": np.arange(steps) * 1800, "lev": LEVELS_HPA,
                                    "lat": grid["lat"], "lon": grid["lon"]})


def stacked(fields: xr.Dataset, name: str) -> np.ndarray:
    """[samples, levels] of one variable, samples (time, lat, lon) lon fastest."""
    da = fields[name]
    if "lev" in da.dims:
        return da.transpose("time", "lat", "lon", "lev").values.reshape(-1, 30)
    return da.transpose("time", "lat", "lon").values.reshape(-1, 1)


def write_foreign(path, columns: dict[str, np.ndarray], *, char_array: bool = True,
                  fill_value=None, fmt: str = "NETCDF4") -> None:
    """A CBRAIN file written without pcm: netCDF4 directly, no grid, given column order."""
    names = [name for name, values in columns.items() for _ in range(values.shape[1])]
    data = np.concatenate(list(columns.values()), axis=1).astype("f4")
    with netCDF4.Dataset(path, "w", format=fmt) as nc:
        nc.createDimension("sample", data.shape[0])
        nc.createDimension("var_names", len(names))
        if char_array:
            width = max(map(len, names))
            nc.createDimension("str_len", width)
            vn = nc.createVariable("var_names", "S1", ("var_names", "str_len"))
            vn[:] = netCDF4.stringtochar(np.array(names, dtype=f"S{width}"))
        else:
            vn = nc.createVariable("var_names", str, ("var_names",))
            vn[:] = np.array(names, dtype=object)
        v = nc.createVariable("vars", "f4", ("sample", "var_names"), fill_value=fill_value)
        v[:] = data


def foreign_columns(n_samples: int, seed: int = 1, drop: str | None = None,
                    levels: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """Shuffled variable order with extra variables (like the real SPCAM files)."""
    rng = np.random.default_rng(seed)
    order = ["PHQ", "QCBP", "TBP", "PS", "FLNS", "QBP", "DTVKE", "SOLIN", "VBP", "PRECT",
             "TPHYSTND", "LHFLX", "FSNT", "SHFLX", "FSNS", "FLNT", "PRECTEND"]
    levels = levels or {}
    cols = {}
    for name in order:
        if name == drop:
            continue
        k = levels.get(name, VARIABLES[name].n_levels if name in VARIABLES else 30)
        mean, spread = _SCALE.get(name, (0.0, 1.0))
        cols[name] = (mean + spread * rng.standard_normal((n_samples, k))).astype("f4")
    return cols


@pytest.fixture
def fields():
    return fake_fields()


@pytest.fixture
def own_file(tmp_path, fields):
    return cbrain_write.write_cbrain(fields, tmp_path / "train.nc")


# --------------------------------------------------------------------------- writing
def test_write_then_open_round_trips_every_column(own_file, fields):
    with cbrain.open_cbrain(own_file) as ds:
        assert ds["vars"].shape == (3 * 4 * 8, 159)
        assert ds["vars"].dtype == np.float32
        assert ds["vars"].chunks is not None  # lazy (dask), nothing loaded
        assert list(ds["var_names"].values[:31]) == ["QBP"] * 30 + ["TBP"]
        values = ds["vars"].values
        for name in ALL:
            cols = cbrain.column_index(ds, [name])
            np.testing.assert_array_equal(values[:, cols], stacked(fields, name))


def test_write_records_grid_and_time(own_file, fields):
    grid = cbrain.sample_grid(own_file)
    assert grid["from_file"] and grid["n_time"] == 3
    np.testing.assert_allclose(grid["lat"], fields["lat"].values)
    np.testing.assert_allclose(grid["lon"], fields["lon"].values)
    np.testing.assert_allclose(grid["gw"], gaussian_grid(4, 8)["gw"])
    with cbrain.open_cbrain(own_file) as ds:
        assert cbrain.sample_grid(ds)["n_time"] == 3
        np.testing.assert_array_equal(ds["time"].values, [0, 1800, 3600])


def test_write_selected_variables_only(tmp_path, fields):
    path = cbrain_write.write_cbrain(fields, tmp_path / "x.nc", variables=("PS", "TBP"))
    names = cbrain.read_var_names(path)
    assert list(names) == ["PS"] + ["TBP"] * 30
    with pytest.raises(DataError, match="'QBP'.*missing"):
        cbrain.open_cbrain(path)
    with cbrain.open_cbrain(path, require=("TBP",)) as ds:
        np.testing.assert_array_equal(ds["vars"].values[:, 1:], stacked(fields, "TBP"))


def test_write_rejects_bad_fields_and_leaves_nothing(tmp_path, fields):
    with pytest.raises(DataError, match="'PHQ'.*missing"):
        cbrain_write.write_cbrain(fields.drop_vars("PHQ"), tmp_path / "a.nc")
    with pytest.raises(DataError, match="'QBP'.*29 levels, expected 30"):
        cbrain_write.write_cbrain(fields.isel(lev=slice(0, 29)), tmp_path / "a.nc")
    bad = fields.assign(TBP=fields["TBP"].isel(lev=0))
    with pytest.raises(DataError, match="'TBP'.*dims"):
        cbrain_write.write_cbrain(bad, tmp_path / "a.nc")
    assert list(tmp_path.iterdir()) == []


def test_write_is_deterministic(tmp_path, fields):
    a = cbrain_write.write_cbrain(fields, tmp_path / "a.nc")
    b = cbrain_write.write_cbrain(fields, tmp_path / "b.nc")
    with cbrain.open_cbrain(a) as da, cbrain.open_cbrain(b) as db:
        np.testing.assert_array_equal(da["vars"].values, db["vars"].values)


# --------------------------------------------------------------------------- column mapping
def test_column_index_maps_network_order():
    names = ["PS"] + ["TBP"] * 30 + ["EXTRA"] * 2 + ["QBP"] * 30
    idx = cbrain.column_index(names, ["QBP", "TBP", "PS"])
    np.testing.assert_array_equal(idx, list(range(33, 63)) + list(range(1, 31)) + [0])
    assert cbrain.column_labels(names)[:2] == ["ps", "tbp-3.64"]
    assert cbrain.column_labels(names)[31] == "EXTRA[0]"


# --------------------------------------------------------------------------- foreign files
def test_foreign_file_is_read_by_name(tmp_path):
    cols = foreign_columns(cbrain.SAMPLES_PER_T42_STEP)
    path = tmp_path / "foreign.nc"
    write_foreign(path, cols)
    names = cbrain.read_var_names(path)
    assert names[0] == "PHQ" and "QCBP" in set(names)
    with cbrain.open_cbrain(path) as ds:
        values = ds["vars"].values
        for name in ALL:
            np.testing.assert_array_equal(values[:, cbrain.column_index(ds, [name])],
                                          cols[name])
    grid = cbrain.sample_grid(path)
    assert not grid["from_file"] and grid["n_time"] == 1
    assert grid["lat"].size == 64 and grid["lon"].size == 128
    report = checks.check_file(path)
    assert "8192 samples" in report and "assumed full T42" in report
    assert "QCBP" in report and "DTVKE" in report  # extras listed as ignored


def test_foreign_file_with_vlen_names(tmp_path):
    cols = foreign_columns(16)
    write_foreign(tmp_path / "f.nc", cols, char_array=False)
    idx = cbrain.column_index(cbrain.read_var_names(tmp_path / "f.nc"), ["TBP"])
    assert idx.size == 30


def test_foreign_netcdf3_file(tmp_path):
    cols = foreign_columns(32)
    write_foreign(tmp_path / "f3.nc", cols, fmt="NETCDF3_64BIT_OFFSET")
    with cbrain.open_cbrain(tmp_path / "f3.nc") as ds:
        np.testing.assert_array_equal(ds["vars"].values[:, cbrain.column_index(ds, ["PS"])],
                                      cols["PS"])


def test_reopening_while_open_is_safe(own_file):
    # netCDF4 1.7 segfaulted when xarray/netcdf4+dask handles of one file were
    # closed and the file reopened; open_cbrain uses h5netcdf to avoid that.
    first = cbrain.open_cbrain(own_file)
    with cbrain.open_cbrain(own_file):
        pass
    assert "OK" in checks.check_file(own_file)
    assert cbrain.read_var_names(own_file).size == 159
    first.close()


def test_foreign_grid_unknown_and_not_t42_multiple(tmp_path):
    write_foreign(tmp_path / "f.nc", foreign_columns(100))
    with pytest.raises(DataError, match="100 samples is not a multiple of 8192"):
        cbrain.sample_grid(tmp_path / "f.nc")
    with pytest.raises(DataError, match="not a multiple of 8192"):
        checks.check_file(tmp_path / "f.nc")


# --------------------------------------------------------------------------- bad input
def test_not_a_netcdf_file(tmp_path):
    path = tmp_path / "notes.nc"
    path.write_text("this is not netCDF\n")
    with pytest.raises(DataError, match="notes.nc: not a readable netCDF file"):
        cbrain.open_cbrain(path)
    with pytest.raises(DataError, match="file not found"):
        cbrain.open_cbrain(tmp_path / "missing.nc")


def test_missing_vars_or_var_names(tmp_path):
    xr.Dataset({"x": ("a", [1.0])}).to_netcdf(tmp_path / "a.nc")
    with pytest.raises(DataError, match="no variable 'vars'"):
        cbrain.open_cbrain(tmp_path / "a.nc")
    xr.Dataset({"vars": (("sample", "var_names"), np.zeros((2, 3), "f4"))}).to_netcdf(
        tmp_path / "b.nc")
    with pytest.raises(DataError, match="no variable 'var_names'"):
        cbrain.open_cbrain(tmp_path / "b.nc")


def test_empty_file_is_rejected(tmp_path):
    write_foreign(tmp_path / "e.nc", foreign_columns(0))
    with pytest.raises(DataError, match="e.nc: 'vars' has no samples"):
        checks.check_file(tmp_path / "e.nc")


def test_missing_variable_is_named(tmp_path):
    write_foreign(tmp_path / "f.nc", foreign_columns(8, drop="LHFLX"))
    with pytest.raises(DataError, match=r"f.nc: variable 'LHFLX': missing"):
        cbrain.open_cbrain(tmp_path / "f.nc")
    with pytest.raises(DataError, match="'LHFLX'"):
        checks.check_file(tmp_path / "f.nc")


def test_wrong_number_of_levels_is_named(tmp_path):
    write_foreign(tmp_path / "f.nc", foreign_columns(8, levels={"TBP": 29}))
    with pytest.raises(DataError, match=r"variable 'TBP': has 29 columns .*expected 30"):
        cbrain.open_cbrain(tmp_path / "f.nc")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_values_name_variable_and_level(tmp_path, fields, bad):
    tbp = fields["TBP"].values.copy()
    tbp[0, 5, 0, :3] = bad  # level 5 = 54.6 hPa
    path = cbrain_write.write_cbrain(fields.assign(TBP=(fields["TBP"].dims, tbp)),
                                     tmp_path / "n.nc")
    with pytest.raises(DataError, match=r"variable 'TBP': \(tbp-54.6\): 3 non-finite values"):
        checks.check_file(path)


def test_fill_values_count_as_missing(tmp_path):
    cols = foreign_columns(cbrain.SAMPLES_PER_T42_STEP)
    cols["PRECT"][7, 0] = -999.0
    write_foreign(tmp_path / "f.nc", cols, fill_value=-999.0)
    with pytest.raises(DataError, match=r"'PRECT': \(prect\): 1 non-finite"):
        checks.check_file(tmp_path / "f.nc")


# --------------------------------------------------------------------------- check_file
def test_check_file_report(own_file):
    report = checks.check_file(own_file)
    assert "96 samples x 159 columns" in report
    assert "time steps: 3" in report and "4 lat x 8 lon" in report
    line = next(x for x in report.splitlines() if x.strip().startswith("TBP"))
    assert " 30 " in line and "K (in )" in line
    lo, hi = (float(v) for v in line.split()[2:4])
    assert 150 < lo < 250 < hi < 350
    assert report.rstrip().endswith("OK: all values finite")


def test_check_file_with_matching_and_mismatching_norm(tmp_path, own_file):
    from pcm.data.normalization import compute_norm, write_norm

    norm = write_norm(compute_norm(own_file), tmp_path / "norm.nc")
    assert "matches" in checks.check_file(own_file, norm=norm)

    ds = xr.load_dataset(norm)
    names = ds["var_names"].values.astype(str)
    # a norm file from data in other units (PS in hPa): normalised PS is far off
    for stat in ("mean", "min", "max", "std"):
        ds[stat].values[names == "PS"] /= 100.0
    ds["std_by_var"].values[ds["var_names_single"].values.astype(str) == "PS"] /= 100.0
    write_norm(ds, tmp_path / "hpa.nc")
    with pytest.raises(DataError, match=r"variable 'PS': norm file .*does not match"):
        checks.check_file(own_file, norm=tmp_path / "hpa.nc")

    no_phq = ds.isel(var_names=np.flatnonzero(names != "PHQ"))
    write_norm(no_phq, tmp_path / "nophq.nc")
    with pytest.raises(DataError, match=r"nophq.nc: variable 'PHQ': missing"):
        checks.check_file(own_file, norm=tmp_path / "nophq.nc")


def test_variable_in_the_wrong_case_gets_a_hint(tmp_path):
    columns = foreign_columns(8)
    columns["qbp"] = columns.pop("QBP")
    write_foreign(tmp_path / "lower.nc", columns)
    with pytest.raises(DataError, match=r"variable 'QBP': missing from 'var_names' .*; the file "
                                        r"has 'qbp': did you mean 'QBP'\?"):
        cbrain.open_cbrain(tmp_path / "lower.nc")
    with pytest.raises(DataError, match=r"'Qbp': not a catalogue variable \(did you mean "
                                        r"'QBP'\?\)"):
        cbrain.validate_names(np.array(["QBP"]), ["Qbp"], tmp_path / "lower.nc")
    write_foreign(tmp_path / "upper.nc", foreign_columns(8, drop="LHFLX"))
    with pytest.raises(DataError, match="variable 'LHFLX': missing") as info:
        cbrain.open_cbrain(tmp_path / "upper.nc")
    assert "did you mean" not in str(info.value)  # no hint without a case mismatch


def test_a_step_file_takes_blocks_of_steps_in_any_order_and_refuses_bad_ones(tmp_path):
    import pickle

    from pcm.data.cbrain_write import create_step_file
    from pcm.variables import climsim_catalogue

    cat = climsim_catalogue(np.array([100.0, 500.0, 900.0]))
    n_col, n_var = 2, len(cat.expand_var_names(cat.all_variables))
    rows = np.arange(4 * n_col * n_var, dtype="f4").reshape(4 * n_col, n_var)
    kwargs = dict(lat=[0.0, 10.0], lon=[0.0, 90.0], area=[1.0, 1.0], time=[0.0, 1.0, 2.0, 3.0],
                  time_units="days since 0001-01-01", chunk_rows=2 * n_col)
    digests = []
    for name, blocks in (("a.nc", (2, 0)), ("b.nc", (0, 2))):
        target = create_step_file(tmp_path / name, cat, **kwargs)
        target = pickle.loads(pickle.dumps(target))  # as it travels to a dask worker
        for first in blocks:
            target.write_steps(first, rows[first * n_col:(first + 2) * n_col])
        digests.append((tmp_path / name).read_bytes())
    assert digests[0] == digests[1]  # the same bytes whatever the order of the writes
    with netCDF4.Dataset(tmp_path / "a.nc") as nc:
        np.testing.assert_array_equal(nc.variables["vars"][:], rows)
        assert nc.variables["vars"].chunking() == "contiguous" and nc.pcm_chunk_rows == 4
        assert nc.pcm_grid == "unstructured" and nc.pcm_n_time == 4
    with pytest.raises(DataError, match="outside the file's 4 time steps"):
        target.write_steps(3, rows[:2 * n_col])
    with pytest.raises(DataError, match=r"expected \(k x 2"):
        target.write_steps(0, rows[:3])
