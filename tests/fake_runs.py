"""A run directory with in-memory splits, shared by the test modules."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pcm.run.rundir import RunDir


def fake_run(
    root: Path,
    make_split: Callable[[str, int], tuple[np.ndarray, np.ndarray]],
    sizes: dict[str, int],
    patch: pytest.MonkeyPatch,
) -> RunDir:
    """A run directory whose splits are in-memory arrays ``make_split(split, n)``.

    Writes the manifest and patches :meth:`RunDir.arrays` and
    :meth:`RunDir.split_samples` (the streaming choice asks for the size first) with
    ``patch``; the caller undoes it.
    """
    run = RunDir(root / "run")
    run.write_manifest(
        {"train": root / "train.nc", "valid": root / "valid.nc", "norm": root / "norm.nc"},
        source="synthetic",
    )

    def arrays(run_, split, *, max_samples=None, dtype="float32", warn=True):
        x, y = make_split(split, sizes[split])
        if max_samples is not None:
            x, y = x[:max_samples], y[:max_samples]
        return x.astype(dtype), y.astype(dtype)

    patch.setattr(RunDir, "arrays", arrays)
    patch.setattr(RunDir, "split_samples", lambda run_, split: sizes[split])
    return run
