"""ClimSim conversion: 1 vs 2 workers, netCDF split files vs a zarr store, peak RSS.

For each source tree (the real sample in ``../shared/climsim`` when present, and a
made-up ClimSim-layout tree of ``--steps`` steps with the published file sizes,
:func:`pcm.data.climsim_sample.write_climsim_tree`, written once under ``--work``;
768 steps by default, 1.9 GB, so that the fixed costs of a run weigh less):

* ``pcm data climsim`` (the command, run as users run it:
  :func:`pcm.data.climsim.convert_climsim`, each task writing its rows into the
  netCDF split files at their offsets, norm from the chunk moments) with 1 worker
  (serial, in process) and with 2 workers (dask LocalCluster), ``--repeat`` times each,
  alternating: wall seconds (the command, from its start), the seconds and phases
  the conversion records in ``conversion.json``, peak RSS of the command and of
  the largest worker, CPU seconds of the workers and of the command (its start,
  and dask's scheduler, client and nannies, which run in it);
* the same chunk tasks writing into one zarr store per split through xarray
  (``to_zarr(region=...)``, chunks of ``chunk_steps x ncol`` rows, the rows a
  training read takes; zarr's default compressor and none), 2 workers;
* training reads from either store: blocks of ``8 x chunk_rows`` rows in random
  order, the 312 columns, samples/s;
* memory against the number of files: the command's peak RSS converting the first
  day of the tree and the whole tree (serial);
* the ceiling of the 2-worker ratio on this machine: the tasks' own work (read a
  chunk's pairs, its moments, its rows written at their offset in a new scratch file)
  in 1 and in 2 plain forked processes (multiprocessing, no dask; with 2, every
  other chunk each), the same chunks, ``--repeat`` times each, alternating.

``--plan-steps N`` (ClimSim's full set: 262800) measures the plan alone at that file count:
the pairs found, ClimSim's subset (``--climsim-subset``: every 7th step, month ranges), the
chunks and their keys, over a tree of empty files named as published (made once under
``--work``, 2 files per step), in a child process: seconds and peak RSS; then
``find_pairs`` (every pair as ``Path`` objects) in the same process: seconds and peak RSS.

``--workers-only`` measures the first and the last item only (the made-up tree). The zarr items
need ``zarr``, which pcm does not depend on: without it they are skipped, with a line
that says so, and the rest is measured.

Peak RSS: ``VmHWM`` of the measured process (``ru_maxrss`` would carry the parent's
peak across ``exec``), read every 0.1 s while the command runs (the command's own)
or at its end (the zarr child), and the largest worker's RSS polled every 0.1 s
(psutil).

No asserts. Last line: JSON with every figure. The 2-worker ratio needs two idle
cores; on a shared machine the figures say what the machine gave.

Usage::

    .venv/bin/python benchmarks/convert.py [--steps 768] [--repeat 1] [--workers-only]
        [--plan-steps 262800] [--work /tmp/climsim-data/bench]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from common import json_child

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "climsim"


def _vm_hwm_mb(pid: int | str = "self") -> float:
    """Peak RSS of a process since it started (VmHWM; ru_maxrss survives exec); 0 for
    another process that has no VmHWM (a zombie)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    if pid != "self":
        return 0.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _watch_tree(peak: dict, stop: threading.Event, root: int | None = None) -> None:
    """Poll the RSS of ``root``'s descendants (dask workers; default: this process's)
    and ``root``'s own VmHWM; keep the largest, and each descendant's CPU seconds
    (``peak["cpu"]``, by pid, as last seen)."""
    import psutil

    me = psutil.Process(root)
    peak["cpu"] = {}
    while not stop.wait(0.1):
        try:
            kids = me.children(recursive=True)
            rss = [k.memory_info().rss for k in kids]
            for k in kids:
                t = k.cpu_times()
                peak["cpu"][k.pid] = t.user + t.system
            if root is not None:
                peak["root_hwm_mb"] = max(peak.get("root_hwm_mb", 0.0), _vm_hwm_mb(root))
        except (psutil.Error, OSError):
            continue
        if rss:
            peak["worker"] = max(peak.get("worker", 0), max(rss))
            peak["tree"] = max(peak.get("tree", 0), sum(rss) + me.memory_info().rss)


