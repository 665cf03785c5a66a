"""Tests of the stacked trainer (pcm.nn): equivalence, resume, early stopping."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from pcm.errors import DataError, ParameterError
from pcm.nn.config import TrainConfig, epoch_permutation, learning_rate_at
from pcm.nn.engine import predict_stacked
from pcm.nn.networks import StackedMLP
from pcm.nn.saving import export_networks
from pcm.nn.trainer import train_stacked

N_IN = 94


def _data(n=200, n_out=6, seed=0, dtype="float64"):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, N_IN))
    w = rng.standard_normal((N_IN, n_out)) / np.sqrt(N_IN)
    y = np.tanh(x @ w) + 0.1 * rng.standard_normal((n, n_out))
    return x.astype(dtype), y.astype(dtype)


def _keras_net(weights, *, l1_scale=0.0):
    """An ordinary Keras model (Dense + LeakyReLU), float64, with the given weights."""
    layers = [keras.Input((N_IN,), dtype="float64")]
    for k, (kernel, _) in enumerate(weights):
        reg = keras.regularizers.L1(l1_scale) if (k == 0 and l1_scale) else None
        layers.append(keras.layers.Dense(kernel.shape[-1], kernel_regularizer=reg,
                                         dtype="float64"))
        if k < len(weights) - 1:
            layers.append(keras.layers.LeakyReLU(negative_slope=0.3, dtype="float64"))
    model = keras.Sequential(layers)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    for layer, (kernel, bias) in zip(dense, weights, strict=True):
        layer.set_weights([kernel, bias])
    return model, dense


@pytest.fixture
def floatx64():
    """Keras computes compiled losses in floatx: make it float64 for this test only."""
    old = keras.config.floatx()
    keras.config.set_floatx("float64")
    yield
    keras.config.set_floatx(old)


@pytest.mark.parametrize("premask", [True, False], ids=["premask-l1", "masked"])
@pytest.mark.slow
def test_stacked_equals_separate_keras_models(premask, floatx64):
    """Each stacked network trains exactly like an ordinary Keras model on its own."""
    targets = [2, 0, 5, 1]
    hidden = (5, 4)
    l1 = 0.05 if premask else 0.0
    x, y = _data()
    model = StackedMLP(len(targets), hidden, input_layer=premask, targets=targets, seed=3,
                       dtype="float64")
    if not premask:
        mask = np.random.default_rng(1).random((len(targets), N_IN)) > 0.4
        mask[1] = False  # an empty mask: the network can only learn a constant
        model.set_mask(mask)
    else:
        mask = np.ones((len(targets), N_IN), bool)
    initial = model.layer_weights()
    config = TrainConfig(hidden_units=hidden, epochs=3, batch_size=64, learning_rate=3e-3,
                         lr_divisor=2.0, lr_every=1, l1=l1, seed=7)
    hist = train_stacked(model, x, y, config)
    stacked = model.layer_weights()

    for n, t in enumerate(targets):
        net, dense = _keras_net([(k[n], b[n]) for k, b in initial],
                                l1_scale=l1 / N_IN**2)
        net.compile(optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
                    loss="mse")
        xin = x * mask[n]  # masking the inputs == folding the mask into the kernel
        for epoch in range(config.epochs):
            net.optimizer.learning_rate = learning_rate_at(config, epoch)
            perm = epoch_permutation(len(x), config.seed, epoch)
            weighted = 0.0
            for lo in range(0, len(x), config.batch_size):
                idx = perm[lo:lo + config.batch_size]
                batch_loss = net.train_on_batch(xin[idx], y[idx, t:t + 1])
                weighted += float(batch_loss) * len(idx)
            np.testing.assert_allclose(hist.loss.values[epoch, n], weighted / len(x),
                                       rtol=1e-10)
        for k, layer in enumerate(dense):
            kernel, bias = layer.get_weights()
            if k == 0:
                kernel = kernel * mask[n][:, None]
            np.testing.assert_allclose(stacked[k][0][n], kernel, rtol=0, atol=1e-10)
            np.testing.assert_allclose(stacked[k][1][n], bias, rtol=0, atol=1e-10)
    # the weights actually moved (the test is not vacuous)
    assert not np.allclose(stacked[-1][0], initial[-1][0])
    np.testing.assert_allclose(hist.learning_rate.values, [3e-3, 1.5e-3, 7.5e-4])


@pytest.mark.slow
def test_lambda_sweep_as_one_stack_equals_separate_runs():
    """Two λ values x 4 networks trained as ONE stack of 8 == two separate runs (float64)."""
    targets = [2, 0, 5, 1]
    lambdas = [0.05, 0.5]
    x, y = _data()
    xv, yv = _data(n=50, seed=1)
    config = TrainConfig(hidden_units=(5, 4), epochs=3, batch_size=64, learning_rate=3e-3,
                         lr_divisor=2.0, lr_every=1, seed=7, compute_dtype="float64")

    def fresh():
        return StackedMLP(len(targets), (5, 4), input_layer=True, targets=targets, seed=3,
                          dtype="float64")

    stack = fresh().repeat(len(lambdas))
    assert stack.n_networks == 8 and list(stack.targets) == targets * 2
    hist = train_stacked(stack, x, y, config, x_val=xv, y_val=yv,
                         l1=np.repeat(lambdas, len(targets)))
    assert hist.attrs["l1"].tolist() == [0.05] * 4 + [0.5] * 4
    weights = stack.layer_weights()
    for j, lam in enumerate(lambdas):
        alone = fresh()
        ref = train_stacked(alone, x, y, config, x_val=xv, y_val=yv, l1=lam)
        rows = slice(j * len(targets), (j + 1) * len(targets))
        for (k_stack, b_stack), (k_alone, b_alone) in zip(weights, alone.layer_weights(),
                                                          strict=True):
            np.testing.assert_allclose(k_stack[rows], k_alone, rtol=0, atol=1e-10)
            np.testing.assert_allclose(b_stack[rows], b_alone, rtol=0, atol=1e-10)
        np.testing.assert_allclose(hist.loss.values[:, rows], ref.loss.values, rtol=1e-10)
        np.testing.assert_allclose(hist.val_loss.values[:, rows], ref.val_loss.values,
                                   rtol=1e-10)
    # the two λ really gave different networks (the test is not vacuous)
    vectors = stack.masking_vectors()
    assert vectors[4:].sum() < vectors[:4].sum()  # the larger λ shrinks the input kernel
    assert np.abs(weights[0][0][4:] - weights[0][0][:4]).max() > 1e-3
    with pytest.raises(ParameterError, match="l1"):
        train_stacked(stack, x, y, config, l1=[0.1, 0.2])  # wrong length
    with pytest.raises(ParameterError, match="l1"):
        train_stacked(stack, x, y, config, l1=[-1.0] * 8)


def test_learning_rate_schedule_reference():
    config = TrainConfig(hidden_units=(4,), epochs=9)
    rates = [learning_rate_at(config, e) for e in range(9)]
    np.testing.assert_allclose(rates, [1e-3] * 3 + [2e-4] * 3 + [4e-5] * 3)


def _run(tmp_path, config, *, hook=None, patience_data=None):
    x, y = _data(n=300, dtype="float32")
    xv, yv = _data(n=100, seed=1, dtype="float32")
    model = StackedMLP(3, config.hidden_units, input_layer=True, targets=[0, 3, 4], seed=11)
    hist = train_stacked(model, x, y, config, x_val=xv, y_val=yv,
                         checkpoint_dir=tmp_path, desc="premask", on_epoch_end=hook)
    return model, hist


@pytest.mark.slow
def test_resume_after_interruption_is_exact(tmp_path):
    config = TrainConfig(hidden_units=(8, 8), epochs=3, batch_size=64, l1=1e-2, seed=5,
                         lr_every=1)
    full, hist_full = _run(tmp_path / "a", config)

    class Killed(RuntimeError):
        pass

    def kill_after_first(epoch, history):
        assert len(history.epoch) == epoch
        if epoch == 1:
            raise Killed

    with pytest.raises(Killed):
        _run(tmp_path / "b", config, hook=kill_after_first)
    assert (tmp_path / "b" / "state.npz").exists()
    resumed, hist_resumed = _run(tmp_path / "b", config)
    assert hist_resumed.attrs["resumed_from_epoch"] == 1
    for a, b in zip(full.weights, resumed.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(hist_full.loss.values, hist_resumed.loss.values)

    # a finished checkpoint is reused at once; another configuration starts afresh
    again, hist_again = _run(tmp_path / "b", config, hook=lambda *a: pytest.fail("trained"))
    np.testing.assert_array_equal(np.asarray(again.dense[1].kernel),
                                  np.asarray(full.dense[1].kernel))
    longer = TrainConfig(hidden_units=(8, 8), epochs=4, batch_size=64, l1=1e-2, seed=5,
                         lr_every=1)
    _, hist_longer = _run(tmp_path / "b", longer)  # more epochs: continues after epoch 3
    assert hist_longer.attrs["resumed_from_epoch"] == 3 and len(hist_longer.epoch) == 4
    np.testing.assert_array_equal(hist_longer.loss.values[:3], hist_full.loss.values)
    other = TrainConfig(hidden_units=(8, 8), epochs=1, batch_size=64, l1=1e-2, seed=6)
    _, hist_other = _run(tmp_path / "b", other)
    assert hist_other.attrs["resumed_from_epoch"] == 0 and len(hist_other.epoch) == 1


def test_early_stopping_per_network_restores_best_weights():
    x, y = _data(n=256, n_out=2, dtype="float32")
    xv, yv = x.copy(), y.copy()
    yv[:, 0] = -y[:, 0]  # network 0 gets worse on validation as it learns
    model = StackedMLP(2, (16,), targets=[0, 1], seed=2)
    snapshots = {}

    def snap(epoch, history):
        snapshots[epoch] = [np.asarray(w).copy() for w in model.trainable_variables]

    config = TrainConfig(hidden_units=(16,), epochs=6, batch_size=32, learning_rate=1e-2,
                         patience=1, seed=0)
    hist = train_stacked(model, x, y, config, x_val=xv, y_val=yv, on_epoch_end=snap)
    best = hist.best_epoch.values
    assert best[0] < best[1]
    assert len(hist.epoch) == 6  # network 1 keeps improving: nobody stops early
    for k, w in enumerate(model.trainable_variables):
        np.testing.assert_array_equal(np.asarray(w)[0], snapshots[best[0]][k][0])
        np.testing.assert_array_equal(np.asarray(w)[1], snapshots[best[1]][k][1])


def test_constant_target_and_bfloat16_train_without_nan():
    x, y = _data(n=256, n_out=3, dtype="float32")
    y[:, 1] = 0.0  # zero-variance output (e.g. PHQ at the model top)
    model = StackedMLP(3, (8,), input_layer=True, dtype="mixed_bfloat16")
    config = TrainConfig(hidden_units=(8,), epochs=2, batch_size=64, compute_dtype="bfloat16")
    hist = train_stacked(model, x, y, config, x_val=x, y_val=y)
    assert np.isfinite(hist.loss.values).all() and np.isfinite(hist.val_loss.values).all()
    assert model.dense[0].kernel.dtype == "float32"  # master weights stay float32
    pred = predict_stacked(model, x)
    assert np.isfinite(pred).all() and np.abs(pred[:, 1]).max() < 0.5


def test_bad_input_raises_readable_errors():
    x, y = _data(n=64, dtype="float32")
    model = StackedMLP(2, (4,))
    config = TrainConfig(hidden_units=(4,), epochs=1)
    with pytest.raises(DataError, match="94"):
        train_stacked(model, x[:, :50], y, config)
    with pytest.raises(ParameterError, match="patience"):
        train_stacked(model, x, y, TrainConfig(hidden_units=(4,), epochs=1, patience=2))
    with pytest.raises(ParameterError, match="compute_dtype"):
        TrainConfig(hidden_units=(4,), compute_dtype="float16")
    with pytest.raises(ParameterError, match="l1"):
        train_stacked(model, x, y, config, l1=1e-3)


def test_export_networks_roundtrip(tmp_path):
    model = StackedMLP(2, (4,), targets=[64, 3], seed=1)
    model.set_mask(np.arange(2 * N_IN).reshape(2, N_IN) % 3 > 0)
    paths = export_networks(model, tmp_path)
    assert [p.name for p in paths] == ["prect.keras", "tphystnd-24.61.keras"]
    x, _ = _data(n=16, dtype="float32")
    stacked = predict_stacked(model, x)
    for n, path in enumerate(paths):
        net = keras.saving.load_model(path, safe_mode=True)
        np.testing.assert_allclose(net.predict(x, verbose=0)[:, 0], stacked[:, n], atol=1e-5)
