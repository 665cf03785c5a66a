"""A run: its directory and artefacts, training phases, the steps, the pipeline that executes the notebooks and its dry run."""
