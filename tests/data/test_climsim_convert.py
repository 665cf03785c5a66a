"""The ClimSim converter on dask.distributed: selection, chunks, resume, workers.

Runs on a small ClimSim-layout tree written here (pcm.data.climsim_sample), so it
never needs the real sample.
"""

from __future__ import annotations

import hashlib
import json

import netCDF4
import numpy as np
import pytest

from pcm.cli import main
from pcm.data import climsim
from pcm.data.climsim import (
    CLIMSIM_SUBSET,
    convert_climsim,
    find_pairs,
    parse_months,
    select_steps,
)
from pcm.data.climsim_sample import write_climsim_tree
from pcm.data.datasets import load_split
from pcm.data.normalization import Normalization, compute_norm, read_norm
from pcm.errors import DataError, ParameterError

N_COL, N_LEV = 6, 4


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """22 steps, six hours apart, from 0001-01-31 to 0001-02-05."""
    return write_climsim_tree(tmp_path_factory.mktemp("cs"), 22, start=(1, 1, 31),
                              every_s=21600, n_col=N_COL, n_lev=N_LEV, seed=3)


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _values(path) -> np.ndarray:
    with netCDF4.Dataset(path) as nc:
        return np.asarray(nc.variables["vars"][...])


def _manifest_content(path) -> dict:
    """The manifest less what depends on the run: timings and the number of workers."""
    manifest = json.loads(path.read_text())
    for key in ("seconds", "seconds_by_phase", "workers"):
        manifest.pop(key)
    return manifest


def _assert_same_files(paths: dict, expected: dict) -> None:
    """The same split files, byte for byte, and the same statistics (the norm files'
    attributes name their folder)."""
    for split in ("train", "valid", "test"):
        assert _digest(paths[split]) == _digest(expected[split]), split
    a, b = read_norm(paths["norm"]), read_norm(expected["norm"])
    for stat in ("mean", "std", "min", "max", "std_by_var"):
        np.testing.assert_array_equal(a[stat].values, b[stat].values, err_msg=stat)


def test_month_range_and_stride_select_by_file_name(tree):
    pairs = find_pairs(tree)
    assert len(pairs) == 22
    feb = select_steps(pairs, ("0001-02", "0001-02"))
    assert len(feb) == 18 and all(".0001-02-" in p[0].name for p in feb)
    every7 = select_steps(pairs, stride=7)
    assert [p[0].name for p in every7] == [pairs[i][0].name for i in (0, 7, 14, 21)]
    assert parse_months("0001-02:0008-01") == ("0001-02", "0008-01")
    for bad in ("0001-13:0002-01", "0002-01:0001-01", "0001-02"):
        with pytest.raises(ParameterError, match="month range"):
            parse_months(bad)
    assert CLIMSIM_SUBSET["stride"] == 7
    assert CLIMSIM_SUBSET["split_months"]["valid"] == ("0008-02", "0009-01")


def test_explicit_split_months(tree, tmp_path):
    paths = convert_climsim(tree, tmp_path / "o", workers=1, progress=False, stride=2,
                            split_months={"train": "0001-01:0001-02", "valid": "0001-02:0001-02",
                                          "test": ("0001-01", "0001-01")})
    manifest = json.loads(paths["manifest"].read_text())
    # every 2nd of 22 steps (all months), of 18 February steps, of 4 January steps
    assert {k: v["steps"] for k, v in manifest["splits"].items()} == {
        "train": 11, "valid": 9, "test": 2}
    assert manifest["splits"]["train"]["samples"] == 11 * N_COL
    with netCDF4.Dataset(paths["train"]) as nc:  # read in blocks of whole chunks of steps
        assert nc.pcm_n_time == 11 and nc.pcm_chunk_rows == 8 * N_COL
        assert nc.variables["vars"].chunking() == "contiguous"


