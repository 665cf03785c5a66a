"""Selections recomputed offline from finished pcm worlds points (selection_grid)."""

from __future__ import annotations

import numpy as np
import pytest

from pcm.analysis.scoring import mask_scores
from pcm.errors import PCMError
from pcm.experiments.selection_grid import grid_medians, selection_grid
from pcm.run.rundir import RunDir

TINY = [
    "data.steps=24",
    "data.n_lat=2",
    "data.n_lon=4",
    "hidden_layers=1",
    "hidden_units=4",
    "epochs=2",
    "finetune_epochs=1",
    "batch_size=64",
    "causal=false",
    "shap_background=4",
    "shap_samples=4",
]


@pytest.mark.slow
def test_the_grid_recomputes_the_points_own_selection_and_its_stops_nest(tmp_path):
    from pcm.experiments.worlds import run_worlds

    out = tmp_path / "w"
    run_worlds(
        worlds=["2"],
        methods=[
            "rs:selection=relative,selection_ratio=0.1,"
            "screen=partial_correlation,screen_alpha=0.001"
        ],
        out=out,
        overrides=TINY,
    )
    point = out / "points" / "world-2_rs"
    table = selection_grid([point], ratios=(0.1, 0.0), alphas=(1e-3, 1e-8), shares=(0.001, 0.01))
    assert table.sizes["row"] == 2 * 4
    assert set(table["world"].values) == {2} and set(table["method"].values) == {"world-2_rs"}
    # the point's own selection (ratio 0.1, then the screen at alpha 0.001), recomputed
    own = table.where(
        (table["ratio"] == 0.1) & (table["stop"] == "alpha") & (table["value"] == 1e-3), drop=True
    )
    run = RunDir(point)
    expected = mask_scores(run.mask("pcmasking"), run.drivers(), run.driver_strength())
    for name, value in expected.items():
        np.testing.assert_allclose(own[name].values, [value], err_msg=name)
    # one path per cut: a stricter stop keeps a subset, so never more inputs
    for ratio in (0.1, 0.0):
        rows = table.where(table["ratio"] == ratio, drop=True)
        kept = dict(
            zip(
                zip(rows["stop"].values, rows["value"].values, strict=True),
                rows["inputs_kept"].values,
                strict=True,
            )
        )
        assert kept[("alpha", 1e-8)] <= kept[("alpha", 1e-3)]
        assert kept[("share", 0.01)] <= kept[("share", 0.001)]
    medians = grid_medians(table)
    assert len(medians) == 8 and (medians["points"] == 1).all()
    assert (medians["strong_f1_worst"] == medians["strong_f1"]).all()  # one point


def test_a_folder_that_is_not_a_finished_point_is_one_line(tmp_path):
    with pytest.raises(PCMError, match="not a finished pcm worlds point") as err:
        selection_grid([tmp_path])
    assert "\n" not in str(err.value) and str(tmp_path) in str(err.value)
    with pytest.raises(PCMError, match="no points given"):
        selection_grid([])
