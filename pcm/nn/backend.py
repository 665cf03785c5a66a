"""Importing TensorFlow and Keras quietly (for notebooks and the pipeline's kernels)."""

from __future__ import annotations

import os
import sys

__all__ = ["quiet_tensorflow"]


def quiet_tensorflow() -> None:
    """Import TensorFlow and Keras with their C++ start-up log lines discarded.

    TensorFlow writes informational lines (oneDNN notices with timestamps and
    process ids) straight to file descriptor 2 when it is imported, whatever
    ``TF_CPP_MIN_LOG_LEVEL`` says. In a notebook they end up as cell output and
    make executed notebooks differ from run to run. Python-level errors are not
    affected: a failing import still raises.
    """
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
