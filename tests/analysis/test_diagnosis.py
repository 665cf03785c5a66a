"""Ranking failures: proxies of true drivers and unused strong drivers."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from pcm.analysis.diagnosis import explained_share, input_correlation, ranking_failures
from pcm.errors import DataError

INPUTS = ["a", "b", "c", "d", "e", "f", "g", "h"]


def _da(values, name):
    return xr.DataArray(np.asarray(values), dims=("output", "input"),
                        coords={"output": ["y", "z"], "input": INPUTS}, name=name)


@pytest.fixture
def correlation():
    rng = np.random.default_rng(0)
    a, c, d, f, g, h = rng.standard_normal((6, 2000))
    b = a + 0.05 * rng.standard_normal(2000)  # a proxy of a (|r| ~ 0.999)
    e = (c + d) / np.sqrt(2) + 0.05 * rng.standard_normal(2000)  # c + d: no single |r| > 0.75
    return input_correlation(np.stack([a, b, c, d, e, f, g, h], axis=1), INPUTS)


def test_input_correlation_is_signed_and_zero_for_constant_inputs():
    x = np.stack([np.arange(5.0), -2 * np.arange(5.0), np.ones(5)], axis=1)
    corr = input_correlation(x, ["p", "q", "const"]).values
    np.testing.assert_allclose(corr[0, 1], -1.0)
    assert corr[2].tolist() == [0.0, 0.0, 0.0]


def test_explained_share_is_the_r2_of_a_linear_regression(correlation):
    corr = correlation.values
    # e = (c + d) / sqrt 2 + small noise: explained by c and d together, by neither alone
    both = explained_share(corr, [4], [2, 3])[0]
    assert both > 0.99
    assert explained_share(corr, [4], [2])[0] < 0.6
    # collinear regressors (a and its copy b) are fine
    np.testing.assert_allclose(explained_share(corr, [4], [0, 1, 2, 3]), both, atol=1e-3)
    assert explained_share(corr, [4], []).tolist() == [0.0]


def test_input_correlation_rejects_mismatched_labels():
    with pytest.raises(DataError, match=r"expected inputs \[n >= 2, 2\]"):
        input_correlation(np.zeros((4, 3)), ["p", "q"])


def test_proxies_ahead_and_unused_strong_drivers_are_counted(correlation):
    # y: strong drivers a and d, weak driver c; b (proxy of a) and e (a mix of c and d,
    # also a proxy) rank above a; d sits at the non-driver median (unused), and e and c,
    # which the network uses, stand in for it. z: no strong driver, dropped.
    drivers = _da([[1, 0, 1, 1, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0, 0]], "drivers").astype(bool)
    strength = _da([[0.5, 0, 0.001, 0.2, 0, 0, 0, 0], [0.001, 0, 0, 0, 0, 0, 0, 0]],
                   "strength")
    vectors = _da([[0.5, 0.9, 0.05, 0.01, 0.7, 0.01, 0.02, 0.0], [1, 0, 0, 0, 0, 0, 0, 0]],
                  "vectors")
    res = ranking_failures(vectors, drivers, strength, correlation)
    assert res["output"].values.tolist() == ["y"]
    row = res.sel(output="y")
    assert int(row["n_strong"]) == 2
    assert int(row["n_strong_unused"]) == 1  # d: 0.01 <= median of b e f g h (0.02)
    assert int(row["n_unused_stand_in"]) == 1  # d = sqrt(2) e - c, both used
    assert int(row["n_ahead"]) == 2  # b and e are above a
    assert int(row["n_proxy_ahead"]) == 2  # b (copy of a) and e (mix of c and d)
    assert str(row["top_intruder"].values) == "b"
    assert float(row["top_intruder_r2"]) > 0.99


def test_a_perfect_ranking_has_no_failures(correlation):
    drivers = _da([[1, 0, 1, 1, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0, 0]], "drivers").astype(bool)
    strength = _da([[0.5, 0, 0.3, 0.2, 0, 0, 0, 0], [0.9, 0, 0, 0, 0, 0, 0, 0]], "strength")
    vectors = _da([[0.9, 0.1, 0.8, 0.7, 0.0, 0.2, 0.0, 0.0], [1, 0, 0, 0, 0, 0, 0, 0]],
                  "vectors")
    res = ranking_failures(vectors, drivers, strength, correlation)
    assert res["n_ahead"].values.tolist() == [0, 0]
    assert res["n_strong_unused"].values.tolist() == [0, 0]
    assert res["top_intruder"].values.tolist() == ["", ""]


def test_an_unused_driver_with_a_used_near_copy_has_a_stand_in(correlation):
    # y: strong drivers a and d; a is unused while its proxy b is used
    drivers = _da([[1, 0, 0, 1, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0, 0]], "drivers").astype(bool)
    strength = _da([[0.5, 0, 0, 0.2, 0, 0, 0, 0], [0.9, 0, 0, 0, 0, 0, 0, 0]], "strength")
    vectors = _da([[0.0, 0.9, 0.01, 0.8, 0.02, 0.0, 0.01, 0.0], [1, 0, 0, 0, 0, 0, 0, 0]],
                  "vectors")
    row = ranking_failures(vectors, drivers, strength, correlation).sel(output="y")
    assert int(row["n_strong_unused"]) == 1 and int(row["n_unused_stand_in"]) == 1
    assert int(row["n_ahead"]) == 1 and int(row["n_proxy_ahead"]) == 1  # b, above d
