"""ClimSim conversion: 1 vs 2 workers, netCDF shards vs a zarr store, peak RSS.

For each source tree (the real sample in ``../shared/climsim`` when present, and a
made-up ClimSim-layout tree of ``--steps`` steps with the published file sizes,
:func:`pcm.data.climsim_sample.write_climsim_tree`, written once under ``--work``):

* ``pcm data climsim`` (:func:`pcm.data.climsim.convert_climsim`: netCDF shards
  assembled into the split files, norm from the chunk moments) with 1 worker
  (serial, in process) and with 2 workers (dask LocalCluster), each in a fresh
  subprocess: wall seconds, peak RSS of the driver and of the largest worker;
* the same chunk tasks writing into one zarr store per split through xarray
  (``to_zarr(region=...)``, chunks of ``chunk_steps x ncol`` rows, the rows a
  training read takes; zarr's default compressor and none), 2 workers;
* training reads from either store: blocks of ``8 x chunk_rows`` rows in random
  order, the 312 columns, samples/s;
* memory against the number of files: driver peak RSS converting the first day
  of the tree and the whole tree (serial).

Peak RSS: the driver's ``VmHWM`` (``ru_maxrss`` would carry the parent's peak
across ``exec``) and the largest worker's RSS polled every 0.2 s (psutil).

No asserts. Last line: JSON with every figure. The 2-worker ratio needs two idle
cores; on a shared machine the figures say what the machine gave.

Usage::

    .venv/bin/python benchmarks/convert.py [--steps 384] [--work /tmp/climsim-data/bench]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "climsim"


def _vm_hwm_mb() -> float:
    """Peak RSS of this process since it started (VmHWM; ru_maxrss survives exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _watch_tree(peak: dict, stop: threading.Event) -> None:
    """Poll the RSS of this process's descendants (dask workers); keep the largest."""
    import psutil

    me = psutil.Process()
    while not stop.wait(0.2):
        try:
            kids = me.children(recursive=True)
            rss = [k.memory_info().rss for k in kids]
        except psutil.Error:
            continue
        if rss:
            peak["worker"] = max(peak.get("worker", 0), max(rss))
            peak["tree"] = max(peak.get("tree", 0), sum(rss) + me.memory_info().rss)


def _child(args: argparse.Namespace) -> None:
    """One measured conversion (run in a subprocess): prints a JSON line."""
    peak: dict = {}
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_tree, args=(peak, stop), daemon=True)
    watcher.start()
    t0 = time.perf_counter()
    if args.mode == "netcdf":
        from pcm.data.climsim import convert_climsim

        convert_climsim(args.src, args.out, workers=args.workers, chunk_steps=args.chunk_steps,
                        progress=False, include=args.include or None)
    else:
        _convert_zarr(args)
    seconds = time.perf_counter() - t0
    phases = {}
    manifest = Path(args.out) / "conversion.json"
    if manifest.is_file():
        phases = json.loads(manifest.read_text())["seconds_by_phase"]
    stop.set()
    watcher.join()
    print(json.dumps({"seconds": round(seconds, 2), "driver_rss_mb": round(_vm_hwm_mb(), 1),
                      "worker_rss_mb": round(peak.get("worker", 0) / 2**20, 1),
                      "all_processes_rss_mb": round(peak.get("tree", 0) / 2**20, 1),
                      "phases": phases}))


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


def _measure(src: Path, out: Path, mode: str, workers: int, chunk_steps: int,
             compress: bool = True, include: list[str] | None = None) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, __file__, "--child", "--mode", mode, "--src", str(src), "--out",
           str(out), "--workers", str(workers), "--chunk-steps", str(chunk_steps)]
    cmd += ["--compress"] if compress else []
    for g in include or []:
        cmd += ["--include", g]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=384, help="steps of the made-up tree")
    parser.add_argument("--work", type=Path, default=Path("/tmp/climsim-data/bench"))
    parser.add_argument("--chunk-steps", type=int, default=8)
    parser.add_argument("--no-real", action="store_true", help="skip the real sample")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="netcdf", help=argparse.SUPPRESS)
    parser.add_argument("--src", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--compress", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--include", action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return

    from pcm.data.climsim_sample import write_climsim_tree

    work = args.work
    tree = work / f"tree{args.steps}"
    if not (tree / "ClimSim_low-res" / "train").is_dir():
        t0 = time.perf_counter()
        write_climsim_tree(tree, args.steps, ignored_variables=True, seed=0)
        print(f"made-up tree of {args.steps} steps written in {time.perf_counter() - t0:.0f} s")
    sources = {"synthetic": tree / "ClimSim_low-res"}
    if SHARED.is_dir() and not args.no_real:
        sources = {"real": SHARED, **sources}
    result: dict = {"chunk_steps": args.chunk_steps, "steps_synthetic": args.steps}
    cs = args.chunk_steps
    for name, src in sources.items():
        res = {"source_mb": _du_mb(src)}
        for w in (1, 2):
            m = _measure(src, work / f"{name}_nc{w}", "netcdf", w, cs)
            res[f"netcdf_{w}w"] = m
            print(f"{name}: netCDF shards, {w} worker(s): {m}")
        res["ratio_1w_over_2w"] = round(res["netcdf_1w"]["seconds"]
                                        / res["netcdf_2w"]["seconds"], 2)
        res["ratio_tasks_1w_over_2w"] = round(res["netcdf_1w"]["phases"]["tasks"]
                                              / res["netcdf_2w"]["phases"]["tasks"], 2)
        for compress in (True, False):
            key = "zarr_2w" + ("" if compress else "_uncompressed")
            m = _measure(src, work / f"{name}_{key}", "zarr", 2, cs, compress=compress)
            m["store_mb"] = _du_mb(work / f"{name}_{key}")
            res[key] = m
            print(f"{name}: zarr store{'' if compress else ' (no compressor)'}, 2 workers: {m}")
        res["netcdf_mb"] = _du_mb(work / f"{name}_nc2")
        block = 8 * cs * 384
        res["read_block_rows"] = block
        res["read_samples_per_s"] = {
            "netcdf": _read_rate(work / f"{name}_nc2" / "train.nc", "netcdf", block),
            "zarr": _read_rate(work / f"{name}_zarr_2w" / "train.zarr", "zarr", block),
            "zarr_uncompressed": _read_rate(work / f"{name}_zarr_2w_uncompressed" /
                                            "train.zarr", "zarr", block)}
        print(f"{name}: training reads (samples/s): {res['read_samples_per_s']}")
        result[name] = res
    # memory against the number of files (serial: the driver is the only process)
    src = sources["synthetic"]
    names = sorted(p.name for p in src.rglob("*.mli.*.nc"))
    first_day = names[0][:len("E3SM-MMF.mli.0001-02-01")] + "-*"
    part = _measure(src, work / "rss_part", "netcdf", 1, cs, include=[first_day])
    whole = result["synthetic"]["netcdf_1w"]
    n_part = sum(1 for n in names if n.startswith(first_day[:-1]))
    result["rss_vs_files"] = {"steps": [n_part, args.steps],
                              "driver_rss_mb": [part["driver_rss_mb"], whole["driver_rss_mb"]]}
    print(f"driver peak RSS, {n_part} vs {args.steps} steps: {result['rss_vs_files']}")
    shutil.rmtree(work / "rss_part", ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
