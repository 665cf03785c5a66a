"""Randomised synthetic worlds (pcm.data.synthetic.worlds) and ``pcm worlds``."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from pcm import variables as V
from pcm.data import synthetic
from pcm.data.synthetic import worlds
from pcm.errors import ParameterError
from pcm.run.rundir import RunDir

#: Digests of the variables of the data of the ``tutorial`` preset as it was then (240
#: steps, 16 x 32, seed 0) as the generator wrote them before worlds existed (main
#: 0d35998, /tmp/base/runs/tutorial/data), on a CPU whose best numpy kernels were AVX2
#: (numpy's ``X86_V3``).
TUTORIAL_DIGESTS = {
    "train": "3cce03a55aa693bf35866298a63c0e01d0e25a961b5a8c0d7b3e1e21e2631548",
    "valid": "ee088e26c0f1badb91dc7446773177672f57f49067960dc72f47a8990024f058",
    "test": "b1afb6ff5e3bb44b0fd8fe33f5b86d54842f5f9103b97d7c7d0aa3584e64902d",
    "plus4K": "65b3302df6c2811dba7366086a39372daff9ec69879f33404d6abc71b01b4666",
    "minus4K": "a941cac2a8aa44dc80a83210510dea5ef061df77750f651ffa9103c2b0a8e51e",
    "drivers": "60711ad0b1e65ebd095767fe05f151b88c37fa7120c86fff9e40c0e3ae584c66",
}

#: numpy's SIMD kernels the digests were recorded with. numpy picks its kernels for
#: ``exp``, ``log``, ``sin`` ... by CPU at import, and its AVX-512 kernels (``X86_V4`` and
#: above) differ from the AVX2 ones in the last bit (measured: on an AVX-512 CPU every
#: digest above differs, and with ``NPY_DISABLE_CPU_FEATURES`` naming the features above
#: ``X86_V3`` every digest matches).
DIGEST_SIMD = "X86_V3"

#: Writes the data in a subprocess (numpy's kernels are chosen at import); the digests are
#: taken here, from the files (reading them computes nothing).
_WRITE_SCRIPT = """
import json, sys
from pcm.data.datasets import write_synthetic_dataset
paths = write_synthetic_dataset(sys.argv[1], steps=240, seed=0, n_lat=16, n_lon=32, world=0)
print(json.dumps({name: str(path) for name, path in paths.items()}))
"""


def _digest(ds: xr.Dataset) -> str:
    h = hashlib.sha256()
    for name in sorted(ds.data_vars):
        h.update(name.encode())
        h.update(np.ascontiguousarray(ds[name].values).tobytes())
    return h.hexdigest()


def _features_above(level: str) -> list[str] | None:
    """numpy's dispatched SIMD features of this CPU above ``level`` (None: no ``level``)."""
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    if not __cpu_features__.get(level) or level not in __cpu_dispatch__:
        return None
    above = __cpu_dispatch__[__cpu_dispatch__.index(level) + 1:]
    return [f for f in above if __cpu_features__.get(f)]


