"""The threshold rules of step 3: candidate grid, choice of a threshold, halving schedule.

Pure functions of arrays, used by the search (:mod:`pcm.method.masking`) and the
experiments that re-select thresholds from stored losses. The reference grid is::

    np.round(np.linspace(1e-4, np.percentile(vector, percentile), n_thresholds,
                         endpoint=False), 4)

and ties go to the larger threshold (the sparser mask).
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from pcm.errors import ParameterError

__all__ = ["LOWER_BOUND", "threshold_grid", "threshold_table", "choose_thresholds",
           "relative_thresholds", "masks_from_thresholds", "halving_rounds", "better_half"]

#: Smallest threshold of the grid (reference).
LOWER_BOUND = 1e-4


def threshold_grid(vector: np.ndarray, n_thresholds: int = 20,
                   percentile: float = 70.0) -> np.ndarray:
    """Candidate thresholds of one masking vector (reference grid), ascending, unique.

    ``np.round(np.linspace(1e-4, np.percentile(vector, percentile), n_thresholds,
    endpoint=False), 4)``; values rounded to 0 become 1e-4; duplicates dropped.
    """
    if int(n_thresholds) < 1:
        raise ParameterError("n_thresholds", f"must be >= 1, got {n_thresholds}")
    if not 0 <= float(percentile) <= 100:
        raise ParameterError("percentile", f"must lie in [0, 100], got {percentile}")
    upper = float(np.percentile(np.asarray(vector, dtype=np.float64), percentile))
    grid = np.round(np.linspace(LOWER_BOUND, upper, int(n_thresholds), endpoint=False), 4)
    grid[grid == 0] = LOWER_BOUND
    return np.unique(grid)


def threshold_table(vectors: xr.DataArray, n_thresholds: int = 20,
                    percentile: float = 70.0) -> xr.DataArray:
    """Candidate thresholds of every output, ``threshold_value(output, threshold_index)``.

    Outputs with fewer distinct candidates are padded with NaN at the end.
    """
    values = np.full((vectors.sizes["output"], int(n_thresholds)), np.nan)
    for i, vec in enumerate(vectors.values):
        grid = threshold_grid(vec, n_thresholds, percentile)
        values[i, : len(grid)] = grid
    return xr.DataArray(
        values, dims=("output", "threshold_index"),
        coords={"output": vectors["output"].values,
                "threshold_index": np.arange(int(n_thresholds))},
        name="threshold_value",
        attrs={"long_name": "candidate threshold on the masking vector (NaN: unused slot)",
               "units": "1", "percentile": float(percentile)})


def choose_thresholds(loss: np.ndarray, values: np.ndarray, tolerance: float = 0.0) -> np.ndarray:
    """Per row, the largest threshold whose loss is within ``tolerance`` of the lowest.

    With ``tolerance=0`` this is the reference rule: the lowest loss, ties (and
    NaN slots) resolved to the larger threshold. A positive tolerance is a
    parsimony rule: among candidates whose loss is at most
    ``(1 + tolerance) * min(loss)``, the sparsest mask (largest threshold) wins.

    Parameters
    ----------
    loss, values : array ``(outputs, thresholds)``
        Criterion values and threshold values; NaN marks unused slots.
    tolerance : float
        Relative loss tolerance (>= 0).

    Returns
    -------
    ndarray of int
        Chosen column per row.
    """
    if not tolerance >= 0:
        raise ParameterError("selection_tolerance", f"must be >= 0, got {tolerance!r}")
    loss = np.where(np.isnan(values), np.inf, np.asarray(loss, dtype=np.float64))
    loss = np.where(np.isnan(loss), np.inf, loss)
    chosen = np.zeros(loss.shape[0], dtype=np.int64)
    for i, row in enumerate(loss):
        if np.isfinite(row.min()):
            ok = np.flatnonzero(row <= row.min() + tolerance * abs(row.min()))
            chosen[i] = ok[np.argmax(values[i, ok])]
    return chosen


def relative_thresholds(vectors: np.ndarray, ratio: float) -> np.ndarray:
    """Per output, ``ratio`` times its largest masking-vector entry (the relative rule).

    The mask ``vector > ratio * max(vector)`` keeps the inputs whose entry is more than
    that share of the output's strongest; it needs no training and does not depend on
    the scale of the vector (which λ and the training length change).

    Parameters
    ----------
    vectors : array ``(outputs, inputs)``
        Masking vectors.
    ratio : float
        In [0, 1]; 0 keeps every input with a positive entry, 1 keeps none.
    """
    if not 0.0 <= float(ratio) <= 1.0:
        raise ParameterError("selection_ratio", f"must lie in [0, 1], got {ratio!r}")
    return float(ratio) * np.asarray(vectors, dtype=np.float64).max(axis=1)


def masks_from_thresholds(vectors: xr.DataArray, thresholds) -> xr.DataArray:
    """Binary masks ``mask(output, input) = vector > threshold(output)`` (strict)."""
    t = np.asarray(thresholds, dtype=np.float64).reshape(-1, 1)
    mask = vectors.values > t
    return xr.DataArray(
        mask, dims=("output", "input"), coords={"output": vectors["output"].values,
                                                "input": vectors["input"].values},
        name="mask",
        attrs={"long_name": "input is kept (True) or masked out (False) for the output",
               "units": "1"})


def halving_rounds(n_candidates: int, epochs: int) -> list[int]:
    """Epochs of each successive-halving round: at most ``ceil(log2(n))`` rounds.

    The rounds split ``epochs`` as evenly as possible, the shorter rounds first (they
    train the most networks): 20 candidates and 9 epochs give ``[1, 2, 2, 2, 2]``.
    """
    if int(epochs) < 1 or int(n_candidates) < 1:
        raise ParameterError("search_epochs", f"successive halving needs >= 1 epoch and "
                             f"candidate, got {epochs} and {n_candidates}")
    rounds = max(1, min(int(epochs), math.ceil(math.log2(int(n_candidates)))))
    base, extra = divmod(int(epochs), rounds)
    return [base + (1 if r >= rounds - extra else 0) for r in range(rounds)]


def better_half(outputs: np.ndarray, thresholds: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """Positions of the better half (rounded up) of each output's candidates.

    Lower loss first, ties to the larger threshold; a NaN loss counts as the worst.
    Returned in ascending order.
    """
    outputs, thresholds = np.asarray(outputs), np.asarray(thresholds, dtype=np.float64)
    loss = np.where(np.isnan(loss), np.inf, np.asarray(loss, dtype=np.float64))
    keep = []
    for o in np.unique(outputs):
        idx = np.flatnonzero(outputs == o)
        order = idx[np.lexsort((-thresholds[idx], loss[idx]))]
        keep.extend(order[: math.ceil(len(idx) / 2)].tolist())
    return np.sort(np.array(keep, dtype=int))
