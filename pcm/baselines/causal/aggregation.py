"""From per-column PC1 links to the parents of each output: the published rules.

Two rules turn the links found in each analysed grid column into one set of
parents per output.

``"quantile"`` (the published causally-informed networks, Iglesias-Suarez et al. 2024)
    1. The *share* of input ``i`` for output ``o`` is the fraction of ALL analysed
       columns in which PC1 found the link ``i(t-1) -> o(t)``; a column where the
       output or the input is constant counts as "no link" (it stays in the
       denominator). The reference takes a plain mean over columns (no area
       weights); shares below :data:`SHARE_FLOOR` are raised to it, so that the
       Box-Cox transform is defined.
    2. The 94 shares of one output are Box-Cox transformed (the transform's
       parameter fitted by maximum likelihood, :func:`scipy.stats.boxcox`) and
       standardised (z-scores, population standard deviation).
    3. Input ``i`` is a parent where ``z_i > -ppf(1 - q)``, ``ppf`` the
       standard-normal quantile function. ``q = 0`` keeps every input
       (threshold ``-inf``); the threshold rises with ``q``, so **a larger q keeps
       fewer parents** (the published ``q = 0.95`` of PHQ at 87.82 hPa keeps 5
       parents, ``q = 0.05`` of PHQ at 379.1 hPa keeps 88).
    An output whose shares all sit at the floor (no link in any column, e.g. a
    tendency that is zero everywhere) has no parents whatever ``q``.

``"share"`` (this book's earlier rule)
    keep a link found in at least ``share`` of the area-weighted columns where it
    could be tested (:func:`pcm.baselines.causal.discovery.aggregate_links`).

Everything here is a pure numpy/scipy function.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

__all__ = ["SHARE_FLOOR", "RULES", "quantile_grid", "link_shares", "boxcox_zscores",
           "quantile_threshold", "quantile_parents", "quantile_masks"]

#: Shares below this are raised to it before the Box-Cox transform (reference).
SHARE_FLOOR = 1e-5

#: Aggregation rules of the causal baseline (parameter ``causal_rule``).
RULES = ("quantile", "share")


def quantile_grid(n: int) -> np.ndarray:
    """The candidate quantiles ``0, 1/n, ..., (n-1)/n``; ``n = 20`` is the reference grid.

    The published per-output quantiles all lie on ``0, 0.05, ..., 0.95``.
    """
    if int(n) < 1:
        raise ValueError(f"need at least one candidate quantile, got {n}")
    return np.round(np.arange(int(n)) / int(n), 6)


def link_shares(found: np.ndarray, tested: np.ndarray | None = None, *,
                floor: float = SHARE_FLOOR) -> np.ndarray:
    """Share of ALL analysed columns in which each link was found, floored.

    Parameters
    ----------
    found : np.ndarray
        bool ``[column, n_outputs, n_inputs]``.
    tested : np.ndarray, optional
        bool, same shape: the link could be tested. A link found but not tested
        cannot occur; untested links count as "no link" (they are NOT left out
        of the denominator).
    floor : float
        Smallest share returned.

    Returns
    -------
    np.ndarray
        float ``[n_outputs, n_inputs]`` in ``[floor, 1]``.
    """
    found = np.asarray(found, dtype=bool)
    if found.ndim != 3 or found.shape[0] < 1:
        raise ValueError(f"expected found [column, output, input] with >= 1 column, "
                         f"got {found.shape}")
    if tested is not None:
        found = found & np.asarray(tested, dtype=bool)
    return np.maximum(found.mean(axis=0), float(floor))


def boxcox_zscores(shares: np.ndarray, *, floor: float = SHARE_FLOOR) -> np.ndarray:
    """Box-Cox transformed, standardised shares of one output (``[n_inputs]``).

    The Box-Cox parameter is fitted by maximum likelihood
    (:func:`scipy.stats.boxcox`); the z-scores use the population standard
    deviation. Shares that are all equal have no spread: their z-scores are 0,
    except that all-floor shares (no link anywhere) give ``-inf`` (never a parent).
    """
    shares = np.maximum(np.asarray(shares, dtype=np.float64), float(floor))
    if shares.ndim != 1:
        raise ValueError(f"expected the shares of one output [n_inputs], got {shares.shape}")
    if np.all(shares <= floor):
        return np.full(shares.shape, -np.inf)
    if np.ptp(shares) <= 1e-12 * shares.max():
        return np.zeros(shares.shape)
    transformed, _ = stats.boxcox(shares)
    spread = transformed.std()
    if not spread > 0:
        return np.zeros(shares.shape)
    return (transformed - transformed.mean()) / spread


def quantile_threshold(q: float) -> float:
    """The z-score an input must exceed to be kept at quantile ``q``: ``-ppf(1 - q)``."""
    if not 0.0 <= float(q) < 1.0:
        raise ValueError(f"the quantile q must lie in [0, 1), got {q}")
    return float(-stats.norm.ppf(1.0 - float(q)))


def quantile_parents(shares: np.ndarray, q: float, *, floor: float = SHARE_FLOOR) -> np.ndarray:
    """Parents of one output by the quantile rule: ``boxcox_z(shares) > -ppf(1 - q)``.

    Parameters
    ----------
    shares : np.ndarray
        float ``[n_inputs]`` link shares of one output (:func:`link_shares`).
    q : float
        Quantile in ``[0, 1)``; larger keeps fewer parents.

    Returns
    -------
    np.ndarray
        bool ``[n_inputs]``.
    """
    return boxcox_zscores(shares, floor=floor) > quantile_threshold(q)


def quantile_masks(shares: np.ndarray, quantiles, *, floor: float = SHARE_FLOOR) -> np.ndarray:
    """Masks of every output at every candidate quantile.

    Parameters
    ----------
    shares : np.ndarray
        float ``[n_outputs, n_inputs]``.
    quantiles : sequence of float
        Candidate ``q`` values.

    Returns
    -------
    np.ndarray
        bool ``[n_outputs, n_quantiles, n_inputs]``.
    """
    shares = np.asarray(shares, dtype=np.float64)
    if shares.ndim != 2:
        raise ValueError(f"expected shares [output, input], got {shares.shape}")
    limits = np.array([quantile_threshold(q) for q in quantiles])
    z = np.stack([boxcox_zscores(row, floor=floor) for row in shares])
    return z[:, None, :] > limits[None, :, None]
