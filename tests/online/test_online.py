"""The online testbed: coupling reproduces the truth, zeros give the forcing-only drift,
blow-ups are detected when they happen, and the metrics on hand-made series."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from pcm.cli import main
from pcm.data.cbrain_write import write_cbrain
from pcm.data.normalization import Normalization, compute_norm
from pcm.online import coupling, metrics, testbed

N_LAT, N_LON, STEPS = 2, 3, 49


@pytest.fixture(scope="module")
def truth():
    fields, proxy = testbed.truth_fields(STEPS, seed=3, n_lat=N_LAT, n_lon=N_LON)
    return fields, proxy, testbed.forcing_from_fields(fields, proxy)


def test_truth_physics_reproduces_the_truth_run(truth):
    _, _, forcing = truth
    traj = coupling.simulate(forcing, coupling.truth_physics, sample_every=1)
    assert (traj.blow_up_step == -1).all()
    expected = forcing.x[:, :, :testbed.N_STATE]
    assert traj.state.shape == expected.shape
    assert np.max(np.abs(traj.state[..., testbed.NL:] - expected[..., testbed.NL:])) < 1e-9
    assert np.max(np.abs(traj.state[..., :testbed.NL] - expected[..., :testbed.NL])) < 1e-15
    # the parameterization saw the truth run's inputs (fluxes and proxy included)
    np.testing.assert_allclose(traj.inputs[:-1], forcing.x[:-1], rtol=0, atol=1e-9)


def _forcing_only(forcing: testbed.Forcing) -> np.ndarray:
    """``s(t+1) = s(t) + dt F(t)``, humidity floored, written out by hand."""
    out = [forcing.x[0, :, :testbed.N_STATE]]
    for t in range(forcing.steps):
        nxt = out[-1] + testbed.DT * forcing.tendency[t]
        nxt[:, :testbed.NL] = np.maximum(nxt[:, :testbed.NL], coupling.Q_FLOOR)
        out.append(nxt)
    return np.stack(out)


def test_zero_parameterization_gives_the_forcing_only_drift(truth):
    _, _, forcing = truth
    traj = coupling.simulate(forcing, coupling.zero_physics, sample_every=1)
    expected = _forcing_only(forcing)
    np.testing.assert_allclose(traj.state, expected, rtol=1e-12, atol=1e-15)
    # and it differs from the truth run: the physics matters
    assert np.abs(traj.state[-1] - forcing.x[-1, :, :testbed.N_STATE]).max() > 0.1


def test_a_network_returning_zeros_gives_the_forcing_only_drift(truth, tmp_path):
    from pcm.nn.networks import StackedMLP

    fields, _, forcing = truth
    norm = Normalization.from_dataset(compute_norm(write_cbrain(fields, tmp_path / "t.nc")))
    model = StackedMLP(65, (4,), seed=0)
    for weight in model.trainable_weights:
        weight.assign(np.zeros(weight.shape, dtype="float32"))
    traj = coupling.simulate(forcing, coupling.NetworkPhysics(model, norm), sample_every=1)
    np.testing.assert_array_equal(traj.outputs[:-1], 0.0)
    np.testing.assert_allclose(traj.state, _forcing_only(forcing), rtol=1e-12, atol=1e-15)


def test_blow_up_is_detected_at_the_step_it_happens(truth):
    _, _, forcing = truth
    heat = 7.0  # K per step at every level

    def heater(x):
        y = np.zeros((x.shape[0], 65))
        y[:, :testbed.NL] = heat / testbed.DT
        return y

    traj = coupling.simulate(forcing, heater, sample_every=1)
    t = _forcing_only(forcing)[1:, :, testbed.NL:] + heat * np.arange(1, STEPS)[:, None, None]
    expected = metrics.first_failure((t <= coupling.T_RANGE[1]).all(axis=-1))
    assert (expected >= 0).all()
    np.testing.assert_array_equal(traj.blow_up_step, expected)
    for col, step in enumerate(expected):
        assert np.isnan(traj.state[step + 1:, col]).all()
        assert np.isfinite(traj.state[:step + 1, col]).all()


def test_proxy_is_correlated_in_training_and_decorrelated_online(truth):
    fields, proxy, forcing = truth
    x = forcing.x.reshape(-1, forcing.x.shape[-1])
    assert np.corrcoef(x[:, testbed.I_PROXY], x[:, testbed.I_PROXY_DRIVER])[0, 1] > 0.9
    free = testbed.forcing_from_fields(fields, proxy, proxy_coupled=False)
    xs = np.concatenate([testbed.column_inputs(testbed.state_of(free, t), free, t)
                         for t in range(free.steps)])
    assert abs(np.corrcoef(xs[:, testbed.I_PROXY], xs[:, testbed.I_PROXY_DRIVER])[0, 1]) < 0.5
    # only the proxy input changes
    xc = np.concatenate([testbed.column_inputs(testbed.state_of(forcing, t), forcing, t)
                         for t in range(forcing.steps)])
    changed = np.flatnonzero(np.any(xs != xc, axis=0))
    np.testing.assert_array_equal(changed, [testbed.I_PROXY])


def test_surface_fluxes_respond_to_the_lowest_level(truth):
    _, _, forcing = truth
    state = testbed.state_of(forcing, 0)
    state[:, testbed.NL + testbed.NL - 1] -= 1.0  # 1 K colder at 993 hPa
    x = testbed.column_inputs(state, forcing, 0)
    np.testing.assert_allclose(x[:, 92] - forcing.x[0, :, 92], testbed.EXCHANGE * 1004.64)


def test_first_failure_and_blow_up_days():
    ok = np.array([[1, 1, 1], [1, 0, 1], [0, 0, 1], [1, 1, 1]], dtype=bool)
    np.testing.assert_array_equal(metrics.first_failure(ok), [2, 1, -1])
    days = metrics.blow_up_days(np.array([47, -1, 0]), 1800.0)
    np.testing.assert_allclose(days[[0, 2]], [1.0, 1.0 / 48])
    assert np.isnan(days[1])


def test_drift_rmse_by_level_skips_dead_columns():
    truth = np.zeros((2, 3, 2))
    state = np.array([[[1.0, 2.0], [3.0, 0.0], [np.nan, np.nan]],
                      [[np.nan, np.nan], [np.nan, np.nan], [np.nan, np.nan]]])
    rmse = metrics.drift_rmse(state, truth)
    np.testing.assert_allclose(rmse[0], [np.sqrt(5.0), np.sqrt(2.0)])
    assert np.isnan(rmse[1]).all()
    assert metrics.total_rmse(state, truth) == pytest.approx(np.sqrt(14.0 / 4))


def test_budget_residuals_and_precipitation_stats():
    x, y = np.zeros((1, 94)), np.zeros((1, 65))
    y[0, 64] = 1.0 / 86400e3  # 1 mm/day of rain, no drying: 1 mm/day too much moisture
    assert metrics.moisture_residual(x, y)[0] == pytest.approx(1.0)
    # 1 mm/day of latent heating the column does not feel: -L_v / 86400 W/m2
    assert metrics.energy_residual(x, y)[0] == pytest.approx(-2.501e6 / 86400.0)
    stats = metrics.precipitation_stats(np.array([0.0, 2.0, np.nan, 4.0]) / 86400e3)
    assert stats["mean"] == pytest.approx(2.0)
    assert stats["wet_share"] == pytest.approx(2 / 3)


def test_cli_online_bad_seeds_is_one_line(tmp_path, capsys):
    assert main(["online", "--run", str(tmp_path / "r"), "--seeds", "a,b"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pcm: error:") and "--seeds" in err[0]


@pytest.mark.slow
def test_small_online_run_and_its_chapter(tmp_path):
    """End to end at a tiny size: the artefacts, the truth rows, the chapter executes."""
    import nbformat

    from pcm.online import report
    from pcm.online.runner import OnlineConfig, run_notebook, run_online

    config = OnlineConfig(seeds=(0,), n_lat=2, n_lon=2, days=0.5, train_steps=24,
                          overrides={"epochs": 2, "batch_size": 32, "lr_every": 1,
                                     "l1": 0.01, "finetune_epochs": 1, "search_epochs": 1})
    run_online(tmp_path / "run", config)
    result = report.open_online(tmp_path / "run")
    assert result.stability.sizes == {"model": 5, "scenario": 3, "seed": 1, "column": 4}
    assert np.isnan(result.stability["blow_up_day"].sel(model="truth")).all()
    assert float(result.drift["t_rmse_total"].sel(model="truth").max()) == 0.0
    table = report.stability_table(result, "proxy")
    assert table.loc[("truth", 0), "first blow-up (day)"] == "none in 0.5"
    assert "`pcmasking_relative`" in report.online_outcome(result)
    # the network named after the paper's rule searched the paper's grid (the last search)
    with xr.open_dataset(tmp_path / "run" / "online" / "seed_0" / "thresholds.nc") as paper:
        assert (paper.attrs["criterion"], paper.attrs["n_thresholds"],
                paper.attrs["percentile"], paper.attrs["ranking"]) == (
            "train_loss", 20, 70.0, "row_norm")
    dst = run_notebook(tmp_path / "run", tmp_path / "09_online.ipynb")
    nb = nbformat.read(dst, as_version=4)
    text = "".join(o.get("text", "") + "".join(o.get("data", {}).get("text/markdown", ""))
                   for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "4 columns, 0.5 days" in text
    assert not [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                if o.get("output_type") == "error"]
