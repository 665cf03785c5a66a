"""Beyond one run: parameter sweeps, the experiments chapter, many worlds.

``sweep`` (``pcm sweep``), ``chapter`` (the experiments chapter's analyses) and ``worlds``
(``pcm worlds``: methods scored on development and held-out synthetic worlds).
"""
