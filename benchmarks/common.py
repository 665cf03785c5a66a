"""Helpers shared by the benchmark scripts (run as ``python benchmarks/NAME.py``)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence

import numpy as np


def json_child(
    cmd: Sequence[str], what: str, *, env: Mapping[str, str] | None = None, cwd: str | None = None
) -> dict:
    """Run one measurement in a fresh process and parse its last line of output as JSON.

    A child that fails stops the benchmark with ``what`` and the end of its stderr.
    """
    done = subprocess.run(list(cmd), capture_output=True, text=True, env=env, cwd=cwd, check=False)
    if done.returncode:
        raise SystemExit(f"{what} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def mean_r2(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean R2 over outputs whose test variance is not (nearly) zero."""
    sst = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    sse = ((y - pred) ** 2).sum(axis=0)
    ok = sst > 1e-6 * max(float(sst.mean()), 1e-30)
    return float(np.mean(1.0 - sse[ok] / sst[ok]))
