"""Cluster bootstrap shared by every study.

The draw procedure is a released benchmark's frozen one: sort the cluster keys, then
for each chunk of at most ``chunk`` replicates draw ``rng.integers(0, K, size=(m, K))`` from
``numpy.random.default_rng(seed)``. A study whose test units are independent (one sequence per
subject) uses each unit as its own cluster. The same draws give per-run CIs, seed-mean CIs and
paired differences between runs evaluated on the same units.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np


def cluster_index(clusters) -> tuple[np.ndarray, np.ndarray]:
    """Return (sorted unique cluster keys, index of each unit's cluster in those keys)."""
    keys, inverse = np.unique(np.asarray(clusters).astype(str), return_inverse=True)
    return keys, inverse


def draw_chunks(n_clusters: int, iterations: int, seed: int, chunk: int = 1024) -> Iterator[np.ndarray]:
    """Yield (m, K) arrays of drawn cluster indices, chunk by chunk, from a fresh RNG."""
    rng = np.random.default_rng(seed)
    done = 0
    while done < iterations:
        m = min(chunk, iterations - done)
        yield rng.integers(0, n_clusters, size=(m, n_clusters))
        done += m


def cluster_weights(clusters, iterations: int, seed: int, chunk: int = 1024) -> np.ndarray:
    """(iterations, n_units) weights: how often each unit's cluster was drawn in a replicate."""
    keys, inverse = cluster_index(clusters)
    k = len(keys)
    out = np.empty((iterations, len(inverse)), dtype=np.float64)
    row = 0
    for idx in draw_chunks(k, iterations, seed, chunk):
        m = idx.shape[0]
        flat = (idx + np.arange(m)[:, None] * k).ravel()
        counts = np.bincount(flat, minlength=m * k).reshape(m, k)
        out[row : row + m] = counts[:, inverse]
        row += m
    return out


def percentile_ci(replicates: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the replicates; replicates where the statistic is undefined (NaN,
    e.g. a correlation on a draw whose values are all equal) are left out; (nan, nan) when all are."""
    alpha = (1.0 - level) / 2.0 * 100.0
    replicates = np.asarray(replicates, dtype=np.float64)
    finite = replicates[~np.isnan(replicates)]
    if finite.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.percentile(finite, [alpha, 100.0 - alpha])
    return float(lo), float(hi)
