"""The synthetic aquaplanet: known drivers, exogenous noise, realistic magnitudes."""

import numpy as np
import pytest

from pcm import variables as v
from pcm.data import synthetic as syn
from pcm.errors import DataError, ParameterError

GRID = {"n_lat": 8, "n_lon": 16}
I_SOLIN = v.input_labels().index("solin")
O_PRECT = v.output_labels().index("prect")
STEPS = 48

#: Real SPCAM statistics per variable (pooled mean = mean of the per-level ``mean`` of
#: 001_norm.nc, std = its ``std_by_var``); PS from the real field of ancil_spcam.nc
#: (the norm-file PS statistics are inconsistent). Reference implementation, MIT licence.
REAL = {
    "QBP": (0.002076, 0.003775),
    "TBP": (246.6, 72.21),
    "VBP": (0.02009, 5.858),
    "PS": (98099.0, 1845.0),
    "SOLIN": (324.3, 418.7),
    "SHFLX": (10.89, 14.25),
    "LHFLX": (70.37, 76.78),
    "TPHYSTND": (2.797e-09, 4.038e-05),
    "PHQ": (7.165e-10, 3.751e-08),
    "FSNT": (230.3, 316.4),
    "FSNS": (163.3, 240.7),
    "FLNT": (231.8, 45.92),
    "FLNS": (52.69, 27.31),
    "PRECT": (3.001e-08, 1.076e-07),
}


@pytest.fixture(scope="module")
def ds():
    return syn.generate(STEPS, seed=3, **GRID)


@pytest.fixture(scope="module")
def xy(ds):
    return (syn.stack_columns(ds, v.INPUT_VARIABLES),
            syn.stack_columns(ds, v.OUTPUT_VARIABLES))


def _corr(a, b):
    """Correlation matrix [a columns, b columns]; 0 where a column is constant."""
    sa, sb = a.std(axis=0), b.std(axis=0)
    za = (a - a.mean(axis=0)) / np.where(sa > 0, sa, 1.0)
    zb = (b - b.mean(axis=0)) / np.where(sb > 0, sb, 1.0)
    return za.T @ zb / len(a)


def test_dataset_layout_units_and_grid(ds):
    assert set(ds.data_vars) == set(v.INPUT_VARIABLES + v.OUTPUT_VARIABLES)
    grid = v.gaussian_grid(**GRID)
    np.testing.assert_array_equal(ds.lat, grid["lat"])
    np.testing.assert_array_equal(ds.lon, grid["lon"])
    np.testing.assert_array_equal(ds.gw, grid["gw"])
    np.testing.assert_array_equal(ds.lev, v.LEVELS_HPA)
    np.testing.assert_array_equal(ds.time, np.arange(STEPS) * 1800)
    for name, da in ds.data_vars.items():
        var = v.VARIABLES[name]
        dims = ("time", "lev", "lat", "lon") if var.three_d else ("time", "lat", "lon")
        assert da.dims == dims
        assert da.attrs["units"] == var.units and da.attrs["long_name"]
        assert np.isfinite(da.values).all()
    assert ds.attrs["seed"] == 3 and ds.attrs["sst_shift"] == 0.0 and ds.attrs["title"]


def test_true_drivers_layout_and_sparsity():
    d = syn.true_drivers()
    assert d.name == "drivers" and d.dtype == bool and d.dims == ("output", "input")
    assert list(d.output.values) == v.output_labels()
    assert list(d.input.values) == v.input_labels()
    groups = v.input_groups()
    assert not d.values[:, groups["VBP"]].any()
    assert not d.sel(input="ps").any()
    counts = d.values.sum(axis=1)
    assert (counts[30:40] == 0).all()  # PHQ above 140 hPa: no drivers at all
    assert np.median(counts[counts > 0]) <= 15
    assert counts.max() < 94 // 4


def test_output_function_reads_exactly_the_declared_drivers(xy):
    x = xy[0][::13][:300]  # a few hundred realistic columns, day and night
    assert (x[:, I_SOLIN] == 0).any() and (x[:, I_SOLIN] > 0).any()
    drivers = syn.true_drivers().values
    f0 = syn.output_function(x)
    scale = np.maximum(np.abs(x), x.std(axis=0) + 1e-12)
    for i in range(x.shape[1]):
        xp = x.copy()
        xp[:, i] += 1e-4 * scale[:, i]
        changed = (syn.output_function(xp) != f0).any(axis=0)
        np.testing.assert_array_equal(changed, drivers[:, i],
                                      err_msg=f"input {v.input_labels()[i]}")


def test_generated_outputs_are_function_plus_exogenous_noise(xy):
    x, y = xy
    f = syn.output_function(x)
    residual = y - f
    varying = y.std(axis=0) > 0
    # PHQ above 140 hPa: exactly zero, no noise
    assert (y[:, 30:40] == 0).all() and (f[:, 30:40] == 0).all()
    assert varying.sum() == 55
    # the noise is uncorrelated with every input
    assert np.abs(_corr(x, residual[:, varying])).max() < 0.1
    # and sized so that the deterministic part explains most, but not all, variance
    share = f[:, varying].var(axis=0) / y[:, varying].var(axis=0)
    assert share.min() > 0.6 and share.max() < 0.99
    assert 0.7 < np.median(share) < 0.92


def test_non_drivers_are_correlated_with_outputs(xy):
    x, y = xy
    c = np.abs(_corr(y, x))
    drivers = syn.true_drivers().values
    strongest_non_driver = np.where(drivers, 0.0, c).max(axis=1)
    assert (strongest_non_driver >= 0.3).sum() >= 30
    vbp = v.input_groups()["VBP"]
    assert c[O_PRECT, vbp].max() >= 0.3
    assert c[:60, vbp].max() >= 0.3  # some heating or moistening level


