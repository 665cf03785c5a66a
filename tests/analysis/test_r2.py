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


def test_unstructured_grid_uses_column_areas_and_latitude_bands():
    from pcm.analysis.r2 import LAT_BAND_EDGES
    from pcm.variables import climsim_catalogue

    cat = climsim_catalogue(np.linspace(1.0, 1000.0, 60))
    n_col, n_time, n_out = 7, 10, cat.n_outputs
    rng = np.random.default_rng(3)
    lat = np.array([-80.0, -45.0, -44.0, 0.5, 10.0, 45.0, 89.0])
    lon = np.linspace(0.0, 300.0, n_col)
    area = np.array([1.0, 3.0, 2.0, 5.0, 1.0, 2.0, 0.5])
    t = rng.normal(size=(n_time, n_col, n_out)) + np.arange(n_col)[None, :, None]
    p = t + 0.3 * rng.normal(size=t.shape)
    ds = r2_dataset(t.reshape(-1, n_out), p.reshape(-1, n_out), lat, lon, area=area,
                    catalogue=cat)
    # per-column map over time
    expected_map = 1 - ((p - t) ** 2).mean(0) / t.var(0)
    assert ds["r2_map"].dims == ("output", "ncol")
    np.testing.assert_allclose(ds["r2_map"].values, expected_map.T, rtol=1e-10)
    np.testing.assert_array_equal(ds["column_lat"].values, lat)
    # global: pooled over time and columns, area weighted
    w = (area / area.sum())[None, :, None]
    mse = ((p - t) ** 2 * w).sum(axis=(0, 1)) / n_time
    var = (t ** 2 * w).sum(axis=(0, 1)) / n_time - ((t * w).sum(axis=(0, 1)) / n_time) ** 2
    np.testing.assert_allclose(ds["r2"].values, 1 - mse / var, rtol=1e-9)
    # zonal: the columns of each 10-degree band pooled; empty bands NaN
    assert ds["r2_zonal"].sizes["lat"] == len(LAT_BAND_EDGES) - 1
    band = ds["r2_zonal"].sel(lat=-45.0, method="nearest")  # columns at -45 and -44
    sel = [1, 2]
    wb = (area[sel] / area[sel].sum())[None, :, None]
    tb, pb = t[:, sel], p[:, sel]
    mse_b = ((pb - tb) ** 2 * wb).sum(axis=(0, 1)) / n_time
    var_b = (tb ** 2 * wb).sum(axis=(0, 1)) / n_time - ((tb * wb).sum(axis=(0, 1)) / n_time) ** 2
    np.testing.assert_allclose(band.values, 1 - mse_b / var_b, rtol=1e-9)
    assert np.isnan(ds["r2_zonal"].sel(lat=25.0, method="nearest").values).all()
    # labels, levels and profiles come from the catalogue
    assert list(ds["output"].values) == cat.output_labels()
    assert profile(ds, "ptend_t").sizes["lev"] == 60
    with pytest.raises(ValueError, match="not a 3-D output variable"):
        profile(ds, "cam_out_NETSW")
    assert list(variable_means(ds["r2"])["var"].values) == list(cat.outputs)