@pytest.mark.slow
def test_one_worker_equals_two_workers_and_norm_is_one_pass(tree, tmp_path):
    assert climsim._chunks_per_task(22, 2) == 2  # 22 chunks of 1 step: tasks of 2 chunks
    serial = convert_climsim(tree, tmp_path / "w1", workers=1, chunk_steps=1, progress=False)
    parallel = convert_climsim(tree, tmp_path / "w2", workers=2, chunk_steps=1, progress=False)
    _assert_same_files(parallel, serial)
    np.testing.assert_array_equal(_values(serial["train"]), _values(parallel["train"]))
    manifest = json.loads(parallel["manifest"].read_text())
    assert manifest["workers"] == 2 and manifest["chunks"] == len(manifest["chunks_computed"])
    assert _manifest_content(serial["manifest"]) == _manifest_content(parallel["manifest"])
    # the merged chunk moments are the statistics of the training file itself
    merged, direct = read_norm(serial["norm"]), compute_norm(serial["train"])
    for stat in ("mean", "std", "min", "max", "std_by_var"):
        np.testing.assert_allclose(merged[stat].values, direct[stat].values, rtol=1e-9,
                                   atol=1e-15, err_msg=stat)
    assert not (tmp_path / "w1" / ".chunks").exists()  # records and plans removed
    x, y = load_split(serial["train"], Normalization.from_file(serial["norm"], warn=False))
    assert x.shape == (manifest["splits"]["train"]["samples"], 3 * N_LEV + 4)


@pytest.mark.slow
def test_a_running_scheduler_gives_the_same_files(tree, tmp_path):
    from distributed import LocalCluster

    serial = convert_climsim(tree, tmp_path / "w1", workers=1, chunk_steps=3, progress=False)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        paths = convert_climsim(tree, tmp_path / "s", scheduler=cluster.scheduler_address,
                                chunk_steps=3, progress=False)
    for split in ("train", "valid", "test"):
        assert _digest(paths[split]) == _digest(serial[split]), split
    manifest = json.loads(paths["manifest"].read_text())
    assert manifest["workers"] == f"scheduler {cluster.scheduler_address}"
    assert _manifest_content(paths["manifest"]) == _manifest_content(serial["manifest"])


def test_tasks_group_chunks_and_stop_at_the_first_error(tmp_path):
    # at least four tasks per worker thread, at most TASK_CHUNKS chunks each
    assert climsim._chunks_per_task(7, 2) == 1
    assert climsim._chunks_per_task(24, 2) == 3
    assert climsim._chunks_per_task(10**6, 16) == climsim.TASK_CHUNKS
    src = write_climsim_tree(tmp_path / "t", 3, n_col=N_COL, n_lev=N_LEV, seed=2)
    pairs = find_pairs(src)
    with netCDF4.Dataset(pairs[1][0], "a") as nc:
        nc.variables["state_q0001"][0, 0] = np.nan
    info = climsim.read_grid(climsim._find_grid(src))
    levels = [float(v) for v in info["levels_hpa"]]
    target = climsim.create_step_file(
        tmp_path / "f.nc", climsim.climsim_catalogue(info["levels_hpa"]), lat=info["lat"],
        lon=info["lon"], area=info["area"], time=np.arange(3.0), time_units="days")
    jobs = [([(str(a), str(b))], levels, N_COL, target, str(tmp_path / f"r{k}.json"),
             {"first_step": k}) for k, (a, b) in enumerate(pairs)]
    results = climsim._convert_chunks(jobs)
    assert len(results) == 2 and "count" in results[0] and "state_q0001" in results[1]["error"]
    assert (tmp_path / "r0.json").is_file()
    assert not (tmp_path / "r1.json").exists() and not (tmp_path / "r2.json").exists()


