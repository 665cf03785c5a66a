"""The dask.distributed client of the parallel jobs (ClimSim conversion, causal discovery)."""

from __future__ import annotations

import logging
import sys

from pcm.errors import ParameterError

__all__ = ["dask_client", "can_fork"]

#: Dask settings of a local cluster, which runs batch jobs with no dashboard: its
#: periodic bookkeeping (event-loop ticks, system and memory monitors, the workers'
#: sampling profiler) runs less often or not at all. On 2 cores these callbacks
#: compete with the workers: in 6 paired conversions of 768 steps with 2 workers,
#: the tasks phase took 1.78-2.28 s (median 1.92) with these and 1.98-3.33 s
#: (median 2.26) with dask's defaults, which are 20 ms, 0.5 s, 0.1 s and a 10 ms
#: profile (measured in one process on the made-up tree of ``benchmarks/convert.py``;
#: README, "At ClimSim's own size", gives the benchmark's figures).
LOCAL_CLUSTER_CONFIG = {
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.worker.profile.enabled": False,
}


def can_fork() -> bool:
    """Whether local workers may be forked from this process: Linux, and no TensorFlow loaded.

    A forked child inherits only the forking thread; TensorFlow's thread pools (and
    the locks they hold) do not survive it, so a process that has imported
    TensorFlow spawns fresh interpreters instead.
    """
    return sys.platform.startswith("linux") and "tensorflow" not in sys.modules


def dask_client(
    scheduler: str | None, n_workers: int, *, fork: bool = False, key: str = "--scheduler"
):
    """A dask client: of ``scheduler`` (an address), or of a new local cluster of
    ``n_workers`` single-threaded processes (with :data:`LOCAL_CLUSTER_CONFIG`).

    Parameters
    ----------
    scheduler : str or None
        Address of a running scheduler (``tcp://host:8786``); None: a local cluster.
    n_workers : int
        Worker processes of the local cluster.
    fork : bool
        Fork the local workers from this process where :func:`can_fork` allows,
        instead of spawning fresh interpreters (dask's default). A spawned worker
        imports ``distributed`` and re-runs the main script (for the ``pcm``
        command, all of :mod:`pcm.cli`: seconds of CPU per worker); a forked one
        starts with what this process has imported. The caller must hold no file
        open for writing when it asks for this (a child would inherit it).
    key : str
        Where ``scheduler`` was given (an option or a parameter), for the error.

    Returns
    -------
    tuple
        ``(client, cluster)``; ``cluster`` is None for an existing scheduler (the caller
        closes the client, and the cluster it made).

    Raises
    ------
    ParameterError
        No client connects to ``scheduler``: not an address, or no scheduler answers
        there within dask's connect timeout (``distributed.comm.timeouts.connect``,
        30 s by default).
    """
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler), None
        except (OSError, ValueError) as err:  # TimeoutError is an OSError
            reason = " ".join(str(err).split()) or type(err).__name__
            raise ParameterError(
                key, f"cannot connect to a dask scheduler at {scheduler!r}: {reason}"
            ) from None
    method = dask.config.get("distributed.worker.multiprocessing-method")
    if fork and can_fork():
        method = "fork"
    with dask.config.set(
        {**LOCAL_CLUSTER_CONFIG, "distributed.worker.multiprocessing-method": method}
    ):
        cluster = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.CRITICAL,
        )
    return Client(cluster), cluster
