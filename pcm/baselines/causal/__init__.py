"""Causally-informed baseline: PCMCI (PC1, tigramite) drivers per output, then a network.

Iglesias-Suarez et al. (JGR 2024) select the inputs of every output with the
PC1 stage of PCMCI run on the time series of each grid column, keep the
links found in enough columns, and train one network per output on its
causal drivers. PCMasking claims the same skill at about a third of the
cost; ``benchmarks/cost_vs_causal.py`` measures that claim.

Modules: :mod:`pcm.baselines.causal.discovery` (per-column PC1, tigramite; batches of
columns as dask tasks, restartable), :mod:`pcm.baselines.causal.aggregation` (links ->
parents: the published quantile rule and the share rule, pure numpy/scipy),
:mod:`pcm.baselines.causal.data` (column time series from CBRAIN files, PRECT
log-transform), :mod:`pcm.baselines.causal.phases` (run-directory phases, the per-output
q search). Importing this package does not import TensorFlow.
"""

from pcm.baselines.causal.aggregation import (
    link_shares,
    quantile_grid,
    quantile_masks,
    quantile_parents,
)
from pcm.baselines.causal.discovery import (
    ColumnResult,
    aggregate_links,
    discover_column,
    discover_columns,
    link_assumptions,
    select_columns,
)
from pcm.baselines.causal.phases import (
    CAUSAL_MASKS,
    SECONDS,
    discovery_dataset,
    run_causal_training,
    run_discovery,
)

__all__ = [
    "CAUSAL_MASKS",
    "SECONDS",
    "ColumnResult",
    "aggregate_links",
    "link_shares",
    "quantile_grid",
    "quantile_masks",
    "quantile_parents",
    "discover_column",
    "discover_columns",
    "discovery_dataset",
    "link_assumptions",
    "run_causal_training",
    "run_discovery",
    "select_columns",
]
