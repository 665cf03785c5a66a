"""pcm — PCMasking for climate-model parameterizations, as a re-executable book.

The package is thin and modular; import what you need::

    from pcm import variables, synthetic, cbrain, networks, training

Importing :mod:`pcm` itself imports nothing heavy (no TensorFlow).
"""

__version__ = "0.1.0"
