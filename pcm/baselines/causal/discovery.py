"""Causal discovery per grid column with PCMCI's PC1 stage (tigramite).

The causally-informed networks of Iglesias-Suarez et al. (JGR 2024) select
the inputs of each output with the PC1 algorithm of PCMCI (PC-stable with
partial-correlation tests), run separately on the time series of every grid
column, and keep a link where it is found in a large enough share of the
columns. This module holds the per-column step and the aggregation; the
phase functions that read a run directory live in :mod:`pcm.baselines.causal.phases`.

Setup (as in the reference implementation): the candidate parents of every
output at time ``t`` are the 94 inputs at time ``t - 1`` (``tau_min = tau_max
= 1``); no other link is tested, in particular no output autocorrelation and
no input-to-input links. In the CBRAIN pairing an output at ``t`` is caused by
the inputs at ``t``; the inputs are smooth in time, so the inputs at ``t - 1``
stand in for them. With these link assumptions the PC algorithm of one output
conditions only on inputs, so running all outputs of a column in one
tigramite call gives exactly what one call per output (the reference) gives.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import special
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from pcm.data.cluster import dask_client
from pcm.io import atomic_path

__all__ = [
    "ColumnResult",
    "link_assumptions",
    "discover_column",
    "discover_columns",
    "column_batches",
    "aggregate_links",
    "select_columns",
    "varying",
]

#: Version of the batch checkpoint content (part of its key).
BATCH_FORMAT = 1

#: Fewest residual degrees of freedom a partial-correlation test may have;
#: the condition dimension is capped so that every test keeps at least these.
MIN_DEGREES_OF_FREEDOM = 5


@dataclass(frozen=True)
class ColumnResult:
    """Links found in one grid column.

    Attributes
    ----------
    found : np.ndarray
        bool ``[n_outputs, n_inputs]``: input ``i`` at ``t - 1`` is a parent of
        output ``o`` at ``t`` in this column.
    tested : np.ndarray
        bool ``[n_outputs, n_inputs]``: the link could be tested (both the
        output and the input vary in this column).
    seconds : float
        Wall seconds of the tigramite call.
    cpu_seconds : float
        CPU seconds of the tigramite call (this process; robust to a loaded machine).
    """

    found: np.ndarray
    tested: np.ndarray
    seconds: float
    cpu_seconds: float = 0.0


def _parcorr(fast: bool):
    """Tigramite's ParCorr, or a subclass with a numpy Pearson correlation.

    Tigramite 5.2 takes the correlation of the two residuals from
    ``scipy.stats.pearsonr``, whose per-call overhead is about half of the
    whole PC1 run time here (thousands of tests on short vectors). The fast
    variant computes the same coefficient with numpy and the same two-sided
    Student-t p-value with ``scipy.special.stdtr`` instead of ``stats.t.sf``
    (equal to rounding); the residuals, the conditioning sets and the PC
    algorithm are tigramite's own.
    """
    from tigramite.independence_tests.parcorr import ParCorr

    if not fast:
        return ParCorr()

    class NumpyParCorr(ParCorr):
        def get_dependence_measure(self, array, xyz, data_type=None):
            rx = self._get_single_residuals(array, target_var=0)
            ry = self._get_single_residuals(array, target_var=1)
            rx = rx - rx.mean()
            ry = ry - ry.mean()
            denom = np.sqrt(np.dot(rx, rx) * np.dot(ry, ry))
            if not denom > 0:
                return np.nan
            return float(np.clip(np.dot(rx, ry) / denom, -1.0, 1.0))

        def get_analytic_significance(self, value, T, dim, xyz):
            deg_f = T - dim
            if deg_f < 1 or not np.isfinite(value):
                return np.nan
            if abs(abs(value) - 1.0) <= sys.float_info.min:
                return 0.0
            t = abs(value) * np.sqrt(deg_f / (1.0 - value * value))
            return float(2.0 * special.stdtr(deg_f, -t))

    return NumpyParCorr()


def varying(series: np.ndarray) -> np.ndarray:
    """Which columns of a ``[time, variables]`` array are not constant.

    A variable counts as constant when its range is at most 1e-6 of its
    largest magnitude (float32 resolution), or exactly zero.

    Parameters
    ----------
    series : np.ndarray
        ``[time, variables]``.

    Returns
    -------
    np.ndarray
        bool ``[variables]``.
    """
    series = np.asarray(series, dtype=np.float64)
    spread = np.ptp(series, axis=0)
    scale = np.abs(series).max(axis=0)
    return np.isfinite(spread) & (spread > 1e-6 * scale) & (spread > 0)


def link_assumptions(n_inputs: int, n_outputs: int) -> dict[int, dict[tuple[int, int], str]]:
    """Tigramite link assumptions: only ``input(t-1) -> output(t)`` may exist.

    Variables ``0 .. n_inputs-1`` are the inputs, the next ``n_outputs`` the
    outputs. Links absent from the dictionary are assumed absent, so inputs get
    no parents and outputs no autocorrelation.

    Parameters
    ----------
    n_inputs, n_outputs : int
        Number of input and output variables in the tigramite data frame.

    Returns
    -------
    dict
        ``{j: {(i, -1): "-?>"}}`` in tigramite's format.
    """
    assumptions: dict[int, dict[tuple[int, int], str]] = {j: {} for j in range(n_inputs)}
    for k in range(n_outputs):
        assumptions[n_inputs + k] = {(i, -1): "-?>" for i in range(n_inputs)}
    return assumptions


def discover_column(x: np.ndarray, y: np.ndarray, *, pc_alpha: float = 0.01,
                    max_conds_dim: int | None = None, fast: bool = True) -> ColumnResult:
    """PC1 (PC-stable, partial correlation) on the time series of one column.

    Parameters
    ----------
    x : np.ndarray
        Inputs ``[time, n_inputs]``, consecutive time steps.
    y : np.ndarray
        Outputs ``[time, n_outputs]``, same time steps.
    pc_alpha : float
        Significance level of the conditional-independence tests.
    max_conds_dim : int, optional
        Largest conditioning set. None: unrestricted, except that it is capped so
        that every test keeps :data:`MIN_DEGREES_OF_FREEDOM` degrees of freedom.
    fast : bool
        Compute the residuals' correlation with numpy instead of
        ``scipy.stats.pearsonr`` (same statistic, about twice as fast overall).

    Returns
    -------
    ColumnResult
        Links found and links tested. Outputs that are constant in this column
        have no parents and are not tested; constant inputs are left out of the
        tests.
    """
    from tigramite import data_processing as pp
    from tigramite.pcmci import PCMCI

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"expected x [time, inputs] and y [time, outputs] with the same "
                         f"time length, got {x.shape} and {y.shape}")
    if not 0.0 < pc_alpha < 1.0:
        raise ValueError(f"pc_alpha must lie in (0, 1), got {pc_alpha}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("non-finite values in the column's time series")
    n_time = x.shape[0]
    in_ok, out_ok = varying(x), varying(y)
    found = np.zeros((y.shape[1], x.shape[1]), dtype=bool)
    tested = out_ok[:, None] & in_ok[None, :]
    # ParCorr on a lag-1 link sees n_time - 2 samples (tigramite's 2 x tau_max
    # cut-off) and has n_samples - 2 - dim(Z) degrees of freedom.
    dim_cap = n_time - 4 - MIN_DEGREES_OF_FREEDOM
    if dim_cap < 0 or not in_ok.any() or not out_ok.any():
        return ColumnResult(found, tested & (dim_cap >= 0), 0.0, 0.0)
    cap = dim_cap if max_conds_dim is None else min(int(max_conds_dim), dim_cap)

    inputs, outputs = np.flatnonzero(in_ok), np.flatnonzero(out_ok)
    data = np.concatenate([x[:, inputs], y[:, outputs]], axis=1)
    n_in = len(inputs)
    start, cpu_start = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        # "data.shape = (T, N); is it of shape (observations, variables)?" for T < N
        warnings.filterwarnings("ignore", message=".*is it of shape", category=UserWarning)
        frame = pp.DataFrame(data)
    pcmci = PCMCI(dataframe=frame, cond_ind_test=_parcorr(fast), verbosity=0)
    parents = pcmci.run_pc_stable(link_assumptions=link_assumptions(n_in, len(outputs)),
                                  tau_min=1, tau_max=1, pc_alpha=float(pc_alpha),
                                  max_conds_dim=cap, max_combinations=1)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    for k, out in enumerate(outputs):
        for i, _lag in parents[n_in + k]:
            found[out, inputs[i]] = True
    return ColumnResult(found, tested, seconds, cpu)


def _discover_batch(x: np.ndarray, y: np.ndarray, pc_alpha: float, max_conds_dim: int | None,
                    fast: bool) -> dict[str, np.ndarray]:
    """PC1 on a batch of columns ``x [time, column, inputs]``; the task of one worker.

    Module level, so that dask (or a spawned process) can import it; returns plain
    arrays (``found``, ``tested``, ``seconds``, ``cpu_seconds``), which is also the
    content of a batch checkpoint.
    """
    with threadpool_limits(limits=1):
        results = [discover_column(x[:, c], y[:, c], pc_alpha=pc_alpha,
                                   max_conds_dim=max_conds_dim, fast=fast)
                   for c in range(x.shape[1])]
    return {"found": np.stack([r.found for r in results]),
            "tested": np.stack([r.tested for r in results]),
            "seconds": np.array([r.seconds for r in results]),
            "cpu_seconds": np.array([r.cpu_seconds for r in results])}


def _batch_key(x: np.ndarray, y: np.ndarray, pc_alpha: float, max_conds_dim: int | None,
               fast: bool) -> str:
    """What a stored batch must match to be reused: its data and the test settings."""
    h = hashlib.blake2b(digest_size=16)
    for a in (x, y):
        a = np.ascontiguousarray(a, dtype=np.float64)
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    h.update(repr((float(pc_alpha), max_conds_dim, bool(fast), BATCH_FORMAT)).encode())
    return h.hexdigest()


def _load_batch(path: Path, key: str) -> dict[str, np.ndarray] | None:
    """A finished batch from its checkpoint, or None (absent, unreadable, other data)."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            if str(stored["key"]) != key:
                return None
            return {name: stored[name] for name in ("found", "tested", "seconds", "cpu_seconds")}
    except (OSError, ValueError, KeyError):
        return None


