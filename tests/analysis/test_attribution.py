"""SHAP on Keras 3: batched DeepSHAP, shap.DeepExplainer and gradient x input."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import warnings  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from pcm.analysis.attribution import (  # noqa: E402
    deep_explainer_shap,
    deep_shap,
    gradient_input,
    register_leaky_relu,
)
from pcm.errors import DataError  # noqa: E402
from pcm.nn.networks import StackedMLP  # noqa: E402


def _trained_model(input_layer: bool = True, steps: int = 30) -> StackedMLP:
    """A tiny stacked model trained a few Adam steps on a smooth target."""
    rng = np.random.default_rng(0)
    model = StackedMLP(3, (16, 12), input_layer=input_layer, seed=3)
    mask = np.ones((3, 94), dtype=bool)
    mask[1, 40:] = False  # network 1 only sees the first 40 inputs
    model.set_mask(mask)
    x = rng.normal(size=(256, 94)).astype("float32")
    y = np.stack([np.tanh(x[:, 0] + x[:, 5]), x[:, 1] * x[:, 2], np.abs(x[:, 3])], 1)
    opt = keras.optimizers.Adam(1e-2)
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model(x) - y) ** 2)
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables, strict=True))
    return model


@pytest.fixture(scope="module")
def model():
    return _trained_model()


@pytest.fixture(scope="module")
def samples():
    rng = np.random.default_rng(1)
    return (rng.normal(size=(12, 94)).astype("float32"),
            rng.normal(size=(16, 94)).astype("float32"))


def _expected_gap(model, x, r):
    fx = np.asarray(model(x), dtype=np.float64).T  # (N, n_x)
    fr = np.asarray(model(r), dtype=np.float64).T.mean(axis=1, keepdims=True)
    return fx - fr


def test_deep_shap_is_additive_and_respects_the_mask(model, samples):
    x, r = samples
    phi = deep_shap(model, x, r)
    assert phi.shape == (3, 12, 94)
    gap = _expected_gap(model, x, r)
    np.testing.assert_allclose(phi.sum(-1), gap, atol=1e-5 * np.abs(gap).max() + 1e-7)
    assert np.all(phi[1, :, 40:] == 0.0)  # masked inputs get exactly nothing
    assert np.abs(phi[0, :, 40:]).max() > 0


@pytest.mark.slow
def test_deep_shap_matches_deep_explainer(model, samples):
    x, r = samples
    phi = deep_shap(model, x, r)
    for n in range(model.n_networks):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = deep_explainer_shap(model.export_network(n), x, r)
        assert ref.shape == (12, 94)
        scale = np.abs(ref).max()
        np.testing.assert_allclose(phi[n], ref, atol=1e-5 * scale)
        # DeepExplainer itself is additive on the LeakyReLU network
        np.testing.assert_allclose(ref.sum(-1), _expected_gap(model, x, r)[n],
                                   atol=1e-5 * np.abs(ref.sum(-1)).max() + 1e-7)


@pytest.mark.slow
def test_deep_shap_chunking_subset_and_dtype(model, samples):
    x, r = samples
    full = deep_shap(model, x, r, dtype="float64")
    tiny = deep_shap(model, x, r, batch_elements=64, dtype="float64")  # one pair per chunk
    np.testing.assert_allclose(tiny, full, rtol=1e-12, atol=1e-15)
    sub = deep_shap(model, x, r, networks=[2, 0], dtype="float64")
    np.testing.assert_allclose(sub, full[[2, 0]], rtol=1e-12, atol=1e-15)
    assert full.dtype == np.float64
    # without an input layer (the masking-phase model) as well
    plain = _trained_model(input_layer=False, steps=3)
    phi = deep_shap(plain, x, r)
    np.testing.assert_allclose(phi.sum(-1), _expected_gap(plain, x, r), atol=1e-5)


def test_deep_shap_rejects_bad_inputs(model, samples):
    x, r = samples
    with pytest.raises(DataError, match="x_explain"):
        deep_shap(model, x[:, :90], r)
    with pytest.raises(DataError, match="empty"):
        deep_shap(model, x, r[:0])


def test_gradient_input_is_gradient_times_deviation(model, samples):
    x, r = samples
    gi = gradient_input(model, x, r)
    net = model.export_network(2)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        out = tf.reduce_sum(net(xt))
    grad = tape.gradient(out, xt).numpy()
    np.testing.assert_allclose(gi[2], grad * (x - r.mean(0)), rtol=1e-4, atol=1e-7)
    # default baseline is the normalised training mean (zero)
    np.testing.assert_allclose(gradient_input(model, x)[2], grad * x, rtol=1e-4, atol=1e-7)
    # it is a rough proxy: correlated with DeepSHAP, but not additive in general
    phi = deep_shap(model, x, r)
    assert np.corrcoef(gi.ravel(), phi.ravel())[0, 1] > 0.5


def test_register_leaky_relu_is_idempotent():
    from shap.explainers._deep import deep_tf

    register_leaky_relu()
    handler = deep_tf.op_handlers["LeakyRelu"]
    register_leaky_relu()
    assert deep_tf.op_handlers["LeakyRelu"] is handler
