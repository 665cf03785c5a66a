"""``pcm sweep``: grid parsing, λ values trained as one stack, the table, resume."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

from pcm.cli import main  # noqa: E402
from pcm.errors import ParameterError  # noqa: E402
from pcm.experiments.sweep import grid_points, parse_grid, point_id, run_sweep  # noqa: E402

#: A sweep small enough for a test: 2 x 4 columns, 24 steps, one-layer networks.
TINY = ["data.steps=24", "data.n_lat=2", "data.n_lon=4", "hidden_layers=1", "hidden_units=4",
        "epochs=2", "finetune_epochs=1", "batch_size=64", "n_thresholds=3", "causal=false",
        "shap_background=4", "shap_samples=4"]


def test_parse_grid_and_points():
    grid = parse_grid(["l1=1,0.1,1e-3", "hidden_layers=2,3", "selection=proxy,val_loss"])
    assert grid["l1"] == [1, 0.1, 0.001] and grid["hidden_layers"] == [2, 3]
    points = grid_points(grid)
    assert len(points) == 12 and points[0] == {"l1": 1, "hidden_layers": 2, "selection": "proxy"}
    assert points[1]["selection"] == "val_loss"  # last key fastest
    assert point_id(points[0]) == "l1-1_hidden_layers-2_selection-proxy"
    for bad, match in ((["lambda=1"], "lambda"), (["l1=1", "l1=2"], "twice"), (["l1="], "l1"),
                       (["l1"], "KEY=V1")):
        with pytest.raises(ParameterError, match=match):
            parse_grid(bad)


@pytest.mark.slow
def test_sweep_stacks_lambdas_writes_table_and_resumes(tmp_path, capsys):
    out = tmp_path / "sweep"
    grid = {"l1": [0.5, 0.001], "hidden_units": [4, 6]}
    table = run_sweep(preset="ci", grid=grid, out=out, overrides=TINY)
    assert table.sizes["point"] == 4
    assert table["l1"].values.tolist() == [0.5, 0.5, 0.001, 0.001]  # first key slowest
    assert table["hidden_units"].values.tolist() == [4, 6, 4, 6]
    for column in ("r2_pcmasking_PRECT", "r2_unconstrained_mean", "r2_pcmasking_mean_plus4K",
                   "precision", "recall", "f1", "strong_f1", "auc", "oracle_f1",
                   "shap_nondriver_share_pcmasking", "inputs_kept", "seconds"):
        assert column in table, column
        assert table[column].attrs["units"] in ("1", "s")
    assert ((table["inputs_kept"] >= 0) & (table["inputs_kept"] <= 94)).all()
    assert (table["oracle_f1"] >= table["f1"] - 1e-12).all()
    # two stacks (one per width), each holding both λ as 2 x 65 networks
    stacks = sorted((out / "stacks").iterdir())
    assert len(stacks) == 2
    hist = xr.load_dataset(stacks[0] / "history_premask.nc")
    assert hist.sizes["network"] == 130
    assert hist.attrs["l1"].tolist() == [0.5] * 65 + [0.001] * 65
    # every point got its own copy of the stack, with its own λ, trained differently
    strong = xr.load_dataset(out / "points" / "l1-0.5_hidden_units-4" / "masking_vectors.nc")
    weak = xr.load_dataset(out / "points" / "l1-0.001_hidden_units-4" / "masking_vectors.nc")
    assert strong["masking_vector"].sum() < weak["masking_vector"].sum()
    assert xr.load_dataset(out / "points" / "l1-0.5_hidden_units-4" /
                           "history_premask.nc").attrs["l1"] == 0.5
    # one data set for all four points
    assert len(list((out / "data").iterdir())) == 1
    csv = pd.read_csv(out / "sweep.csv")
    assert len(csv) == 4 and {"point", "l1", "hidden_units", "f1"} <= set(csv.columns)
    on_disk = xr.load_dataset(out / "sweep.nc")
    np.testing.assert_allclose(on_disk["f1"].values, table["f1"].values)

    # resume: nothing is recomputed
    capsys.readouterr()
    again = run_sweep(preset="ci", grid=grid, out=out, overrides=TINY)
    assert capsys.readouterr().out.count("done, skipped") == 4
    np.testing.assert_array_equal(again["f1"].values, table["f1"].values)


def test_cli_sweep_reports_bad_grid_in_one_line(tmp_path, capsys):
    status = main(["sweep", "--preset", "ci", "--grid", "l1=1,-2", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("pcm: error:") and "l1" in err
    assert not (tmp_path / "points").exists()  # checked before anything ran


@pytest.mark.slow
def test_points_differing_after_premasking_share_one_premasking_model(tmp_path):
    out = tmp_path / "sweep"
    grid = {"selection_ratio": [0.1, 0.95]}
    table = run_sweep(preset="ci", grid=grid, out=out,
                      overrides=[*TINY, "selection=relative"])
    assert len(list((out / "stacks").iterdir())) == 1  # one pre-masking training
    loose, tight = (out / "points" / f"selection_ratio-{r}" for r in (0.1, 0.95))
    np.testing.assert_array_equal(
        xr.load_dataset(loose / "masking_vectors.nc")["masking_vector"].values,
        xr.load_dataset(tight / "masking_vectors.nc")["masking_vector"].values)
    assert table["inputs_kept"].isel(point=0) > table["inputs_kept"].isel(point=1)


def test_a_finished_point_stands_when_pcm_gains_a_parameter_at_its_default(tmp_path):
    from pcm.experiments.sweep import POINT_FILE, _is_done
    from pcm.io import write_json
    from pcm.params.presets import preset
    from pcm.run.rundir import RunDir

    params = preset("ci")
    run = RunDir(tmp_path / "point")
    run.root.mkdir(parents=True)
    older = {k: v for k, v in params.items() if k != "screen_min_share"}  # before it existed
    write_json({"point": {}, "params": older, "row": {}}, run.artefact(POINT_FILE))
    assert _is_done(run, params)  # the new parameter at its default changes nothing
    assert not _is_done(run, {**params, "screen_min_share": 0.005})  # a new value does
    assert not _is_done(run, {**params, "l1": 0.5})  # as does any recorded parameter