def _child(args: argparse.Namespace) -> None:
    """One measured zarr conversion (run in a subprocess): prints a JSON line."""
    peak: dict = {}
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_tree, args=(peak, stop), daemon=True)
    watcher.start()
    t0 = time.perf_counter()
    _convert_zarr(args)
    seconds = time.perf_counter() - t0
    stop.set()
    watcher.join()
    print(json.dumps({"seconds": round(seconds, 2), "driver_rss_mb": round(_vm_hwm_mb(), 1),
                      "worker_rss_mb": round(peak.get("worker", 0) / 2**20, 1),
                      "all_processes_rss_mb": round(peak.get("tree", 0) / 2**20, 1)}))


def _measure_command(src: Path, out: Path, workers: int, chunk_steps: int,
                     include: list[str] | None = None) -> dict:
    """``pcm data climsim`` as users run it (its workers re-run the ``pcm`` script
    when spawned): wall seconds, its phases, peak RSS of it and of its largest worker."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [str(Path(sys.executable).with_name("pcm")), "data", "climsim", "--src", str(src),
           "--out", str(out), "--workers", str(workers), "--chunk-steps", str(chunk_steps),
           "--quiet"]
    for g in include or []:
        cmd += ["--include", g]
    t0 = time.perf_counter()
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)
    peak: dict = {}
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_tree, args=(peak, stop, proc.pid), daemon=True)
    watcher.start()
    _, err = proc.communicate()
    seconds = time.perf_counter() - t0
    stop.set()
    watcher.join()
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    manifest = json.loads((out / "conversion.json").read_text())
    all_cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    workers_cpu = sum(peak["cpu"].values())
    return {"seconds": round(seconds, 2), "conversion_seconds": manifest["seconds"],
            "phases": manifest["seconds_by_phase"],
            "cpu_seconds": {"command": round(all_cpu - workers_cpu, 2),
                            "workers": round(workers_cpu, 2)},
            "driver_rss_mb": round(peak.get("root_hwm_mb", 0), 1),
            "worker_rss_mb": round(peak.get("worker", 0) / 2**20, 1),
            "all_processes_rss_mb": round(peak.get("tree", 0) / 2**20, 1)}


def _zarr_task(pairs, levels, n_col, store, start):
    import xarray as xr

    from pcm.data.climsim import _moments, read_chunk

    rows = read_chunk([(Path(a), Path(b)) for a, b in pairs], levels, n_col)
    ds = xr.Dataset({"vars": (("sample", "var_names"), rows)})
    ds.to_zarr(store, region={"sample": slice(start, start + rows.shape[0])})
    return _moments(rows)["count"]


def _convert_zarr(args: argparse.Namespace) -> None:
    import dask.array as da
    import xarray as xr

    from pcm.data import climsim

    src, out = Path(args.src), Path(args.out)
    info = climsim.read_grid(climsim._find_grid(src))
    cat = climsim.climsim_catalogue(info["levels_hpa"])
    names = cat.expand_var_names(cat.all_variables)
    steps = climsim._split_steps(climsim.find_pairs(src, args.include or None), None, 1, None,
                                 src)
    n_col, rows_per_chunk = info["n_col"], args.chunk_steps * info["n_col"]
    for split, pairs in steps.items():
        n = len(pairs) * n_col
        template = xr.Dataset(
            {"vars": (("sample", "var_names"),
                      da.zeros((n, len(names)), chunks=(rows_per_chunk, -1), dtype="f4"))},
            coords={"var_names": np.array(names, dtype=str)})
        encoding = {} if args.compress else {"vars": {"compressors": None}}
        template.to_zarr(out / f"{split}.zarr", mode="w", compute=False, encoding=encoding)
    todo = [((([(str(a), str(b)) for a, b in c["pairs"]], [float(v) for v in
               info["levels_hpa"]], n_col, str(out / f"{c['split']}.zarr"),
              c["first"] * n_col)), c) for c in climsim.plan_chunks(
                  steps, args.chunk_steps)]
    from distributed import Client, LocalCluster, as_completed

    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        futures = [client.submit(_zarr_task, *a, pure=False) for a, _ in todo]
        for f in as_completed(futures):
            f.result()


def _measure_zarr(src: Path, out: Path, workers: int, chunk_steps: int, compress: bool) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, __file__, "--child", "--src", str(src), "--out", str(out),
           "--workers", str(workers), "--chunk-steps", str(chunk_steps)]
    cmd += ["--compress"] if compress else []
    return json_child(cmd, " ".join(cmd), cwd=str(ROOT))


def _du_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20, 1)


def _read_rate(store: Path, kind: str, block: int, seed: int = 0) -> float:
    """Samples/s reading ``block``-row blocks of the train split in random order."""
    import xarray as xr

    from pcm.data.cbrain import header, iter_rows, open_nc

    if kind == "netcdf":
        with open_nc(store) as nc:
            n = header(nc, store)[1]
    else:
        ds = xr.open_zarr(store, consolidated=False)
        n = ds.sizes["sample"]
    starts = np.random.default_rng(seed).permutation(np.arange(0, n, block))
    t0 = time.perf_counter()
    got = 0
    for s in starts:
        if kind == "netcdf":
            for _, rows in iter_rows(store, start=int(s), stop=int(s) + block, block=block):
                got += rows.shape[0]
        else:
            got += ds["vars"].isel(sample=slice(int(s), int(s) + block)).values.shape[0]
    return round(got / (time.perf_counter() - t0))


def _ceiling_work(job: tuple) -> float:
    """The tasks' work on every ``step``-th chunk from ``first``: process CPU seconds."""
    from pcm.data.climsim import _moments, read_chunk

    chunks, levels, n_col, scratch, first, step = job
    t0 = time.process_time()
    fd = os.open(scratch, os.O_WRONLY)
    try:
        for k in range(first, len(chunks), step):
            rows = read_chunk(chunks[k], levels, n_col)
            _moments(rows)
            os.pwrite(fd, rows.tobytes(), k * rows.nbytes)
    finally:
        os.close(fd)
    return time.process_time() - t0


