"""The selection rules beyond a threshold: knockoffs and the conditional screen, on
hand-made problems whose answer is known (a noisy copy of a driver must be dropped)."""

from __future__ import annotations

import numpy as np
import pytest

from pcm.errors import ParameterError
from pcm.method.ranking import (
    adaptive_weights,
    gradient_input,
    integrated_gradients,
    selection_frequency,
    weighted_start,
)
from pcm.method.selection import (
    elimination_ranking,
    fit_gaussian_knockoffs,
    knockoff_diagonal,
    knockoff_select,
    knockoff_threshold,
    partial_f_screen,
    sample_knockoffs,
)


def _copy_problem(n=4000, extra=1, seed=0):
    """x1, x2 drivers; x3 a copy of x1 at r = 0.95; further inputs independent noise."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3 + extra))
    x[:, 2] = 0.95 * x[:, 0] + np.sqrt(1 - 0.95 ** 2) * rng.standard_normal(n)
    y = np.sin(x[:, 0]) + 0.5 * x[:, 1] ** 2 + 0.1 * rng.standard_normal(n)
    return x, y[:, None]


def test_screen_drops_the_copy_and_the_noise_and_keeps_the_drivers():
    x, y = _copy_problem(extra=2)
    masks, p = partial_f_screen(x, y, np.ones((1, 5), dtype=bool), alpha=0.01)
    assert masks[0].tolist() == [True, True, False, False, False]
    assert p[0, 0] < 1e-6 and p[0, 1] < 1e-6
    # an input that was never kept stays out, and its p-value is NaN
    masks, p = partial_f_screen(x, y, np.array([[True, True, False, True, False]]))
    assert masks[0].tolist() == [True, True, False, False, False] and np.isnan(p[0, 2])


def test_screen_keeps_the_copy_when_the_driver_is_not_kept():
    x, y = _copy_problem()
    masks, _ = partial_f_screen(x, y, np.array([[False, True, True, False]]))
    assert masks[0].tolist() == [False, True, True, False]  # the proxy stands in


def test_screen_min_share_drops_a_significant_but_negligible_driver():
    x, y = _copy_problem(extra=1)
    y = y + 0.05 * x[:, 3:4]  # x4: a real driver worth 0.3 % of the variance
    everything = np.ones((1, 4), dtype=bool)
    kept, p = partial_f_screen(x, y, everything, alpha=0.01)
    assert kept[0].tolist() == [True, True, False, True] and p[0, 3] < 1e-6  # significant
    kept, _ = partial_f_screen(x, y, everything, alpha=0.01, min_share=0.001)
    assert kept[0].tolist() == [True, True, False, True]
    kept, _ = partial_f_screen(x, y, everything, alpha=0.01, min_share=0.01)
    assert kept[0].tolist() == [True, True, False, False]  # the copy and x4 go, not x1, x2
    with pytest.raises(ParameterError, match="screen_min_share"):
        partial_f_screen(x, y, everything, min_share=1.0)


def test_elimination_ranking_puts_the_drivers_first_and_the_copy_after_them():
    x, y = _copy_problem(extra=3)  # x1, x2 drivers; x3 a copy of x1; x4-x6 noise
    candidates = np.array([[True, True, True, True, True, False]])
    scores = elimination_ranking(x, y, candidates)
    assert scores[0, 5] == 0  # not a candidate
    assert sorted(scores[0, :5]) == [0.2, 0.4, 0.6, 0.8, 1.0]  # step / candidates
    assert set(np.argsort(-scores[0])[:2]) == {0, 1}  # the drivers outlast the copy
    # the path is the screen's: the screen stops where its kept inputs are the top ones
    kept, _ = partial_f_screen(x, y, candidates, alpha=0.01)
    assert kept[0].tolist() == (scores[0] >= 0.8).tolist()


def test_screen_replays_the_ranking_walk_of_the_same_samples(monkeypatch):
    from pcm.method import selection

    x, y = _copy_problem(extra=3, seed=2)
    y = np.column_stack([y[:, 0], x[:, 3] + 0.3 * x[:, 1]])  # two outputs
    candidates = np.ones((2, 6), dtype=bool)
    selection._LAST_WALK.clear()
    walked = partial_f_screen(x, y, candidates, alpha=0.01, min_share=0.005)
    elimination_ranking(x, y, candidates)

    def no_walk(*args):
        raise AssertionError("walked again")

    monkeypatch.setattr(selection, "_eliminations", no_walk)
    replayed = partial_f_screen(x, y, candidates, alpha=0.01, min_share=0.005)
    for a, b in zip(walked, replayed, strict=True):
        np.testing.assert_array_equal(a, b)
    other = candidates.copy()
    other[0, 5] = False  # other candidates: another walk, not the recorded one
    with pytest.raises(AssertionError, match="walked again"):
        partial_f_screen(x, y, other)


def test_knockoff_threshold_reference_example():
    w = np.array([5.0, 4.0, 3.0, -1.0, 0.5, -0.5])
    assert knockoff_threshold(w, 0.34) == 3.0
    assert knockoff_threshold(w, 0.2) == np.inf  # knockoff+ needs more discoveries
    assert knockoff_threshold(w, 0.34, plus=False) == 1.0  # (0 + 1) / 3 <= 0.34
    with pytest.raises(ParameterError, match="knockoff_fdr"):
        knockoff_threshold(w, 0.0)


def test_knockoffs_have_the_exchangeable_covariance():
    rng = np.random.default_rng(1)
    n, p = 20000, 6
    z = rng.standard_normal((n, p))
    x = np.cumsum(z, axis=1) / np.sqrt(np.arange(1, p + 1))  # correlated columns
    x[:, 3] = 2.5  # a constant input is copied
    fit = fit_gaussian_knockoffs(x)
    xk = sample_knockoffs(fit, x, seed=0)
    np.testing.assert_array_equal(xk[:, 3], x[:, 3])
    v = fit.varying
    c = np.corrcoef(np.hstack([x[:, v], xk[:, v]]), rowvar=False)
    k = int(v.sum())
    np.testing.assert_allclose(c[k:, k:], c[:k, :k], atol=0.03)  # same correlations
    off = c[:k, k:]
    np.testing.assert_allclose(off - np.diag(np.diag(off)),
                               c[:k, :k] - np.diag(np.diag(c[:k, :k])), atol=0.03)
    np.testing.assert_allclose(np.diag(off), 1 - fit.s, atol=0.03)
    assert np.all(fit.s > 0.05)  # coordinate ascent, not the tiny equicorrelated s


def test_knockoff_diagonal_is_feasible_and_beats_equicorrelation():
    corr = np.array([[1.0, 0.95, 0.2], [0.95, 1.0, 0.2], [0.2, 0.2, 1.0]])
    s = knockoff_diagonal(corr)
    assert np.linalg.eigvalsh(2 * corr - np.diag(s)).min() > 0
    assert s.sum() > 3 * min(1.0, 2 * np.linalg.eigvalsh(corr).min())


def test_knockoff_filter_drops_the_copy_of_a_driver():
    rng = np.random.default_rng(3)
    n, p = 3000, 40
    x = rng.standard_normal((n, p))
    x[:, 10] = 0.95 * x[:, 0] + np.sqrt(1 - 0.95 ** 2) * rng.standard_normal(n)
    y = x[:, :10] @ np.linspace(1.0, 0.5, 10) + 0.5 * rng.standard_normal(n)
    xk = sample_knockoffs(fit_gaussian_knockoffs(x), x, seed=4)
    beta = np.linalg.lstsq(np.hstack([x, xk]), y, rcond=None)[0]
    w = np.abs(beta[:p]) - np.abs(beta[p:])
    selected, t = knockoff_select(w[None], 0.2)
    assert np.isfinite(t[0])
    assert selected[0, :10].all()  # every driver
    assert not selected[0, 10]  # not the copy of x1
    assert selected[0, 10:].sum() <= 2


def test_gradient_rankings_and_adaptive_weights_on_a_known_function():
    # f(x) = 3 x1 + x2 ** 2 (gradient 3, 2 x2); x3 unused
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 3))
    grad = np.stack([np.full(500, 3.0), 2 * x[:, 1], np.zeros(500)], axis=1)[None]
    gi = gradient_input(grad, x)
    np.testing.assert_allclose(gi[0], [3 * np.abs(x[:, 0]).mean(), 2 * (x[:, 1] ** 2).mean(),
                                       0.0])
    alphas = (np.arange(4) + 0.5) / 4
    path = np.stack([np.stack([np.full(500, 3.0), 2 * a * x[:, 1], np.zeros(500)],
                              axis=1)[None] for a in alphas])
    ig = integrated_gradients(path, x)  # completeness: IG_2 = x2 ** 2 exactly
    np.testing.assert_allclose(ig[0], [3 * np.abs(x[:, 0]).mean(), (x[:, 1] ** 2).mean(), 0.0])
    w = adaptive_weights(np.array([[1.0, 0.1, 0.0]]))
    assert w[0, 0] == pytest.approx(1.0) and w[0, 1] == pytest.approx(1.001 / 0.101)
    assert w[0, 2] == pytest.approx(1001.0)
    kernel = rng.standard_normal((1, 3, 4))
    scaled, mask = weighted_start(kernel, w)
    np.testing.assert_allclose(scaled * mask[:, :, None], kernel)


def test_selection_frequency_counts_relative_rule_votes():
    runs = np.array([[[1.0, 0.5, 0.1]], [[1.0, 0.2, 0.4]], [[0.35, 1.0, 0.1]]])
    np.testing.assert_allclose(selection_frequency(runs, 0.3),
                               [[1.0, 2 / 3, 1 / 3]])
