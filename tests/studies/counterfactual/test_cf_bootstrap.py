"""Source-clustered bootstrap: equals an obviously-correct Python loop on the same draws."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medrepro.studies.counterfactual.bootstrap import (
    bootstrap_replicates,
    clustered_bootstrap_ci,
    paired_clustered_bootstrap_diff,
)
from medrepro.errors import InputError


def _percentile_linear(xs, q):
    """numpy's default ('linear') percentile, written out."""
    s = sorted(xs)
    pos = (len(s) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def _slow(values, clusters, iterations, seed, chunk=1024, values_b=None):
    keys = sorted(set(clusters))
    pos = {k: i for i, k in enumerate(keys)}
    sums, cnts, sums_b = [0.0] * len(keys), [0] * len(keys), [0.0] * len(keys)
    for j, (v, c) in enumerate(zip(values, clusters)):
        sums[pos[c]] += float(v)
        cnts[pos[c]] += 1
        if values_b is not None:
            sums_b[pos[c]] += float(values_b[j])
    rng = np.random.default_rng(seed)
    reps, done = [], 0
    while done < iterations:
        m = min(chunk, iterations - done)
        for row in rng.integers(0, len(keys), size=(m, len(keys))).tolist():
            s = sum(sums[i] for i in row)
            n = sum(cnts[i] for i in row)
            if values_b is None:
                reps.append(s / n)
            else:
                reps.append(s / n - sum(sums_b[i] for i in row) / n)
        done += m
    est = sum(values) / len(values)
    if values_b is not None:
        est -= sum(values_b) / len(values_b)
    return est, _percentile_linear(reps, 2.5), _percentile_linear(reps, 97.5), reps


@pytest.fixture
def data():
    rng = np.random.default_rng(7)
    n_src = 60
    sizes = rng.integers(1, 6, n_src)
    clusters = [f"src{i:03d}" for i, k in enumerate(sizes) for _ in range(k)]
    order = rng.permutation(len(clusters))  # pairs not grouped by source
    clusters = [clusters[i] for i in order]
    values = (rng.random(len(clusters)) < 0.4).astype(float)
    jac = rng.random(len(clusters))
    return values, jac, clusters


@pytest.mark.parametrize("iterations", [1, 999, 2500])
def test_equals_slow_loop_on_same_draws(data, iterations):
    values, jac, clusters = data
    for v in (values, jac):
        est, lo, hi = clustered_bootstrap_ci(v, clusters, iterations=iterations, seed=42)
        s_est, s_lo, s_hi, s_reps = _slow(list(v), clusters, iterations, 42)
        assert abs(est - s_est) <= 1e-12 and abs(lo - s_lo) <= 1e-12 and abs(hi - s_hi) <= 1e-12
        reps = bootstrap_replicates(v, clusters, iterations=iterations, seed=42)
        assert np.max(np.abs(reps - np.array(s_reps))) <= 1e-12


def test_defaults_and_rng_restart(data):
    values, _, clusters = data
    a = clustered_bootstrap_ci(values, clusters)
    b = clustered_bootstrap_ci(values, clusters, iterations=10000, seed=42, chunk=1024, alpha=0.05)
    assert a == b  # fresh default_rng(seed) per call
    assert a != clustered_bootstrap_ci(values, clusters, seed=43)
    assert a[0] == pytest.approx(values.mean(), abs=1e-15)
    assert a[1] <= a[0] <= a[2]


def test_chunking_does_not_change_the_draws(data):
    values, _, clusters = data
    r1 = bootstrap_replicates(values, clusters, iterations=3000, seed=1, chunk=1024)
    r2 = bootstrap_replicates(values, clusters, iterations=3000, seed=1, chunk=77)
    assert np.array_equal(r1, r2)


def test_input_order_irrelevant_keys_sorted(data):
    values, _, clusters = data
    perm = np.random.default_rng(0).permutation(len(values))
    a = clustered_bootstrap_ci(values, clusters, iterations=2000)
    b = clustered_bootstrap_ci(values[perm], [clusters[i] for i in perm], iterations=2000)
    assert np.allclose(a, b, rtol=0, atol=1e-12)


def test_degenerate_cases():
    est, lo, hi = clustered_bootstrap_ci([0.0, 1.0, 1.0], ["a", "a", "a"], iterations=100)
    assert est == lo == hi == pytest.approx(2 / 3)
    assert clustered_bootstrap_ci([1.0] * 5, list("abcde"), iterations=50) == (1.0, 1.0, 1.0)
    with pytest.raises(InputError):
        clustered_bootstrap_ci([], [])
    with pytest.raises(InputError):
        clustered_bootstrap_ci([1.0, 2.0], ["a"])
    with pytest.raises(InputError):
        clustered_bootstrap_ci([1.0, float("nan")], ["a", "b"])
    with pytest.raises(InputError):
        clustered_bootstrap_ci([1.0], ["a"], iterations=0)


def test_paired_diff_equals_slow_loop(data):
    values, jac, clusters = data
    d = paired_clustered_bootstrap_diff(values, jac, clusters, iterations=1500, seed=42)
    s = _slow(list(values), clusters, 1500, 42, values_b=list(jac))
    assert np.allclose(d, s[:3], rtol=0, atol=1e-12)


def test_paired_diff_properties(data):
    values, jac, clusters = data
    assert paired_clustered_bootstrap_diff(jac, jac, clusters, iterations=500) == (0.0, 0.0, 0.0)
    d, lo, hi = paired_clustered_bootstrap_diff(jac + 0.1, jac, clusters, iterations=500)
    assert d == pytest.approx(0.1) and lo == pytest.approx(0.1) and hi == pytest.approx(0.1)
    # paired CI is narrower than the difference of two independent-looking CIs
    noisy = np.clip(jac + np.random.default_rng(1).normal(0, 0.05, jac.size), 0, 1)
    d, lo, hi = paired_clustered_bootstrap_diff(noisy, jac, clusters, iterations=2000)
    _, alo, ahi = clustered_bootstrap_ci(noisy, clusters, iterations=2000)
    assert hi - lo < (ahi - alo) / 2
    with pytest.raises(InputError):
        paired_clustered_bootstrap_diff([1.0, 2.0], [1.0], ["a", "b"])
