"""Driver precision/recall/F1 and the SHAP share on non-drivers (pcm.analysis.scoring)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from pcm.analysis.scoring import driver_scores, mean_scores, nondriver_share
from pcm.errors import DataError
from pcm.variables import input_groups, input_labels, output_labels

OUT, INP = output_labels(), input_labels()
GROUPS = input_groups()
QBP0, QBP1, TBP0, PS = GROUPS["QBP"][0], GROUPS["QBP"][1], GROUPS["TBP"][0], GROUPS["2-D"][0]


def _da(values: np.ndarray, name: str) -> xr.DataArray:
    return xr.DataArray(values, dims=("output", "input"), coords={"output": OUT, "input": INP},
                        name=name)


@pytest.fixture()
def truth():
    d = np.zeros((65, 94), dtype=bool)
    d[0, [QBP0, QBP1, TBP0, PS]] = True  # 4 drivers
    d[1, [TBP0]] = True
    d[2, [QBP0, PS]] = True
    # output 3 has no driver (degenerate)
    d[4:, QBP0] = True
    return _da(d, "drivers")


@pytest.fixture()
def mask():
    m = np.zeros((65, 94), dtype=bool)
    m[0, [QBP0, TBP0, GROUPS["VBP"][0]]] = True  # 2 tp, 1 fp, 2 fn
    m[1, [TBP0]] = True  # perfect
    # output 2: empty mask (a miss: recall 0, F1 0)
    m[3, [PS]] = True  # no true drivers (degenerate)
    m[4:, QBP0] = True
    return _da(m, "mask")


def test_precision_recall_f1_per_output(mask, truth):
    s = driver_scores(mask, truth)
    np.testing.assert_allclose(s["precision"].values[:2], [2 / 3, 1.0])
    np.testing.assert_allclose(s["recall"].values[:2], [0.5, 1.0])
    np.testing.assert_allclose(s["f1"].values[0], 2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert np.isnan(s["precision"].values[2]) and s["recall"].values[2] == 0
    assert np.isnan(s["recall"].values[3]) and s["precision"].values[3] == 0
    assert s["f1"].values[2] == 0.0  # empty mask of an output with drivers: a miss
    assert np.isnan(s["recall"].values[3])  # no drivers: nothing to recall
    assert list(np.flatnonzero(s["degenerate"].values)) == [3]
    assert s["tp"].values[0] == 2 and s["n_selected"].values[0] == 3
    assert s["n_true"].values[0] == 4


def test_group_scores(mask, truth):
    s = driver_scores(mask, truth)
    g = s["group_precision"].sel(output=OUT[0])
    assert float(g.sel(group="QBP")) == 1.0 and float(g.sel(group="TBP")) == 1.0
    assert float(g.sel(group="VBP")) == 0.0  # one false positive
    assert np.isnan(float(g.sel(group="2-D")))  # nothing selected there
    r = s["group_recall"].sel(output=OUT[0])
    assert float(r.sel(group="QBP")) == 0.5 and float(r.sel(group="2-D")) == 0.0
    assert np.isnan(float(r.sel(group="VBP")))  # no VBP drivers


def test_means_skip_degenerate_outputs(mask, truth):
    s = driver_scores(mask, truth)
    means = mean_scores(s, by_variable=True)
    keep = ~s["degenerate"].values
    assert means["n_scored"] == 64 and means["n_degenerate"] == 1
    np.testing.assert_allclose(means["precision"], np.nanmean(s["precision"].values[keep]))
    np.testing.assert_allclose(means["f1"], s["f1"].values[keep].mean())  # the miss counts
    assert np.isfinite(means["f1"])
    assert set(means["by_variable"]) == {"TPHYSTND", "PHQ", "FSNT", "FSNS", "FLNT", "FLNS",
                                         "PRECT"}
    assert set(means["by_input_group"]) == {"QBP", "TBP", "VBP", "2-D"}
    assert means["by_variable"]["PRECT"]["precision"] == 1.0


def test_all_empty_masks_score_zero_recall_and_nan_precision(truth):
    empty = _da(np.zeros((65, 94), dtype=bool), "mask")
    means = mean_scores(driver_scores(empty, truth))
    assert means["n_scored"] == 64 and np.isnan(means["precision"])
    assert means["recall"] == 0.0 and means["f1"] == 0.0


def test_no_true_drivers_at_all_gives_nan_not_error(mask):
    none = _da(np.zeros((65, 94), dtype=bool), "drivers")
    means = mean_scores(driver_scores(mask, none))
    assert means["n_scored"] == 0 and np.isnan(means["f1"])


def test_labels_are_aligned_not_positional(mask, truth):
    shuffled = mask.isel(output=slice(None, None, -1), input=slice(None, None, -1))
    a = driver_scores(shuffled, truth).sel(output=OUT)
    b = driver_scores(mask, truth)
    np.testing.assert_array_equal(a["tp"].values, b["tp"].values)
    with pytest.raises(DataError, match="share no"):
        driver_scores(mask.assign_coords(output=[f"x{i}" for i in range(65)]), truth)


def test_nondriver_share(truth):
    rng = np.random.default_rng(0)
    values = rng.uniform(size=(2, 65, 94))
    values[1, 5] = 0.0  # no attribution at all -> NaN
    shap = xr.DataArray(values, dims=("model", "output", "input"),
                        coords={"model": ["unconstrained", "pcmasking"], "output": OUT,
                                "input": INP})
    res = nondriver_share(shap, truth)
    non = ~truth.values
    with np.errstate(invalid="ignore"):
        expected = (values * non).sum(-1) / values.sum(-1)
    np.testing.assert_allclose(res["share"].values[0], expected[0])
    assert np.isnan(res["share"].values[1, 5])
    np.testing.assert_allclose(res["group_share"].sum("group").values[0], expected[0])
    assert res["share"].dims == ("model", "output")
    assert bool(res["degenerate"].values[3]) and res["degenerate"].sum() == 1


def test_empty_mask_of_an_output_with_drivers_scores_zero_f1():
    from pcm.analysis.scoring import _prf

    truth = np.array([[True, True, False], [False, False, False]])
    sel = np.zeros_like(truth)
    scores = _prf(sel, truth)
    assert np.isnan(scores["precision"]).all()  # nothing selected: undefined
    assert scores["recall"][0] == 0.0 and scores["f1"][0] == 0.0
    assert np.isnan(scores["f1"][1])  # no drivers, nothing selected


# -- strong drivers and threshold-free ranking --------------------------------------------


def _strength(truth: xr.DataArray) -> xr.DataArray:
    s = np.where(truth.values, 0.5, 0.0)
    s[0, QBP1] = 0.001  # weak driver of output 0
    s[0, PS] = 0.002  # weak
    return _da(s, "strength")


def test_strong_scores_count_weak_drivers_as_correct_but_do_not_demand_them(mask, truth):
    s = driver_scores(mask, truth, _strength(truth))
    # output 0: selected QBP0 (strong), TBP0 (strong), VBP0 (not a driver); strong = QBP0, TBP0
    assert s["strong_recall"].values[0] == 1.0  # both strong drivers found
    np.testing.assert_allclose(s["strong_precision"].values[0], 2 / 3)  # VBP0 is the only fp
    np.testing.assert_allclose(s["strong_f1"].values[0], 2 * (2 / 3) / (2 / 3 + 1))
    assert s["n_strong"].values[0] == 2
    # a weak driver that is kept is not a false positive
    m = mask.copy()
    m.values[0] = False
    m.values[0, [QBP0, TBP0, QBP1]] = True
    s2 = driver_scores(m, truth, _strength(truth))
    assert s2["strong_precision"].values[0] == 1.0 and s2["strong_f1"].values[0] == 1.0
    assert s2["f1"].values[0] < 1.0  # all-driver F1 misses PS
    # a higher cut makes the same mask's strong recall zero where nothing is that strong
    s3 = driver_scores(m, truth, _strength(truth), strong_cut=0.9)
    assert s3["strong_degenerate"].values[:3].all()


def test_strong_means_skip_outputs_without_strong_drivers(mask, truth):
    means = mean_scores(driver_scores(mask, truth, _strength(truth)), by_variable=True)
    assert means["strong"]["n_scored"] == 64 and means["strong"]["cut"] == 0.01
    assert set(means["strong_by_variable"]) == set(means["by_variable"])
    assert "strong" not in mean_scores(driver_scores(mask, truth))


def test_strong_cut_out_of_range_is_a_parameter_error(mask, truth):
    from pcm.errors import ParameterError

    with pytest.raises(ParameterError, match="strong_cut"):
        driver_scores(mask, truth, _strength(truth), strong_cut=1.5)


def test_ranking_auc_and_oracle_f1_of_hand_made_vectors(truth):
    from pcm.analysis.scoring import mean_ranking_scores, ranking_scores

    v = np.zeros((65, 94))
    # output 0 (drivers QBP0 QBP1 TBP0 PS): perfect ranking
    v[0, [QBP0, QBP1, TBP0, PS]] = [0.9, 0.8, 0.7, 0.6]
    # output 1 (driver TBP0): the driver is ranked below two non-drivers
    v[1] = np.linspace(0.0, 0.5, 94)
    v[1, TBP0] = 0.95
    v[1, [QBP0, QBP1]] = [1.0, 0.99]
    # output 2 (drivers QBP0, PS): reversed, the drivers score lowest
    v[2] = 1.0
    v[2, [QBP0, PS]] = 0.0
    r = ranking_scores(_da(v, "masking_vector"), truth)
    assert r["auc"].values[0] == 1.0 and r["oracle_f1"].values[0] == 1.0
    assert r["oracle_n_selected"].values[0] == 4
    # output 1: 91 of 93 non-drivers below the driver
    np.testing.assert_allclose(r["auc"].values[1], 91 / 93)
    np.testing.assert_allclose(r["oracle_f1"].values[1], 2 * 1 / (3 + 1))  # keep top 3
    assert r["auc"].values[2] == 0.0
    # reversed: the best a threshold can do is keep everything (F1 = 2*2/(94+2))
    np.testing.assert_allclose(r["oracle_f1"].values[2], 4 / 96)
    assert np.isnan(r["auc"].values[3])  # no drivers
    # ties count one half: a constant vector has AUC 0.5
    assert r["auc"].values[5] == 0.5
    # a selected mask's F1 never beats the oracle's
    sel = _da(v > 0.65, "mask")
    scores = driver_scores(sel, truth)
    assert (scores["f1"].values <= r["oracle_f1"].values + 1e-12)[~r["degenerate"].values].all()
    means = mean_ranking_scores(r, scores, by_variable=True)
    assert means["selected_f1"] <= means["oracle_f1"]
    assert set(means["by_variable"]["TPHYSTND"]) == {"auc", "oracle_f1", "selected_f1"}


def test_ranking_strong_auc_ignores_weak_drivers(truth):
    from pcm.analysis.scoring import mean_ranking_scores, ranking_scores

    v = np.zeros((65, 94))
    v[0, [QBP0, TBP0]] = [0.9, 0.8]  # the strong drivers on top
    v[0, GROUPS["VBP"][0]] = 0.7  # then a non-driver, the weak drivers (QBP1, PS) at 0
    r = ranking_scores(_da(v, "masking_vector"), truth, _strength(truth))
    assert r["strong_auc"].values[0] == 1.0
    assert r["auc"].values[0] < 1.0  # weak drivers tie with 92 non-drivers... below VBP0
    assert r["oracle_strong_f1"].values[0] == 1.0  # keep QBP0, TBP0
    means = mean_ranking_scores(r, driver_scores(_da(v > 0.75, "mask"), truth, _strength(truth)))
    assert {"strong_auc", "oracle_strong_f1", "selected_strong_f1"} <= set(means)
