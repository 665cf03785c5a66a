"""Streaming training data from disk (pcm.data.streaming) and training on several devices.

The streamed order is documented in :mod:`pcm.data.streaming`: with one window it is
the in-memory order (training is then equal to in-memory training); with many windows
every sample is used exactly once per epoch, and a run stopped and resumed ends with
the weights of an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from test_cbrain import fake_fields

from pcm.data import cbrain_write, datasets
from pcm.data.normalization import Normalization, compute_norm, write_norm
from pcm.data.streaming import (
    DiskSplit,
    StreamLayout,
    choose_in_memory,
    epoch_windows,
    in_memory_order,
    stream_layout,
)
from pcm.errors import ParameterError
from pcm.nn.config import TrainConfig, epoch_permutation
from pcm.nn.engine import evaluate_stacked
from pcm.nn.networks import StackedMLP
from pcm.nn.trainer import train_stacked
from pcm.run.rundir import RunDir

HIDDEN = (6, 5)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("streaming")
    train = cbrain_write.write_cbrain(fake_fields(steps=6, n_lat=4, n_lon=8, seed=3),
                                      root / "train.nc")  # 192 samples
    valid = cbrain_write.write_cbrain(fake_fields(steps=2, n_lat=4, n_lon=8, seed=4),
                                      root / "valid.nc")
    norm = write_norm(compute_norm(train), root / "norm.nc")
    return train, valid, norm


def _split(path, norm_path, layout=None, dtype="float64"):
    return DiskSplit(path, Normalization.from_file(norm_path, warn=False), dtype=dtype,
                     layout=layout)


def _run_of(files, tmp_path) -> RunDir:
    """A run directory whose manifest names the fixture's files (valid doubles as test)."""
    train, valid, norm = files
    run = RunDir(tmp_path / "run")
    run.write_manifest({"train": train, "valid": valid, "test": valid, "norm": norm},
                       source="spcam")
    return run


def _rows_sorted(x):
    return x[np.lexsort(x.T[::-1])]


def test_in_memory_order_is_the_trainers():
    for n, seed, epoch in ((10, 0, 0), (1000, 3, 7)):
        assert np.array_equal(in_memory_order(n, seed, epoch), epoch_permutation(n, seed, epoch))


def test_blocks_equal_the_rows_of_load_split(files):
    train, _, norm = files
    x, y = datasets.load_split(train, norm, dtype="float64")
    split = _split(train, norm, StreamLayout(block_rows=50, window_blocks=2))
    assert split.shape == x.shape and split.n_blocks == 4
    bx, by = split.read_block(3)  # the short last block
    assert np.array_equal(bx, x[150:]) and np.array_equal(by, y[150:])
    index = np.array([191, 0, 77, 78, 3])
    rx, ry = split.read_rows(index)
    assert np.array_equal(rx, x[index]) and np.array_equal(ry, y[index])
    # few rows of a large block: read one by one, not the block (the same values)
    sparse = _split(train, norm, StreamLayout(block_rows=1000, window_blocks=1))
    reads = []
    read = sparse.read
    sparse.read = lambda lo, hi: reads.append(hi - lo) or read(lo, hi)
    rx, ry = sparse.read_rows(index)
    assert np.array_equal(rx, x[index]) and np.array_equal(ry, y[index])
    assert reads == [1] * 5


def test_a_streamed_epoch_uses_every_sample_once_in_full_batches(files):
    train, _, norm = files
    x, _ = datasets.load_split(train, norm, dtype="float64")
    split = _split(train, norm, StreamLayout(block_rows=20, window_blocks=3))
    orders = []
    for epoch in (0, 1):
        windows = [w[0] for w in epoch_windows(split, seed=5, epoch=epoch, batch_size=16)]
        assert len(windows) == 4  # 10 blocks, 3 per window
        assert all(len(w) % 16 == 0 for w in windows[:-1])
        seen = np.concatenate(windows)
        assert np.array_equal(_rows_sorted(seen), _rows_sorted(x))  # each sample once
        orders.append(seen)
    assert not np.array_equal(orders[0], orders[1])  # reshuffled every epoch
    again = np.concatenate([w[0] for w in epoch_windows(split, 5, 1, 16)])
    assert np.array_equal(again, orders[1])  # a function of (seed, epoch) only


def test_one_window_streams_the_in_memory_order(files):
    train, _, norm = files
    x, _ = datasets.load_split(train, norm, dtype="float64")
    split = _split(train, norm, StreamLayout(block_rows=64, window_blocks=8))
    (wx, _), = list(epoch_windows(split, seed=2, epoch=3, batch_size=16))
    assert np.array_equal(wx, x[epoch_permutation(len(x), 2, 3)])