def _stopped_without(monkeypatch, skip: str) -> None:
    """Make the next conversion run every chunk but ``skip`` (``"train/2"``), then stop."""
    run_tasks = climsim._run_tasks

    def stopped(todo, finish, client):
        run_tasks([t for t in todo if f"{t[0]['split']}/{t[0]['index']}" != skip], finish,
                  client)
        raise KeyboardInterrupt("stopped")

    monkeypatch.setattr(climsim, "_run_tasks", stopped)


def test_restart_recomputes_only_the_missing_chunk(tree, tmp_path, monkeypatch):
    clean = convert_climsim(tree, tmp_path / "clean", workers=1, chunk_steps=3, progress=False)
    out = tmp_path / "o"
    with monkeypatch.context() as patch:
        _stopped_without(patch, "train/2")
        with pytest.raises(KeyboardInterrupt):
            convert_climsim(tree, out, workers=1, chunk_steps=3, progress=False)
    assert not (out / "train.nc").exists() and (out / ".chunks" / "train.nc").is_file()
    again = convert_climsim(tree, out, workers=1, chunk_steps=3, progress=False)
    assert json.loads(again["manifest"].read_text())["chunks_computed"] == ["train/2"]
    _assert_same_files(again, clean)
    assert not (out / ".chunks").exists()
    # nothing to do: the files are up to date
    convert_climsim(tree, out, workers=1, chunk_steps=3, progress=False)
    assert json.loads(again["manifest"].read_text())["chunks_computed"] == ["train/2"]


def test_a_stopped_conversion_of_another_plan_is_redone_whole(tree, tmp_path, monkeypatch):
    """Files under construction for other chunks are never completed with this plan's."""
    out = tmp_path / "o"
    with monkeypatch.context() as patch:
        _stopped_without(patch, "train/2")
        with pytest.raises(KeyboardInterrupt):
            convert_climsim(tree, out, workers=1, chunk_steps=3, progress=False)
    paths = convert_climsim(tree, out, workers=1, chunk_steps=2, progress=False)
    manifest = json.loads(paths["manifest"].read_text())
    assert len(manifest["chunks_computed"]) == manifest["chunks"]
    clean = convert_climsim(tree, tmp_path / "clean", workers=1, chunk_steps=2, progress=False)
    _assert_same_files(paths, clean)


@pytest.mark.parametrize("order", ["reversed", "shuffled"])
def test_chunks_finishing_out_of_order_give_the_same_files(tree, tmp_path, monkeypatch, order):
    """The split files are written while the chunks run, each chunk as it finishes: the
    files, the norm and the manifest do not depend on the order in which chunks finish."""
    in_order = convert_climsim(tree, tmp_path / "in_order", workers=1, chunk_steps=2,
                               progress=False)
    run_in_order = climsim._run_tasks
    finished = []

    def out_of_order(todo, finish, client):
        if order == "reversed":
            permuted = todo[::-1]
        else:
            permuted = [todo[i] for i in np.random.default_rng(1).permutation(len(todo))]
        assert [c["index"] for c, _ in permuted] != [c["index"] for c, _ in todo]

        def record(chunk, result):
            finished.append((chunk["split"], chunk["index"]))
            finish(chunk, result)

        run_in_order(permuted, record, client)

    monkeypatch.setattr(climsim, "_run_tasks", out_of_order)
    paths = convert_climsim(tree, tmp_path / "out_of_order", workers=1, chunk_steps=2,
                            progress=False)
    assert len(finished) == json.loads(paths["manifest"].read_text())["chunks"]
    _assert_same_files(paths, in_order)
    assert _manifest_content(paths["manifest"]) == _manifest_content(in_order["manifest"])