def _ceiling(src: Path, work: Path, cs: int, repeat: int) -> dict:
    """The tasks' work in 1 and in 2 plain forked processes (of one pool, started
    before the clock): median wall seconds of the work alone, the ratio."""
    from multiprocessing import get_context

    from pcm.data import climsim

    info = climsim.read_grid(climsim._find_grid(src))
    pairs = climsim.find_pairs(src)
    chunks = [pairs[i:i + cs] for i in range(0, len(pairs), cs)]
    levels, n_col = [float(v) for v in info["levels_hpa"]], info["n_col"]
    scratch = work / "ceiling.bin"
    wall: dict[int, list[float]] = {1: [], 2: []}
    cpu: dict[int, list[float]] = {1: [], 2: []}
    with get_context("fork").Pool(2) as pool:
        for _ in range(repeat):
            for n in (1, 2):
                jobs = [(chunks, levels, n_col, scratch, i, n) for i in range(n)]
                scratch.write_bytes(b"")  # a new file each run, as a conversion writes
                t0 = time.perf_counter()
                seconds = pool.map(_ceiling_work, jobs)  # 1 process: one of the pool's
                wall[n].append(round(time.perf_counter() - t0, 2))
                cpu[n].append(round(sum(seconds), 2))
                print(f"ceiling, {n} process(es): {wall[n][-1]} s wall, {cpu[n][-1]} CPU-s")
    scratch.unlink()
    one, two = float(np.median(wall[1])), float(np.median(wall[2]))
    res = {"seconds_1": one, "seconds_2": two, "ratio": round(one / two, 2),
           "seconds_all": wall, "cpu_seconds_all": cpu}
    print(f"ceiling: 1 process / 2 processes: {res['ratio']} (the tasks' work, no dask)")
    return res


