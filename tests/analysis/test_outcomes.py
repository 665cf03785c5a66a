"""The generated summaries say what the run measured, losses included, with its numbers."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from pcm.analysis import outcomes

SUMMARY = {
    "r2": {"unconstrained": {"control": {"PRECT": 0.80, "FSNT": 0.93},
                             "minus4K": {"PRECT": 0.71, "FSNT": 0.90}},
           "pcmasking": {"control": {"PRECT": 0.80, "FSNT": 0.95},
                         "minus4K": {"PRECT": 0.54, "FSNT": 0.90}}},
    "drivers": {"causal": {"precision": 0.14, "recall": 0.69, "f1": 0.2},
                "pcmasking": {"precision": 0.5, "recall": 0.3, "f1": 0.37}},
    "shap_nondriver_share": {"unconstrained": 0.8, "causal": 0.47, "pcmasking": 0.3},
}


def test_skill_outcome_names_where_pcmasking_loses_with_both_numbers():
    text = outcomes.skill_outcome(SUMMARY)
    minus = next(line for line in text.splitlines() if "minus4K" in line)
    assert "**below** unconstrained for PRECT 0.54 vs 0.71" in minus
    assert "FSNT" not in minus.split("above")[0].split("below")[1]  # equal: not a loss
    control = next(line for line in text.splitlines() if "control" in line)
    assert "nowhere below" in control and "above for FSNT 0.95 vs 0.93" in control


def test_driver_outcome_reads_the_direction_from_the_numbers():
    text = outcomes.driver_outcome(SUMMARY)
    causal = next(line for line in text.splitlines() if "**causal**" in line)
    assert "precision 0.14, recall 0.69" in causal
    assert "recall above precision: its masks err more by keeping" in causal
    assert "47 % of its mean |SHAP| on non-drivers" in causal
    assert "PCMasking puts less of its SHAP mass" in text
    assert "not scored" in outcomes.driver_outcome({})


def test_require_fails_on_a_contradicted_statement():
    outcomes.require(0.3 < 0.8, "PCMasking puts less SHAP mass on non-drivers")
    with pytest.raises(outcomes.StatementError, match="the loss rises"):
        outcomes.require(False, "the loss rises")


def test_sweep_outcome_directions_and_broken_baselines():
    table = xr.Dataset({"f1": ("point", [0.39, 0.21]), "r2_pcmasking_mean": ("point", [0.77, 0.52]),
                        "r2_unconstrained_mean": ("point", [0.06, 0.05])},
                       coords={"l1": ("point", [1.0, 0.0001])})
    text = outcomes.sweep_outcome(table, "l1")
    assert "`f1` rises from l1 = 0.0001 to l1 = 1: 0.21 → 0.39" in text
    assert "`r2_pcmasking_mean` rises" in text
    assert "at most 0.06" in text and "too poorly trained" in text


def test_shift_outcome_lists_the_losing_variables_per_shift():
    r2 = np.array([[[0.64, 0.9], [0.8, 0.93]], [[0.36, 0.9], [0.8, 0.95]]])  # model, shift, var
    shift = xr.Dataset({"r2": (("model", "shift", "var"), r2),
                        "r2_mean": (("model", "shift"), r2.mean(-1))},
                       coords={"model": ["unconstrained", "pcmasking"], "shift": [-8.0, 0.0],
                               "var": ["PRECT", "FSNT"]})
    text = outcomes.shift_outcome(shift)
    assert text.count("\n") == 1  # the control climate is not a shift
    assert "**-8 K**" in text and "below unconstrained for PRECT 0.36 vs 0.64." in text


def test_threshold_outcome_counts_flat_searches_and_choices():
    loss = np.array([[1.0, 1.001, 1.002], [2.0, 1.0, 3.0]])
    ds = xr.Dataset({"loss": (("output", "threshold_index"), loss),
                     "chosen_index": ("output", [0, 1])})
    masks = xr.DataArray(np.array([[1, 1, 0, 0], [1, 0, 0, 0]], bool), dims=("output", "input"))
    text = outcomes.threshold_outcome(ds, masks, "val_loss")
    assert "median of 1 of 4 inputs" in text and "(min 1, max 2)" in text
    assert "for 1 of them by less than 1 %" in text
    assert "largest candidate for 0 outputs and on the smallest for 1" in text


def test_threshold_outcome_says_the_screen_chose():
    ds = xr.Dataset({"loss": (("output", "threshold_index"), np.full((2, 1), np.nan)),
                     "n_inputs_kept": (("output", "threshold_index"), [[4.0], [3.0]]),
                     "chosen_index": ("output", [0, 0])},
                    attrs={"screen": "partial_correlation"})
    masks = xr.DataArray(np.array([[1, 0, 0, 0], [1, 1, 0, 0]], bool), dims=("output", "input"))
    text = outcomes.threshold_outcome(ds, masks, "relative")
    assert "no loss was searched" in text
    assert ("the `partial_correlation` screen: of a median of 3 inputs above the threshold it "
            "kept 1") in text
    assert "screen" not in outcomes.threshold_outcome(ds.assign_attrs(screen="none"), masks,
                                                       "relative")


def test_selection_comparison_scores_each_selection():
    dims = ("output", "input")
    coords = {"output": ["a", "b"], "input": ["x", "y", "z", "w"]}
    drivers = xr.DataArray(np.array([[1, 1, 0, 0], [1, 0, 0, 0]], bool), dims=dims,
                           coords=coords)
    exact = drivers.copy()
    loose = xr.DataArray(np.ones((2, 4), bool), dims=dims, coords=coords)
    text = outcomes.selection_comparison({"pcmasking": exact, "paper_rule": loose}, drivers)
    lines = text.strip().splitlines()
    assert lines[0] == ("| selection | inputs kept per output (median) | precision | recall | "
                        "F1 |")
    assert lines[2] == "| this run's selection (`pcmasking`) | 1 of 4 | 1.00 | 1.00 | 1.00 |"
    assert lines[3] == "| the paper's rule (`paper_rule`) | 4 of 4 | 0.38 | 1.00 | 0.53 |"
    bare = outcomes.selection_comparison({"pcmasking": exact}, None)
    assert bare.strip().splitlines()[2] == "| this run's selection (`pcmasking`) | 1 of 4 |"