def test_interrupted_conversion_resumes_after_the_last_finished_chunk(tmp_path):
    src = write_climsim_tree(tmp_path / "t", 9, n_col=N_COL, n_lev=N_LEV, seed=5)
    pairs = find_pairs(src)
    bad = pairs[7][1]  # an output file of a later chunk
    good = bad.read_bytes()
    with netCDF4.Dataset(bad, "a") as nc:
        nc.variables["cam_out_SOLS"][2] = np.nan
    with pytest.raises(DataError, match="cam_out_SOLS.*non-finite"):
        convert_climsim(src, tmp_path / "o", workers=1, chunk_steps=2, progress=False)
    done = sorted(p.name for p in (tmp_path / "o" / ".chunks").rglob("chunk-*.json"))
    assert done and not (tmp_path / "o" / "train.nc").exists()
    bad.write_bytes(good)  # repaired; the other files are untouched
    paths = convert_climsim(src, tmp_path / "o", workers=1, chunk_steps=2, progress=False)
    manifest = json.loads(paths["manifest"].read_text())
    assert len(manifest["chunks_computed"]) == manifest["chunks"] - len(done)


@pytest.mark.slow
def test_a_bad_file_in_a_worker_is_one_line(tmp_path, capsys):
    src = write_climsim_tree(tmp_path / "t", 4, n_col=N_COL, n_lev=N_LEV, seed=1)
    bad = find_pairs(src)[3][0]
    with netCDF4.Dataset(bad, "a") as nc:
        nc.variables["state_t"][0, 0] = np.inf
    code = main(["data", "climsim", "--src", str(src), "--out", str(tmp_path / "o"),
                 "--workers", "2", "--chunk-steps", "1", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith("pcm: error: ") and bad.name in err and "'state_t'" in err


def test_cli_month_options(tree, tmp_path, capsys):
    code = main(["data", "climsim", "--src", str(tree), "--out", str(tmp_path / "o"),
                 "--train-months", "0001-02:0001-02", "--quiet"])
    assert code == 2 and "--valid-months" in capsys.readouterr().err
    code = main(["data", "climsim", "--src", str(tree), "--out", str(tmp_path / "o"),
                 "--months", "0001-02:0001-02", "--stride", "2", "--workers", "1", "--quiet"])
    assert code == 0
    manifest = json.loads((tmp_path / "o" / "conversion.json").read_text())
    assert sum(v["steps"] for v in manifest["splits"].values()) == 9
    assert manifest["selection"]["months"] == ["0001-02", "0001-02"]


@pytest.mark.parametrize("subset", [False, True])
@pytest.mark.parametrize("stride", ["0", "-7"])
def test_cli_a_stride_below_one_is_one_line(tree, tmp_path, capsys, stride, subset):
    code = main(["data", "climsim", "--src", str(tree), "--out", str(tmp_path / "o"),
                 "--stride", stride, "--workers", "1", "--quiet"]
                + (["--climsim-subset"] if subset else []))
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == f"pcm: error: parameter '--stride': must be >= 1, got {stride}"
    assert not (tmp_path / "o").exists()


def test_cli_an_output_that_is_a_file_is_one_line(tree, tmp_path, capsys):
    (tmp_path / "o").write_text("not a folder")
    code = main(["data", "climsim", "--src", str(tree), "--out", str(tmp_path / "o"),
                 "--workers", "1", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == f"pcm: error: --out {tmp_path / 'o'}: exists and is not a directory"
    assert (tmp_path / "o").read_text() == "not a folder"


@pytest.mark.parametrize(("options", "stride", "subset"), [
    ([], 1, False), (["--stride", "3"], 3, False),
    (["--climsim-subset"], CLIMSIM_SUBSET["stride"], True),
    (["--climsim-subset", "--stride", "2"], 2, True),
])
def test_cli_stride_defaults(monkeypatch, tmp_path, options, stride, subset):
    seen = {}

    def convert(src, out, **kwargs):
        seen.update(kwargs)
        return {}

    monkeypatch.setattr(climsim, "convert_climsim", convert)
    assert main(["data", "climsim", "--src", str(tmp_path), "--out", str(tmp_path / "o")]
                + options) == 0
    assert seen["stride"] == stride
    assert (seen["split_months"] == CLIMSIM_SUBSET["split_months"]) is subset
