"""ClimSim's scores (pcm.analysis.climsim_metrics) on hand-made arrays with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from pcm.analysis.climsim_metrics import (
    CP_AIR,
    GRAVITY,
    LATENT_HEAT_VAPORIZATION,
    climsim_scores,
    layer_mass,
    r2_per_column_level,
    to_energy_units,
)


def test_layer_mass_from_surface_pressure():
    # two layers: interfaces at 0, 0.5 * ps and ps
    mass = layer_mass(np.array([1e5, 8e4]), [0.0, 0.0, 0.0], [0.0, 0.5, 1.0])
    np.testing.assert_allclose(mass * GRAVITY, [[5e4, 5e4], [4e4, 4e4]])
    # a pure-pressure top layer: 10 hPa whatever the surface pressure
    top = layer_mass(np.array([1e5, 9e4]), [0.0, 0.01, 0.01], [0.0, 0.0, 1.0])[:, 0]
    np.testing.assert_allclose(top * GRAVITY, [1e3, 1e3])


def test_energy_units():
    names = ["ptend_t", "ptend_t", "ptend_q0001", "ptend_q0001", "cam_out_PRECC",
             "cam_out_SOLS"]
    y = np.array([[1.0, 2.0, 1e-8, 0.0, 1e-8, 300.0]])
    mass = np.array([[10.0, 20.0]])
    e = to_energy_units(y, names, mass)
    np.testing.assert_allclose(e, [[10 * CP_AIR, 40 * CP_AIR,
                                    1e-7 * LATENT_HEAT_VAPORIZATION, 0.0,
                                    1e-8 * LATENT_HEAT_VAPORIZATION * 1e3, 300.0]])
    with pytest.raises(ValueError, match="layer masses"):
        to_energy_units(y, names)
    with pytest.raises(ValueError, match="no energy conversion"):
        to_energy_units(y[:, :1], ["state_t"])


def test_r2_per_column_and_level_over_time():
    # 4 steps x 2 columns, 3 outputs; samples stacked (time, column)
    truth = np.zeros((4, 2, 3))
    pred = np.zeros((4, 2, 3))
    truth[:, 0, 0] = [0, 1, 2, 3]          # R² 0.8: SST 5, SSE 1
    pred[:, 0, 0] = [0, 1, 2, 4]
    truth[:, 1, 0] = [1, 2, 3, 4]          # perfect
    pred[:, 1, 0] = [1, 2, 3, 4]
    truth[:, :, 1] = [[1, 5]] * 4          # constant in time: no variance -> NaN
    pred[:, :, 1] = 0.0
    truth[:, 0, 2] = [0, 2, 0, 2]          # predicting the time mean: R² 0
    pred[:, 0, 2] = 1.0
    truth[:, 1, 2] = [0, 2, 0, 2]          # R² -3: SSE 16, SST 4
    pred[:, 1, 2] = [2, 0, 2, 0]
    per = r2_per_column_level(truth.reshape(8, 3), pred.reshape(8, 3), 2)
    np.testing.assert_allclose(per[:, 0], [0.8, 1.0])
    assert np.isnan(per[:, 1]).all()
    np.testing.assert_allclose(per[:, 2], [0.0, -3.0])


def test_scores_average_columns_then_levels_and_label_what_is_left_out():
    rng = np.random.default_rng(0)
    n_time, n_col = 50, 3
    names = ["ptend_t"] * 2 + ["cam_out_SOLS"]
    truth = rng.normal(size=(n_time * n_col, 3)) * 10
    # level 2 of ptend_t: column 0 never varies, columns 1 and 2 do
    truth[:, 1] = np.repeat(rng.normal(size=n_time), n_col) * np.tile([0.0, 1.0, 1.0], n_time)
    pred = truth + rng.normal(size=truth.shape)
    ds = climsim_scores(truth, pred, names, n_col)
    per = r2_per_column_level(truth, pred, n_col)
    assert np.isnan(per[0, 1]) and np.isfinite(per[1:, 1]).all()
    level = [per[:, 0].mean(), per[1:, 1].mean()]
    assert float(ds["r2"].sel(var="ptend_t")) == pytest.approx(np.mean(level))
    assert int(ds["n_left_out"].sel(var="ptend_t")) == 1
    assert int(ds["n_entries"].sel(var="ptend_t")) == 6
    assert np.isnan(float(ds["r2_all"].sel(var="ptend_t")))  # ClimSim would show "--"
    sols = per[:, 2].mean()
    assert float(ds["r2"].sel(var="cam_out_SOLS")) == pytest.approx(sols)
    assert float(ds["r2_all"].sel(var="cam_out_SOLS")) == pytest.approx(sols)
    assert ds.attrs["n_samples"] == n_time * n_col and ds.attrs["n_time"] == n_time
    np.testing.assert_array_equal(ds["n_columns_scored"].values, [3, 2, 3])


def test_comparison_table_prints_no_huge_r2_and_counts_what_is_below():
    import pandas as pd

    from pcm.book.real_data import comparison_outcome, readable_table

    table = pd.DataFrame({"unconstrained": [0.264, -5545.5, 0.915],
                          "pcmasking": [0.146, -1575.3, 0.99],
                          "left out": ["0/23040", "6781/23040", "0/384"],
                          "ClimSim MLP": [0.589, None, 0.983]},
                         index=["dT/dt", "dq/dt", "NETSW"])
    shown = readable_table(table)
    assert shown.loc["dq/dt"].tolist() == ["< -1", "< -1", "6781/23040", "--"]
    assert shown.loc["dT/dt", "pcmasking"] == "0.146"
    outcome = comparison_outcome(table)
    assert "below ClimSim's MLP on 1 of the 2 variables ClimSim reports (dT/dt)" in outcome
