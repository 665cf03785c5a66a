"""Data throughput: synthetic generation, CBRAIN writing and reading.

Prints samples/s for

* generating the synthetic aquaplanet (``pcm.data.synthetic.generate``),
* writing it in the CBRAIN layout (``pcm.data.cbrain_write.write_cbrain``),
* computing normalisation statistics (``pcm.data.normalization.compute_norm``),
* streaming normalised batches of 1024 (``pcm.data.datasets.iter_batches``),
* loading a whole split into memory (``pcm.data.datasets.load_split``),
* reading random batches of 1024 rows (shuffled access),

from a file of about 1 M samples in a temporary folder. For comparison, the
stacked training of the 65 networks consumes roughly 20-60 k samples/s, so
any reader figure well above that is not the bottleneck. No asserts; runs in
under a few minutes. ``--compare`` also writes the file with other chunk sizes
and with compression, which is how the defaults of ``write_cbrain`` were chosen.

Usage::

    .venv/bin/python benchmarks/data_throughput.py [--samples 1048576] [--compare]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from pcm.data import cbrain, cbrain_write, checks, datasets, synthetic
from pcm.data.normalization import Normalization, ZeroVarianceWarning, compute_norm, write_norm

STEP = cbrain.SAMPLES_PER_T42_STEP


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:>12,.0f} samples/s  ({n:,} samples in {seconds:.2f} s)"


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def read_benchmarks(path: Path, norm: Normalization, n: int, label: str) -> None:
    size = path.stat().st_size / 1e6
    print(f"\n[{label}] {path.name}: {size:,.0f} MB")
    count, seconds = 0, 0.0
    t0 = time.perf_counter()
    for x, _ in datasets.iter_batches(path, norm, 1024):
        count += x.shape[0]
    seconds = time.perf_counter() - t0
    print(f"  iter_batches(1024)          {rate(count, seconds)}")
    tracemalloc.start()
    (x, y), seconds = timed(datasets.load_split, path, norm)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"  load_split (whole split)    {rate(x.shape[0], seconds)}; result "
          f"{(x.nbytes + y.nbytes) / 1e6:,.0f} MB, peak allocation {peak / 1e6:,.0f} MB")
    del x, y
    import netCDF4

    rng = np.random.default_rng(0)
    starts = rng.integers(0, n - 1024, size=200)
    with netCDF4.Dataset(path) as nc:
        var = nc["vars"]
        t0 = time.perf_counter()
        for s in starts:
            var[s:s + 1024, :]
        seconds = time.perf_counter() - t0
    print(f"  random 1024-row batches     {rate(1024 * len(starts), seconds)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=1 << 20,
                        help="samples of the big file (rounded to T42 time steps)")
    parser.add_argument("--compare", action="store_true",
                        help="also try other chunk sizes and compression")
    args = parser.parse_args()
    warnings.simplefilter("ignore", ZeroVarianceWarning)

    steps_gen = 16
    print(f"generating {steps_gen} T42 time steps ({steps_gen * STEP:,} samples)")
    fields, seconds = timed(synthetic.generate, steps_gen, seed=0)
    print(f"  synthetic.generate          {rate(steps_gen * STEP, seconds)}")

    with tempfile.TemporaryDirectory(prefix="pcm-bench-") as tmp:
        tmp = Path(tmp)
        _, seconds = timed(cbrain_write.write_cbrain, fields, tmp / "small.nc")
        print(f"  write_cbrain                {rate(steps_gen * STEP, seconds)}")

        # A big file: the generated block repeated (lazily, through dask).
        reps = max(1, round(args.samples / (steps_gen * STEP)))
        big_fields = xr.concat([fields.chunk({"time": 8})] * reps, dim="time")
        big_fields = big_fields.assign_coords(time=np.arange(big_fields.sizes["time"]) * 1800)
        n = big_fields.sizes["time"] * STEP
        variants = [("default: chunks 4096 rows, no compression", {})]
        if args.compare:
            variants += [
                ("chunks 1024 rows", {"chunk_rows": 1024}),
                ("chunks 32768 rows", {"chunk_rows": 32768}),
                ("chunks 4096 rows, zlib 1 + shuffle", {"compress": True}),
            ]
        norm = None
        for i, (label, kwargs) in enumerate(variants):
            path = tmp / f"big{i}.nc"
            _, seconds = timed(cbrain_write.write_cbrain, big_fields, path, **kwargs)
            print(f"\nwrite_cbrain [{label}]  {rate(n, seconds)}")
            if norm is None:
                stats, seconds = timed(compute_norm, path)
                print(f"  compute_norm                {rate(n, seconds)}")
                norm = Normalization.from_file(write_norm(stats, tmp / "norm.nc"))
                _, seconds = timed(checks.check_file, path, norm)
                print(f"  check_file (with norm)      {rate(n, seconds)}")
            read_benchmarks(path, norm, n, label)
            path.unlink()
    print("\nfor comparison: stacked training of the 65 networks ~ 20-60 k samples/s")


if __name__ == "__main__":
    main()
