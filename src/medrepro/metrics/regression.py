"""Regression metrics of a per-unit table under bootstrap weights.

The table has float columns ``y_true`` and ``y_pred``; ``weights`` is a (B, n) array with one row
per bootstrap replicate, where a unit's weight is how many times it was drawn (a row of ones is the
point estimate). Every weighted statistic equals the plain statistic on the *expanded* sample, in
which each unit is repeated as often as its weight says, so a replicate's value is exactly what
scipy / scikit-learn would report on the resampled rows. Names (:data:`REGRESSION`):

- ``rmse``, ``mae``: root mean squared and mean absolute error.
- ``standardized_rmse``: RMSE divided by the sample standard deviation (ddof 1) of the TRUE
  scores, i.e. ``sqrt(sum w (y - mean)^2 / (sum w - 1))``.
- ``r2``: ``1 - SSE / SST`` (SST about the weighted mean of the true scores).
- ``pearson_r``, ``pearson_p``: Pearson correlation and its two-sided p-value from the t
  distribution with ``n - 2`` degrees of freedom, ``n = sum w`` (scipy.stats.pearsonr's p).
- ``spearman_rho``, ``spearman_p``: Pearson correlation of the midranks of the expanded sample
  and scipy.stats.spearmanr's t-based p-value.
- ``mae_0_5``, ``mae_5_10``, ``mae_10_plus``: MAE of the units whose TRUE score lies in
  [0, 5), [5, 10) or [10, inf).

A replicate where a statistic is undefined (true or predicted values constant among the drawn
units, fewer than 2 (3 for p-values) drawn units, no drawn unit in a score range) gets NaN, without
a warning; :func:`nan_percentile_ci` then ignores such replicates. Nothing here names a study.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd
from scipy import special

from medrepro.errors import InputError

__all__ = ["REGRESSION", "SCORE_RANGES", "compute_regression", "nan_percentile_ci", "range_counts",
           "regression_metrics"]

SCORE_RANGES: dict[str, tuple[float, float]] = {
    "mae_0_5": (0.0, 5.0),
    "mae_5_10": (5.0, 10.0),
    "mae_10_plus": (10.0, np.inf),
}
"""Error by range of the TRUE score: half-open intervals [low, high)."""

REGRESSION: tuple[str, ...] = (
    "rmse", "standardized_rmse", "mae", "r2", "pearson_r", "pearson_p", "spearman_rho", "spearman_p",
    *SCORE_RANGES,
)


def _constant(values: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(B,) True where ``values`` (n,) take a single value (or none) among the units drawn in a
    replicate. Exact, unlike a variance compared with a tolerance."""
    drawn = w > 0
    hi = np.where(drawn, values, -np.inf).max(axis=1)
    lo = np.where(drawn, values, np.inf).min(axis=1)
    return ~(hi > lo)


