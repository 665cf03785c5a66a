"""Training to convergence (``schedule: plateau``) and the convergence record."""

from __future__ import annotations

import numpy as np
import pytest

from pcm.errors import ParameterError
from pcm.nn.config import TrainConfig
from pcm.nn.networks import StackedMLP
from pcm.nn.trainer import train_stacked
from pcm.params.config import FinetuneConfig, PremaskConfig, SearchConfig

N_IN = 94


def _data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, N_IN)).astype("float32")
    y = np.tanh(x[:, :3] @ np.array([[1.0, -0.5], [0.5, 1.0], [0.2, 0.3]]))
    return x, (y + 0.3 * rng.standard_normal(y.shape)).astype("float32")


def _plateau(**kw):
    base = dict(hidden_units=(16,), epochs=40, batch_size=64, learning_rate=3e-3,
                schedule="plateau", patience=3, plateau_patience=1, plateau_min_delta=1e-3,
                seed=0)
    return TrainConfig(**{**base, **kw})


def _train(config, checkpoint_dir=None, hook=None):
    x, y = _data(512, 0)
    xv, yv = _data(256, 1)
    model = StackedMLP(2, config.hidden_units, seed=3)
    hist = train_stacked(model, x, y, config, x_val=xv, y_val=yv,
                         checkpoint_dir=checkpoint_dir, on_epoch_end=hook)
    return model, hist


def test_plateau_divides_the_rate_after_flat_epochs_and_stops_converged():
    config = _plateau()
    _, hist = _train(config)
    total = hist.val_loss.values.sum(axis=1)
    lr = hist.learning_rate.values
    n = len(lr)
    assert n < config.epochs  # stopped early: every network converged
    assert hist.converged.values.tolist() == [1, 1]
    assert hist.attrs["converged_share"] == 1.0 and hist.attrs["schedule"] == "plateau"
    # replay the rule: the rate drops after one epoch without a 0.1 % lower summed loss
    best, expected, rate = np.inf, [], config.learning_rate
    for e in range(n):
        expected.append(rate)
        if total[e] < best * (1 - config.plateau_min_delta):
            best = total[e]
        else:
            rate /= config.lr_divisor
    np.testing.assert_allclose(lr, expected)
    assert lr[-1] < lr[0]


def test_epoch_cap_reached_means_not_converged():
    _, hist = _train(_plateau(epochs=2, patience=5))
    assert len(hist.epoch) == 2 and hist.converged.values.tolist() == [0, 0]


@pytest.mark.slow
def test_plateau_resume_is_exact(tmp_path):
    config = _plateau(epochs=8)
    full, hist_full = _train(config, tmp_path / "a")

    class Killed(RuntimeError):
        pass

    def kill(epoch, history):
        if epoch == 3:
            raise Killed

    with pytest.raises(Killed):
        _train(config, tmp_path / "b", hook=kill)
    resumed, hist = _train(config, tmp_path / "b")
    assert hist.attrs["resumed_from_epoch"] == 3
    np.testing.assert_array_equal(hist.learning_rate.values, hist_full.learning_rate.values)
    for a, b in zip(full.weights, resumed.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_plateau_needs_validation_data_and_early_stopping():
    x, y = _data(64, 0)
    with pytest.raises(ParameterError, match="validation"):
        train_stacked(StackedMLP(2, (4,)), x, y, _plateau(patience=2))
    with pytest.raises(ParameterError, match="stop_patience"):
        TrainConfig(hidden_units=(4,), schedule="plateau")


def test_step_schedule_records_convergence_without_changing_training():
    step = TrainConfig(hidden_units=(16,), epochs=3, batch_size=64, seed=0)
    _, hist = _train(step)
    assert hist.attrs["schedule"] == "step" and set(hist.converged.values) <= {0, 1}
    np.testing.assert_allclose(hist.learning_rate.values, [1e-3] * 3)


def test_every_phase_gets_the_cap_under_plateau_but_the_search_keeps_its_epochs():
    params = {"schedule": "plateau", "max_epochs": 33, "stop_patience": 4, "epochs": 12,
              "finetune_epochs": 4, "search_epochs": 1}
    premask = PremaskConfig.from_parameters(params)
    train = premask.train_config(hidden_units=premask.hidden, epochs=premask.epochs)
    assert (train.epochs, train.patience, train.schedule) == (33, 4, "plateau")
    fine = FinetuneConfig.from_parameters(params)
    assert fine.train_config(hidden_units=(4,), epochs=fine.finetune_epochs).epochs == 33
    search = SearchConfig.from_parameters(params)
    fixed = search.train_config(hidden_units=(4,), epochs=1, fixed=True)
    assert (fixed.epochs, fixed.patience, fixed.schedule) == (1, None, "step")
    default = PremaskConfig.from_parameters({"epochs": 12})
    assert default.train_config(hidden_units=(4,), epochs=12).epochs == 12
