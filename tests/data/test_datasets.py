"""Loading normalised splits, streaming batches, and the synthetic data set on disk."""

from __future__ import annotations

import sys
import warnings

import netCDF4
import numpy as np
import pytest
import xarray as xr
from test_cbrain import fake_fields, foreign_columns, stacked, write_foreign

from pcm.data import cbrain, cbrain_write, checks, datasets
from pcm.data.normalization import Normalization, ZeroVarianceWarning, compute_norm, write_norm
from pcm.errors import DataError, ParameterError
from pcm.variables import INPUT_VARIABLES, OUTPUT_SCALE, OUTPUT_VARIABLES, VARIABLES


@pytest.fixture
def split(tmp_path):
    fields = fake_fields(steps=5, n_lat=4, n_lon=8, seed=3)
    path = cbrain_write.write_cbrain(fields, tmp_path / "train.nc")
    norm = write_norm(compute_norm(path), tmp_path / "norm.nc")
    return path, norm, fields


def physical(fields, names):
    return np.concatenate([stacked(fields, v) for v in names], axis=1).astype("f8")


def test_load_split_returns_normalised_arrays(split):
    path, norm_path, fields = split
    norm = Normalization.from_file(norm_path)
    x, y = datasets.load_split(path, norm_path, block=50)  # several blocks
    assert x.shape == (160, 94) and y.shape == (160, 65)
    assert x.dtype == y.dtype == np.float32
    np.testing.assert_allclose(x, norm.normalize_inputs(physical(fields, INPUT_VARIABLES)),
                               atol=2e-6)
    y_phys = physical(fields, OUTPUT_VARIABLES)
    np.testing.assert_allclose(y[:, 0], y_phys[:, 0] * OUTPUT_SCALE["TPHYSTND"], rtol=1e-6)
    np.testing.assert_allclose(y[:, 64], y_phys[:, 64] * OUTPUT_SCALE["PRECT"], rtol=1e-6)
    x64, _ = datasets.load_split(path, norm, dtype="float64")
    assert x64.dtype == np.float64
    np.testing.assert_allclose(x64, x, atol=2e-6)


def test_max_samples_head_and_strided(split):
    path, norm, _ = split
    x, y = datasets.load_split(path, norm)
    xh, yh = datasets.load_split(path, norm, max_samples=17)
    np.testing.assert_array_equal(xh, x[:17])
    np.testing.assert_array_equal(yh, y[:17])
    xs, _ = datasets.load_split(path, norm, max_samples=17, subset="strided", block=10)
    step = 160 // 17
    np.testing.assert_array_equal(xs, x[: step * 17 : step])
    assert datasets.load_split(path, norm, max_samples=10**9)[0].shape == (160, 94)
    with pytest.raises(ParameterError, match="subset"):
        datasets.load_split(path, norm, max_samples=3, subset="random")


def test_load_split_maps_columns_of_foreign_files(tmp_path, split):
    _, norm_path, _ = split
    cols = foreign_columns(64)
    write_foreign(tmp_path / "f.nc", cols)
    norm = Normalization.from_file(norm_path)
    x, y = datasets.load_split(tmp_path / "f.nc", norm)
    x_phys = np.concatenate([cols[v] for v in INPUT_VARIABLES], axis=1)
    y_phys = np.concatenate([cols[v] for v in OUTPUT_VARIABLES], axis=1)
    np.testing.assert_allclose(x, norm.normalize_inputs(x_phys), atol=1e-6)
    np.testing.assert_allclose(y, norm.normalize_outputs(y_phys), rtol=1e-6)


def test_foreign_file_missing_variable_or_nan_is_named(tmp_path, split):
    _, norm, _ = split
    write_foreign(tmp_path / "f.nc", foreign_columns(64, drop="SOLIN"))
    with pytest.raises(DataError, match=r"f.nc: variable 'SOLIN': missing"):
        datasets.load_split(tmp_path / "f.nc", norm)
    cols = foreign_columns(cbrain.SAMPLES_PER_T42_STEP)
    cols["VBP"][40, 29] = np.nan
    write_foreign(tmp_path / "g.nc", cols)
    with pytest.raises(DataError, match=r"g.nc: variable 'VBP': \(vbp-992.56\): 1 non-finite "
                                        r"values \(first in sample 40\)"):
        datasets.load_split(tmp_path / "g.nc", norm, block=16)
    with pytest.raises(DataError, match="'VBP'"):
        list(datasets.iter_batches(tmp_path / "g.nc", norm, 8))
    with pytest.raises(DataError, match=r"'VBP': \(vbp-992.56\)"):
        checks.check_file(tmp_path / "g.nc")


