"""Per-epoch training checkpoints: weights, optimizer state and history in one npz file.

A checkpoint is a single ``state.npz`` (numpy's zip of arrays, read with
``allow_pickle=False``) written atomically after every epoch, so a run killed at
any moment leaves the last finished epoch on disk. It holds

- ``fingerprint``: a JSON string describing the training problem (network
  layout, data sizes, hyper-parameters, a checksum of the data and of the
  initial weights); a checkpoint whose fingerprint differs is ignored,
- ``epoch``: number of finished epochs, ``stopped_early``: 1 once early stopping ended it,
- ``weight_<i>``: every model variable (``model.weights`` order, mask included),
- ``optimizer_<i>``: every optimizer variable (iteration, learning rate, moments),
- ``best_<i>``: the best-validation trainable weights (early stopping only),
- ``hist_<name>``: history arrays (``loss``, ``val_loss``, ...).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from pcm.io import atomic_path

__all__ = ["CHECKPOINT_FILE", "save_state", "load_state"]

#: File name of the checkpoint inside a checkpoint folder.
CHECKPOINT_FILE = "state.npz"


def save_state(directory: str | os.PathLike, fingerprint: dict, arrays: dict[str, np.ndarray],
               ) -> Path:
    """Write ``arrays`` plus the fingerprint atomically to ``directory/state.npz``.

    Parameters
    ----------
    directory : path-like
        Checkpoint folder (created if needed).
    fingerprint : dict
        JSON-serialisable description of the training problem.
    arrays : dict of str to array
        Everything else to store (names must be valid npz keys).

    Returns
    -------
    Path
        The checkpoint file.
    """
    path = Path(directory) / CHECKPOINT_FILE
    payload = {"fingerprint": np.array(json.dumps(fingerprint, sort_keys=True))}
    payload.update({k: np.asarray(v) for k, v in arrays.items()})
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **payload)
    return path


def load_state(directory: str | os.PathLike | None, fingerprint: dict
               ) -> dict[str, np.ndarray] | None:
    """Read a checkpoint if it exists and matches ``fingerprint``; else None.

    Parameters
    ----------
    directory : path-like or None
        Checkpoint folder.
    fingerprint : dict
        The description the checkpoint must have been written with.

    Returns
    -------
    dict or None
        The stored arrays (without the fingerprint).
    """
    if directory is None:
        return None
    path = Path(directory) / CHECKPOINT_FILE
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            stored = json.loads(str(data["fingerprint"]))
            if stored != json.loads(json.dumps(fingerprint, sort_keys=True)):
                return None
            return {k: data[k] for k in data.files if k != "fingerprint"}
    except (OSError, ValueError, KeyError):  # unreadable or foreign file: start afresh
        return None
