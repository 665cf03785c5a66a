"""Conversion of ClimSim low-resolution files into the CBRAIN layout (``pcm data climsim``).

ClimSim (Yu et al. 2023, data CC-BY-4.0) publishes E3SM-MMF, a superparameterized
model like SPCAM, as ``LEAP/ClimSim_low-res``: 384 columns of the ne4pg2 grid,
60 levels, 20-minute steps, one ``mli`` (input) and one ``mlo`` (output) file per
time step, and ``ClimSim_low-res_grid-info.nc`` (``lat lon area (ncol)``, hybrid
coefficients ``hyam hybm``, ``P0``). :func:`convert_climsim` turns a chosen set of
such files into what the pipeline reads: ``train.nc valid.nc test.nc`` in the
CBRAIN layout (:class:`pcm.data.cbrain_write.CbrainWriter`, unstructured grid) and
``norm.nc`` (statistics of the training split), streaming one time step at a
time so that years of data never sit in memory.

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

Split: the time steps, sorted by date, are dealt to train, valid and test
with the counts of :func:`pcm.data.datasets.split_steps` (70/15/15 %, each at
least one step) but *interleaved*: step ``i`` goes to the split that is
furthest behind its share after ``i + 1`` steps (ties to train, then valid). Each
split therefore samples the whole period (every season of a year of
snapshots), and consecutive steps land in different splits as little as the
shares allow. ``conversion.json`` lists every step with its split.
"""

from __future__ import annotations

import fnmatch
import os
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import netCDF4
import numpy as np
from tqdm.auto import tqdm

from pcm.data.cbrain_write import CbrainWriter
from pcm.data.datasets import split_steps
from pcm.data.normalization import compute_norm, write_norm
from pcm.errors import DataError
from pcm.io import write_json
from pcm.variables import CLIMSIM_TIME_STEP_SECONDS, Catalogue, climsim_catalogue