@pytest.mark.slow
def test_world_0_reproduces_the_tutorial_data_bit_for_bit(tmp_path):
    above = _features_above(DIGEST_SIMD)
    if above is None:
        pytest.skip(f"the digests were recorded with numpy's {DIGEST_SIMD} (AVX2) kernels, "
                    "which this CPU or numpy build does not have")
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": " ".join(above)}
    done = subprocess.run([sys.executable, "-c", _WRITE_SCRIPT, str(tmp_path / "d")],
                          env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    paths = json.loads(done.stdout.strip().splitlines()[-1])
    for name, digest in TUTORIAL_DIGESTS.items():
        with xr.open_dataset(paths[name]) as ds:
            assert _digest(ds) == digest, name


def test_world_0_is_the_default_and_other_worlds_differ():
    a = synthetic.generate(6, seed=1, n_lat=2, n_lon=4)
    b = synthetic.generate(6, seed=1, n_lat=2, n_lon=4, world=0)
    assert _digest(a) == _digest(b) and "world" not in a.attrs
    c = synthetic.generate(6, seed=1, n_lat=2, n_lon=4, world=3)
    assert c.attrs["world"] == 3 and _digest(c) != _digest(a)
    again = synthetic.generate(6, seed=1, n_lat=2, n_lon=4, world=3)
    assert _digest(again) == _digest(c)  # deterministic
    other_seed = synthetic.generate(6, seed=2, n_lat=2, n_lon=4, world=3)
    assert _digest(other_seed) != _digest(c)  # the seed draws the samples ...
    # ... the world alone the physics
    np.testing.assert_array_equal(synthetic.driver_matrix(3), worlds.world_drivers(3))
    assert not np.array_equal(synthetic.driver_matrix(3), synthetic.driver_matrix(4))
    assert not np.array_equal(synthetic.driver_matrix(3), synthetic.driver_matrix(0))


def test_worlds_outputs_read_exactly_their_drivers():
    """E[y | x] depends on the declared drivers only: perturbing a non-driver changes no
    output, perturbing a driver changes the outputs that read it."""
    ds = synthetic.generate(8, seed=0, n_lat=4, n_lon=8, world=101)
    x = synthetic.stack_columns(ds, V.INPUT_VARIABLES)
    f0 = synthetic.deterministic_output(x, 101)
    drivers = synthetic.driver_matrix(101)
    for i in range(x.shape[1]):
        xp = x.copy()
        xp[:, i] += 0.05 * (x[:, i].std() + 1e-9)
        changed = np.abs(synthetic.deterministic_output(xp, 101) - f0).max(axis=0) > 0
        np.testing.assert_array_equal(changed, drivers[:, i], err_msg=f"input {i}")
    # VBP and PS drive nothing; PHQ above 140 hPa is exactly zero and has no driver
    assert not drivers[:, 60:91].any()
    assert not drivers[30:40].any()
    y = synthetic.stack_columns(ds, V.OUTPUT_VARIABLES)
    assert (y[:, 30:40] == 0).all() and (y[:, 64] > 0).all() and np.isfinite(y).all()


@pytest.mark.slow
def test_worlds_draw_proxies_strengths_and_smoothness():
    for world in (1, 2, 100, 120):
        phys = worlds.world_physics(world)
        ds = synthetic.generate(24, seed=0, n_lat=8, n_lon=16, world=world)
        x = synthetic.stack_columns(ds, V.INPUT_VARIABLES)
        source = x[:, 30:60] if phys.proxy_source == "TBP" else np.log(x[:, :30])
        r = np.array([np.corrcoef(x[:, 60 + k], source[:, k])[0, 1] for k in range(30)])
        # VBP, never a driver, copies its source at the drawn correlation
        assert np.median(r) == pytest.approx(phys.proxy_r, abs=0.12)
        strength = synthetic.driver_strength(steps=6, seed=0, world=world).values
        d = phys.drivers
        assert (strength[~d] == 0).all() and (strength[d] > 0).all()
        assert (strength[d] < 0.01).any() and (strength[d] > 0.3).any()  # weak to dominant
    knobs = [worlds.world_summary(w) for w in range(1, 11)]
    for key in ("smoothness", "proxy_r", "nonlinearity", "noise", "drivers_per_output"):
        values = [k[key] for k in knobs]
        assert max(values) > 1.5 * min(values), key  # the worlds differ in each knob


def test_world_split_and_bad_worlds():
    assert worlds.world_split(0) == "development" and worlds.world_split(99) == "development"
    assert worlds.world_split(100) == "held-out" and worlds.world_split(149) == "held-out"
    assert set(worlds.DEVELOPMENT_WORLDS).isdisjoint(worlds.HELDOUT_WORLDS)
    assert all(worlds.world_split(w) == "held-out" for w in worlds.HELDOUT_WORLDS)
    with pytest.raises(ParameterError, match="data.world"):
        synthetic.generate(4, n_lat=2, n_lon=2, world=200)
    with pytest.raises(ParameterError, match="data.world"):
        synthetic.generate(4, n_lat=2, n_lon=2, world=-1)


@pytest.mark.slow
def test_data_synthetic_world_option(tmp_path, capsys):
    from pcm.cli import main

    assert main(["data", "synthetic", "--out", str(tmp_path / "w"), "--steps", "6", "--lat",
                 "2", "--lon", "4", "--world", "105"]) == 0
    with xr.open_dataset(tmp_path / "w" / "drivers.nc") as ds:
        np.testing.assert_array_equal(ds["drivers"].values, worlds.world_drivers(105))
    assert main(["data", "synthetic", "--out", str(tmp_path / "x"), "--steps", "6", "--world",
                 "500"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pcm: error:") and "data.world" in err[0]


# --------------------------------------------------------------------------- pcm worlds
TINY = ["data.steps=24", "data.n_lat=2", "data.n_lon=4", "hidden_layers=1", "hidden_units=4",
        "epochs=2", "finetune_epochs=1", "batch_size=64", "n_thresholds=3", "causal=false",
        "shap_background=4", "shap_samples=4"]


def test_parse_worlds_and_methods():
    from pcm.experiments.worlds import parse_method, parse_worlds
    from pcm.params.presets import METHODS

    assert parse_worlds(["0-2", "100,101", "1"]) == [0, 1, 2, 100, 101]
    for bad in ("a", "5-3", "200", ""):
        with pytest.raises(ParameterError, match="--worlds"):
            parse_worlds([bad])
    assert parse_method("paper") == ("paper", METHODS["paper"])
    name, over = parse_method("rel2:selection=relative,selection_ratio=0.2")
    assert name == "rel2" and over == {"selection": "relative", "selection_ratio": 0.2}
    # a built-in with overrides starts from the built-in
    assert parse_method("paper:n_thresholds=5")[1]["selection"] == "train_loss"
    with pytest.raises(ParameterError, match="unknown method"):
        parse_method("nope")
    with pytest.raises(ParameterError, match="selecton"):
        parse_method("m:selecton=relative")
    with pytest.raises(ParameterError, match="data.world"):
        parse_method("m:data.world=3")


@pytest.mark.slow
def test_run_worlds_writes_one_table_and_shares_premasking_per_world(tmp_path):
    from pcm.experiments.worlds import run_worlds, world_medians

    out = tmp_path / "w"
    table = run_worlds(worlds=["3", "101"], methods=["relative", "loose:selection=relative,"
                                                     "selection_ratio=0.05"],
                       out=out, overrides=TINY)
    assert table.sizes["row"] == 4
    assert table["world"].values.tolist() == [3, 3, 101, 101]
    assert table["split"].values.tolist() == ["development"] * 2 + ["held-out"] * 2
    assert table["method"].values.tolist() == ["relative", "loose"] * 2
    for column in ("auc", "oracle_f1", "f1", "strong_f1", "precision", "recall",
                   "shap_nondriver_share", "r2_gap", "seconds"):
        assert column in table and table[column].attrs["units"] in ("1", "s")
    gap = table["r2_unconstrained"] - table["r2_pcmasking"]
    np.testing.assert_allclose(table["r2_gap"].values, gap.values)
    # why each world misses, from each point's own masking vectors and drivers
    assert ((table["strong_unused"] >= 0) & (table["strong_unused"] <= 1)).all()
    assert (table["proxy_ahead"] <= table["ahead"]).all() and (table["ahead"] >= 0).all()
    # a looser ratio keeps more inputs, from the same masking vectors (one pre-masking stack
    # and one data set per world)
    assert (table["inputs_kept"].values[1::2] >= table["inputs_kept"].values[::2]).all()
    assert len(list((out / "stacks").iterdir())) == 2 and len(list((out / "data").iterdir())) == 2
    for w in (3, 101):
        a = xr.load_dataset(out / "points" / f"world-{w}_relative" / "masking_vectors.nc")
        b = xr.load_dataset(out / "points" / f"world-{w}_loose" / "masking_vectors.nc")
        np.testing.assert_array_equal(a["masking_vector"].values, b["masking_vector"].values)
    with xr.open_dataset(out / "worlds.nc") as disk:
        assert disk.sizes["row"] == 4
    csv = (out / "worlds.csv").read_text().splitlines()
    assert len(csv) == 5 and "world" in csv[0] and "method" in csv[0]
    assert (out / "worlds.png").stat().st_size > 0
    # each world's data are that world's
    data = RunDir(out / "points" / "world-101_relative")
    np.testing.assert_array_equal(data.drivers().values, worlds.world_drivers(101))
    med = world_medians(table)
    assert med["worlds"].values.tolist() == [1, 1]
    assert med["median_auc"].values[0] == table["auc"].values[2]
    with pytest.raises(Exception, match="no development world"):
        world_medians(table.isel(row=[2, 3]), "development")


def test_cli_worlds_errors_are_one_line(tmp_path, capsys):
    from pcm.cli import main

    for argv in (["--worlds", "250"], ["--worlds", "1", "--method", "nope"],
                 ["--worlds", "1", "--set", "data.source=spcam"]):
        assert main(["worlds", *argv, "--out", str(tmp_path / "w")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("pcm: error:"), err


def test_worlds_table_says_why_each_world_misses():
    from pcm.experiments.worlds import DIAGNOSIS, worlds_table

    records = [{"point": {"world": w, "method": "paper"}, "row": {"auc": 0.9}} for w in (2, 103)]
    why = [{"strong_unused": 0.25, "ahead": 3.0, "proxy_ahead": 2.0},
           {"strong_unused": 0.0, "ahead": 0.5, "proxy_ahead": 0.0}]
    table = worlds_table(records, diagnosis=why)
    for name in DIAGNOSIS:
        assert table[name].attrs["units"] == "1" and table[name].attrs["long_name"]
        np.testing.assert_array_equal(table[name].values, [w[name] for w in why])
    assert "strong_unused" not in worlds_table(records)


def _goal_table():
    from pcm.experiments.worlds import worlds_table

    rows = {"paper": {"auc": 0.9, "strong_f1": 0.2, "precision": 0.1,
                      "shap_nondriver_share_pcmasking": 0.6},
            "screen_all": {"auc": 0.9, "strong_f1": 0.9, "precision": 0.95,
                           "shap_nondriver_share_pcmasking": 0.03, "r2_pcmasking_mean": 0.75,
                           "r2_unconstrained_mean": 0.7}}
    records = [{"point": {"world": w, "method": m}, "row": dict(row)}
               for w in (3, 104) for m, row in rows.items()]
    return worlds_table(records)


def test_goal_outcome_names_what_is_met_and_what_is_missed():
    from pcm.experiments.worlds import choice_outcome, chosen_method, goal_outcome

    table = _goal_table()
    assert chosen_method(table) == "screen_all"
    assert choice_outcome(table) == (
        "Chosen on the development worlds by median strong f1: `screen_all` (0.90; the "
        "paper's rule 0.20). On the held-out worlds, evaluated only, `screen_all` reaches "
        "0.90 (paper's rule 0.20); it is also the best there. Defaults are chosen on "
        "development worlds only.")
    text = goal_outcome(table, "screen_all")
    assert text.startswith("Over the 1 held-out worlds, `screen_all` meets the goal medians of")
    assert "strong f1 0.9 >= 0.85" in text and "r2 gap -0.05 <= 0.02" in text
    assert text.endswith("; it misses auc 0.9, goal >= 0.95.")
    paper = goal_outcome(table, "paper", "development")
    assert paper.startswith("Over the 1 development worlds, `paper` meets no goal median; it "
                            "misses auc 0.9")
    assert paper.endswith("; not measured: r2 gap.")


def test_default_outcome_follows_the_tutorial_preset(monkeypatch):
    from pcm.experiments import worlds
    from pcm.params import presets

    table = _goal_table()
    assert worlds.default_outcome(table) == (
        "The `tutorial` preset selects with `screen_all` with the paper's rule beside it "
        "(`paper_rule: true`): it won on the development worlds and held on the held-out ones.")
    tutorial = {k: v for k, v in presets.PRESETS["tutorial"].items()
                if k not in presets.SCREEN_ALL and k != "paper_rule"}
    monkeypatch.setitem(presets.PRESETS, "tutorial", tutorial)
    assert worlds.default_outcome(table) == (
        "The `tutorial` preset does not select with `screen_all`, although it won on the "
        "development worlds and held on the held-out ones.")
    flipped = table.copy(deep=True)
    held = (flipped["split"] == "held-out").values
    flipped["strong_f1"].values[held & (flipped["method"] == "paper").values] = 0.99
    assert worlds.default_outcome(flipped).endswith(": it is not the best on the held-out "
                                                     "worlds.")


def test_development_only_outcome_lists_the_methods_without_held_out_worlds():
    from pcm.experiments.worlds import development_only_outcome, worlds_table

    table = _goal_table()
    assert development_only_outcome(table) == ""
    extra = worlds_table([{"point": {"world": 3, "method": "stability"},
                           "row": {"auc": 0.8, "strong_f1": 0.5}}])
    both = xr.concat([table, extra], dim="row")
    assert development_only_outcome(both) == (
        "Run on the development worlds only (median strong f1): `stability` 0.50, none above "
        "`screen_all` (0.90); a method that loses there is not evaluated on the held-out "
        "worlds.")
    extra["strong_f1"].values[:] = 0.95
    assert development_only_outcome(xr.concat([table, extra], dim="row")) == (
        "`stability`, the best on the development worlds by median strong f1 (0.95), has not "
        "been evaluated on the held-out worlds.")


def test_recorded_evaluation_round_trip_and_one_line_errors(tmp_path):
    from pcm.errors import PCMError
    from pcm.experiments.worlds import (
        evaluation_provenance,
        record_evaluation,
        recorded_evaluation,
    )

    path = record_evaluation(_goal_table(), "pcm worlds --worlds 3,104", seconds=600.0,
                             path=tmp_path / "recorded.nc")
    table = recorded_evaluation(path)
    assert table.attrs["command"] == "pcm worlds --worlds 3,104" and table.attrs["commit"]
    text = evaluation_provenance(table)
    assert "in 10 min of wall time over the runs that filled it: 1 development and 1" in text
    assert "methods `paper`, `screen_all`" in text and "pcm worlds --worlds 3,104" in text
    held_out = table.isel(row=table["split"].values == "held-out")
    assert "filled it: 1 held-out worlds, methods" in evaluation_provenance(held_out)
    with pytest.raises(PCMError, match="no recorded evaluation"):
        recorded_evaluation(tmp_path / "absent.nc")
    _goal_table().to_netcdf(tmp_path / "bare.nc")
    with pytest.raises(PCMError, match="not a recorded pcm worlds table"):
        recorded_evaluation(tmp_path / "bare.nc")


def test_the_shipped_evaluation_chose_screen_all_on_development_worlds_alone():
    from pcm.experiments.worlds import chosen_method, recorded_evaluation
    from pcm.params.presets import METHODS

    table = recorded_evaluation()
    split = table["split"].values
    assert len(set(table["world"].values[split == "held-out"].tolist())) >= 20
    assert len(set(table["world"].values[split == "development"].tolist())) >= 10
    methods = set(table["method"].values.tolist())
    assert {"paper", "screen_all"} <= methods and "screen_all" in METHODS
    assert chosen_method(table) == "screen_all"  # the name METHODS documents as chosen
    assert all(f"--method {m}" in table.attrs["command"] for m in methods)


def test_size_outcome_reads_each_evaluation_size_from_its_settings():
    from pcm.experiments.worlds import evaluation_size, size_outcome

    small = _goal_table().assign_attrs(preset="ci", overrides=json.dumps(["data.steps=48"]))
    larger = _goal_table()
    larger["auc"] = larger["auc"] + 0.06
    larger = larger.assign_attrs(preset="tutorial", overrides="[]")
    assert evaluation_size(small) == "48 steps on 8 × 16 columns"
    assert evaluation_size(larger) == "600 steps on 8 × 4 columns"
    text = size_outcome(small, larger, "screen_all")
    assert text.startswith("`screen_all` over the development worlds, median at 48 steps on "
                           "8 × 16 columns (1 worlds) → at 600 steps on 8 × 4 columns (1 worlds): "
                           "auc 0.900 → 0.960; strong f1 0.900 → 0.900;")
    assert text.endswith("The ranking AUC is higher at the second size in 1 of the 1 worlds "
                         "run at both.")


def test_the_tutorial_size_evaluation_changes_only_the_size_on_fresh_held_out_worlds():
    from pcm.experiments.worlds import (
        RECORDED_AT_TUTORIAL_SIZE,
        evaluation_size,
        recorded_evaluation,
    )
    from pcm.params.presets import preset

    small, larger = recorded_evaluation(), recorded_evaluation(RECORDED_AT_TUTORIAL_SIZE)

    def worlds(table, split):
        return set(table["world"].values[table["split"].values == split].tolist())

    assert len(worlds(larger, "held-out")) >= 20
    assert not worlds(larger, "held-out") & worlds(small, "held-out")  # never run before
    assert worlds(larger, "development") == worlds(small, "development")
    tutorial = preset("tutorial")
    assert evaluation_size(larger) == (f"{tutorial['data.steps']} steps on "
                                       f"{tutorial['data.n_lat']} × {tutorial['data.n_lon']} "
                                       "columns")

    def settings(table):  # every override but the data size
        return {o for o in json.loads(table.attrs["overrides"])
                if o.split("=")[0] not in ("data.steps", "data.n_lat", "data.n_lon")}

    assert settings(larger) == settings(small) and larger.attrs["preset"] == small.attrs["preset"]
    assert set(larger["method"].values.tolist()) == {"paper", "screen_all"}


def test_worlds_points_leave_the_paper_rule_to_the_paper_method(tmp_path):
    from pcm.experiments.worlds import worlds_base_parameters
    from pcm.params.presets import preset

    assert preset("tutorial")["paper_rule"] is True  # the preset computes it beside
    assert worlds_base_parameters("tutorial")["paper_rule"] is False
    assert worlds_base_parameters("tutorial", overrides=["paper_rule=true"])["paper_rule"]
    params = tmp_path / "params.yml"
    params.write_text("paper_rule: true\n")
    assert worlds_base_parameters("ci", params)["paper_rule"] is True
    base = worlds_base_parameters("tutorial", overrides=["data.steps=48"])
    assert base["data.steps"] == 48 and base["selection"] == "relative"