def test_magnitudes_match_real_spcam(xy):
    x, y = xy
    blocks = {}
    for names, data in ((v.INPUT_VARIABLES, x), (v.OUTPUT_VARIABLES, y)):
        start = 0
        for name in names:
            n = v.VARIABLES[name].n_levels
            blocks[name] = data[:, start:start + n]
            start += n
    for name, (real_mean, real_std) in REAL.items():
        mean, std = blocks[name].mean(), blocks[name].std()
        assert real_std / 3 < std < 3 * real_std, (name, std, real_std)
        if abs(real_mean) > real_std:
            assert real_mean / 3 < mean < 3 * real_mean, (name, mean, real_mean)
        else:
            assert abs(mean) < real_std, (name, mean, real_std)


def test_physical_structure(ds):
    t = ds.TBP.mean(("time", "lat", "lon")).values
    q = ds.QBP.mean(("time", "lat", "lon")).values
    assert t[0] < t[-1] and 185 < t.min() < 215 and 270 < t[-1] < 295
    assert q[-1] > 1e-3 and q[0] < 5e-6
    assert (np.diff(q[10:]) > 0).all()  # moisture increases downward in the troposphere
    assert (ds.PHQ.isel(lev=slice(0, 10)) == 0).all()
    assert (ds.PHQ.isel(lev=slice(10, None)).std("time") > 0).all()
    solin, fsnt, fsns = ds.SOLIN, ds.FSNT, ds.FSNS
    assert (solin == 0).any() and float(solin.max()) <= syn.S0
    assert ((fsnt >= 0) & (fsnt <= solin)).all() and ((fsns >= 0) & (fsns <= fsnt)).all()
    assert ((fsnt == 0) == (solin == 0)).all()
    assert (ds.PRECT >= 0).all() and (ds.QBP > 0).all()


def _lag1(da):
    a = da.values.astype(np.float64)
    a = a - a.mean(axis=0)
    return (a[1:] * a[:-1]).sum() / (a * a).sum()


def test_time_coherence(ds):
    for name in ("TBP", "QBP", "VBP"):
        assert 0.8 < _lag1(ds[name]) < 0.99, name


def test_time_coherence_across_processing_chunks():
    # 4096 columns are processed two time steps at a time: every step-to-step correlation
    # of the zonal anomalies, within and across chunks, stays high
    big = syn.generate(8, seed=2, n_lat=32, n_lon=128)
    for name in ("TBP", "QBP", "VBP"):
        a = big[name].values.astype(np.float64)
        a = (a - a.mean(axis=-1, keepdims=True)).reshape(len(a), -1)
        step_corr = [np.corrcoef(a[i], a[i + 1])[0, 1] for i in range(len(a) - 1)]
        assert min(step_corr) > 0.85, (name, step_corr)
    short = syn.generate(3, seed=2, n_lat=32, n_lon=128)
    np.testing.assert_array_equal(short.QBP.values, big.QBP.values[:3])


def test_determinism_and_prefix(ds):
    again = syn.generate(STEPS, seed=3, **GRID)
    for name in ds.data_vars:
        np.testing.assert_array_equal(again[name].values, ds[name].values)
    other = syn.generate(STEPS, seed=4, **GRID)
    assert not np.array_equal(other.TBP.values, ds.TBP.values)
    assert not np.array_equal(other.PRECT.values, ds.PRECT.values)
    short = syn.generate(5, seed=3, **GRID)
    for name in ds.data_vars:
        np.testing.assert_array_equal(short[name].values, ds[name].values[:5])


def test_warming_follows_clausius_clapeyron():
    base = syn.generate(12, seed=1, **GRID)
    warm = syn.generate(12, seed=1, sst_shift=4.0, **GRID)
    cold = syn.generate(12, seed=1, sst_shift=-4.0, **GRID)
    q = [float(d.QBP.isel(lev=-1).mean()) for d in (cold, base, warm)]
    assert 1.2 < q[2] / q[1] < 1.35 and 1.2 < q[1] / q[0] < 1.35
    t_top = [float(d.TBP.isel(lev=0).mean()) for d in (cold, base, warm)]
    assert max(t_top) - min(t_top) < 0.5  # the stratosphere does not warm
    assert warm.attrs["sst_shift"] == 4.0
    assert float(warm.PRECT.mean()) > float(base.PRECT.mean()) > float(cold.PRECT.mean())


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ParameterError, match="steps"):
        syn.generate(0)
    with pytest.raises(ParameterError, match="seed"):
        syn.generate(2, seed=-1)
    with pytest.raises(ParameterError, match="n_lat"):
        syn.generate(2, n_lat=65)
    with pytest.raises(DataError, match="94"):
        syn.output_function(np.zeros((3, 93)))


def test_calibration_report_lists_every_variable():
    report = syn.calibration_report(4, n_lat=4, n_lon=8)
    assert set(report) == set(v.INPUT_VARIABLES + v.OUTPUT_VARIABLES)
    assert 0.5 < report["TPHYSTND"]["explained"] < 1.0


def test_driver_strength_is_positive_exactly_on_drivers():
    strength = syn.driver_strength(6, n_lat=8, n_lon=16)
    drivers = syn.true_drivers()
    assert strength.dims == drivers.dims and strength.name == "driver_strength"
    assert (strength.values[~drivers.values] == 0).all()
    assert (strength.values[drivers.values] > 0).all()
    # SOLIN dominates the shortwave, the lowest-level temperature the surface longwave
    assert strength.sel(output="fsnt").idxmax() == "solin"
    assert strength.sel(output="flns").idxmax() == "tbp-992.56"
