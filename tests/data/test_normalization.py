"""Normalisation statistics and the reference normalisation."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from test_cbrain import fake_fields, stacked

from pcm.data import cbrain, cbrain_write, checks
from pcm.data.normalization import Normalization, ZeroVarianceWarning, compute_norm, write_norm
from pcm.errors import DataError
from pcm.variables import INPUT_VARIABLES, OUTPUT_SCALE, OUTPUT_VARIABLES, VARIABLES

#: The real SPCAM norm file in the project's shared material (``../shared`` beside the
#: checkout); the test that reads it skips where it is absent.
REFERENCE_NORM = Path(__file__).resolve().parents[3] / "shared" / "reference" / "001_norm.nc"


@pytest.fixture
def data_file(tmp_path):
    fields = fake_fields(steps=4)
    fields["PHQ"][:, :2] = 0.0  # zero-variance moistening at the two top levels
    return cbrain_write.write_cbrain(fields, tmp_path / "train.nc"), fields


@pytest.fixture
def norm_ds(data_file):
    return compute_norm(data_file[0], block=37)  # several uneven blocks


def test_compute_norm_matches_numpy(data_file, norm_ds):
    path, fields = data_file
    with cbrain.open_cbrain(path) as ds:
        values = ds["vars"].values.astype("f8")
    np.testing.assert_allclose(norm_ds["mean"].values, values.mean(0), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(norm_ds["std"].values, values.std(0), rtol=1e-9, atol=1e-300)
    np.testing.assert_array_equal(norm_ds["min"].values, values.min(0))
    np.testing.assert_array_equal(norm_ds["max"].values, values.max(0))
    assert list(norm_ds["var_names_single"].values) == list(INPUT_VARIABLES + OUTPUT_VARIABLES)
    tbp = stacked(fields, "TBP").astype("f8")
    assert norm_ds["std_by_var"].sel(var_names_single="TBP") == pytest.approx(tbp.std(),
                                                                                rel=1e-10)


def test_write_norm_round_trip(tmp_path, norm_ds):
    path = write_norm(norm_ds, tmp_path / "norm.nc")
    back = xr.load_dataset(path)
    np.testing.assert_array_equal(back["mean"].values, norm_ds["mean"].values)
    assert back["var_names"].values[0] == "QBP"
    for name in ("mean", "std", "min", "max", "std_by_var"):
        assert "units" in back[name].attrs and "long_name" in back[name].attrs


def test_normalization_is_the_reference_formula(data_file, norm_ds):
    path, fields = data_file
    with pytest.warns(ZeroVarianceWarning):
        norm = Normalization.from_dataset(norm_ds)
    names = norm_ds["var_names"].values.astype(str)
    x = np.concatenate([stacked(fields, v) for v in INPUT_VARIABLES], axis=1).astype("f8")
    y = np.concatenate([stacked(fields, v) for v in OUTPUT_VARIABLES], axis=1).astype("f8")
    col = np.concatenate([np.flatnonzero(names == v) for v in INPUT_VARIABLES])
    single = {v: float(norm_ds["std_by_var"].sel(var_names_single=v)) for v in INPUT_VARIABLES}
    std_by_var = np.concatenate([[single[v]] * VARIABLES[v].n_levels for v in INPUT_VARIABLES])
    rng = norm_ds["max"].values[col] - norm_ds["min"].values[col]
    expected = (x - norm_ds["mean"].values[col]) / np.maximum(rng, std_by_var)
    np.testing.assert_allclose(norm.normalize_inputs(x), expected, rtol=1e-12)
    np.testing.assert_allclose(norm.normalize_inputs(x.astype("f4")), expected, atol=2e-6)
    assert norm.normalize_inputs(x.astype("f4")).dtype == np.float32
    factors = np.concatenate([[OUTPUT_SCALE[v]] * VARIABLES[v].n_levels
                              for v in OUTPUT_VARIABLES])
    np.testing.assert_allclose(norm.normalize_outputs(y), y * factors, rtol=1e-12)
    np.testing.assert_allclose(norm.denormalize_outputs(norm.normalize_outputs(y)), y,
                               rtol=1e-12)
    np.testing.assert_allclose(norm.denormalize_inputs(norm.normalize_inputs(x)), x,
                               rtol=1e-12)
    assert norm.input_mean.shape == norm.input_scale.shape == (94,)
    assert norm.output_scale.shape == (65,)


def test_mean_outside_min_max_is_accepted(norm_ds):
    ds = norm_ds.copy(deep=True)
    names = ds["var_names"].values.astype(str)
    ds["mean"].values[names == "PS"] = ds["max"].values[names == "PS"] + 500.0
    norm = Normalization.from_dataset(ds, warn=False)
    assert norm.input_mean[90] == pytest.approx(float(ds["max"].values[names == "PS"][0])
                                                    + 500.0)
    assert np.isfinite(norm.input_scale).all()


def test_zero_variance_outputs_warn_and_stay_zero(tmp_path, data_file, norm_ds):
    path = write_norm(norm_ds, tmp_path / "norm.nc")
    with pytest.warns(ZeroVarianceWarning, match=r"norm.nc: zero-variance outputs "
                                                 r"phq-3.64, phq-7.59 "):
        norm = Normalization.from_file(path)
    zero = np.flatnonzero(norm.zero_variance_outputs)
    np.testing.assert_array_equal(zero, [30, 31])  # PHQ starts at output 30
    assert norm.zero_variance_labels() == ["phq-3.64", "phq-7.59"]
    y = np.zeros((2, 65))
    assert (norm.normalize_outputs(y)[:, zero] == 0).all()


def test_constant_input_does_not_divide_by_zero(norm_ds):
    ds = norm_ds.copy(deep=True)
    names = ds["var_names"].values.astype(str)
    for stat in ("min", "max", "mean"):
        ds[stat].values[names == "SOLIN"] = 0.0
    ds["std_by_var"].loc["SOLIN"] = 0.0
    norm = Normalization.from_dataset(ds, warn=False)
    assert norm.input_scale[91] == 1.0
    assert np.isfinite(norm.normalize_inputs(np.ones((1, 94)))).all()


@pytest.mark.parametrize(("edit", "message"), [
    ("drop_phq", r"variable 'PHQ': missing from the norm file"),
    ("tbp_29", r"variable 'TBP': has 29 entries .* expected 30"),
    ("no_std_by_var", r"lacks 'std_by_var'"),
    ("no_min", r"lacks 'min'"),
    ("nan_mean", r"variable 'VBP': non-finite"),
])
def test_norm_file_mismatch_is_named(tmp_path, norm_ds, edit, message):
    names = norm_ds["var_names"].values.astype(str)
    ds = norm_ds.copy(deep=True)
    if edit == "drop_phq":
        ds = ds.isel(var_names=np.flatnonzero(names != "PHQ"))
    elif edit == "tbp_29":
        ds = ds.isel(var_names=np.flatnonzero(names != "TBP").tolist()
                     + np.flatnonzero(names == "TBP")[:29].tolist())
    elif edit == "no_std_by_var":
        ds = ds.drop_vars("std_by_var")
    elif edit == "no_min":
        ds = ds.drop_vars("min")
    elif edit == "nan_mean":
        ds["mean"].values[np.flatnonzero(names == "VBP")[3]] = np.nan
    path = write_norm(ds, tmp_path / "bad_norm.nc")
    with pytest.raises(DataError, match=message) as err:
        Normalization.from_file(path)
    assert "bad_norm.nc" in str(err.value)


def test_not_a_norm_file(tmp_path):
    (tmp_path / "n.nc").write_bytes(b"\x00" * 100)
    with pytest.raises(DataError, match="n.nc: not a readable netCDF"):
        Normalization.from_file(tmp_path / "n.nc")
    with pytest.raises(DataError, match="norm file not found"):
        Normalization.from_file(tmp_path / "missing.nc")


@pytest.mark.skipif(not REFERENCE_NORM.exists(), reason="reference norm file not present")
def test_real_reference_norm_file():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        norm = Normalization.from_file(REFERENCE_NORM)
    messages = [str(w.message) for w in caught if issubclass(w.category, ZeroVarianceWarning)]
    assert len(messages) == 1 and "phq-3.64, phq-7.59" in messages[0]
    assert "001_norm.nc" in messages[0]
    assert norm.zero_variance_labels() == ["phq-3.64", "phq-7.59"]
    ref = xr.load_dataset(REFERENCE_NORM)
    names = ref["var_names"].values.astype(str)
    assert names.size == 522
    # TBP top level: range (91.55 K) beats std_by_var (72.2 K)
    tbp = np.flatnonzero(names == "TBP")[0]
    assert norm.input_scale[30] == pytest.approx(float(ref["max"][tbp] - ref["min"][tbp]))
    # QBP top level: tiny range, std_by_var wins
    assert norm.input_scale[0] == pytest.approx(
        float(ref["std_by_var"].sel(var_names_single="QBP")))
    assert norm.input_mean[90] == pytest.approx(float(ref["mean"][names == "PS"][0]))
    assert np.isfinite(norm.input_scale).all() and (norm.input_scale > 0).all()
    assert norm.output_scale[0] == OUTPUT_SCALE["TPHYSTND"]
    assert norm.output_scale[64] == OUTPUT_SCALE["PRECT"]


@pytest.mark.skipif(not REFERENCE_NORM.exists(), reason="reference norm file not present")
def test_synthetic_data_fit_the_real_norm_file(tmp_path):
    from pcm.data import synthetic

    path = cbrain_write.write_cbrain(synthetic.generate(2, seed=0, n_lat=4, n_lon=8),
                                     tmp_path / "s.nc")
    report = checks.check_file(path, norm=REFERENCE_NORM)
    assert "001_norm.nc: matches" in report and "phq-3.64, phq-7.59" in report


def test_norm_variable_in_the_wrong_case_gets_a_hint(norm_ds):
    names = norm_ds["var_names"].values.astype(str)
    lowered = norm_ds.assign_coords(var_names=np.where(names == "TBP", "tbp", names))
    with pytest.raises(DataError, match=r"variable 'TBP': missing from the norm file's "
                                        r"var_names .*did you mean 'TBP'\?"):
        Normalization.from_dataset(lowered)
