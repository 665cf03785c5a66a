"""A ClimSim-layout tree of made-up values, for tests and benchmarks of the converter.

:func:`write_climsim_tree` writes what :func:`pcm.data.climsim.convert_climsim`
reads, laid out as ``LEAP/ClimSim_low-res`` is published: the grid-info file and
``train/YYYY-MM/E3SM-MMF.{mli,mlo}.YYYY-MM-DD-SSSSS.nc`` pairs (netCDF-3 64-bit
data, float64), with the variables the converter reads and, optionally, the
60-level variables it ignores (so file sizes match the published ones). Values
are random but plausible in range (temperatures 200-300 K, humidities below
0.02 kg/kg) and deterministic given the seed and the step. Not physics: use the
real sample (``../shared/climsim``) for anything about the climate.
"""

from __future__ import annotations

import os
from pathlib import Path

import netCDF4
import numpy as np

from pcm.data.climsim import GRID_INFO, MLI_INPUTS, MLO_OUTPUTS

__all__ = ["IGNORED_LEVEL_VARIABLES", "step_stamps", "step_path", "write_climsim_tree"]

#: 60-level variables of the published ``mli`` files that the converter ignores.
IGNORED_LEVEL_VARIABLES = ("state_q0002", "state_q0003", "state_pmid", "pbuf_ozone",
                           "pbuf_CH4", "pbuf_N2O")

_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def step_stamps(start: tuple[int, int, int], n_steps: int, every_s: int = 1200
                ) -> list[tuple[int, int, int, int]]:
    """``(year, month, day, second)`` of ``n_steps`` steps ``every_s`` apart (no-leap).

    Examples
    --------
    >>> step_stamps((1, 1, 31), 3, every_s=43200)
    [(1, 1, 31, 0), (1, 1, 31, 43200), (1, 2, 1, 0)]
    """
    year, month, day = start
    second = 0
    out = []
    for _ in range(int(n_steps)):
        out.append((year, month, day, second))
        second += int(every_s)
        while second >= 86400:
            second -= 86400
            day += 1
            if day > _DAYS_IN_MONTH[month - 1]:
                day, month = 1, month + 1
                if month > 12:
                    month, year = 1, year + 1
    return out


def step_path(src: Path, kind: str, stamp: tuple[int, int, int, int]) -> Path:
    """Where the published set keeps one step's file: ``src/train/YYYY-MM/E3SM-MMF.KIND.
    YYYY-MM-DD-SSSSS.nc`` (``kind`` ``mli`` or ``mlo``)."""
    y, m, d, s = stamp
    name = f"E3SM-MMF.{kind}.{y:04d}-{m:02d}-{d:02d}-{s:05d}.nc"
    return src / "train" / f"{y:04d}-{m:02d}" / name


def write_climsim_tree(folder: str | os.PathLike, n_steps: int, *,
                       start: tuple[int, int, int] = (1, 2, 1), every_s: int = 1200,
                       n_col: int = 384, n_lev: int = 60, seed: int = 0,
                       ignored_variables: bool = False) -> Path:
    """Write a ClimSim low-res tree of ``n_steps`` made-up steps.

    Parameters
    ----------
    folder : path-like
        Created; receives ``ClimSim_low-res/``.
    n_steps : int
        Time steps (mli/mlo pairs).
    start : (int, int, int)
        Year, month, day of the first step (at second 0).
    every_s : int
        Seconds between steps (ClimSim: 1200).
    n_col, n_lev : int
        Columns and levels (ClimSim low-res: 384, 60).
    seed : int
        Seed; step ``k`` uses ``seed + k``, so a longer tree extends a shorter one.
    ignored_variables : bool
        Also write :data:`IGNORED_LEVEL_VARIABLES` (published file sizes).

    Returns
    -------
    Path
        The ``ClimSim_low-res`` folder (``--src`` of ``pcm data climsim``).
    """
    src = Path(folder) / "ClimSim_low-res"
    src.mkdir(parents=True, exist_ok=True)
    hyam = np.linspace(0.003, 0.0, n_lev) * np.linspace(1.0, 0.0, n_lev)
    hybm = np.linspace(0.0, 0.985, n_lev)
    with netCDF4.Dataset(src / GRID_INFO, "w", format="NETCDF3_64BIT_DATA") as nc:
        nc.createDimension("ncol", n_col)
        nc.createDimension("lev", n_lev)
        rng = np.random.default_rng(seed)
        lat = np.degrees(np.arcsin(rng.uniform(-1, 1, n_col)))
        for name, dims, values in (
            ("lat", ("ncol",), lat), ("lon", ("ncol",), rng.uniform(0, 360, n_col)),
            ("area", ("ncol",), np.full(n_col, 4 * np.pi / n_col)),
            ("hyam", ("lev",), hyam), ("hybm", ("lev",), hybm), ("P0", (), 1e5),
        ):
            nc.createVariable(name, "f8", dims)[...] = values
    for k, stamp in enumerate(step_stamps(start, n_steps, every_s)):
        y, m, d, s = stamp
        rng = np.random.default_rng(seed + k)
        step_path(src, "mli", stamp).parent.mkdir(parents=True, exist_ok=True)
        shape = (n_lev, n_col)
        state = {"state_t": 200 + 100 * rng.random(shape),
                 "state_q0001": 0.02 * rng.random(shape) ** 3,
                 "state_u": rng.normal(0, 10, shape), "state_v": rng.normal(0, 10, shape)}
        mli = {**state, "state_ps": 1e5 + 1e3 * rng.normal(size=n_col),
               **{v: 400 * rng.random(n_col) for v in MLI_INPUTS[4:]},
               "pbuf_COSZRS": rng.random(n_col)}
        if ignored_variables:
            mli.update({v: rng.random(shape) for v in IGNORED_LEVEL_VARIABLES})
        mlo = {"state_t": state["state_t"] + rng.normal(0, 0.5, shape),
               "state_q0001": state["state_q0001"] * (1 + 0.01 * rng.normal(size=shape)),
               "state_u": state["state_u"], "state_v": state["state_v"],
               **{v: 500 * rng.random(n_col) for v in MLO_OUTPUTS}}
        for kind, content in (("mli", mli), ("mlo", mlo)):
            with netCDF4.Dataset(step_path(src, kind, stamp), "w",
                                 format="NETCDF3_64BIT_DATA") as nc:
                nc.createDimension("ncol", n_col)
                nc.createDimension("lev", n_lev)
                nc.createVariable("ymd", "i4", ())[...] = y * 10000 + m * 100 + d
                nc.createVariable("tod", "i4", ())[...] = s
                for name, values in content.items():
                    dims = ("lev", "ncol") if np.ndim(values) == 2 else ("ncol",)
                    nc.createVariable(name, "f8", dims)[...] = values
    return src