def test_in_memory_choice_and_layout():
    assert choose_in_memory("auto", 10 * 2**20, 20) and not choose_in_memory("auto", 21 * 2**20,
                                                                               20)
    assert choose_in_memory("true", 10**12, 1) and not choose_in_memory("false", 1, 100)
    with pytest.raises(ParameterError, match="data.in_memory"):
        choose_in_memory("yes", 1, 1)
    layout = stream_layout(row_bytes=159 * 4, budget_mb=200, align=384)
    assert layout.block_rows % 384 == 0
    assert 4 * layout.window_rows * 159 * 4 <= 200 * 2**20


def _train(x, y, xv, yv, epochs=3, **kwargs):
    model = StackedMLP(4, HIDDEN, input_layer=True, targets=[0, 3, 5, 64], seed=1,
                       dtype="float64")
    config = TrainConfig(hidden_units=HIDDEN, epochs=epochs, batch_size=16, seed=4,
                         learning_rate=3e-3, lr_every=2, compute_dtype="float64")
    hist = train_stacked(model, x, y, config, x_val=xv, y_val=yv, l1=1e-3, **kwargs)
    return model, hist


@pytest.mark.slow  # trains (make test-fast skips it)
def test_streamed_training_equals_in_memory_training_with_one_window(files):
    train, valid, norm = files
    x, y = datasets.load_split(train, norm, dtype="float64")
    xv, yv = datasets.load_split(valid, norm, dtype="float64")
    m_mem, h_mem = _train(x, y, xv, yv)
    one = StreamLayout(block_rows=64, window_blocks=8)
    m_disk, h_disk = _train(_split(train, norm, one), None, _split(valid, norm, one), None)
    for a, b in zip(m_mem.weights, m_disk.weights, strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=0, atol=1e-12)
    np.testing.assert_allclose(h_disk.val_loss.values, h_mem.val_loss.values, rtol=1e-12)
    assert h_disk.attrs["n_train"] == len(x) and h_disk.attrs["n_val"] == len(xv)


@pytest.mark.slow  # trains (make test-fast skips it)
def test_streamed_training_resumes_to_the_uninterrupted_weights(files, tmp_path):
    train, valid, norm = files
    many = StreamLayout(block_rows=20, window_blocks=3)

    def data():
        return _split(train, norm, many), None, _split(valid, norm, many), None

    whole, h_whole = _train(*data())

    class Stop(Exception):
        pass

    def stop(epoch, _history):
        if epoch == 2:
            raise Stop

    with pytest.raises(Stop):
        _train(*data(), checkpoint_dir=tmp_path, on_epoch_end=stop)
    resumed, h_resumed = _train(*data(), checkpoint_dir=tmp_path)
    assert h_resumed.attrs["resumed_from_epoch"] == 2
    for a, b in zip(whole.weights, resumed.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(b), np.asarray(a))
    np.testing.assert_array_equal(h_resumed.loss.values, h_whole.loss.values)


def test_streamed_evaluation_equals_in_memory(files):
    train, _, norm = files
    x, y = datasets.load_split(train, norm, dtype="float64")
    model = StackedMLP(3, HIDDEN, targets=[1, 2, 7], seed=2, dtype="float64")
    split = _split(train, norm, StreamLayout(block_rows=30, window_blocks=2))
    np.testing.assert_allclose(evaluate_stacked(model, split, None), evaluate_stacked(model, x, y),
                               rtol=1e-12)


def test_rundir_streams_splits_over_the_budget(files, tmp_path):
    run = _run_of(files, tmp_path)
    x, y, xv, yv = run.training_data(None, "float32", in_memory="auto", memory_budget_mb=1024)
    assert isinstance(x, np.ndarray) and x.shape == (192, 94)
    budget = 192 * 159 * 4 / 2**20 * 0.9  # train over it, valid (64 samples) under
    x, y, xv, yv = run.training_data(None, "float32", in_memory="auto", memory_budget_mb=budget)
    assert isinstance(x, DiskSplit) and y is None and isinstance(xv, np.ndarray)
    x, _, xv, _ = run.training_data(50, "float64", in_memory="false")
    assert isinstance(xv, DiskSplit) and len(x) == 50 and x.dtype == np.float64


