"""pcm — PCMasking for climate-model parameterizations, as a re-executable book.

The package is layered (``docs/architecture.md``); import what you need::

    from pcm.params.config import PremaskConfig
    from pcm.method.premask import run_premask
    from pcm.run.rundir import RunDir

Importing :mod:`pcm` itself imports nothing heavy (no TensorFlow).
"""

__version__ = "0.1.0"
