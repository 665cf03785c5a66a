"""Beyond one run: parameter sweeps, the experiments chapter, many worlds."""
