"""The PCMasking method, one module per step, in pipeline order.

1. :mod:`pcm.method.prepare` — the data of a run (synthetic aquaplanet or the user's files);
2. :mod:`pcm.method.premask` — pre-masking networks with an L1-penalised input layer, and the
   unconstrained baseline;
3. :mod:`pcm.method.masking` — masking vectors, the per-output threshold search, the masks;
4. :mod:`pcm.method.finetune` — fine-tuning the masked networks from the pre-masking weights;
5. :mod:`pcm.method.evaluate` — R² on the control and ±4K test sets;
6. :mod:`pcm.method.explain` and :mod:`pcm.method.summary` — SHAP, scores against the true
   drivers, the headline numbers.

Every step takes ``(run, config)``: a :class:`pcm.run.rundir.RunDir` and its configuration
object from :mod:`pcm.params.config`. Only the notebooks, the pipeline and benchmarks import
this package.
"""
