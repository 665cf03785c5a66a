"""The stacked network: independent networks, masks, export and safe loading."""

import keras
import numpy as np
import pytest

from pcm.nn.networks import StackedMLP


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).normal(size=(16, 94)).astype("float32")


@pytest.fixture(scope="module")
def premask():
    return StackedMLP(4, (8, 8), input_layer=True, seed=3)


def test_output_shape_and_targets(premask, x):
    assert premask(x).shape == (16, 4)
    assert premask.targets == (0, 1, 2, 3)
    with pytest.raises(ValueError, match="targets has 2 entries"):
        StackedMLP(3, (4,), targets=[0, 1])


def test_networks_are_independent(x):
    model = StackedMLP(3, (8,), input_layer=True, seed=1)
    before = np.asarray(model(x))
    kernel = np.asarray(model.dense[1].kernel)
    kernel[1] += 1.0  # perturb network 1 only
    model.dense[1].kernel.assign(kernel)
    after = np.asarray(model(x))
    np.testing.assert_array_equal(before[:, [0, 2]], after[:, [0, 2]])
    assert not np.allclose(before[:, 1], after[:, 1])


def test_initialisation_per_network_fans():
    model = StackedMLP(50, (64,), input_layer=True, seed=0)
    w_in = np.asarray(model.dense[0].kernel)
    w_hidden = np.asarray(model.dense[1].kernel)
    assert w_in.std() == pytest.approx(0.01, rel=0.05)  # RandomNormal(0, 0.01)
    limit = np.sqrt(6 / (94 + 64))  # each network's own fan-in/out, not the stack's
    assert np.abs(w_hidden).max() <= limit
    assert np.abs(w_hidden).max() > 0.95 * limit


def test_mask_zeroes_inputs_exactly(x):
    model = StackedMLP(2, (8,), seed=2)
    mask = np.ones((2, 94), bool)
    mask[0, 10:] = False
    model.set_mask(mask)
    x2 = x.copy()
    x2[:, 10:] = 123.0  # masked inputs of network 0 change
    out1, out2 = np.asarray(model(x)), np.asarray(model(x2))
    np.testing.assert_array_equal(out1[:, 0], out2[:, 0])
    assert not np.allclose(out1[:, 1], out2[:, 1])
    with pytest.raises(ValueError, match="mask must have shape"):
        model.set_mask(np.ones((3, 94)))


def test_masking_vectors_are_row_norms(premask):
    w = np.asarray(premask.input_kernel)
    np.testing.assert_allclose(premask.masking_vectors(), np.sqrt((w**2).sum(axis=2)), rtol=1e-6)
    with pytest.raises(AttributeError, match="no input layer"):
        StackedMLP(1, (4,)).input_kernel  # noqa: B018


def test_to_masking_reuses_hidden_and_output_weights(premask):
    masks = np.zeros((2, 94), bool)
    masks[:, :5] = True
    masking = premask.to_masking(masks, indices=[3, 1])
    assert not masking.has_input_layer and masking.targets == (3, 1)
    np.testing.assert_array_equal(np.asarray(masking.dense[0].kernel),
                                  np.asarray(premask.dense[1].kernel)[[3, 1]])
    np.testing.assert_array_equal(masking.get_mask(), masks)


def test_select_copies_networks(premask, x):
    sel = premask.select([2, 2, 0])
    np.testing.assert_allclose(np.asarray(sel(x)), np.asarray(premask(x))[:, [2, 2, 0]])


def test_export_and_native_keras_round_trip(premask, x, tmp_path):
    mask = np.random.default_rng(1).random((4, 94)) > 0.5
    masking = premask.to_masking(mask)
    expected = np.asarray(masking(x))
    for n in range(4):
        single = masking.export_network(n)
        np.testing.assert_allclose(np.asarray(single(x))[:, 0], expected[:, n], atol=1e-5)
    path = tmp_path / "m.keras"
    masking.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(np.asarray(loaded(x)), expected)
    np.testing.assert_array_equal(loaded.get_mask(), mask)
    assert loaded.targets == masking.targets


def test_float64_policy():
    model = StackedMLP(2, (4,), input_layer=True, dtype="float64")
    assert model(np.zeros((3, 94))).dtype == "float64"
