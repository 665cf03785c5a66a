"""The dask.distributed client of the parallel jobs (ClimSim conversion, causal discovery)."""

from __future__ import annotations

import logging

__all__ = ["dask_client"]


def dask_client(scheduler: str | None, n_workers: int):
    """A dask client: of ``scheduler`` (an address), or of a new local cluster of
    ``n_workers`` single-threaded processes.

    Returns
    -------
    tuple
        ``(client, cluster)``; ``cluster`` is None for an existing scheduler (the caller
        closes the client, and the cluster it made).
    """
    from distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler), None
    cluster = LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    return Client(cluster), cluster
