"""``pcm run --dry-run``: samples, disk, memory and time of any preset, running nothing."""

from __future__ import annotations

import json

import pytest

from pcm.cli import main
from pcm.data.climsim import convert_climsim
from pcm.data.climsim_sample import write_climsim_tree
from pcm.errors import DataError, ParameterError
from pcm.run.dry_run import (
    discovery_cpu_seconds,
    discovery_table,
    dry_run_parameters,
    format_plan,
    nearest_records,
    plan,
    subset_steps,
    throughput_table,
)


def test_climsim_full_before_conversion_counts_the_subset():
    p = plan(dry_run_parameters("climsim-full"))
    # every 7th 20-minute step of 7 no-leap years, 384 columns
    assert p["samples"]["train"] == 7 * 365 * 72 // 7 * 384 == 10_091_520
    assert p["samples"]["valid"] == subset_steps(("0008-02", "0009-01"), 7) * 384
    assert p["disk_gb"]["data"] == pytest.approx(sum(
        v for k, v in p["samples"].items() if k != "train_used") * 312 * 4 / 1e9, abs=0.01)
    assert p["disk_gb"]["climsim_source"] > 90  # 3 MB a step, as published
    assert p["memory_gb"]["streamed"] == ["train"]  # 12.6 GB > the 8 GB budget
    record = throughput_table()[0]
    assert record["source"] and record["flop_per_s"] > 0
    phases = p["phases"]
    assert phases["threshold_search"]["work_flop"] == pytest.approx(
        20 * phases["unconstrained"]["work_flop"] / 9)  # 20 candidates x 1 epoch vs 9 epochs
    assert "causal_training" not in phases


def test_the_paper_rule_beside_counts_its_search_and_fine_tuning():
    phases = plan(dry_run_parameters("tutorial"))["phases"]
    assert phases["threshold_search"]["work_flop"] == 0  # screen_all trains no candidates
    unconstrained = phases["unconstrained"]["work_flop"]
    # 20 candidates x 1 search epoch, and 4 fine-tuning epochs, against 12 epochs
    assert phases["paper_rule_search"]["work_flop"] == pytest.approx(20 * unconstrained / 12)
    assert phases["paper_rule_finetune"]["work_flop"] == pytest.approx(4 * unconstrained / 12)
    assert "paper_rule_search" not in plan(dry_run_parameters("ci"))["phases"]


def test_the_causal_networks_count_one_per_output_and_candidate_quantile():
    # quantile rule: up to one network per output and candidate q (an upper bound)
    tutorial = plan(dry_run_parameters("tutorial"))
    phases = tutorial["phases"]
    assert tutorial["causal_networks"] == 65 * 3
    # 195 networks x 8 epochs against 65 networks x 12 epochs, the same network size
    assert phases["causal_training"]["work_flop"] == pytest.approx(
        phases["unconstrained"]["work_flop"] * 195 * 8 / (65 * 12))
    assert "up to 195 networks" in format_plan(tutorial, "tutorial")
    share = plan(dry_run_parameters("tutorial", None, ["causal_rule=share"]))
    assert share["causal_networks"] == 65 and "up to" not in format_plan(share, "tutorial")


def _record(name: str, layers: int, units: int, flop_per_s: float) -> dict:
    return {"name": name, "network": {"hidden_layers": layers, "hidden_units": units},
            "flop_per_s": flop_per_s, "source": f"{name} {layers} x {units}"}


def _discovery(name: str, points: list, cores: int = 2) -> dict:
    return {"name": name, "cores": cores, "points": points, "source": f"{name} PC1"}


def test_discovery_cost_per_column_follows_the_measured_points():
    points = [[100, 2.0], [200, 3.0], [400, 7.0], [500, 6.0]]
    assert discovery_cpu_seconds(points, 150) == (2.5, False)
    assert discovery_cpu_seconds(points, 450) == (6.5, False)
    assert discovery_cpu_seconds(points, 400) == (7.0, False)
    assert discovery_cpu_seconds(points, 50) == (2.0, True)  # the fixed part, flagged
    assert discovery_cpu_seconds(points[:3], 600) == (11.0, True)  # the last segment, flagged


def test_the_discovery_is_estimated_per_machine_from_its_columns_and_steps():
    records = [_record("a", 3, 64, 1e10), _record("b", 3, 64, 2e10)]
    found = [_discovery("a", [[100, 2.0], [200, 3.0]], cores=4)]
    params = dry_run_parameters("tutorial")  # PC1 on all 8 x 4 columns, first 168 steps
    p = plan(params, records, found)
    d = p["causal_discovery"]
    assert (d["columns"], d["steps"]) == (32, 168)
    assert d["cpu_seconds"]["a"] == pytest.approx(32 * 2.68)
    assert d["seconds"]["a"] == pytest.approx(32 * 2.68 / 4) and not d["extrapolated"]["a"]
    flops = sum(v["seconds"]["a"] for v in p["phases"].values())
    assert p["seconds_total"]["a"] == pytest.approx(flops + 32 * 2.68 / 4)
    text = format_plan(p, "tutorial")
    assert "PC1 on 32 columns x 168 steps each" in text
    assert "causal_discovery 21 s (86 s of CPU)" in text
    assert "causal_discovery not measured on this machine (not in the total)" in text
    assert "[a, 4 cores] PC1's CPU seconds per column by steps per column: 2.00 s at 100" in text
    # fewer columns and steps where the parameters say so; past the points, flagged
    fewer = plan(dry_run_parameters("tutorial", None, ["causal_columns=5", "causal_steps=400"]),
                 records, found)["causal_discovery"]
    assert (fewer["columns"], fewer["steps"]) == (5, 400)  # of the 420 training steps
    assert fewer["extrapolated"]["a"] and "causal_discovery" not in plan(
        dry_run_parameters("tutorial", None, ["causal=false"]), records, found)