__all__ = [
    "GRID_INFO",
    "MLI_INPUTS",
    "MLO_OUTPUTS",
    "TENDENCIES",
    "find_pairs",
    "read_grid",
    "interleaved_split",
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
    p0 = float(out.pop("P0"))
    levels = (out.pop("hyam") * p0 + out.pop("hybm") * p0) / 100.0
    for name, values in (*out.items(), ("hyam/hybm", levels)):
        if not np.all(np.isfinite(values)):
            raise DataError("non-finite values", path=path, variable=name)
    return {**out, "levels_hpa": levels, "n_col": n_col, "n_lev": n_lev}


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
    src = Path(src)
    if not src.is_dir():
        raise DataError("not a directory (expected the ClimSim_low-res folder)", path=src)
    pairs = []
    for mli in sorted(src.rglob("*.mli.*.nc")):
        rel = mli.relative_to(src).as_posix()
        if include and not any(fnmatch.fnmatch(rel, g) or fnmatch.fnmatch(mli.name, g)
                               for g in include):
            continue
        mlo = mli.with_name(mli.name.replace(".mli.", ".mlo.", 1))
        if not mlo.is_file():
            raise DataError(f"no matching output file {mlo.name} beside it", path=mli)
        pairs.append((mli, mlo))
    if not pairs:
        what = f" matching {list(include)}" if include else ""
        raise DataError(f"no ClimSim input files (*.mli.*.nc){what}", path=src)
    return sorted(pairs, key=lambda p: p[0].name)


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


def convert_climsim(src: str | os.PathLike, out: str | os.PathLike, *,
                    include: Sequence[str] | None = None, grid: str | os.PathLike | None = None,
                    progress: bool = True) -> dict[str, Path]:
    """Convert ClimSim low-res ``mli``/``mlo`` pairs into the pipeline's data layout.

    Parameters
    ----------
    src : path-like
        Folder with the files as published (searched recursively), e.g. the
        ``ClimSim_low-res`` folder of the Hugging Face data set.
    out : path-like
        Output folder: ``train.nc valid.nc test.nc norm.nc conversion.json``.
    include : sequence of str, optional
        Glob patterns selecting ``mli`` files (see :func:`find_pairs`).
    grid : path-like, optional
        The grid-info file; default: ``ClimSim_low-res_grid-info.nc`` found
        under ``src`` (or in its parent folders).
    progress : bool
        Show a progress bar (tqdm) over the time steps.

    Returns
    -------
    dict
        ``train valid test norm manifest`` -> path.

    Raises
    ------
    DataError
        One line naming the file and the variable: an ``mli`` without its
        ``mlo``, ``ncol``/``lev`` different from the grid-info file, a missing
        variable, NaN/Inf, a file that is not ClimSim.
    """
    t0 = time.perf_counter()
    src, out = Path(src), Path(out)
    grid_path = Path(grid) if grid is not None else _find_grid(src)
    info = read_grid(grid_path)
    catalogue = climsim_catalogue(info["levels_hpa"])
    pairs = find_pairs(src, include)
    if len(pairs) < 3:
        raise DataError(f"{len(pairs)} time steps found, need at least 3 (train, valid, "
                        "test)", path=src)
    splits = interleaved_split(len(pairs))
    times = []
    for mli, _ in pairs:  # all times first: each split file records its time axis
        with _open(mli, "input (mli)") as nc:
            _check_climsim(nc, mli, "input (mli)", info["n_col"], catalogue.n_levels)
            times.append(_step_time(nc, mli))
    seen: dict[float, Path] = {}
    for (mli, _), t in zip(pairs, times, strict=True):
        if t in seen:
            raise DataError(f"the same time step as {seen[t]} (each step once, please)",
                            path=mli, variable="ymd")
        seen[t] = mli
    index = {k: [i for i, s in enumerate(splits) if s == k] for k in ("train", "valid", "test")}
    position = {i: j for idx in index.values() for j, i in enumerate(idx)}
    provenance = {"source": "ClimSim low-res (E3SM-MMF; Yu et al. 2023; data CC-BY-4.0)",
                  "converted_from": str(src), "grid_info": str(grid_path)}
    paths = {k: out / f"{k}.nc" for k in index}
    with ExitStack() as stack:
        writers = {k: stack.enter_context(CbrainWriter(
            paths[k], catalogue, lat=info["lat"], lon=info["lon"], area=info["area"],
            time=[times[i] for i in idx], time_units=TIME_UNITS, calendar="noleap",
            attrs={**provenance, "split": k})) for k, idx in index.items()}
        bar = tqdm(pairs, desc="pcm data climsim", unit="step", disable=not progress)
        for i, (mli, mlo) in enumerate(bar):
            rows, _ = _step_rows(mli, mlo, catalogue, info["n_col"])
            writers[splits[i]].write_step(position[i], rows)
    paths["norm"] = write_norm(compute_norm(paths["train"]), out / "norm.nc")
    manifest = {
        **provenance,
        "catalogue": catalogue.name,
        "n_inputs": catalogue.n_inputs,
        "n_outputs": catalogue.n_outputs,
        "n_columns": info["n_col"],
        "n_levels": catalogue.n_levels,
        "split_rule": "interleaved: counts of pcm.data.datasets.split_steps (70/15/15 %), "
                      "step i to the split furthest behind its share",
        "steps": [{"mli": str(mli.relative_to(src)), "split": s, "time_days": t}
                  for (mli, _), s, t in zip(pairs, splits, times, strict=True)],
        "seconds": round(time.perf_counter() - t0, 2),
    }
    paths["manifest"] = write_json(manifest, out / "conversion.json")
    return paths


def _find_grid(src: Path) -> Path:
    for candidate in (src / GRID_INFO, src.parent / GRID_INFO):
        if candidate.is_file():
            return candidate
    found = sorted(src.rglob(GRID_INFO)) if src.is_dir() else []
    if found:
        return found[0]
    raise DataError(f"no {GRID_INFO} in this folder, below it or beside it (give it with "
                    "--grid)", path=src)
