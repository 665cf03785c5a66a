"""R² maps, global scores, profiles and cross sections (pcm.analysis.r2)."""

from __future__ import annotations

import numpy as np
import pytest

from pcm.analysis.r2 import R2Accumulator, cross_section, profile, r2_dataset, variable_means
from pcm.errors import DataError
from pcm.variables import LEVELS_HPA, gaussian_grid, output_labels

N_LAT, N_LON, N_TIME, N_OUT = 4, 6, 12, 65


@pytest.fixture()
def grid():
    return gaussian_grid(N_LAT, N_LON)


@pytest.fixture()
def data():
    rng = np.random.default_rng(0)
    y_true = rng.normal(size=(N_TIME * N_LAT * N_LON, N_OUT)) * (1 + np.arange(N_OUT))
    y_pred = y_true + 0.5 * rng.normal(size=y_true.shape) * (1 + np.arange(N_OUT))
    return y_true, y_pred


def _grid4(y):
    return y.reshape(N_TIME, N_LAT, N_LON, -1)


def test_map_matches_definition_per_grid_point(grid, data):
    y_true, y_pred = data
    ds = r2_dataset(y_true, y_pred, grid["lat"], grid["lon"])
    t, p = _grid4(y_true), _grid4(y_pred)
    expected = 1 - ((p - t) ** 2).mean(0) / t.var(0)  # (lat, lon, out)
    np.testing.assert_allclose(ds["r2_map"].values, expected.transpose(2, 0, 1), rtol=1e-10)
    assert ds["r2_map"].dims == ("output", "lat", "lon")
    assert ds["r2_map"].attrs["units"] == "1"


def test_global_is_pooled_cos_lat_weighted(grid, data):
    y_true, y_pred = data
    ds = r2_dataset(y_true, y_pred, grid["lat"], grid["lon"])
    t, p = _grid4(y_true), _grid4(y_pred)
    w = np.cos(np.deg2rad(grid["lat"]))[None, :, None, None] * np.ones_like(t)
    w = w / w.sum(axis=(0, 1, 2), keepdims=True)
    mse = ((p - t) ** 2 * w).sum(axis=(0, 1, 2))
    var = (t ** 2 * w).sum(axis=(0, 1, 2)) - ((t * w).sum(axis=(0, 1, 2))) ** 2
    np.testing.assert_allclose(ds["r2"].values, 1 - mse / var, rtol=1e-9)
    # the area mean of the map is a different (lower-variance-sensitive) number
    wl = np.cos(np.deg2rad(grid["lat"]))
    pointwise = (ds["r2_map"].mean("lon") * wl[None]).sum("lat") / wl.sum()
    np.testing.assert_allclose(ds["r2_pointwise_mean"].values, pointwise.values, rtol=1e-9)


def test_zonal_is_pooled_over_time_and_longitude(grid, data):
    y_true, y_pred = data
    ds = r2_dataset(y_true, y_pred, grid["lat"], grid["lon"])
    t, p = _grid4(y_true), _grid4(y_pred)
    expected = 1 - ((p - t) ** 2).mean(axis=(0, 2)) / t.var(axis=(0, 2))  # (lat, out)
    np.testing.assert_allclose(ds["r2_zonal"].values, expected.T, rtol=1e-9)


def test_perfect_and_climatology_predictions(grid, data):
    y_true, _ = data
    perfect = r2_dataset(y_true, y_true, grid["lat"], grid["lon"])
    assert np.allclose(perfect["r2"].values, 1.0)
    assert np.allclose(perfect["r2_map"].values, 1.0)
    clim = np.broadcast_to(_grid4(y_true).mean(0), _grid4(y_true).shape).reshape(y_true.shape)
    ds = r2_dataset(y_true, clim, grid["lat"], grid["lon"])
    np.testing.assert_allclose(ds["r2_map"].values, 0.0, atol=1e-12)


def test_samples_are_stacked_time_lat_lon_lon_fastest(grid, data):
    y_true, _ = data
    y_pred = y_true.copy()
    p = _grid4(y_pred)  # view
    p[:, 1, 2, 0] += 10.0  # error only at lat index 1, lon index 2
    ds = r2_dataset(y_true, y_pred, grid["lat"], grid["lon"])
    bad = ds["r2_map"].isel(output=0).values < 0.999
    assert bad.sum() == 1 and bad[1, 2]