def test_the_discovery_of_spcam_files_takes_their_grid(tmp_path):
    from pcm.data.datasets import write_synthetic_dataset

    files = write_synthetic_dataset(tmp_path, steps=40, n_lat=4, n_lon=2)
    params = dry_run_parameters("ci", None, ["data.source=spcam", "causal_columns=null"] + [
        f"data.{k}={files[k]}" for k in ("train", "valid", "test", "norm")])
    d = plan(params, [], [_discovery("a", [[10, 1.0], [40, 2.0]])])["causal_discovery"]
    assert (d["columns"], d["steps"]) == (8, 28) and d["cpu_seconds"]["a"] == pytest.approx(
        8 * (1.0 + 18 / 30))


def test_a_malformed_discovery_record_is_one_error(monkeypatch, tmp_path):
    assert all(len(r["points"]) >= 2 for r in discovery_table())
    bad = tmp_path / "pcm"
    bad.mkdir()
    monkeypatch.setattr("pcm.run.dry_run.resources.files", lambda package: bad)
    for record in (_discovery("x", [[200, 1.0], [100, 2.0]]),
                   _discovery("x", [[100, 1.0], [200, 2.0]], cores=0)):
        (bad / "throughput.json").write_text(json.dumps({"records": [], "discovery": [record]}))
        with pytest.raises(DataError, match=r"throughput.json: discovery record 0 needs name, "
                                            r"cores \(>= 1\), source and points"):
            discovery_table()


def test_a_converted_folder_gives_its_counts(tmp_path):
    src = write_climsim_tree(tmp_path / "t", 10, n_col=4, n_lev=3, seed=2)
    convert_climsim(src, tmp_path / "data", workers=1, progress=False)
    p = plan(dry_run_parameters("climsim", None, [f"data.dir={tmp_path / 'data'}"]))
    assert p["samples"]["train"] == 6 * 4 and p["counts_from"].endswith("conversion.json")
    capped = plan(dry_run_parameters("climsim", None, [f"data.dir={tmp_path / 'data'}",
                                                       "max_samples=8"]))
    assert capped["samples"]["train_used"] == 8
    assert capped["phases"]["premask"]["work_flop"] == pytest.approx(
        p["phases"]["premask"]["work_flop"] * 8 / 24)


def test_cli_dry_run_runs_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--preset", "ci", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "nothing is run" in out and "samples (the synthetic grid): train" in out
    assert "total" in out and not list(tmp_path.iterdir())
    with pytest.raises(ParameterError, match="epochs"):
        dry_run_parameters("ci", None, ["epochs=0"])


def test_each_machine_uses_its_record_of_the_nearest_network_size():
    records = [_record("a", 3, 64, 1e10), _record("a", 9, 256, 4e10), _record("b", 3, 64, 2e10)]
    tutorial = plan(dry_run_parameters("tutorial"), records)  # 3 x 64
    paper = plan(dry_run_parameters("paper"), records)  # 9 x 256
    assert [r["flop_per_s"] for r in tutorial["throughput"]] == [1e10, 2e10]
    assert [r["flop_per_s"] for r in paper["throughput"]] == [4e10, 2e10]
    phase = paper["phases"]["unconstrained"]
    assert phase["seconds"]["a"] == pytest.approx(phase["work_flop"] / 4e10)
    lines = format_plan(paper, "paper").splitlines()
    (a,) = [line for line in lines if line.startswith("  a: ")]
    (b,) = [line for line in lines if line.startswith("  b: ")]
    assert "measured on networks" not in a
    assert b.endswith("(measured on networks of 3 x 64, not 9 x 256)")
    # the nearest width by ratio (100 / 64 < 256 / 100), then the nearest depth
    assert nearest_records(records, 9, 100) == [records[0], records[2]]
    assert nearest_records(records, 3, 200) == [records[1], records[2]]
    same_width = [_record("a", 3, 256, 1e10), _record("a", 9, 256, 4e10)]
    assert nearest_records(same_width, 8, 256) == [same_width[1]]


def test_the_packaged_throughput_records_are_complete(monkeypatch, tmp_path):
    assert all(r["network"]["hidden_units"] > 0 for r in throughput_table())
    bad = tmp_path / "pcm"
    bad.mkdir()
    (bad / "throughput.json").write_text(json.dumps({"records": [{"name": "x",
                                                                  "flop_per_s": 1.0}]}))
    monkeypatch.setattr("pcm.run.dry_run.resources.files", lambda package: bad)
    with pytest.raises(DataError, match=r"throughput.json: record 0 needs name, network"):
        throughput_table()


def test_the_training_epochs_are_those_the_estimate_counts():
    assert plan(dry_run_parameters("climsim-full"))["training_epochs"] == 9  # step schedule
    plateau = dry_run_parameters("ci", None, ["schedule=plateau", "max_epochs=40"])
    assert plan(plateau)["training_epochs"] == 40
