"""Run parameters: the schema and presets, their resolution, one configuration per step."""