def _t_test_p(r: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Two-sided p-value of a correlation ``r`` on ``n`` observations, t distribution with
    ``n - 2`` df: ``I_{1 - r^2}((n - 2) / 2, 1 / 2)`` (the regularized incomplete beta form of
    ``2 * t.sf(|r| sqrt((n - 2) / (1 - r^2)), n - 2)``, finite at ``|r| = 1``)."""
    df = n - 2.0
    with np.errstate(all="ignore"):
        p = special.betainc(0.5 * df, 0.5, np.clip(1.0 - r * r, 0.0, 1.0))
    return np.where((df >= 1.0) & np.isfinite(r), p, np.nan)


def _midranks(values: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(B, n) midrank of each unit in each replicate's expanded sample (ties share the mean of
    the ranks they occupy, as scipy.stats.rankdata(method="average")). The units are sorted once;
    per replicate, a tie group that comes after C drawn copies and holds G of them has ranks
    C+1 .. C+G, mean C + (G + 1) / 2."""
    order = np.argsort(values, kind="stable")
    v = values[order]
    new_group = np.r_[True, v[1:] != v[:-1]]
    starts = np.flatnonzero(new_group)
    group_of = np.cumsum(new_group) - 1
    g = np.add.reduceat(w[:, order], starts, axis=1)  # (B, groups): drawn copies per tie group
    mid = np.cumsum(g, axis=1) - g + (g + 1.0) / 2.0
    ranks = np.empty_like(w)
    ranks[:, order] = mid[:, group_of]
    return ranks


def _pearson(x: np.ndarray, y: np.ndarray, w: np.ndarray, sw: np.ndarray, undefined: np.ndarray) -> np.ndarray:
    """(B,) weighted Pearson correlation of x and y ((n,) or (B, n) each); NaN where ``undefined``."""
    with np.errstate(all="ignore"):
        dx = x - ((w * x).sum(axis=1) / sw)[:, None]
        dy = y - ((w * y).sum(axis=1) / sw)[:, None]
        r = (w * dx * dy).sum(axis=1) / np.sqrt((w * dx * dx).sum(axis=1) * (w * dy * dy).sum(axis=1))
    return np.where(undefined, np.nan, np.clip(r, -1.0, 1.0))


class _Weighted:
    """The shared pieces of every regression metric for one (B, n) weight array, each computed
    once and only when a metric needs it."""

    def __init__(self, y_true: np.ndarray, y_pred: np.ndarray, weights: np.ndarray):
        self.t, self.p, self.w = y_true, y_pred, weights

    @cached_property
    def sw(self) -> np.ndarray:
        return self.w.sum(axis=1)

    @cached_property
    def abs_err(self) -> np.ndarray:
        return np.abs(self.p - self.t)

    @cached_property
    def sse(self) -> np.ndarray:
        return self.w @ ((self.p - self.t) ** 2)

    @cached_property
    def sst(self) -> np.ndarray:
        with np.errstate(all="ignore"):
            mean = (self.w @ self.t) / self.sw
        return (self.w * (self.t[None, :] - mean[:, None]) ** 2).sum(axis=1)

    @cached_property
    def truth_constant(self) -> np.ndarray:
        return _constant(self.t, self.w) | (self.sw < 2)

    @cached_property
    def undefined_corr(self) -> np.ndarray:
        return self.truth_constant | _constant(self.p, self.w)

    def rmse(self) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.where(self.sw > 0, np.sqrt(self.sse / self.sw), np.nan)

    def standardized_rmse(self) -> np.ndarray:
        with np.errstate(all="ignore"):
            sd = np.sqrt(self.sst / (self.sw - 1.0))
            return np.where(self.truth_constant, np.nan, self.rmse() / sd)

    def mae(self) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.where(self.sw > 0, (self.w @ self.abs_err) / self.sw, np.nan)

    def r2(self) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.where(self.truth_constant, np.nan, 1.0 - self.sse / self.sst)

    @cached_property
    def _pearson_r(self) -> np.ndarray:
        return _pearson(self.t, self.p, self.w, self.sw, self.undefined_corr)

    def pearson_r(self) -> np.ndarray:
        return self._pearson_r

    def pearson_p(self) -> np.ndarray:
        return _t_test_p(self._pearson_r, self.sw)

    @cached_property
    def _spearman_rho(self) -> np.ndarray:
        rt, rp = _midranks(self.t, self.w), _midranks(self.p, self.w)
        return _pearson(rt, rp, self.w, self.sw, self.undefined_corr)

    def spearman_rho(self) -> np.ndarray:
        return self._spearman_rho

    def spearman_p(self) -> np.ndarray:
        return _t_test_p(self._spearman_rho, self.sw)

    def range_mae(self, low: float, high: float) -> np.ndarray:
        inside = ((self.t >= low) & (self.t < high)).astype(np.float64)
        count = self.w @ inside
        with np.errstate(all="ignore"):
            return np.where(count > 0, (self.w @ (self.abs_err * inside)) / count, np.nan)


def regression_metrics(y_true, y_pred, weights: np.ndarray, names=REGRESSION) -> dict[str, np.ndarray]:
    """``{name: (B,) values}`` for each of ``names`` under each row of ``weights``; the pieces the
    metrics share (errors, ranks, correlations) are computed once."""
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if t.shape != p.shape or t.ndim != 1 or w.shape[1] != t.shape[0]:
        raise ValueError(f"y_true {t.shape}, y_pred {p.shape} and weights {w.shape} do not match")
    if not (np.isfinite(t).all() and np.isfinite(p).all()):
        raise InputError(None, "per-unit table", "y_true or y_pred holds a missing or infinite value",
                         "finite numbers")
    m = _Weighted(t, p, w)
    out = {}
    for name in names:
        if name in SCORE_RANGES:
            out[name] = m.range_mae(*SCORE_RANGES[name])
        elif name in REGRESSION:
            out[name] = getattr(m, name)()
        else:
            raise InputError(None, "metric", f"unknown regression metric {name!r}", f"one of {REGRESSION}")
    return out


def compute_regression(name: str, table: pd.DataFrame, weights: np.ndarray) -> np.ndarray:
    """Values of regression metric ``name`` of ``table`` (columns ``y_true``, ``y_pred``) under
    each row of ``weights``."""
    missing = [c for c in ("y_true", "y_pred") if c not in table.columns]
    if missing:
        raise InputError(None, name, f"no column(s) {missing} in the per-unit table", "columns y_true and y_pred")
    return regression_metrics(table["y_true"], table["y_pred"], weights, (name,))[name]


def range_counts(y_true) -> dict[str, int]:
    """Number of units whose TRUE score falls in each range of :data:`SCORE_RANGES`."""
    t = np.asarray(y_true, dtype=np.float64)
    return {name: int(((t >= lo) & (t < hi)).sum()) for name, (lo, hi) in SCORE_RANGES.items()}


def nan_percentile_ci(replicates: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the replicates where the statistic is defined (NaN replicates are
    left out); (NaN, NaN) when none is."""
    reps = np.asarray(replicates, dtype=np.float64)
    reps = reps[np.isfinite(reps)]
    if reps.size == 0:
        return float("nan"), float("nan")
    alpha = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(reps, [alpha, 100.0 - alpha])
    return float(lo), float(hi)
