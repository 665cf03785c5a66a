"""Randomised synthetic worlds (pcm.data.synthetic.worlds) and ``pcm worlds``."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import xarray as xr

from pcm import variables as V
from pcm.errors import ParameterError

synthetic = pytest.importorskip("pcm.data.synthetic")
from pcm.data.synthetic import worlds  # noqa: E402

#: Digests of the variables of the ``tutorial`` data (240 steps, 16 x 32, seed 0) as the
#: generator wrote them before worlds existed (main 0d35998, /tmp/base/runs/tutorial/data).
TUTORIAL_DIGESTS = {
    "train": "3cce03a55aa693bf35866298a63c0e01d0e25a961b5a8c0d7b3e1e21e2631548",
    "valid": "ee088e26c0f1badb91dc7446773177672f57f49067960dc72f47a8990024f058",
    "test": "b1afb6ff5e3bb44b0fd8fe33f5b86d54842f5f9103b97d7c7d0aa3584e64902d",
    "plus4K": "65b3302df6c2811dba7366086a39372daff9ec69879f33404d6abc71b01b4666",
    "minus4K": "a941cac2a8aa44dc80a83210510dea5ef061df77750f651ffa9103c2b0a8e51e",
    "drivers": "60711ad0b1e65ebd095767fe05f151b88c37fa7120c86fff9e40c0e3ae584c66",
}


def _digest(ds: xr.Dataset) -> str:
    h = hashlib.sha256()
    for name in sorted(ds.data_vars):
        h.update(name.encode())
        h.update(np.ascontiguousarray(ds[name].values).tobytes())
    return h.hexdigest()


def test_world_0_reproduces_the_tutorial_data_bit_for_bit(tmp_path):
    from pcm.data.datasets import write_synthetic_dataset

    paths = write_synthetic_dataset(tmp_path / "d", steps=240, seed=0, n_lat=16, n_lon=32,
                                    world=0)
    for name, digest in TUTORIAL_DIGESTS.items():
        with xr.open_dataset(paths[name]) as ds:
            assert _digest(ds) == digest, name


def test_world_0_is_the_default_and_other_worlds_differ():
    a = synthetic.generate(6, seed=1, n_lat=2, n_lon=4)
    b = synthetic.generate(6, seed=1, n_lat=2, n_lon=4, world=0)
    assert _digest(a) == _digest(b) and "world" not in a.attrs
    c = synthetic.generate(6, seed=1, n_lat=2, n_lon=4, world=3)
    assert c.attrs["world"] == 3 and _digest(c) != _digest(a)
    again = synthetic.generate(6, seed=1, n_lat=2, n_lon=4, world=3)
    assert _digest(again) == _digest(c)  # deterministic
    other_seed = synthetic.generate(6, seed=2, n_lat=2, n_lon=4, world=3)
    assert _digest(other_seed) != _digest(c)  # the seed draws the samples ...
    # ... the world alone the physics
    np.testing.assert_array_equal(synthetic.driver_matrix(3), worlds.world_drivers(3))
    assert not np.array_equal(synthetic.driver_matrix(3), synthetic.driver_matrix(4))
    assert not np.array_equal(synthetic.driver_matrix(3), synthetic.driver_matrix(0))


def test_worlds_outputs_read_exactly_their_drivers():
    """E[y | x] depends on the declared drivers only: perturbing a non-driver changes no
    output, perturbing a driver changes the outputs that read it."""
    ds = synthetic.generate(8, seed=0, n_lat=4, n_lon=8, world=101)
    x = synthetic.stack_columns(ds, V.INPUT_VARIABLES)
    f0 = synthetic.deterministic_output(x, 101)
    drivers = synthetic.driver_matrix(101)
    for i in range(x.shape[1]):
        xp = x.copy()
        xp[:, i] += 0.05 * (x[:, i].std() + 1e-9)
        changed = np.abs(synthetic.deterministic_output(xp, 101) - f0).max(axis=0) > 0
        np.testing.assert_array_equal(changed, drivers[:, i], err_msg=f"input {i}")
    # VBP and PS drive nothing; PHQ above 140 hPa is exactly zero and has no driver
    assert not drivers[:, 60:91].any()
    assert not drivers[30:40].any()
    y = synthetic.stack_columns(ds, V.OUTPUT_VARIABLES)
    assert (y[:, 30:40] == 0).all() and (y[:, 64] > 0).all() and np.isfinite(y).all()


def test_worlds_draw_proxies_strengths_and_smoothness():
    for world in (1, 2, 100, 120):
        phys = worlds.world_physics(world)
        ds = synthetic.generate(24, seed=0, n_lat=8, n_lon=16, world=world)
        x = synthetic.stack_columns(ds, V.INPUT_VARIABLES)
        source = x[:, 30:60] if phys.proxy_source == "TBP" else np.log(x[:, :30])
        r = np.array([np.corrcoef(x[:, 60 + k], source[:, k])[0, 1] for k in range(30)])
        # VBP, never a driver, copies its source at the drawn correlation
        assert np.median(r) == pytest.approx(phys.proxy_r, abs=0.12)
        strength = synthetic.driver_strength(steps=6, seed=0, world=world).values
        d = phys.drivers
        assert (strength[~d] == 0).all() and (strength[d] > 0).all()
        assert (strength[d] < 0.01).any() and (strength[d] > 0.3).any()  # weak to dominant
    knobs = [worlds.world_summary(w) for w in range(1, 11)]
    for key in ("smoothness", "proxy_r", "nonlinearity", "noise", "drivers_per_output"):
        values = [k[key] for k in knobs]
        assert max(values) > 1.5 * min(values), key  # the worlds differ in each knob


def test_world_split_and_bad_worlds():
    assert worlds.world_split(0) == "development" and worlds.world_split(99) == "development"
    assert worlds.world_split(100) == "held-out" and worlds.world_split(149) == "held-out"
    assert set(worlds.DEVELOPMENT_WORLDS).isdisjoint(worlds.HELDOUT_WORLDS)
    assert all(worlds.world_split(w) == "held-out" for w in worlds.HELDOUT_WORLDS)
    with pytest.raises(ParameterError, match="data.world"):
        synthetic.generate(4, n_lat=2, n_lon=2, world=200)
    with pytest.raises(ParameterError, match="data.world"):
        synthetic.generate(4, n_lat=2, n_lon=2, world=-1)


def test_data_synthetic_world_option(tmp_path, capsys):
    from pcm.cli import main

    assert main(["data", "synthetic", "--out", str(tmp_path / "w"), "--steps", "6", "--lat",
                 "2", "--lon", "4", "--world", "105"]) == 0
    with xr.open_dataset(tmp_path / "w" / "drivers.nc") as ds:
        np.testing.assert_array_equal(ds["drivers"].values, worlds.world_drivers(105))
    assert main(["data", "synthetic", "--out", str(tmp_path / "x"), "--steps", "6", "--world",
                 "500"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pcm: error:") and "data.world" in err[0]
