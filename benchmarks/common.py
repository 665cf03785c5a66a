"""Helpers shared by the benchmark scripts (run as ``python benchmarks/NAME.py``)."""

from __future__ import annotations

import numpy as np


def mean_r2(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean R2 over outputs whose test variance is not (nearly) zero."""
    sst = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    sse = ((y - pred) ** 2).sum(axis=0)
    ok = sst > 1e-6 * max(float(sst.mean()), 1e-30)
    return float(np.mean(1.0 - sse[ok] / sst[ok]))
