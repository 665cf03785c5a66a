"""Selections beyond a threshold on the masking vector: the pure rules (numpy and scipy).

Model-X knockoffs (Candes, Fan, Janson and Lv 2018)
    :func:`fit_gaussian_knockoffs` fits second-order (Gaussian) knockoffs of the
    inputs; :func:`sample_knockoffs` draws them; a pre-masking network trained on
    ``[X, X~]`` gives each input the statistic ``W_j = v_j - v~_j`` (its masking-vector
    entry minus its knockoff's) and :func:`knockoff_threshold` the data-dependent cut
    at a target false-discovery rate. The knockoff variables are built here, not with
    ``knockpy``: its only release is a source archive that compiles Cython
    extensions and depends on ``cvxpy`` and ``jlc-choldate`` (compiled), while the
    Gaussian construction needed is a few lines of linear algebra. The diagonal
    ``s`` comes from coordinate ascent on the semidefinite constraint
    ``2 Sigma - diag(s) >= 0`` started from the equicorrelated solution
    (:func:`knockoff_diagonal`); with strongly correlated profiles the equicorrelated
    ``s`` alone would be ~0 and the knockoffs copies of the inputs.
Conditional screen
    :func:`partial_f_screen`: for each output, backward elimination among the kept
    inputs; an input is dropped while its partial F-test (its linear and squared
    terms, given those of the other kept inputs) is not significant at ``alpha``, or
    (``min_share > 0``) while dropping it loses less than ``min_share`` of the output's
    variance. A proxy that is a noisy copy of a kept driver adds nothing given it and
    goes; the test is blind to effects that only act through interactions. The share is
    an effect size: unlike a significance level it does not grow stricter with the
    number of samples, where a misspecified (linear and squared) fit makes ever smaller
    contributions of non-drivers significant.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from scipy import stats
from threadpoolctl import threadpool_limits

from pcm.errors import ParameterError

__all__ = ["SELECTIONS", "SCREENS", "GaussianKnockoffs", "knockoff_diagonal",
           "fit_gaussian_knockoffs", "sample_knockoffs", "knockoff_threshold",
           "knockoff_select", "partial_f_screen", "elimination_ranking"]

#: Values of the run parameter ``selection`` added here (the rest: :mod:`pcm.method.masking`).
SELECTIONS = ("stability", "knockoff")

#: Values of the run parameter ``screen``.
SCREENS = ("none", "partial_correlation")


@dataclass(frozen=True)
class GaussianKnockoffs:
    """Fitted Gaussian knockoff sampler of standardised inputs.

    ``mean, scale`` standardise the varying inputs (``varying``); ``shift`` is
    ``Sigma^-1 diag(s)`` and ``root`` a square root of the conditional covariance
    ``2 diag(s) - diag(s) Sigma^-1 diag(s)``; constant inputs are copied.
    """

    mean: np.ndarray
    scale: np.ndarray
    varying: np.ndarray
    s: np.ndarray
    shift: np.ndarray
    root: np.ndarray


def knockoff_diagonal(corr: np.ndarray, *, sweeps: int = 10, margin: float = 1e-3) -> np.ndarray:
    """``s`` with ``2 corr - diag(s)`` positive definite, each ``s_j <= 1``, made large.

    Starts from the equicorrelated ``s = min(1, 2 lambda_min)`` and raises each
    coordinate in turn to its largest feasible value, ``1 / (A^-1)_jj`` with ``A``
    the constraint matrix without ``s_j`` (times ``1 - margin``).
    """
    corr = np.asarray(corr, dtype=np.float64)
    p = corr.shape[0]
    lam = float(np.linalg.eigvalsh(corr).min())
    s = np.full(p, max(0.0, min(1.0, 2.0 * lam) * (1.0 - margin)))
    two = 2.0 * corr
    for _ in range(int(sweeps)):
        for j in range(p):
            a = two - np.diag(s)
            a[j, j] += s[j]
            inv_jj = float(np.linalg.inv(a)[j, j])
            s[j] = min(1.0, (1.0 - margin) / inv_jj) if inv_jj > 0 else 0.0
    return s


def fit_gaussian_knockoffs(x: np.ndarray, *, shrinkage: float = 1e-3) -> GaussianKnockoffs:
    """Fit the Gaussian knockoff sampler to samples ``x (samples, inputs)``.

    The correlation matrix is shrunk towards the identity by ``shrinkage`` (it is
    singular when an input is a combination of others).
    """
    x = np.asarray(x, dtype=np.float64)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    varying = scale > 1e-12 * max(1.0, float(np.abs(mean).max(initial=0.0)))
    z = (x[:, varying] - mean[varying]) / scale[varying]
    corr = np.atleast_2d(np.corrcoef(z, rowvar=False)) if z.shape[1] else np.zeros((0, 0))
    corr = (1.0 - shrinkage) * corr + shrinkage * np.eye(corr.shape[0])
    s = knockoff_diagonal(corr)
    inv = np.linalg.inv(corr)
    shift = inv * s[None, :]  # Sigma^-1 diag(s)
    cov = 2.0 * np.diag(s) - np.diag(s) @ inv @ np.diag(s)
    vals, vecs = np.linalg.eigh((cov + cov.T) / 2.0)
    root = vecs * np.sqrt(np.clip(vals, 0.0, None))[None, :]
    return GaussianKnockoffs(mean, scale, varying, s, shift, root)


def sample_knockoffs(fit: GaussianKnockoffs, x: np.ndarray, seed: int) -> np.ndarray:
    """Knockoffs ``X~`` of ``x`` (same shape, units and dtype); constant inputs copied."""
    x = np.asarray(x)
    out = x.astype(np.float64, copy=True)
    v = fit.varying
    z = (out[:, v] - fit.mean[v]) / fit.scale[v]
    noise = np.random.default_rng([int(seed), 29]).standard_normal(z.shape)
    zk = z - z @ fit.shift + noise @ fit.root.T
    out[:, v] = fit.mean[v] + fit.scale[v] * zk
    return out.astype(x.dtype)


def knockoff_threshold(w: np.ndarray, fdr: float, *, plus: bool = True) -> float:
    """Knockoff(+) threshold: the smallest ``t`` in ``{|W_j| > 0}`` with estimated FDP <= ``fdr``.

    ``FDP(t) = (offset + #{W_j <= -t}) / max(1, #{W_j >= t})``, offset 1 (knockoff+)
    or 0; ``inf`` (select nothing) when no ``t`` qualifies.
    """
    if not 0 < float(fdr) < 1:
        raise ParameterError("knockoff_fdr", f"must lie in (0, 1), got {fdr}")
    w = np.asarray(w, dtype=np.float64)
    offset = 1.0 if plus else 0.0
    for t in np.sort(np.unique(np.abs(w[w != 0]))):
        if (offset + np.sum(w <= -t)) / max(1.0, float(np.sum(w >= t))) <= fdr:
            return float(t)
    return float("inf")


def knockoff_select(w: np.ndarray, fdr: float, *, plus: bool = True) -> tuple[np.ndarray,
                                                                              np.ndarray]:
    """Per output row of ``w (outputs, inputs)``: the selection ``W >= T`` and ``T``."""
    w = np.atleast_2d(np.asarray(w, dtype=np.float64))
    t = np.array([knockoff_threshold(row, fdr, plus=plus) for row in w])
    return w >= t[:, None], t


def _basis(x: np.ndarray) -> np.ndarray:
    """Standardised linear and squared term of each column: ``(samples, 2 * inputs)``."""
    z = (x - x.mean(axis=0)) / np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
    sq = z * z
    sq = (sq - sq.mean(axis=0)) / np.where(sq.std(axis=0) > 0, sq.std(axis=0), 1.0)
    return np.stack([z, sq], axis=2).reshape(len(x), -1)


def _drop_one_tests(gram_full: np.ndarray, xty_full: np.ndarray, yty: float, n: int,
                    kept: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Partial F-test of each kept input's two terms in the full model: p-values and the
    increase of the residual sum of squares when the input is dropped.

    The least-squares fit is solved on the Gram matrix of all candidate columns (intercept
    first, then the two terms of each input), restricted to the intercept and the kept
    inputs' terms: no pass over the samples per step. One eigendecomposition of the
    restricted Gram matrix gives its pseudo-inverse and its rank (= the rank of the design).
    """
    cols = np.concatenate([[0], 1 + np.array([[2 * j, 2 * j + 1] for j in kept]).reshape(-1)])
    gram = gram_full[np.ix_(cols, cols)]
    xty = xty_full[cols]
    w, v = np.linalg.eigh(gram)
    tol = max(float(w.max()), 0.0) * len(cols) * np.finfo(float).eps
    big = w > tol
    gram_inv = (v[:, big] / w[big]) @ v[:, big].T
    beta = gram_inv @ xty
    dof = max(1, n - int(big.sum()))
    # residual sum of squares of the projection: y'y - beta' X'y (no pass over the samples)
    sigma2 = max((yty - float(beta @ xty)) / dof, 1e-300)
    k = np.arange(len(kept))
    first, second = 1 + 2 * k, 2 + 2 * k
    blocks = np.stack([np.stack([gram_inv[first, first], gram_inv[first, second]], -1),
                       np.stack([gram_inv[second, first], gram_inv[second, second]], -1)], -2)
    b = np.stack([beta[first], beta[second]], -1)
    increase = np.einsum("ki,kij,kj->k", b, np.linalg.pinv(blocks), b)
    return stats.f.sf(increase / 2.0 / sigma2, 2, dof), increase


def _eliminations(x: np.ndarray, y: np.ndarray, candidates: np.ndarray
                  ) -> Iterator[tuple[int, float, Iterator[tuple[list[int], np.ndarray,
                                                                np.ndarray, int]]]]:
    """Backward elimination of every output's candidate inputs, one step at a time.

    Yields ``(output, total sum of squares, steps)``; each step is ``(kept, p, increase,
    worst)``: the inputs still in, their partial F-test p-values and residual-sum-of-squares
    increases, and the position in ``kept`` of the input whose loss costs least (the same
    as the largest p, but not tied where the p-values of strong inputs underflow to 0). That
    input leaves when the next step is asked for; a caller stops the walk by not asking.

    The callers hold BLAS to one thread while they walk: each step solves small systems
    (at most 2 x inputs + 1 unknowns), where threads cost more than they give, and beside
    another busy process (``make book`` runs its sweeps beside the pipeline) two BLAS
    threads made the walk 40 times slower on 2 cores (8 outputs of the ``tutorial`` data:
    75.7 s against 1.9 s with one thread).
    """
    design = np.column_stack([np.ones(len(x)), _basis(np.asarray(x, dtype=np.float64))])
    gram_full = design.T @ design
    y = np.asarray(y, dtype=np.float64)

    def steps(xty: np.ndarray, yty: float, n: int, kept: list[int]):
        while kept:
            p, increase = _drop_one_tests(gram_full, xty, yty, n, kept)
            worst = int(np.argmin(increase))
            yield kept, p, increase, worst
            kept.pop(worst)

    for o in range(candidates.shape[0]):
        target = y[:, o] - y[:, o].mean()
        xty, yty = design.T @ target, float(target @ target)
        yield o, yty, steps(xty, yty, len(target), np.flatnonzero(candidates[o]).tolist())


#: The last complete elimination walk (:func:`elimination_ranking`), under the digest of its
#: samples and candidates. The screen of the same samples and candidates walks a prefix of
#: the same path (``ranking: screen`` then ``screen`` on every candidate, as ``screen_all``
#: does), so it reads the recorded steps instead of computing them again.
_LAST_WALK: dict[str, list[tuple[float, list[tuple[list[int], np.ndarray, np.ndarray, int]]]]] = {}


def _walk_key(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        digest.update(f"{a.dtype}{a.shape}".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def _replay(walk: list) -> Iterable[tuple[int, float, Iterator]]:
    """The steps of a recorded walk, as :func:`_eliminations` yields them."""
    for o, (yty, steps) in enumerate(walk):
        yield o, yty, iter(steps)


def partial_f_screen(x: np.ndarray, y: np.ndarray, masks: np.ndarray,
                     alpha: float = 0.01, min_share: float = 0.0
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Drop kept inputs that add nothing given the other kept inputs (backward elimination).

    Parameters
    ----------
    x : array ``(samples, inputs)``
    y : array ``(samples, outputs)``
        Targets, column ``o`` for row ``o`` of ``masks``.
    masks : array of bool ``(outputs, inputs)``
        The selection to screen.
    alpha : float
        Significance level: while the least significant kept input has p > alpha, it
        is dropped and the test repeated on the rest.
    min_share : float
        Effect size: the least significant kept input is also dropped while dropping it
        raises the residual sum of squares by less than this share of the output's
        total sum of squares (0: the significance level alone). Every input has the
        same two degrees of freedom, so the input whose loss costs least is also the
        least significant: both rules walk the same elimination path.

    Returns
    -------
    (masks, pvalues)
        The screened masks and, per (output, input), the p-value of the input's last
        test (NaN for inputs never kept).
    """
    if not 0 < float(alpha) < 1:
        raise ParameterError("screen_alpha", f"must lie in (0, 1), got {alpha}")
    if not 0 <= float(min_share) < 1:
        raise ParameterError("screen_min_share", f"must lie in [0, 1), got {min_share}")
    masks = np.asarray(masks, dtype=bool)
    out = masks.copy()
    pvalues = np.full(masks.shape, np.nan)
    walk = _LAST_WALK.get(_walk_key(x, y, masks)) if _LAST_WALK else None
    with threadpool_limits(limits=1, user_api="blas"):  # see _eliminations
        for o, yty, steps in (_eliminations(x, y, masks) if walk is None else _replay(walk)):
            for kept, p, increase, worst in steps:
                pvalues[o, kept] = p
                if p[worst] <= alpha and increase[worst] >= min_share * yty:
                    break
                out[o, kept[worst]] = False
    return out, pvalues


def elimination_ranking(x: np.ndarray, y: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Rank inputs by the order in which backward elimination drops them (last out first).

    The path of :func:`partial_f_screen`, walked to its end: at each step the input whose
    loss raises the residual sum of squares least goes. An input's score is its step
    divided by the number of candidates, so the last input left scores 1 and the first
    to go ``1 / candidates``; inputs that are not candidates score 0.

    Parameters
    ----------
    x : array ``(samples, inputs)``
    y : array ``(samples, outputs)``
    candidates : array of bool ``(outputs, inputs)``
        The inputs that enter each output's elimination.

    Returns
    -------
    array ``(outputs, inputs)``
        Scores in [0, 1]; a larger score ranks higher.

    Notes
    -----
    The walk is kept in memory (the last one only), so that :func:`partial_f_screen` of the
    same samples and candidates replays its first steps instead of computing them again.
    """
    candidates = np.asarray(candidates, dtype=bool)
    scores = np.zeros(candidates.shape)
    walk = []
    with threadpool_limits(limits=1, user_api="blas"):  # see _eliminations
        for o, yty, steps in _eliminations(x, y, candidates):
            total = int(candidates[o].sum())
            recorded = []
            for step, (kept, p, increase, worst) in enumerate(steps, start=1):
                scores[o, kept[worst]] = step / total
                recorded.append((list(kept), p, increase, worst))
            walk.append((yty, recorded))
    _LAST_WALK.clear()  # one walk at a time: a few MB
    _LAST_WALK[_walk_key(x, y, candidates)] = walk
    return scores