MIRRORED = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from pcm.nn.config import TrainConfig
    from pcm.nn.networks import StackedMLP
    from pcm.nn.trainer import train_stacked
    rng = np.random.default_rng(0)
    x = rng.standard_normal((203, 94))
    y = np.tanh(x @ rng.standard_normal((94, 65)) / 10)
    out = {}
    for devices in (1, 2):
        model = StackedMLP(3, (7, 5), input_layer=True, targets=[0, 4, 9], seed=2,
                           dtype="float64")
        config = TrainConfig(hidden_units=(7, 5), epochs=3, batch_size=32, seed=1,
                             learning_rate=3e-3, compute_dtype="float64", devices=devices,
                             patience=2)
        hist = train_stacked(model, x, y, config, x_val=x[:50], y_val=y[:50], l1=1e-3)
        out[devices] = {"weights": [np.asarray(w).ravel().tolist() for w in model.weights],
                        "loss": hist.loss.values.tolist()}
    json.dump(out, sys.stdout)
""")


@pytest.mark.slow  # trains (make test-fast skips it)
def test_mirrored_training_equals_single_device_training():
    """Two logical CPU devices under MirroredStrategy, float64 (in a subprocess: the
    logical device layout of this session's TensorFlow must not change)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-c", MIRRORED], capture_output=True, text=True,
                          env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    one, two = out["1"], out["2"]
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=1e-10)
    moved = 0.0
    for a, b in zip(one["weights"], two["weights"], strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-10)
        moved = max(moved, float(np.max(np.abs(np.asarray(a)))))
    assert moved > 0


def test_prefetched_reads_in_one_other_thread_in_order_and_raises():
    import threading

    from pcm.errors import DataError
    from pcm.nn.engine import prefetched

    readers = []

    def windows(n, fail_at=None):
        for i in range(n):
            readers.append(threading.get_ident())
            if i == fail_at:
                raise DataError("bad block", path="train.nc")
            yield np.full((2, 1), i), np.full((2, 1), -i)

    got = [int(x[0, 0]) for x, _ in prefetched(windows(5))]
    assert got == [0, 1, 2, 3, 4]
    assert len(set(readers)) == 1 and readers[0] != threading.get_ident()
    with pytest.raises(DataError, match="bad block"):
        list(prefetched(windows(5, fail_at=2)))


def test_a_screen_sample_of_a_split_over_the_budget_reads_only_its_blocks(files, tmp_path,
                                                                          monkeypatch):
    from dataclasses import replace

    from pcm.method.ranked_selection import screen_sample
    from pcm.params.config import SearchConfig

    run = _run_of(files, tmp_path)
    config = SearchConfig.from_parameters({"screen_samples": 50, "seed": 3})
    x, y = screen_sample(run, config)  # 192 samples: in memory
    assert x.shape == (50, 94) and y.shape == (50, 65)

    def whole(*args, **kwargs):
        raise AssertionError("the whole split was read")

    monkeypatch.setattr(RunDir, "arrays", whole)
    xs, ys = screen_sample(run, replace(config, data_in_memory="false"))
    np.testing.assert_array_equal(xs, x)
    np.testing.assert_array_equal(ys, y)


@pytest.mark.slow  # trains (make test-fast skips it)
def test_knockoffs_of_a_split_over_the_budget_train_on_a_sample_that_fits(files, tmp_path,
                                                                         monkeypatch):
    from dataclasses import replace

    from pcm.method.premask import run_premask
    from pcm.method.ranked_selection import knockoff_masks
    from pcm.params.config import PremaskConfig, SearchConfig

    run = _run_of(files, tmp_path)
    common = dict(hidden_layers=1, hidden_units=8, batch_size=64, seed=0)
    run_premask(run, PremaskConfig.from_parameters(dict(epochs=1, l1=1.0, **common)),
                progress=False)
    config = SearchConfig.from_parameters(dict(selection="knockoff", **common))
    masks, w, cuts, samples = knockoff_masks(run, config)  # 192 and 64 rows: whole
    assert samples == (192, 64) and w.shape == masks.shape == (65, 94)

    def whole(*args, **kwargs):
        raise AssertionError("the whole split was read")

    monkeypatch.setattr(RunDir, "arrays", whole)
    row = (4 * 94 + 65) * 4  # a row with its knockoffs while they are built, float32
    small = replace(config, data_in_memory="false", data_memory_budget_mb=100.5 * row / 2**20)
    masks, w, cuts, samples = knockoff_masks(run, small)
    assert samples == (100, 64) and w.shape == masks.shape == (65, 94)
    assert np.isfinite(w).all()
    with pytest.raises(ParameterError, match="data.memory_budget_mb"):
        knockoff_masks(run, replace(small, data_memory_budget_mb=0.5 * row / 2**20))
