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
