"""Conversion of ClimSim low-resolution files into the CBRAIN layout (``pcm data climsim``).

ClimSim (Yu et al. 2023, data CC-BY-4.0) publishes E3SM-MMF, a superparameterized
model like SPCAM, as ``LEAP/ClimSim_low-res``: 384 columns of the ne4pg2 grid,
60 levels, 20-minute steps, one ``mli`` (input) and one ``mlo`` (output) file per
time step (``E3SM-MMF.mli.YYYY-MM-DD-SSSSS.nc``), and
``ClimSim_low-res_grid-info.nc`` (``lat lon area (ncol)``, hybrid coefficients
``hyam hybm``, ``P0``). :func:`convert_climsim` turns a chosen set of such files
into what the pipeline reads: ``train.nc valid.nc test.nc`` in the CBRAIN layout
(:func:`pcm.data.cbrain_write.create_step_file`, unstructured grid, ``vars``
stored contiguously) and ``norm.nc`` (statistics of the training split).

The catalogue (:func:`pcm.variables.climsim_catalogue`) is the PCMasking
analogue of the SPCAM set:

* inputs (184): ``state_t`` (TBP), ``state_q0001`` (QBP), ``state_v`` (VBP) on 60
  levels, ``state_ps``, ``pbuf_SOLIN``, ``pbuf_SHFLX``, ``pbuf_LHFLX``, all from the
  ``mli`` file;
* outputs (128): ``ptend_t = (mlo.state_t - mli.state_t) / 1200 s`` and
  ``ptend_q0001`` likewise (ClimSim's heating and moistening targets), and
  ``cam_out_NETSW cam_out_FLWDS cam_out_PRECC cam_out_PRECSC cam_out_SOLS
  cam_out_SOLL cam_out_SOLSD cam_out_SOLLD`` from the ``mlo`` file.

Feature labels name each level by its pressure at the reference surface
pressure, ``(hyam * P0 + hybm * P0) / 100`` hPa from the grid-info file
(``state_t-992.64``). Other variables of the files are ignored.

Selection: ``include`` globs, a month range (``months=("0001-02", "0008-01")``,
both ends included) and a ``stride`` (every n-th step of the sorted selection,
ClimSim's ``stride_sample``), all read off the file names.

Split: either explicit month ranges per split (``split_months``; ClimSim's
subset: train 0001-02...0008-01, valid 0008-02...0009-01, each every 7th step),
or the selected steps, sorted by date, dealt to train, valid and test with the
counts of :func:`pcm.data.splits.split_steps` (70/15/15 %, each at least one
step) but *interleaved*: step ``i`` goes to the split that is furthest behind
its share after ``i + 1`` steps (ties to train, then valid). Each split then
samples the whole period, and consecutive steps land in different splits as
little as the shares allow. ``conversion.json`` lists every step with its split.

Execution (dask.distributed): the split files are made first, under ``.chunks/``, with
their storage reserved (:func:`pcm.data.cbrain_write.create_step_file`: ``vars``
contiguous, so each step's rows sit at a fixed byte offset). The steps of each split
are cut into chunks of ``chunk_steps`` consecutive steps. For each chunk, a task reads
its ``mli``/``mlo`` pairs, writes the rows into its split file at their offset (no
copy through the driver; tasks write disjoint bytes, so they need no lock), then its
record ``chunk-NNNNN.json`` with the chunk's moments (count, mean, sum of squared
deviations, min, max per column), and returns the moments; a task converts up to
:data:`TASK_CHUNKS` consecutive chunks, one after the other, so that dask's own work
per chunk stays small. Tasks run on a local cluster of processes (``workers``; forked
from the driver where :func:`pcm.data.cluster.can_fork` allows, so that no worker
imports ``pcm`` again) or on any running scheduler (``scheduler``: workers that share
the file system of ``out`` and may write disjoint byte ranges of one file, as local
disks, Lustre and GPFS allow); at most two tasks per worker are in flight, each
holding one chunk's rows at a time, so memory stays at a few chunks whatever the
number of files. A chunk whose record matches its plan is not redone: an interrupted
conversion resumes with the missing chunks only (the files under construction and
their plans stay in ``.chunks/``; a file made for another plan is made anew, and its
chunks redone). The driver merges the training chunks' moments in plan order (Chan's
update: one streaming pass, no re-read) for the norm file; when every chunk is done
the split files move into ``out`` and ``.chunks/`` is removed. The files are the same
bytes whatever the number of workers and whatever order the chunks finish in.
``benchmarks/convert.py`` measures this against a zarr store written the same way
(regions by the workers); ``README.md`` gives the figures, and those of the earlier
design, in which each task wrote a netCDF shard that the driver then copied into the
split files (the driver's copy, on the workers' cores, capped the speed-up).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
from tqdm.auto import tqdm

from pcm.data.cbrain_write import StepFile, create_step_file
from pcm.data.cluster import dask_client
from pcm.data.normalization import norm_from_moments, write_norm
from pcm.data.splits import split_steps
from pcm.errors import DataError, ParameterError
from pcm.io import output_dir, read_json, write_json
from pcm.variables import CLIMSIM_TIME_STEP_SECONDS, Catalogue, climsim_catalogue

__all__ = [
    "GRID_INFO",
    "MLI_INPUTS",
    "MLO_OUTPUTS",
    "TENDENCIES",
    "CLIMSIM_SUBSET",
    "find_pairs",
    "step_stamp",
    "parse_months",
    "select_steps",
    "read_grid",
    "interleaved_split",
    "plan_chunks",
    "plan_conversion",
    "read_chunk",
    "convert_climsim",
]

#: Name of the grid file of the low-resolution data set.
GRID_INFO = "ClimSim_low-res_grid-info.nc"

#: Catalogue input -> variable of the ``mli`` file.
MLI_INPUTS = ("state_t", "state_q0001", "state_v", "state_ps", "pbuf_SOLIN", "pbuf_SHFLX",
              "pbuf_LHFLX")

#: Catalogue output (a tendency) -> the state variable differenced (mlo - mli).
TENDENCIES = {"ptend_t": "state_t", "ptend_q0001": "state_q0001"}

#: Catalogue outputs read as they are from the ``mlo`` file.
MLO_OUTPUTS = ("cam_out_NETSW", "cam_out_FLWDS", "cam_out_PRECC", "cam_out_PRECSC",
               "cam_out_SOLS", "cam_out_SOLL", "cam_out_SOLSD", "cam_out_SOLLD")

#: Days before each month in the no-leap calendar of E3SM.
_DAYS_BEFORE_MONTH = np.cumsum([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30])

TIME_UNITS = "days since 0001-01-01 00:00:00"

#: ClimSim's training and validation subset (Yu et al. 2023, ``climsim_utils``):
#: every 7th step of the month ranges (both ends included). The test months are
#: those of ClimSim's test set (0009-03...0010-02).
CLIMSIM_SUBSET: dict[str, Any] = {
    "stride": 7,
    "split_months": {"train": ("0001-02", "0008-01"), "valid": ("0008-02", "0009-01"),
                     "test": ("0009-03", "0010-02")},
}

#: ``...mli.YYYY-MM-DD-SSSSS.nc``: the date and second of day of a step's files.
_STAMP = re.compile(r"\.mli\.(\d{4})-(\d{2})-(\d{2})-(\d{5})\.nc$")

#: Steps per chunk (one record, one write into the split file, one read block of it).
CHUNK_STEPS = 8

#: Most chunks one dask task converts, one after the other (each chunk still writes
#: its own rows and record). Fewer tasks cost dask's scheduler, client and workers
#: less: with 2 workers on 2 cores, 768 steps, the tasks phase took 2.45-2.52 s with
#: one chunk per task and 2.04-2.13 s with 8 (measured in one process on the made-up
#: tree of ``benchmarks/convert.py``; README gives the benchmark's figures).
TASK_CHUNKS = 8

#: Version of the chunk records: a record of another version is redone (2: the rows
#: are in the split file under construction, not in a shard of their own).
_RECORD_VERSION = 2


def _open(path: Path, what: str):
    try:
        nc = netCDF4.Dataset(path, "r")
    except OSError as err:
        raise DataError(f"not a readable netCDF file, expected a ClimSim {what} file ({err})",
                        path=path) from None
    nc.set_auto_mask(False)
    return nc


def read_grid(path: str | os.PathLike) -> dict:
    """Columns and levels of the ClimSim grid-info file.

    Returns
    -------
    dict
        ``lat lon area`` (``[ncol]``), ``levels_hpa`` (``[lev]``, ``(hyam * P0 + hybm *
        P0) / 100``, top first), ``n_col`` and ``n_lev``.

    Raises
    ------
    DataError
        Not netCDF, or a variable missing or of the wrong shape (naming it).
    """
    path = Path(path)
    with _open(path, "grid-info") as nc:
        for dim in ("ncol", "lev"):
            if dim not in nc.dimensions:
                raise DataError(f"no dimension {dim!r}: not the ClimSim grid-info file",
                                path=path)
        n_col, n_lev = len(nc.dimensions["ncol"]), len(nc.dimensions["lev"])
        out = {}
        for name, dims in (("lat", ("ncol",)), ("lon", ("ncol",)), ("area", ("ncol",)),
                           ("hyam", ("lev",)), ("hybm", ("lev",)), ("P0", ())):
            if name not in nc.variables:
                raise DataError("missing from the grid-info file", path=path, variable=name)
            if nc.variables[name].dimensions != dims:
                raise DataError(f"dims {nc.variables[name].dimensions}, expected {dims}",
                                path=path, variable=name)
            out[name] = np.asarray(nc.variables[name][...], dtype="f8")
        hybrid = {}  # interfaces (ilev = lev + 1): layer masses dp/g for ClimSim's scores
        for name in ("hyai", "hybi"):
            if name in nc.variables and nc.variables[name].shape == (n_lev + 1,):
                hybrid[name] = np.asarray(nc.variables[name][...], dtype="f8")
    p0 = float(out.pop("P0"))
    levels = (out.pop("hyam") * p0 + out.pop("hybm") * p0) / 100.0
    for name, values in (*out.items(), ("hyam/hybm", levels)):
        if not np.all(np.isfinite(values)):
            raise DataError("non-finite values", path=path, variable=name)
    if len(hybrid) == 2:
        hybrid["P0"] = p0
    else:
        hybrid = {}
    return {**out, "levels_hpa": levels, "n_col": n_col, "n_lev": n_lev, "hybrid": hybrid}


def find_pairs(src: str | os.PathLike, include: Sequence[str] | None = None
               ) -> list[tuple[Path, Path]]:
    """The ``(mli, mlo)`` file pairs under ``src``, sorted by date.

    Parameters
    ----------
    src : path-like
        Folder searched recursively for ``*.mli.*.nc`` files.
    include : sequence of str, optional
        Glob patterns (``fnmatch``) on the path relative to ``src`` or on the
        file name; an ``mli`` file is kept when it matches any (default: all).
        ``--include 'train/0008-0[1-3]/*'`` converts January to March.

    Raises
    ------
    DataError
        No ``mli`` file found, or an ``mli`` file without its ``mlo`` file.
    """
    return [(Path(mli), Path(mlo)) for _, mli, mlo in _scan_steps(Path(src), include)]


def _scan_steps(src: Path, include: Sequence[str] | None
                ) -> list[tuple[tuple[int, int, int, int], str, str]]:
    """``(stamp, mli, mlo)`` of :func:`find_pairs`, the paths as strings: a plan that
    keeps a few of ClimSim's 262,800 steps makes ``Path`` objects for those alone."""
    if not src.is_dir():
        raise DataError("not a directory (expected the ClimSim_low-res folder)", path=src)
    # (stamp, mli, mlo), each name parsed once; the mlo files are looked up in the listing
    # of their folder, not with a stat each (ClimSim: 525,600 files, often on a shared
    # file system). Folders and names in sorted order, so that errors are reproducible.
    found = []
    for folder, subfolders, names in os.walk(src):
        subfolders.sort()
        present = set(names)
        for name in sorted(n for n in names if fnmatch.fnmatch(n, "*.mli.*.nc")):
            mli = os.path.join(folder, name)
            if include and not any(fnmatch.fnmatch(Path(mli).relative_to(src).as_posix(), g)
                                   or fnmatch.fnmatch(name, g) for g in include):
                continue
            stamp = step_stamp(mli)  # the published naming, or one line naming the file
            mlo = name.replace(".mli.", ".mlo.", 1)
            if mlo not in present:
                raise DataError(f"no matching output file {mlo} beside it", path=mli)
            found.append((stamp, mli, os.path.join(folder, mlo)))
    if not found:
        what = f" matching {list(include)}" if include else ""
        raise DataError(f"no ClimSim input files (*.mli.*.nc){what}", path=src)
    found.sort(key=lambda f: f[0])
    for a, b in zip(found, found[1:], strict=False):
        if a[0] == b[0]:
            raise DataError(f"the same time step as {a[1]} (each step once, please)",
                            path=b[1], variable="ymd")
    return found