def test_zero_variance_gives_nan_not_error(grid, data):
    y_true, y_pred = data
    y_true, y_pred = y_true.copy(), y_pred.copy()
    y_true[:, 5] = 2.5e-8  # constant output (in float64 and float32 alike)
    y_pred[:, 5] = 3.0e-8
    t = _grid4(y_true)
    t[:, 0, 0, 7] = 4.0  # one constant grid point of output 7
    y_pred[:, 9] = np.nan  # output without a network
    ds = r2_dataset(y_true.astype(np.float32), y_pred, grid["lat"], grid["lon"])
    for name in ("r2", "r2_pointwise_mean"):
        assert np.isnan(ds[name].values[[5, 9]]).all()
    assert np.isnan(ds["r2_map"].values[5]).all()
    assert np.isnan(ds["r2_zonal"].values[5]).all()
    assert np.isnan(ds["r2_map"].values[7, 0, 0])
    assert np.isfinite(ds["r2_map"].values[7]).sum() == N_LAT * N_LON - 1
    assert np.isfinite(ds["r2_pointwise_mean"].values[7])  # NaN point skipped
    assert np.isfinite(ds["r2"].values[7])
    assert np.isfinite(np.delete(ds["r2"].values, [5, 9])).all()


def test_streaming_equals_one_shot(grid, data):
    y_true, y_pred = data
    acc = R2Accumulator(N_LAT, N_LON, N_OUT)
    step = N_LAT * N_LON
    for k in (0, 1, 4, 9):  # chunks of 1, 3, 5 and 3 time steps
        stop = {0: 1, 1: 4, 4: 9, 9: 12}[k]
        acc.update(y_true[k * step:stop * step], y_pred[k * step:stop * step])
    streamed = r2_dataset(None, None, grid["lat"], grid["lon"], accumulator=acc)
    direct = r2_dataset(y_true, y_pred, grid["lat"], grid["lon"])
    np.testing.assert_allclose(streamed["r2_map"].values, direct["r2_map"].values, rtol=1e-10)
    np.testing.assert_allclose(streamed["r2"].values, direct["r2"].values, rtol=1e-10)
    assert streamed.attrs["n_time"] == N_TIME


def test_bad_shapes_raise_data_error(grid, data):
    y_true, y_pred = data
    with pytest.raises(DataError, match="whole time steps"):
        r2_dataset(y_true[:-1], y_pred[:-1], grid["lat"], grid["lon"])
    with pytest.raises(DataError, match="differ"):
        r2_dataset(y_true, y_pred[:, :10], grid["lat"], grid["lon"])
    with pytest.raises(DataError, match="no time steps"):
        R2Accumulator(N_LAT, N_LON, N_OUT).result(grid["lat"])


def test_profile_cross_section_and_variable_means(grid, data):
    y_true, y_pred = data
    ds = r2_dataset(y_true, y_pred, grid["lat"], grid["lon"])
    prof = profile(ds, "phq")
    assert prof.dims == ("lev",) and prof.sizes["lev"] == 30
    np.testing.assert_allclose(prof["lev"].values, LEVELS_HPA)
    np.testing.assert_allclose(prof.values, ds["r2"].values[30:60])
    sec = cross_section(ds, "TPHYSTND")
    assert sec.dims == ("lev", "lat") and sec.shape == (30, N_LAT)
    with pytest.raises(ValueError, match="3-D output"):
        profile(ds, "PRECT")
    r2 = ds["r2"].copy()
    r2[:30] = np.nan
    r2[0] = 0.5
    means = variable_means(r2)
    assert list(means["var"].values) == ["TPHYSTND", "PHQ", "FSNT", "FSNS", "FLNT", "FLNS",
                                         "PRECT"]
    assert means.sel(var="TPHYSTND") == 0.5  # NaN levels skipped
    np.testing.assert_allclose(means.sel(var="PHQ"), ds["r2"].values[30:60].mean())
    assert list(ds["output"].values) == output_labels()
    assert np.isnan(ds["lev"].values[-1]) and ds["variable"].values[-1] == "PRECT"
