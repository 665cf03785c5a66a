"""Stacked models on disk: native Keras files (safe-mode loading), dtype copies, export.

Importing this module does not import TensorFlow; its functions do.

A stacked model is saved whole in the native ``.keras`` format and loaded with
``safe_mode=True`` (no pickled code). :func:`export_networks` writes every network
of a stack as a plain ``keras.Sequential`` that loads without :mod:`pcm`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pcm.errors import DataError, ParameterError
from pcm.io import atomic_path
from pcm.nn.config import COMPUTE_DTYPES
from pcm.variables import output_labels

__all__ = ["save_stacked", "load_stacked", "with_dtype", "export_networks"]


def save_stacked(model, path: str | os.PathLike) -> Path:
    """Save a stacked model atomically in the native ``.keras`` format."""
    with atomic_path(path) as tmp:
        model.save(tmp)
    return Path(path)


def load_stacked(path: str | os.PathLike, *, compute_dtype: str | None = None):
    """Load a stacked model (``safe_mode=True``), optionally in another dtype policy.

    Parameters
    ----------
    path : path-like
        A ``.keras`` file written by :func:`save_stacked`.
    compute_dtype : {"float32", "bfloat16", "float64"}, optional
        Rebuild the model with this compute dtype (weights are copied).
    """
    import keras

    import pcm.nn.networks  # noqa: F401  (registers the stacked layers with Keras)

    path = Path(path)
    if not path.exists():
        raise DataError("model file not found; run the phase that writes it first", path=path)
    model = keras.saving.load_model(path, safe_mode=True)
    if compute_dtype is not None:
        model = with_dtype(model, compute_dtype)
    return model


def with_dtype(model, compute_dtype: str):
    """``model`` itself if it already computes in ``compute_dtype``, else a converted copy."""
    from pcm.nn.networks import StackedMLP

    if compute_dtype not in COMPUTE_DTYPES:
        raise ParameterError("compute_dtype", f"expected one of {sorted(COMPUTE_DTYPES)}")
    policy = COMPUTE_DTYPES[compute_dtype]
    if model.dtype_policy.name == policy:
        return model
    new = StackedMLP(model.n_networks, model.hidden_units, n_inputs=model.n_inputs,
                     input_layer=model.has_input_layer, targets=model.targets,
                     negative_slope=model.negative_slope, seed=model.seed, dtype=policy)
    for src, dst in zip(model.weights, new.weights, strict=True):
        dst.assign(np.asarray(src).astype(dst.dtype))
    return new


def export_networks(model, out_dir: str | os.PathLike, *,
                    labels: Sequence[str] | None = None) -> list[Path]:
    """Write every network of a stack as its own plain ``.keras`` model.

    Files are named after the network's output label (``tphystnd-691.39.keras``);
    if several networks predict the same output, ``_<n>`` is appended. Each is a
    ``keras.Sequential`` of Dense + LeakyReLU layers (mask folded in), loadable
    with ``keras.saving.load_model(path, safe_mode=True)`` without :mod:`pcm`.

    Returns
    -------
    list of Path
        The written files, in network order.
    """
    out_dir = Path(out_dir)
    if labels is None:
        names = output_labels()
        labels = [names[t] for t in model.targets]
    if len(labels) != model.n_networks:
        raise ParameterError("labels", f"need {model.n_networks} labels, got {len(labels)}")
    dup = len(set(labels)) != len(labels)
    paths = []
    for n, lab in enumerate(labels):
        path = out_dir / (f"{lab}_{n}.keras" if dup else f"{lab}.keras")
        with atomic_path(path) as tmp:
            model.export_network(n).save(tmp)
        paths.append(path)
    return paths

