"""Baselines PCMasking is compared with; :mod:`pcm.baselines.causal` holds the
causally-informed networks (PC1 of PCMCI per grid column). Baselines use :mod:`pcm.nn`
and :mod:`pcm.run.rundir`, never :mod:`pcm.method`."""
