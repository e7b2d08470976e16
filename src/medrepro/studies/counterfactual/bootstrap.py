"""Source-clustered percentile bootstrap, exactly as the benchmark's released scorer.

Algorithm (frozen):

1. group the pair values by cluster (source) id; the cluster keys are sorted with Python's
   ``sorted``;
2. per-cluster sums (Python ``sum`` over the cluster's values in input order) and counts;
3. ``rng = np.random.default_rng(seed)`` -- a fresh generator on every call, so each
   endpoint restarts the RNG;
4. in chunks of ``chunk`` (1024) replicates: ``idx = rng.integers(0, K, size=(m, K))`` with
   ``m = min(chunk, remaining)``; replicate = ``sums[idx].sum(1) / counts[idx].sum(1)``;
5. CI = ``np.percentile(replicates, [100 * alpha / 2, 100 * (1 - alpha / 2)])`` (linear
   interpolation, numpy's default), i.e. [2.5, 97.5] for alpha = 0.05;
6. estimate = ``sum(values) / n`` with Python's ``sum`` (the plain pair mean).

Steps 2 and 6 use the same summation as the released scorer, so estimates and CIs are
bit-identical to it, not only equal to rounding. The chunk size is part of the definition
only through the RNG stream: the draws are consumed in row-major order, so any chunking gives
the same replicates for the same seed.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from medrepro.errors import InputError
from medrepro.metrics.bootstrap import draw_chunks

__all__ = ["cluster_sums", "bootstrap_replicates", "clustered_bootstrap_ci", "paired_clustered_bootstrap_diff"]


def _as_values(values: Any, name: str) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size == 0:
        raise InputError(None, name, "no values", "at least one pair")
    if not np.all(np.isfinite(v)):
        raise InputError(None, name, "non-finite value", "finite numbers")
    return v


def cluster_sums(values: Any, clusters: Sequence[Any], *more_values: Any) -> tuple[np.ndarray, ...]:
    """Return ``(keys, counts, sums, *more_sums)``: sorted cluster keys, pairs per cluster and
    the per-cluster sums of ``values`` (and of each extra value array, same clusters)."""
    v = _as_values(values, "values")
    c = np.asarray(clusters)
    if c.shape[0] != v.size:
        raise InputError(None, "clusters", f"{c.shape[0]} cluster ids for {v.size} values", "one per value")
    arrays = [v]
    for extra in more_values:
        e = _as_values(extra, "values")
        if e.size != v.size:
            raise InputError(None, "values", f"{e.size} values vs {v.size}", "arrays of equal length")
        arrays.append(e)
    members: dict = {}
    for i, key in enumerate(c.tolist()):
        members.setdefault(key, []).append(i)
    keys = sorted(members)
    counts = np.array([len(members[k]) for k in keys], dtype=np.float64)
    sums = []
    for a in arrays:
        vals = a.tolist()
        sums.append(np.array([sum(vals[i] for i in members[k]) for k in keys], dtype=np.float64))
    return (np.array(keys), counts, *sums)


def _mean(v: np.ndarray) -> float:
    """``sum(values) / n`` with Python's ``sum``, as the released scorer computes it."""
    vals = v.tolist()
    return sum(vals) / len(vals)


def _draws(k: int, iterations: int, seed: int, chunk: int):
    """(start, drawn cluster indices) per chunk: the shared frozen draws of medrepro.metrics."""
    if iterations < 1:
        raise InputError(None, "iterations", f"{iterations}", "a positive number of iterations")
    if chunk < 1:
        raise InputError(None, "chunk", f"{chunk}", "a positive chunk size")
    start = 0
    for idx in draw_chunks(k, iterations, seed, chunk):
        yield start, idx
        start += len(idx)


def bootstrap_replicates(values: Any, clusters: Sequence[Any], iterations: int = 10000, seed: int = 42,
                         chunk: int = 1024) -> np.ndarray:
    """The ``iterations`` bootstrap replicates of the pair mean (see module docstring)."""
    _, counts, sums = cluster_sums(values, clusters)
    reps = np.empty(iterations)
    for start, idx in _draws(counts.size, iterations, seed, chunk):
        reps[start:start + len(idx)] = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    return reps


def clustered_bootstrap_ci(values: Any, clusters: Sequence[Any], iterations: int = 10000, seed: int = 42,
                           chunk: int = 1024, alpha: float = 0.05) -> tuple[float, float, float]:
    """``(estimate, lo, hi)``: the pair mean and its source-clustered percentile CI."""
    v = _as_values(values, "values")
    reps = bootstrap_replicates(v, clusters, iterations, seed, chunk)
    lo, hi = np.percentile(reps, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return _mean(v), float(lo), float(hi)


def paired_clustered_bootstrap_diff(values_a: Any, values_b: Any, clusters: Sequence[Any], iterations: int = 10000,
                                    seed: int = 42, chunk: int = 1024, alpha: float = 0.05
                                    ) -> tuple[float, float, float]:
    """``(diff, lo, hi)`` for ``mean(a) - mean(b)`` over the SAME pairs (two models scored on
    identical pair ids; ``clusters`` gives each pair's source). Both means are recomputed on
    the same cluster draws in every replicate (the paired design), so the CI reflects the
    difference's own variability -- used to call ties on the leaderboard (a CI containing 0)."""
    a = _as_values(values_a, "values_a")
    b = _as_values(values_b, "values_b")
    if a.size != b.size:
        raise InputError(None, "values_b", f"{b.size} values vs {a.size}", "the same pairs as values_a")
    _, counts, sa, sb = cluster_sums(a, clusters, b)
    reps = np.empty(iterations)
    for start, idx in _draws(counts.size, iterations, seed, chunk):
        n = counts[idx].sum(axis=1)
        reps[start:start + len(idx)] = sa[idx].sum(axis=1) / n - sb[idx].sum(axis=1) / n
    lo, hi = np.percentile(reps, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return _mean(a) - _mean(b), float(lo), float(hi)