def step_stamp(path: str | os.PathLike) -> tuple[int, int, int, int]:
    """``(year, month, day, second)`` of a step from its file name.

    Raises
    ------
    DataError
        The name is not ``*.mli.YYYY-MM-DD-SSSSS.nc`` (ClimSim's naming) or not a date.
    """
    name = os.path.basename(os.fspath(path))  # no Path: called once per step and file
    m = _STAMP.search(name.replace(".mlo.", ".mli.", 1))
    if m is None:
        raise DataError("not named like a ClimSim step (*.mli.YYYY-MM-DD-SSSSS.nc)", path=path)
    year, month, day, second = (int(g) for g in m.groups())
    if not (1 <= month <= 12 and 1 <= day <= 31 and second < 86400):
        raise DataError("the file name holds no valid date", path=path)
    return year, month, day, second


def _stamp_days(stamp: tuple[int, int, int, int]) -> float:
    year, month, day, second = stamp
    return (year - 1) * 365 + float(_DAYS_BEFORE_MONTH[month - 1]) + day - 1 + second / 86400.0


def parse_months(text: str | Sequence[str], key: str = "--months") -> tuple[str, str]:
    """``"0001-02:0008-01"`` (or a pair) -> ``("0001-02", "0008-01")``, both ends included.

    Raises
    ------
    ParameterError
        Not ``YYYY-MM:YYYY-MM`` with the first not after the second.
    """
    parts = text.split(":") if isinstance(text, str) else list(text)
    ok = len(parts) == 2 and all(re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", p) for p in parts)
    if not ok or parts[0] > parts[1]:
        raise ParameterError(key, f"expected a month range YYYY-MM:YYYY-MM (first <= last), "
                                  f"e.g. 0001-02:0008-01, got {text!r}")
    return parts[0], parts[1]


def select_steps(pairs: Sequence[tuple[Path, Path]], months: tuple[str, str] | None = None,
                 stride: int = 1) -> list[tuple[Path, Path]]:
    """The pairs whose month lies in ``months`` (inclusive), then every ``stride``-th.

    Examples
    --------
    >>> ps = [(Path(f"x.mli.0001-0{m}-01-00000.nc"), None) for m in (1, 2, 3, 4)]
    >>> [p[0].name[6:13] for p in select_steps(ps, ("0001-02", "0001-04"), stride=2)]
    ['0001-02', '0001-04']
    """
    if int(stride) < 1:
        raise ParameterError("--stride", f"must be >= 1, got {stride}")
    if months is not None:
        lo, hi = months
        pairs = [p for p in pairs if lo <= "{:04d}-{:02d}".format(*step_stamp(p[0])[:2]) <= hi]
    return list(pairs)[::int(stride)]


def interleaved_split(n_steps: int) -> list[str]:
    """Split name of each of ``n_steps`` sorted time steps (see the module docstring).

    Examples
    --------
    >>> "".join(s[1] for s in interleaved_split(10))  # r: train, a: valid, e: test
    'rarerrarer'
    """
    counts = {k: s.stop - s.start for k, s in split_steps(int(n_steps)).items()}
    assigned = dict.fromkeys(counts, 0)
    out = []
    for i in range(int(n_steps)):
        deficit = {k: counts[k] * (i + 1) / n_steps - assigned[k] for k in counts}
        name = max(counts, key=lambda k: (deficit[k], -list(counts).index(k)))
        assigned[name] += 1
        out.append(name)
    assert assigned == counts, (assigned, counts)  # the rule meets the shares exactly
    return out


def _read(nc, path: Path, name: str, n_col: int, n_lev: int, three_d: bool) -> np.ndarray:
    if name not in nc.variables:
        raise DataError("missing", path=path, variable=name)
    var = nc.variables[name]
    want = ("lev", "ncol") if three_d else ("ncol",)
    if var.dimensions != want:
        raise DataError(f"dims {var.dimensions}, expected {want}", path=path, variable=name)
    values = np.asarray(var[...], dtype="f8")
    shape = (n_lev, n_col) if three_d else (n_col,)
    if values.shape != shape:
        raise DataError(f"shape {values.shape}, expected {shape} (ncol and lev of the grid-info "
                        "file)", path=path, variable=name)
    bad = ~np.isfinite(values)
    if bad.any():
        raise DataError(f"{int(bad.sum())} non-finite values (NaN/Inf)", path=path,
                        variable=name)
    return values


def _check_climsim(nc, path: Path, what: str, n_col: int, n_lev: int) -> None:
    for dim, size in (("ncol", n_col), ("lev", n_lev)):
        if dim not in nc.dimensions:
            raise DataError(f"no dimension {dim!r}: not a ClimSim {what} file", path=path)
        if len(nc.dimensions[dim]) != size:
            raise DataError(f"dimension {dim!r} has {len(nc.dimensions[dim])} entries, the "
                            f"grid-info file {size}", path=path)


def _step_time(nc, path: Path) -> float:
    """Days since 0001-01-01 (no-leap) of a file's ``ymd`` and ``tod``."""
    for name in ("ymd", "tod"):
        if name not in nc.variables:
            raise DataError("missing (date and time of day of the step)", path=path,
                            variable=name)
    ymd = int(np.asarray(nc.variables["ymd"][...]).reshape(-1)[0])
    tod = float(np.asarray(nc.variables["tod"][...]).reshape(-1)[0])
    year, month, day = ymd // 10000, ymd // 100 % 100, ymd % 100
    if not (1 <= month <= 12 and 1 <= day <= 31):
        raise DataError(f"not a date: {ymd}", path=path, variable="ymd")
    return (year - 1) * 365 + float(_DAYS_BEFORE_MONTH[month - 1]) + day - 1 + tod / 86400.0


def _step_rows(mli: Path, mlo: Path, catalogue: Catalogue, n_col: int) -> tuple[np.ndarray,
                                                                                float]:
    """``rows[ncol, 312]`` (inputs then outputs) and the time of one step."""
    n_lev = catalogue.n_levels
    columns = []
    with _open(mli, "input (mli)") as nci, _open(mlo, "output (mlo)") as nco:
        _check_climsim(nci, mli, "input (mli)", n_col, n_lev)
        _check_climsim(nco, mlo, "output (mlo)", n_col, n_lev)
        t_in, t_out = _step_time(nci, mli), _step_time(nco, mlo)
        if t_in != t_out:
            raise DataError(f"date/time ({t_in:.4f} days) differs from its mlo file "
                            f"({t_out:.4f} days)", path=mli, variable="ymd")
        three_d = {n: catalogue.by_name[n].three_d for n in catalogue.all_variables}
        for name in MLI_INPUTS:
            columns.append(_read(nci, mli, name, n_col, n_lev, three_d[name]))
        for state in TENDENCIES.values():
            before = _read(nci, mli, state, n_col, n_lev, True)
            after = _read(nco, mlo, state, n_col, n_lev, True)
            columns.append((after - before) / CLIMSIM_TIME_STEP_SECONDS)
        for name in MLO_OUTPUTS:
            columns.append(_read(nco, mlo, name, n_col, n_lev, three_d[name]))
    rows = np.concatenate([c.T if c.ndim == 2 else c[:, None] for c in columns], axis=1)
    return rows, t_in


def plan_chunks(steps: dict[str, list[tuple[Path, Path]]], chunk_steps: int = CHUNK_STEPS
                ) -> list[dict]:
    """Cut each split's steps (in order) into chunks of ``chunk_steps`` consecutive steps.

    Returns
    -------
    list of dict
        Per chunk, in split then step order: ``split``, ``index`` (within the
        split), ``first`` (its first step within the split), ``pairs``.
    """
    if int(chunk_steps) < 1:
        raise ParameterError("--chunk-steps", f"must be >= 1, got {chunk_steps}")
    chunks = []
    for split, pairs in steps.items():
        for k, first in enumerate(range(0, len(pairs), int(chunk_steps))):
            chunks.append({"split": split, "index": k, "first": first,
                           "pairs": list(pairs[first:first + int(chunk_steps)])})
    return chunks


def _chunk_key(chunk: dict, levels_hpa: np.ndarray, n_col: int) -> str:
    """Digest of what a chunk is made of: its files (name, size, mtime) and the grid."""
    digest = hashlib.sha256(f"v{_RECORD_VERSION} {n_col} {np.asarray(levels_hpa).tobytes().hex()}"
                            .encode())
    for mli, mlo in chunk["pairs"]:
        for path in (mli, mlo):
            st = path.stat()
            digest.update(f"{path.name} {st.st_size} {st.st_mtime_ns};".encode())
    return digest.hexdigest()[:24]


def plan_conversion(src: Path, levels_hpa: np.ndarray, n_col: int, *,
                    include: Sequence[str] | None = None,
                    months: str | tuple[str, str] | None = None, stride: int = 1,
                    split_months: dict[str, str | tuple[str, str]] | None = None,
                    chunk_steps: int = CHUNK_STEPS) -> tuple[dict[str, list], list[dict]]:
    """The steps of each split and their chunks, each keyed by what it is made of.

    The plan of :func:`convert_climsim` (its parameters), before anything is written:
    :func:`find_pairs`, the selection of steps per split, :func:`plan_chunks`, and a
    ``key`` per chunk (its files' names, sizes and times, and the grid ``levels_hpa``,
    ``n_col``).

    Returns
    -------
    tuple
        ``(steps, chunks)``: the ``(mli, mlo)`` pairs of each split, in time order, and
        the chunks of :func:`plan_chunks` with their ``key``.
    """
    pairs = [(mli, mlo) for _, mli, mlo in _scan_steps(Path(src), include)]
    selected = _split_steps(pairs, months, stride, split_months, src)
    steps = {k: [(Path(mli), Path(mlo)) for mli, mlo in v] for k, v in selected.items()}
    chunks = plan_chunks(steps, chunk_steps)
    for chunk in chunks:
        chunk["key"] = _chunk_key(chunk, levels_hpa, n_col)
    return steps, chunks


def read_chunk(pairs: Sequence[tuple[Path, Path]], levels_hpa: Sequence[float], n_col: int
               ) -> np.ndarray:
    """Rows of consecutive steps: float32 ``[len(pairs) * n_col, n_inputs + n_outputs]``.

    Each pair's ``ymd``/``tod`` must match its file name (the time axis is
    read off the names).

    Raises
    ------
    DataError
        As :func:`convert_climsim`.
    """
    catalogue = climsim_catalogue(np.asarray(levels_hpa, dtype="f8"))
    n = len(catalogue.expand_var_names(catalogue.all_variables))
    out = np.empty((len(pairs) * n_col, n), dtype="f4")
    for k, (mli, mlo) in enumerate(pairs):
        rows, t = _step_rows(Path(mli), Path(mlo), catalogue, n_col)
        named = _stamp_days(step_stamp(mli))
        if abs(t - named) > 1e-6:
            raise DataError(f"ymd/tod ({t:.4f} days since 0001-01-01) differ from the date in "
                            f"the file name ({named:.4f})", path=mli, variable="ymd")
        out[k * n_col:(k + 1) * n_col] = rows
    return out


def _moments(rows: np.ndarray) -> dict:
    """Count, mean, sum of squared deviations (float64), minimum and maximum per column."""
    x = rows.astype(np.float64)
    mean = x.mean(axis=0)
    x -= mean  # in place: one float64 copy of the chunk, not three
    return {"count": int(x.shape[0]), "mean": mean.tolist(),
            "m2": np.einsum("ij,ij->j", x, x).tolist(),
            "min": rows.min(axis=0).astype(np.float64).tolist(),
            "max": rows.max(axis=0).astype(np.float64).tolist()}


def _merge(total: dict | None, part: dict) -> dict:
    """Chan's parallel update of two sets of moments."""
    if total is None:
        return {"count": int(part["count"]),
                **{k: np.asarray(part[k], dtype="f8") for k in ("mean", "m2", "min", "max")}}
    n_a, n_b = total["count"], part["count"]
    n = n_a + n_b
    delta = np.asarray(part["mean"]) - total["mean"]
    return {"count": n, "mean": total["mean"] + delta * (n_b / n),
            "m2": total["m2"] + np.asarray(part["m2"]) + delta**2 * (n_a * n_b / n),
            "min": np.minimum(total["min"], part["min"]),
            "max": np.maximum(total["max"], part["max"])}


def _convert_chunk(pairs: list[tuple[str, str]], levels_hpa: list[float], n_col: int,
                   target: StepFile, record_path: str, record: dict) -> dict:
    """One chunk: read it, write its rows into the split file at step
    ``record["first_step"]``, then its record with its moments; return the moments
    (or the error)."""
    try:
        rows = read_chunk([(Path(a), Path(b)) for a, b in pairs], levels_hpa, n_col)
    except DataError as err:  # travels as text: exceptions with keywords do not pickle
        return {"error": str(err)}
    target.write_steps(record["first_step"], rows)
    moments = _moments(rows)
    write_json({**record, **moments}, record_path, indent=None)  # after the rows
    return moments


def _convert_chunks(jobs: list[tuple]) -> list[dict]:
    """One dask task: ``_convert_chunk(*args)`` for each job, in order, up to the first
    error (the result of each chunk converted, the error last)."""
    results = []
    for args in jobs:
        results.append(_convert_chunk(*args))
        if "error" in results[-1]:
            break
    return results


def _chunks_per_task(n_chunks: int, threads: int) -> int:
    """Chunks in each dask task: at most :data:`TASK_CHUNKS`, and at least four tasks
    per worker thread (so that no worker idles while another finishes a long one)."""
    return max(1, min(TASK_CHUNKS, n_chunks // (4 * max(1, threads))))


@contextmanager
def _workers(n_tasks: int, *, workers: int, scheduler: str | None) -> Iterator[Any]:
    """The dask client the tasks run on, or None: serial in this process.

    Serial for one worker and no scheduler (or a single task); else a client of
    ``scheduler`` or of a local cluster of ``workers`` processes, forked from this
    one where :func:`pcm.data.cluster.can_fork` allows (so none imports ``pcm``
    again); closed when the block ends. Enter it before opening any output file.
    """
    if n_tasks == 0 or (scheduler is None and (workers == 1 or n_tasks == 1)):
        yield None
        return
    client, cluster = dask_client(scheduler, min(workers, n_tasks), fork=True)
    try:
        client.wait_for_workers(1)
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _run_tasks(todo: list[tuple[dict, tuple]], finish, client: Any) -> None:
    """Run ``_convert_chunk(*args)`` for each ``(chunk, args)``; ``finish(chunk, result)``.

    ``client`` None: serial in this process. Else on its workers, consecutive
    chunks grouped into tasks (:func:`_chunks_per_task`), with at most two tasks
    per worker thread in flight (memory bounded whatever the number of chunks: a
    task holds one chunk's rows at a time; one task running and one queued on each
    worker, so none waits for the driver between tasks); ``finish`` runs in this
    process for each chunk of a task as the task ends, in the order tasks end.
    """
    if client is None:
        for chunk, args in todo:
            finish(chunk, _convert_chunk(*args))
        return
    from distributed import as_completed

    threads = sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values())
    window = 2 * max(1, threads)
    per = _chunks_per_task(len(todo), threads)
    groups = [todo[i:i + per] for i in range(0, len(todo), per)]
    pending = iter(groups)
    futures = {}
    for group in pending:
        futures[client.submit(_convert_chunks, [a for _, a in group], pure=False)] = group
        if len(futures) >= window:
            break
    queue = as_completed(list(futures))
    for future in queue:
        group = futures.pop(future)
        results = future.result()
        future.release()
        nxt = next(pending, None)
        if nxt is not None:  # before finish: the worker's queue stays full while we write
            new = client.submit(_convert_chunks, [a for _, a in nxt], pure=False)
            futures[new] = nxt
            queue.add(new)
        for (chunk, _), result in zip(group, results, strict=False):  # to the error
            finish(chunk, result)


def convert_climsim(src: str | os.PathLike, out: str | os.PathLike, *,
                    include: Sequence[str] | None = None, grid: str | os.PathLike | None = None,
                    months: str | tuple[str, str] | None = None, stride: int = 1,
                    split_months: dict[str, str | tuple[str, str]] | None = None,
                    chunk_steps: int = CHUNK_STEPS, workers: int | None = None,
                    scheduler: str | None = None, progress: bool = True) -> dict[str, Path]:
    """Convert ClimSim low-res ``mli``/``mlo`` pairs into the pipeline's data layout.

    Parameters
    ----------
    src : path-like
        Folder with the files as published (searched recursively), e.g. the
        ``ClimSim_low-res`` folder of the Hugging Face data set.
    out : path-like
        Output folder: ``train.nc valid.nc test.nc norm.nc conversion.json`` (and,
        while converting, ``.chunks/``).
    include : sequence of str, optional
        Glob patterns selecting ``mli`` files (see :func:`find_pairs`).
    grid : path-like, optional
        The grid-info file; default: ``ClimSim_low-res_grid-info.nc`` found
        under ``src`` (or in its parent folders).
    months : str or (str, str), optional
        Month range ``"YYYY-MM:YYYY-MM"`` (both included) of the steps dealt to
        the three splits (interleaved); not with ``split_months``.
    stride : int
        Keep every ``stride``-th step of each selection (ClimSim: 7).
    split_months : dict, optional
        ``train valid test`` -> month range: explicit splits (each every
        ``stride``-th step of its months); :data:`CLIMSIM_SUBSET` holds ClimSim's.
    chunk_steps : int
        Steps per chunk: one record (what a restart keeps), one write of
        ``chunk_steps x ncol`` rows into its split file, and the rows readers take at
        a time (``pcm_chunk_rows``).
    workers : int, optional
        Processes of the local dask cluster (default ``os.cpu_count()``); 1 and no
        ``scheduler``: serial in this process. The files do not depend on it.
    scheduler : str, optional
        Address of a running dask scheduler (``tcp://host:8786``) whose workers
        see ``src`` and ``out``; None: a local cluster.
    progress : bool
        Show a progress bar (tqdm) over the chunks.

    Returns
    -------
    dict
        ``train valid test norm manifest`` -> path.

    Raises
    ------
    DataError
        One line naming the file and the variable: an ``mli`` without its
        ``mlo``, ``ncol``/``lev`` different from the grid-info file, a missing
        variable, NaN/Inf, a file that is not ClimSim, a date in the file that
        differs from its name.
    ParameterError
        A bad month range, stride, chunk size or number of workers.
    """
    t0 = time.perf_counter()
    src, out = Path(src), Path(out)
    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    if workers < 1:
        raise ParameterError("--workers", f"must be >= 1, got {workers}")
    grid_path = Path(grid) if grid is not None else _find_grid(src)
    info = read_grid(grid_path)
    catalogue = climsim_catalogue(info["levels_hpa"])
    steps, chunks = plan_conversion(src, info["levels_hpa"], info["n_col"], include=include,
                                    months=months, stride=stride, split_months=split_months,
                                    chunk_steps=chunk_steps)
    n_col, levels = info["n_col"], [float(v) for v in info["levels_hpa"]]
    folder = out.absolute() / ".chunks"  # absolute: workers may run elsewhere
    for chunk in chunks:
        chunk["record"] = folder / chunk["split"] / f"chunk-{chunk['index']:05d}.json"
    plan_key = hashlib.sha256(json.dumps([c["key"] for c in chunks]
                                         + [chunk_steps, str(grid_path)]).encode()
                              ).hexdigest()[:24]
    paths = {k: out / f"{k}.nc" for k in ("train", "valid", "test", "norm")}
    paths["manifest"] = out / "conversion.json"
    if _up_to_date(paths, plan_key):
        return paths
    provenance = {"source": "ClimSim low-res (E3SM-MMF; Yu et al. 2023; data CC-BY-4.0)",
                  "converted_from": str(src), "grid_info": str(grid_path)}
    output_dir(out)  # one line if it is a file, or cannot be made
    targets = _split_files(steps, folder, catalogue, info, provenance, chunk_steps)

    def stored(chunk: dict) -> dict | None:
        """The chunk's record, when it is of this plan (then its rows are in the file)."""
        try:
            record = read_json(chunk["record"])
        except (OSError, ValueError):
            return None
        return record if record.get("key") == chunk["key"] else None

    moments = _MomentsInOrder(sum(c["split"] == "train" for c in chunks))
    todo = []
    for chunk in chunks:
        record = stored(chunk)
        if record is None:
            meta = {"version": _RECORD_VERSION, "key": chunk["key"], "split": chunk["split"],
                    "index": chunk["index"], "first_step": chunk["first"],
                    "steps": [a.name for a, _ in chunk["pairs"]]}
            todo.append((chunk, ([(str(a), str(b)) for a, b in chunk["pairs"]], levels, n_col,
                                 targets[chunk["split"]], str(chunk["record"]), meta)))
        elif chunk["split"] == "train":
            moments.add(chunk["index"], record)
    bar = tqdm(total=len(chunks), desc="pcm data climsim", unit="chunk", disable=not progress)
    bar.update(len(chunks) - len(todo))

    def finish(chunk: dict, result: dict) -> None:
        if "error" in result:
            raise DataError(result["error"])
        if chunk["split"] == "train":
            moments.add(chunk["index"], result)
        bar.update(1)

    t_plan = time.perf_counter() - t0
    try:
        t1 = time.perf_counter()
        with _workers(len(todo), workers=workers, scheduler=scheduler) as client:
            t2 = time.perf_counter()
            _run_tasks(todo, finish, client)
            t3 = time.perf_counter()
        timings = {"cluster_start": t2 - t1, "tasks": t3 - t2,
                   "cluster_stop": time.perf_counter() - t3}
    finally:
        bar.close()
    t_norm = time.perf_counter()
    assert moments.complete and moments.total is not None  # every training chunk is done
    total = moments.total
    names = np.array(catalogue.expand_var_names(catalogue.all_variables), dtype=object)
    norm = norm_from_moments(names, catalogue, total["count"], total["mean"], total["m2"],
                             total["min"], total["max"], source=str(paths["train"]))
    write_norm(norm, paths["norm"])
    for split, target in targets.items():  # complete: the split files appear
        os.replace(target.path, paths[split])
    shutil.rmtree(folder)  # the records and plans of the files just completed
    manifest = {
        **provenance,
        "catalogue": catalogue.name,
        "n_inputs": catalogue.n_inputs,
        "n_outputs": catalogue.n_outputs,
        "n_columns": n_col,
        "n_levels": catalogue.n_levels,
        "hybrid_interfaces": {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                              for k, v in info["hybrid"].items()},
        "selection": {"include": list(include or []), "stride": int(stride),
                      "months": None if months is None else list(parse_months(months)),
                      "split_months": None if split_months is None else
                      {k: list(parse_months(v)) for k, v in split_months.items()}},
        "split_rule": ("explicit month ranges" if split_months else
                       "interleaved: counts of pcm.data.splits.split_steps (70/15/15 %), "
                       "step i to the split furthest behind its share"),
        "splits": {k: {"steps": len(v), "samples": len(v) * n_col} for k, v in steps.items()},
        "chunk_steps": int(chunk_steps),
        "chunk_rows": int(chunk_steps) * n_col,
        "plan_key": plan_key,
        "chunks": len(chunks),
        "chunks_computed": [f"{c['split']}/{c['index']}" for c, _ in todo],  # plan order
        "workers": "scheduler " + scheduler if scheduler else workers,
        "steps": [{"mli": str(mli.relative_to(src)), "split": split,
                   "time_days": _stamp_days(step_stamp(mli))}
                  for split, ps in steps.items() for mli, _ in ps],
        "seconds": round(time.perf_counter() - t0, 2),
        "seconds_by_phase": {"plan": round(t_plan, 2),
                             **{k: round(v, 2) for k, v in timings.items()},
                             "norm": round(time.perf_counter() - t_norm, 2)},
    }
    manifest["steps"].sort(key=lambda s: s["time_days"])
    write_json(manifest, paths["manifest"])
    return paths


def _split_steps(pairs, months, stride, split_months, src) -> dict[str, list]:
    if split_months is not None:
        if months is not None:
            raise ParameterError("--months", "give either --months (interleaved splits) or "
                                             "month ranges per split, not both")
        if sorted(split_months) != ["test", "train", "valid"]:
            raise ParameterError("--train-months", "month ranges needed for train, valid and "
                                 f"test, got {sorted(split_months)}")
        steps = {k: select_steps(pairs, parse_months(split_months[k], f"--{k}-months"), stride)
                 for k in ("train", "valid", "test")}
        for k, v in steps.items():
            if not v:
                raise DataError(f"no time step in the {k} months {split_months[k]} (stride "
                                f"{stride})", path=src)
        return steps
    chosen = select_steps(pairs, None if months is None else parse_months(months), stride)
    if len(chosen) < 3:
        raise DataError(f"{len(chosen)} time steps found, need at least 3 (train, valid, "
                        "test)", path=src)
    labels = interleaved_split(len(chosen))
    return {k: [p for p, s in zip(chosen, labels, strict=True) if s == k]
            for k in ("train", "valid", "test")}


def _up_to_date(paths: dict[str, Path], plan_key: str) -> bool:
    """The split files exist and ``conversion.json`` records this plan."""
    if not all(p.is_file() for p in paths.values()):
        return False
    try:
        return read_json(paths["manifest"]).get("plan_key") == plan_key
    except (OSError, ValueError):
        return False


def _split_files(steps: dict[str, list], folder: Path, catalogue: Catalogue, info: dict,
                 attrs: dict, chunk_steps: int) -> dict[str, StepFile]:
    """The split files under construction, ``folder/<split>.nc``: kept when they were
    made for this plan, else made anew and their chunk records removed.

    Each file's plan (its steps, the chunk size, the grid and the provenance: what
    its header holds) and the offset of its rows are recorded beside it, in
    ``folder/<split>.json``, after the file is made; a chunk record is written only
    after its rows are. So a chunk whose record matches its key has its rows in
    the file, whatever interrupted the conversion before.
    """
    targets = {}
    for split, pairs in steps.items():
        key = hashlib.sha256(json.dumps([
            _RECORD_VERSION, split, [str(mli) for mli, _ in pairs], int(chunk_steps), attrs,
            int(info["n_col"]), np.asarray(info["levels_hpa"]).tobytes().hex()]).encode()
        ).hexdigest()[:24]
        path, sidecar = folder / f"{split}.nc", folder / f"{split}.json"
        try:
            made = read_json(sidecar) if path.is_file() else {}
        except (OSError, ValueError):
            made = {}
        if made.get("plan_key") == key:
            targets[split] = StepFile(path, int(made["offset"]), int(info["n_col"]),
                                      catalogue.n_inputs + catalogue.n_outputs, len(pairs))
            continue
        sidecar.unlink(missing_ok=True)
        (folder / split).mkdir(parents=True, exist_ok=True)
        for record in (folder / split).glob("chunk-*.json"):
            record.unlink()  # rows of a file that is made anew
        targets[split] = create_step_file(
            path, catalogue, lat=info["lat"], lon=info["lon"], area=info["area"],
            time=[_stamp_days(step_stamp(mli)) for mli, _ in pairs], time_units=TIME_UNITS,
            calendar="noleap", attrs={**attrs, "split": split},
            chunk_rows=int(chunk_steps) * int(info["n_col"]))
        write_json({"plan_key": key, "offset": targets[split].offset}, sidecar)
    return targets


class _MomentsInOrder:
    """Chan's update of the training chunks' moments, merged in the plan's order
    whatever order the chunks finish in (so the norm file does not depend on it).

    Parameters
    ----------
    n_chunks : int
        Training chunks in the plan.
    """

    def __init__(self, n_chunks: int) -> None:
        self._n = int(n_chunks)
        self._waiting: dict[int, dict] = {}
        self._next = 0
        #: Moments of the first ``merged`` chunks.
        self.total: dict | None = None

    def add(self, index: int, moments: dict) -> None:
        """Chunk ``index``'s moments; merged with every waiting successor once its turn comes."""
        self._waiting[int(index)] = moments
        while self._next in self._waiting:
            self.total = _merge(self.total, self._waiting.pop(self._next))
            self._next += 1

    @property
    def complete(self) -> bool:
        """Every training chunk was merged."""
        return self._next == self._n


def _find_grid(src: Path) -> Path:
    for candidate in (src / GRID_INFO, src.parent / GRID_INFO):
        if candidate.is_file():
            return candidate
    found = sorted(src.rglob(GRID_INFO)) if src.is_dir() else []
    if found:
        return found[0]
    raise DataError(f"no {GRID_INFO} in this folder, below it or beside it (give it with "
                    "--grid)", path=src)
