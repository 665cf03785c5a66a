"""A run and its directory: artefacts, training phases, steps, the pipeline, the dry run.

``rundir`` (the run directory and its artefacts), ``phase`` (one training phase, resumable),
``steps`` (the pipeline's steps and their records), ``pipeline`` (``pcm run``: the steps as
notebooks, one notebook runner) and ``dry_run`` (what a run would cost).
"""