def _save_batch(path: Path, key: str, result: dict[str, np.ndarray]) -> None:
    """Write one finished batch atomically (a reader never sees half a file)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, key=np.array(key), **result)


def column_batches(n_columns: int, batch_columns: int) -> list[slice]:
    """Consecutive batches of at most ``batch_columns`` columns (fixed, so restarts match)."""
    if int(batch_columns) < 1:
        raise ValueError(f"batch_columns must be >= 1, got {batch_columns}")
    return [slice(lo, min(n_columns, lo + int(batch_columns)))
            for lo in range(0, n_columns, int(batch_columns))]


def discover_columns(x: np.ndarray, y: np.ndarray, *, pc_alpha: float = 0.01,
                     max_conds_dim: int | None = None, n_jobs: int | None = None,
                     scheduler: str | None = None, batch_columns: int = 4,
                     checkpoint_dir: str | os.PathLike | None = None,
                     fast: bool = True, progress: bool = False) -> list[ColumnResult]:
    """Run :func:`discover_column` on many columns: batches of columns as dask tasks.

    Parameters
    ----------
    x : np.ndarray
        Inputs ``[time, column, n_inputs]``.
    y : np.ndarray
        Outputs ``[time, column, n_outputs]``.
    pc_alpha, max_conds_dim, fast
        See :func:`discover_column`.
    n_jobs : int, optional
        Workers of the local dask cluster (processes, one thread each); None:
        ``os.cpu_count()``; 1 (and no ``scheduler``): serial in this process, no
        cluster. The result does not depend on it.
    scheduler : str, optional
        Address of a running dask scheduler (``tcp://host:8786``, e.g. of a
        dask-jobqueue or Kubernetes cluster); None: a local cluster.
    batch_columns : int
        Columns per task (and per checkpoint file).
    checkpoint_dir : path-like, optional
        Each finished batch is stored there (``batch_<first>-<stop>.npz``, atomic
        writes, keyed by a checksum of its data and the test settings); a later
        call with the same folder reuses them and computes only the missing ones,
        so an interrupted discovery resumes.
    progress : bool
        Show a tqdm progress bar (columns done).

    Returns
    -------
    list of ColumnResult
        One per column, in column order (``seconds``: of the run that computed it).
    """
    if x.ndim != 3 or y.ndim != 3 or x.shape[:2] != y.shape[:2]:
        raise ValueError(f"expected x [time, column, inputs] and y [time, column, outputs], "
                         f"got {x.shape} and {y.shape}")
    n_columns = x.shape[1]
    n_jobs = (os.cpu_count() or 1) if n_jobs is None else int(n_jobs)
    if n_jobs < 1:
        raise ValueError(f"n_jobs must be >= 1, got {n_jobs}")
    batches = column_batches(n_columns, batch_columns)
    folder = None if checkpoint_dir is None else Path(checkpoint_dir)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    done: dict[int, dict[str, np.ndarray]] = {}
    todo: list[tuple[int, str]] = []
    for b, cols in enumerate(batches):
        key = _batch_key(x[:, cols], y[:, cols], pc_alpha, max_conds_dim, fast)
        stored = None if folder is None else _load_batch(
            folder / f"batch_{cols.start:06d}-{cols.stop:06d}.npz", key)
        if stored is None:
            todo.append((b, key))
        else:
            done[b] = stored
    bar = None
    if progress:
        bar = tqdm(total=n_columns, desc="causal discovery", unit="column")
        bar.update(sum(batches[b].stop - batches[b].start for b in done))

    def finish(b: int, key: str, result: dict[str, np.ndarray]) -> None:
        done[b] = result
        if folder is not None:
            cols = batches[b]
            _save_batch(folder / f"batch_{cols.start:06d}-{cols.stop:06d}.npz", key, result)
        if bar is not None:
            bar.update(batches[b].stop - batches[b].start)

    def args(b: int) -> tuple:
        cols = batches[b]
        return (np.ascontiguousarray(x[:, cols]), np.ascontiguousarray(y[:, cols]), pc_alpha,
                max_conds_dim, fast)

    try:
        if todo and scheduler is None and (n_jobs == 1 or len(todo) == 1):
            for b, key in todo:
                finish(b, key, _discover_batch(*args(b)))
        elif todo:
            from distributed import as_completed

            client, cluster = dask_client(scheduler, min(n_jobs, len(todo)),
                                          key="causal_scheduler")
            try:
                futures = {client.submit(_discover_batch, *args(b), pure=False): (b, key)
                           for b, key in todo}
                for future in as_completed(futures):
                    b, key = futures[future]
                    finish(b, key, future.result())
            finally:
                client.close()
                if cluster is not None:
                    cluster.close()
    finally:
        if bar is not None:
            bar.close()
    results: list[ColumnResult] = []
    for b in range(len(batches)):
        r = done[b]
        results.extend(ColumnResult(r["found"][k], r["tested"][k], float(r["seconds"][k]),
                                    float(r["cpu_seconds"][k]))
                       for k in range(len(r["seconds"])))
    return results


def aggregate_links(found: np.ndarray, tested: np.ndarray, weights: Sequence[float] | np.ndarray,
                    share: float = 0.59) -> tuple[np.ndarray, np.ndarray]:
    """Keep the links found in at least ``share`` of the columns, area-weighted.

    The share of a link is ``sum_c w_c found_c / sum_c w_c tested_c`` over the
    columns ``c`` where the link could be tested (columns where the output or
    the input is constant carry no evidence and are left out); a link never
    tested has share 0.

    Parameters
    ----------
    found, tested : np.ndarray
        bool ``[column, n_outputs, n_inputs]``.
    weights : array-like
        Area weight of each column (Gaussian weight ``gw`` of its latitude).
    share : float
        Threshold in [0, 1]; a link is kept where its share is ``>= share``.

    Returns
    -------
    mask : np.ndarray
        bool ``[n_outputs, n_inputs]``.
    link_share : np.ndarray
        float ``[n_outputs, n_inputs]``.
    """
    found = np.asarray(found, dtype=bool)
    tested = np.asarray(tested, dtype=bool)
    weights = np.asarray(weights, dtype=np.float64)
    if found.shape != tested.shape or found.ndim != 3 or weights.shape != found.shape[:1]:
        raise ValueError(f"expected found/tested [column, output, input] and one weight per "
                         f"column, got {found.shape}, {tested.shape}, {weights.shape}")
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must lie in [0, 1], got {share}")
    if np.any(weights < 0):
        raise ValueError("column weights must be non-negative")
    hits = np.einsum("c,coi->oi", weights, (found & tested).astype(np.float64))
    total = np.einsum("c,coi->oi", weights, tested.astype(np.float64))
    link_share = np.divide(hits, total, out=np.zeros_like(hits), where=total > 0)
    mask = (total > 0) & (link_share >= share - 1e-12)
    return mask, link_share


def select_columns(n_lat: int, n_lon: int, n_columns: int | None = None, *,
                   seed: int = 0) -> np.ndarray:
    """Evenly spread, deterministic grid columns for the discovery.

    Latitudes are spread evenly over the grid (so the area weighting sees all
    of them) and longitudes rotate, so that no subset sits on one meridian.

    Parameters
    ----------
    n_lat, n_lon : int
        Grid size.
    n_columns : int, optional
        How many columns; None or ``>= n_lat * n_lon``: all of them.
    seed : int
        Shifts the longitudes of a subset (same seed, same columns).

    Returns
    -------
    np.ndarray
        int ``[n, 2]`` of ``(lat index, lon index)``, sorted by flat index
        ``lat * n_lon + lon`` (the CBRAIN sample order).
    """
    total = n_lat * n_lon
    if n_columns is None or n_columns >= total:
        flat = np.arange(total)
    else:
        if n_columns < 1:
            raise ValueError(f"n_columns must be >= 1, got {n_columns}")
        lat = np.floor((np.arange(n_columns) + 0.5) * n_lat / n_columns).astype(int)
        stride = max(1, int(round(n_lon * 0.381966)))  # golden-section rotation
        used: set[int] = set()
        flat_list = []
        for k, ilat in enumerate(lat):
            ilon = (k * stride + seed) % n_lon
            while ilat * n_lon + ilon in used:
                ilon = (ilon + 1) % n_lon
            used.add(ilat * n_lon + ilon)
            flat_list.append(ilat * n_lon + ilon)
        flat = np.sort(np.array(flat_list))
    return np.stack([flat // n_lon, flat % n_lon], axis=1)