def _plan_child(src: Path) -> None:
    """The plan of a conversion of ClimSim's subset (run in a subprocess): a JSON line."""
    from pcm.data import climsim

    out: dict = {"rss_at_start_mb": round(_vm_hwm_mb(), 1)}
    subset = climsim.CLIMSIM_SUBSET
    t1 = time.perf_counter()
    steps, chunks = climsim.plan_conversion(src, np.linspace(1.0, 1000.0, 60), 384,
                                            stride=subset["stride"],
                                            split_months=subset["split_months"])
    out["plan_s"] = round(time.perf_counter() - t1, 2)
    out.update(steps={k: len(v) for k, v in steps.items()}, chunks=len(chunks),
               rss_peak_mb=round(_vm_hwm_mb(), 1))  # the plan's own peak: measured first
    del steps, chunks
    t0 = time.perf_counter()
    out["files"] = 2 * len(climsim.find_pairs(src))  # every pair as Path objects
    out["find_pairs_s"] = round(time.perf_counter() - t0, 2)
    out["rss_peak_with_find_pairs_mb"] = round(_vm_hwm_mb(), 1)
    print(json.dumps(out))


def _plan_at(n_steps: int, work: Path) -> dict:
    """The plan over ``n_steps`` steps of empty files named as published (made once)."""
    from pcm.data.climsim_sample import step_path, step_stamps

    src = work / f"names{n_steps}" / "ClimSim_low-res"
    if not (src / "complete").is_file():
        t0 = time.perf_counter()
        for stamp in step_stamps((1, 2, 1), n_steps, 1200):
            step_path(src, "mli", stamp).parent.mkdir(parents=True, exist_ok=True)
            for kind in ("mli", "mlo"):
                step_path(src, kind, stamp).touch()
        (src / "complete").touch()
        print(f"{2 * n_steps} empty files named as published: {time.perf_counter() - t0:.0f} s")
    cmd = [sys.executable, __file__, "--child-plan", "--src", str(src)]
    res = json_child(cmd, " ".join(cmd), cwd=str(ROOT))
    print(f"plan of ClimSim's subset over {2 * n_steps} files: {res}")
    return res


