"""The variable catalogue: order, labels, levels and grid match the reference."""

import numpy as np
import pytest

from pcm import variables as v


def test_input_and_output_counts_and_order():
    inputs, outputs = v.input_labels(), v.output_labels()
    assert len(inputs) == 94 and len(outputs) == 65
    assert inputs[:2] == ["qbp-3.64", "qbp-7.59"]
    assert inputs[29] == "qbp-992.56" and inputs[30] == "tbp-3.64" and inputs[60] == "vbp-3.64"
    assert inputs[90:] == ["ps", "solin", "shflx", "lhflx"]
    assert outputs[0] == "tphystnd-3.64" and outputs[30] == "phq-3.64"
    assert outputs[60:] == ["fsnt", "fsns", "flnt", "flns", "prect"]
    assert len(set(inputs)) == 94 and len(set(outputs)) == 65


def test_labels_follow_reference_rounding():
    # f"{round(p, 2):g}": trailing zeros dropped
    assert v.feature_label("TBP", 5) == "tbp-54.6"
    assert v.feature_label("TPHYSTND", 20) == "tphystnd-691.39"
    assert v.feature_label("ps") == "ps"


def test_levels_top_to_bottom_and_consistent_with_hybrid_coefficients():
    assert v.LEVELS_HPA.shape == (30,)
    assert np.all(np.diff(v.LEVELS_HPA) > 0)
    np.testing.assert_allclose((v.HYAM * v.P0 + v.HYBM * 1e5) / 100, v.LEVELS_HPA, rtol=1e-5)


def test_label_lookup_round_trips():
    for i, label in enumerate(v.input_labels()):
        name = v.variable_of_label(label)
        level = v.level_index_of_label(label)
        assert v.feature_label(name, level) == label, i
    with pytest.raises(KeyError, match="unknown feature label"):
        v.variable_of_label("qbp-1000")


def test_expand_var_names_repeats_per_level():
    names = v.expand_var_names(v.INPUT_VARIABLES)
    assert len(names) == 94 and names.count("TBP") == 30 and names.count("PS") == 1


def test_input_groups_partition_the_inputs():
    groups = v.input_groups()
    assert sorted(i for idx in groups.values() for i in idx) == list(range(94))
    assert [len(groups[g]) for g in ("QBP", "TBP", "VBP", "2-D")] == [30, 30, 30, 4]


def test_gaussian_grid_is_t42():
    grid = v.gaussian_grid()
    assert grid["lat"].shape == (64,) and grid["lon"].shape == (128,)
    assert grid["gw"].sum() == pytest.approx(2.0)
    assert grid["lat"][0] == pytest.approx(-87.8638, abs=1e-4)  # ancil_spcam.nc
    assert np.all(np.diff(grid["lat"]) > 0)


@pytest.mark.parametrize(("n_lat", "n_lon"), [(1, 1), (8, 16), (63, 127), (64, 128)])
def test_grid_subsets_are_unique_real_points(n_lat, n_lon):
    full, sub = v.gaussian_grid(), v.gaussian_grid(n_lat, n_lon)
    assert len(np.unique(sub["lat"])) == n_lat and len(np.unique(sub["lon"])) == n_lon
    assert np.isin(sub["lat"], full["lat"]).all() and np.isin(sub["lon"], full["lon"]).all()


def test_grid_subset_out_of_range():
    with pytest.raises(ValueError, match="1..64 latitudes"):
        v.gaussian_grid(65, 10)
