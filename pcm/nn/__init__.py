"""Stacked neural networks and their training engine (the only layer that uses TensorFlow).

- :mod:`pcm.nn.config`: :class:`~pcm.nn.config.TrainConfig` and the learning-rate schedule;
- :mod:`pcm.nn.networks`: :class:`~pcm.nn.networks.StackedMLP`, many single-output MLPs
  as one Keras model (importing it imports TensorFlow);
- :mod:`pcm.nn.engine`: the compiled train/evaluate step;
- :mod:`pcm.nn.trainer`: :func:`~pcm.nn.trainer.train_stacked`, the epoch loop with
  resume, validation, early stopping and checkpoints (:mod:`pcm.nn.checkpoint`);
- :mod:`pcm.nn.saving`: native ``.keras`` files, dtype copies, export of single networks;
- :mod:`pcm.nn.backend`: importing TensorFlow quietly.

Only :mod:`pcm.nn.networks` imports TensorFlow at module import; every other module
here imports it when a function needs it, so the light layers stay light.
"""