def test_iter_batches_cover_the_split(split):
    path, norm, _ = split
    x, y = datasets.load_split(path, norm)
    batches = list(datasets.iter_batches(path, norm, 32, block=48))
    assert [b[0].shape[0] for b in batches] == [32] * 5
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)
    odd = list(datasets.iter_batches(path, norm, 50, drop_remainder=True))
    assert [b[0].shape[0] for b in odd] == [50, 50, 50]
    assert [b[0].shape[0] for b in datasets.iter_batches(path, norm, 50)] == [50, 50, 50, 10]
    a = np.concatenate([b[0] for b in datasets.iter_batches(path, norm, 16, shuffle=True)])
    b = np.concatenate([b[0] for b in datasets.iter_batches(path, norm, 16, shuffle=True)])
    np.testing.assert_array_equal(a, b)  # deterministic
    assert not np.array_equal(a, x)
    np.testing.assert_array_equal(np.sort(a[:, 0]), np.sort(x[:, 0]))  # same samples


# --------------------------------------------------------------------------- synthetic
class _FakeSynthetic:
    """Stands in for pcm.data.synthetic: records calls, returns fake fields."""

    def __init__(self):
        self.calls = []

    def generate(self, steps, *, seed=0, n_lat=None, n_lon=None, sst_shift=0.0, world=0):
        self.calls.append((steps, seed, sst_shift))
        ds = fake_fields(steps, n_lat or 4, n_lon or 8, seed=seed)
        ds["TBP"] = ds["TBP"] + np.float32(sst_shift)
        return ds

    @staticmethod
    def true_drivers(world=0):
        from pcm.variables import input_labels, output_labels

        return xr.DataArray(np.eye(65, 94, dtype=bool), dims=("output", "input"),
                            coords={"output": output_labels(), "input": input_labels()},
                            name="drivers")

    def driver_strength(self, *, seed=0, world=0):
        self.calls.append(("strength", seed, 0.0))
        strength = self.true_drivers() * (0.5 + seed)
        return strength.rename("driver_strength").assign_attrs(units="1", long_name="strength")


@pytest.fixture
def fake_synthetic(monkeypatch):
    fake = _FakeSynthetic()
    monkeypatch.setattr(datasets, "synthetic", fake)
    return fake


def test_write_synthetic_dataset_layout(tmp_path, fake_synthetic):
    paths = datasets.write_synthetic_dataset(tmp_path / "d", steps=10, seed=5, n_lat=2,
                                             n_lon=4)
    assert set(paths) == {"train", "valid", "test", "plus4K", "minus4K", "norm", "drivers"}
    assert all(p.exists() and p.parent == tmp_path / "d" for p in paths.values())
    steps = {k: cbrain.sample_grid(paths[k])["n_time"] for k in
             ("train", "valid", "test", "plus4K", "minus4K")}
    assert steps == {"train": 6, "valid": 2, "test": 2, "plus4K": 2, "minus4K": 2}
    # consecutive blocks of one simulation
    times = {k: netCDF4.Dataset(paths[k])["time"][:].tolist() for k in ("train", "valid",
                                                                       "test")}
    assert times["train"] + times["valid"] + times["test"] == [i * 1800.0 for i in range(10)]
    control = fake_synthetic.generate(10, seed=5, n_lat=2, n_lon=4)
    with cbrain.open_cbrain(paths["valid"]) as ds:
        tbp = ds["vars"].values[:, cbrain.column_index(ds, ["TBP"])]
    np.testing.assert_array_equal(tbp, stacked(control.isel(time=[6, 7]), "TBP"))
    # +-4K: the test period's length, shifted, with their own deterministic seeds
    calls = fake_synthetic.calls[:3]
    assert calls[0] == (10, 5, 0.0)
    assert [c[2] for c in calls[1:]] == [4.0, -4.0]
    assert len({c[1] for c in calls}) == 3 and all(c[0] == 2 for c in calls[1:])
    # norm from train
    norm = xr.load_dataset(paths["norm"])
    np.testing.assert_allclose(norm["mean"].values, compute_norm(paths["train"])["mean"].values)
    drivers = xr.load_dataset(paths["drivers"])
    assert drivers["drivers"].dtype == bool and drivers["drivers"].shape == (65, 94)
    # the driver strength of the same seed, with CF attributes, zero off the drivers
    assert drivers["driver_strength"].attrs["units"] == "1"
    assert ("strength", 5, 0.0) in fake_synthetic.calls
    np.testing.assert_array_equal(drivers["driver_strength"].values,
                                  np.where(drivers["drivers"].values, 5.5, 0.0))