def _median_run(runs: list[dict]) -> dict:
    """The run of median wall seconds (the lower middle one for an even count)."""
    return sorted(runs, key=lambda r: r["seconds"])[(len(runs) - 1) // 2]


def _workers_1_vs_2(name: str, src: Path, work: Path, cs: int, repeat: int) -> dict:
    """``pcm data climsim`` with 1 and 2 workers, alternating, ``repeat`` times each."""
    res: dict = {"source_mb": _du_mb(src)}
    runs: dict[int, list[dict]] = {1: [], 2: []}
    for _ in range(repeat):
        for w in (1, 2):
            load = round(os.getloadavg()[0], 2)
            m = {**_measure_command(src, work / f"{name}_nc{w}", w, cs), "load_before": load}
            runs[w].append(m)
            print(f"{name}: pcm data climsim, {w} worker(s): {m}")
    for w in (1, 2):
        res[f"netcdf_{w}w"] = _median_run(runs[w])
        if repeat > 1:
            res[f"netcdf_{w}w_seconds_all"] = [r["seconds"] for r in runs[w]]
    one, two = res["netcdf_1w"], res["netcdf_2w"]
    res["ratio_1w_over_2w"] = round(one["seconds"] / two["seconds"], 2)
    res["ratio_conversion_1w_over_2w"] = round(one["conversion_seconds"]
                                               / two["conversion_seconds"], 2)
    res["ratio_tasks_1w_over_2w"] = round(one["phases"]["tasks"] / two["phases"]["tasks"], 2)
    print(f"{name}: 1 worker / 2 workers: {res['ratio_1w_over_2w']} (the command, wall), "
          f"{res['ratio_conversion_1w_over_2w']} (convert_climsim), "
          f"{res['ratio_tasks_1w_over_2w']} (its tasks phase)")
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=768, help="steps of the made-up tree")
    parser.add_argument("--work", type=Path, default=Path("/tmp/climsim-data/bench"))
    parser.add_argument("--chunk-steps", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of each worker count (the median is reported)")
    parser.add_argument("--workers-only", action="store_true",
                        help="only 1 vs 2 workers on the made-up tree (no zarr, reads, RSS "
                        "against files)")
    parser.add_argument("--no-real", action="store_true", help="skip the real sample")
    parser.add_argument("--plan-steps", type=int, default=0,
                        help="also measure the plan alone over this many steps of empty "
                        "files (ClimSim's full set: 262800)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-plan", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--src", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--compress", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--include", action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    if args.child_plan:
        _plan_child(Path(args.src))
        return

    from pcm.data.climsim_sample import write_climsim_tree

    work = args.work
    tree = work / f"tree{args.steps}"
    if not (tree / "ClimSim_low-res" / "train").is_dir():
        t0 = time.perf_counter()
        write_climsim_tree(tree, args.steps, ignored_variables=True, seed=0)
        print(f"made-up tree of {args.steps} steps written in {time.perf_counter() - t0:.0f} s")
    sources = {"synthetic": tree / "ClimSim_low-res"}
    if SHARED.is_dir() and not args.no_real and not args.workers_only:
        sources = {"real": SHARED, **sources}
    result: dict = {"chunk_steps": args.chunk_steps, "steps_synthetic": args.steps,
                    "cpu_count": os.cpu_count(), "repeat": args.repeat}
    cs = args.chunk_steps
    for name, src in sources.items():
        res = _workers_1_vs_2(name, src, work, cs, args.repeat)
        result[name] = res
        if args.workers_only:
            break
        has_zarr = importlib.util.find_spec("zarr") is not None
        if not has_zarr:
            print(f"{name}: zarr is not installed, so the zarr store is not measured (it is "
                  "not a dependency of pcm: pip install zarr, or PYTHONPATH to a folder with it)")
            result["zarr"] = "not installed"
        for compress in (True, False) if has_zarr else ():
            key = "zarr_2w" + ("" if compress else "_uncompressed")
            m = _measure_zarr(src, work / f"{name}_{key}", 2, cs, compress=compress)
            m["store_mb"] = _du_mb(work / f"{name}_{key}")
            res[key] = m
            print(f"{name}: zarr store{'' if compress else ' (no compressor)'}, 2 workers: {m}")
        res["netcdf_mb"] = _du_mb(work / f"{name}_nc2")
        block = 8 * cs * 384
        res["read_block_rows"] = block
        res["read_samples_per_s"] = {
            "netcdf": _read_rate(work / f"{name}_nc2" / "train.nc", "netcdf", block)}
        if has_zarr:
            res["read_samples_per_s"].update({
                "zarr": _read_rate(work / f"{name}_zarr_2w" / "train.zarr", "zarr", block),
                "zarr_uncompressed": _read_rate(work / f"{name}_zarr_2w_uncompressed" /
                                                "train.zarr", "zarr", block)})
        print(f"{name}: training reads (samples/s): {res['read_samples_per_s']}")
    if not args.workers_only:
        # memory against the number of files (serial: the command is the only process)
        src = sources["synthetic"]
        names = sorted(p.name for p in src.rglob("*.mli.*.nc"))
        first_day = names[0][:len("E3SM-MMF.mli.0001-02-01")] + "-*"
        part = _measure_command(src, work / "rss_part", 1, cs, include=[first_day])
        whole = result["synthetic"]["netcdf_1w"]
        n_part = sum(1 for n in names if n.startswith(first_day[:-1]))
        result["rss_vs_files"] = {"steps": [n_part, args.steps],
                                  "driver_rss_mb": [part["driver_rss_mb"],
                                                    whole["driver_rss_mb"]]}
        print(f"driver peak RSS, {n_part} vs {args.steps} steps: {result['rss_vs_files']}")
        shutil.rmtree(work / "rss_part", ignore_errors=True)
    result["ceiling_no_dask"] = _ceiling(sources["synthetic"], work, cs, args.repeat)
    if args.plan_steps:
        result["plan"] = _plan_at(args.plan_steps, work)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
