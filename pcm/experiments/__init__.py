"""Beyond one run: parameter sweeps, the experiments chapter, many worlds.

``sweep`` (``pcm sweep``), ``chapter`` (the experiments chapter's analyses), ``worlds``
(``pcm worlds``: methods scored on development and held-out synthetic worlds) and
``chapter_sweeps`` (the chapter's sweeps, run ahead of its notebook by ``pcm experiments
--prepare``).
"""
