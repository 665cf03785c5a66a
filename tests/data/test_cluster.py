"""The local dask cluster of the parallel jobs (pcm.data.cluster)."""

from __future__ import annotations

import pytest

from pcm.data.cluster import LOCAL_CLUSTER_CONFIG, dask_client
from pcm.errors import ParameterError


def _worker_settings(dask_worker) -> tuple:
    import dask

    return (
        sorted(dask_worker.periodic_callbacks),
        dask.config.get("distributed.admin.tick.interval"),
    )


@pytest.mark.slow
def test_a_local_cluster_runs_its_bookkeeping_less_often():
    client, cluster = dask_client(None, 2, fork=True)
    try:
        seen = client.run(_worker_settings)
        ticks = cluster.scheduler.periodic_callbacks["tick"].callback_time
    finally:
        client.close()
        cluster.close()
    assert len(seen) == 2
    for callbacks, tick in seen.values():
        assert "profile" not in callbacks and "profile-cycle" not in callbacks
        assert tick == LOCAL_CLUSTER_CONFIG["distributed.admin.tick.interval"]
    assert ticks == 1000  # ms: the scheduler's event-loop tick, 20 ms by default


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:1", "nonsense://x"])
def test_a_scheduler_that_cannot_be_reached_is_one_error_naming_the_key(address):
    import dask
    import distributed  # noqa: F401  (its defaults loaded first: set() restores what it finds)

    with (
        dask.config.set({"distributed.comm.timeouts.connect": "1s"}),
        pytest.raises(ParameterError) as err,
    ):
        dask_client(address, 1, key="causal_scheduler")
    message = str(err.value)
    assert message.startswith(
        f"parameter 'causal_scheduler': cannot connect to a dask scheduler at {address!r}: "
    )
    assert "\n" not in message
