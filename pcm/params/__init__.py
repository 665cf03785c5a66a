"""Run parameters: the schema and presets, their resolution, one configuration per step.

``presets`` (the schema and the presets), ``config`` (one configuration object per step,
built from the parameters) and ``run_parameters`` (a run's parameters resolved against its
data and recorded).
"""
