"""Pure functions of the evaluation: R², attributions, driver scores, and the book's figures.

- :mod:`pcm.analysis.r2` — R² maps, zonal cross sections, profiles, variable means;
- :mod:`pcm.analysis.attribution` — batched DeepSHAP of stacked networks (TensorFlow at call
  time), gradient x input, and the reference ``shap.DeepExplainer``;
- :mod:`pcm.analysis.scoring` — the one rule that scores masks and attributions against
  true drivers;
- :mod:`pcm.analysis.figures` — every figure of the book (each returns a Figure).
"""