def test_write_synthetic_dataset_is_deterministic(tmp_path, fake_synthetic):
    a = datasets.write_synthetic_dataset(tmp_path / "a", steps=4, seed=1, n_lat=2, n_lon=2)
    b = datasets.write_synthetic_dataset(tmp_path / "b", steps=4, seed=1, n_lat=2, n_lon=2)
    for name in ("train", "plus4K"):
        with cbrain.open_cbrain(a[name]) as da, cbrain.open_cbrain(b[name]) as db:
            np.testing.assert_array_equal(da["vars"].values, db["vars"].values)
    with pytest.raises(ParameterError, match="lat"):
        datasets.write_synthetic_dataset(tmp_path / "c", steps=4, n_lat=65)


@pytest.mark.slow
def test_write_synthetic_dataset_with_the_real_generator(tmp_path):
    if isinstance(sys.modules.get("pcm.data.synthetic"), _FakeSynthetic):  # pragma: no cover
        pytest.skip("fake generator still installed")
    paths = datasets.write_synthetic_dataset(tmp_path, steps=4, seed=0, n_lat=2, n_lon=4)
    for name in ("train", "valid", "test", "plus4K", "minus4K"):
        assert "OK: all values finite" in checks.check_file(paths[name], norm=paths["norm"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ZeroVarianceWarning)
        x, y = datasets.load_split(paths["train"], paths["norm"])
    assert x.shape == (2 * 2 * 4, 94) and y.shape == (16, 65)  # 2 train steps of 4 steps
    assert np.isfinite(x).all() and np.isfinite(y).all()
    for name in VARIABLES:
        assert name in cbrain.read_var_names(paths["test"])


# -- training sets that train without learning (issue 13) --------------------------------------


def test_constant_outputs_and_tiny_training_sets_warn_one_line_each():
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a normal training set: not a word
        assert checks.check_training_set(rng.normal(size=(300, 65)), 128) == []
    with pytest.warns(checks.TrainingDataWarning) as caught:
        messages = checks.check_training_set(np.full((300, 65), 0.25), 128, path="t.nc")
    assert len(caught) == 1 and len(messages) == 1
    assert messages[0].startswith("t.nc: all 65 training outputs are constant over the 300 ")
    with pytest.warns(checks.TrainingDataWarning) as caught:
        messages = checks.check_training_set(rng.normal(size=(40, 65)), 128)
    assert len(caught) == 1
    assert "training set has 40 samples, fewer than one batch (batch_size=128)" in messages[0]
    for message in messages:
        assert "\n" not in message


@pytest.mark.filterwarnings("ignore::pcm.data.normalization.ZeroVarianceWarning")
@pytest.mark.slow
def test_every_training_phase_checks_its_training_set(tmp_path, monkeypatch):
    from pcm.nn.config import TrainConfig
    from pcm.run import phase
    from pcm.run.rundir import RunDir

    run = RunDir(tmp_path / "run")
    files = datasets.write_synthetic_dataset(run.data_dir, steps=6, seed=0, n_lat=2, n_lon=4)
    run.write_manifest(files, source="synthetic")

    class Stop(Exception):
        pass

    def stop(*args, **kwargs):
        raise Stop

    monkeypatch.setattr(phase, "train_stacked", stop)  # no TensorFlow: stop before training
    with pytest.warns(checks.TrainingDataWarning, match="fewer than one batch"), \
            pytest.raises(Stop):
        phase.train_phase(run, "premask", "premask", None, TrainConfig(batch_size=1024),
                          l1=0.0, progress=False, t0=0.0)
