"""Weighted regression metrics against scipy / scikit-learn / numpy on the expanded sample."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from medrepro.metrics.registry import compute, known
from medrepro.metrics.regression import REGRESSION, nan_percentile_ci, range_counts, regression_metrics


def _table(seed: int, n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    # half-point scores skewed to low values, with many ties (as clinical severity scores are)
    y = np.round(rng.gamma(1.5, 3.0, n) * 2) / 2
    pred = np.round((y + rng.normal(0, 2.0, n)) * 2) / 2  # ties in the predictions too
    return pd.DataFrame({"unit_id": [f"u{i:03d}" for i in range(n)], "cluster": [f"s{i // 2:03d}" for i in range(n)],
                         "y_true": y, "y_pred": pred})


def _expected(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Each metric on a plain (already expanded) sample, from the field's libraries."""
    pr = stats.pearsonr(y, p)
    sr = stats.spearmanr(y, p)
    out = {
        "rmse": np.sqrt(mean_squared_error(y, p)),
        "standardized_rmse": np.sqrt(mean_squared_error(y, p)) / np.std(y, ddof=1),
        "mae": mean_absolute_error(y, p),
        "r2": r2_score(y, p),
        "pearson_r": pr.statistic, "pearson_p": pr.pvalue,
        "spearman_rho": sr.statistic, "spearman_p": sr.pvalue,
    }
    for name, lo, hi in [("mae_0_5", 0, 5), ("mae_5_10", 5, 10), ("mae_10_plus", 10, np.inf)]:
        m = (y >= lo) & (y < hi)
        out[name] = mean_absolute_error(y[m], p[m]) if m.any() else np.nan
    return out


def _check(got: float, want: float, name: str) -> None:
    if np.isnan(want):
        assert np.isnan(got), name
    elif name.endswith("_p"):
        assert got == pytest.approx(want, rel=1e-7, abs=1e-300), name
    else:
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12), name


@pytest.mark.parametrize("seed", range(4))
def test_point_estimates_match_libraries(seed):
    t = _table(seed)
    one = np.ones((1, len(t)))
    want = _expected(t["y_true"].to_numpy(), t["y_pred"].to_numpy())
    for name in REGRESSION:
        _check(compute(name, t, one)[0], want[name], name)


@pytest.mark.parametrize("seed", range(3))
def test_weighted_equals_expanded_sample(seed):
    """Random integer weights (zeros included): each replicate's value is the library's value on
    the rows repeated as often as their weight."""
    t = _table(seed + 10)
    rng = np.random.default_rng(seed)
    w = rng.integers(0, 4, size=(12, len(t))).astype(float)
    w[0] = 1.0  # a ones row among the replicates
    got = regression_metrics(t["y_true"], t["y_pred"], w)
    for b in range(len(w)):
        rows = np.repeat(np.arange(len(t)), w[b].astype(int))
        want = _expected(t["y_true"].to_numpy()[rows], t["y_pred"].to_numpy()[rows])
        for name in REGRESSION:
            _check(got[name][b], want[name], f"{name} replicate {b}")


def test_spearman_with_heavy_ties_and_p_values():
    y = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 5, 5, 9], dtype=float)
    p = np.array([1, 0, 1, 1, 3, 2, 2, 4, 2, 5, 7, 7], dtype=float)
    w = np.array([[3, 0, 1, 2, 1, 1, 0, 2, 1, 1, 3, 1], [1] * 12], dtype=float)
    got = regression_metrics(y, p, w, ("spearman_rho", "spearman_p"))
    for b in range(2):
        rows = np.repeat(np.arange(12), w[b].astype(int))
        sr = stats.spearmanr(y[rows], p[rows])
        assert got["spearman_rho"][b] == pytest.approx(sr.statistic, rel=1e-12)
        assert got["spearman_p"][b] == pytest.approx(sr.pvalue, rel=1e-9)


def test_perfect_correlation_has_p_zero():
    y = np.arange(10, dtype=float)
    got = regression_metrics(y, 2 * y + 1, np.ones((1, 10)), ("pearson_r", "pearson_p", "spearman_rho", "spearman_p"))
    assert got["pearson_r"][0] == pytest.approx(1.0) and got["pearson_p"][0] == 0.0
    assert got["spearman_rho"][0] == 1.0 and got["spearman_p"][0] == 0.0


def test_degenerate_replicates_are_nan_without_warnings():
    y = np.array([1.0, 1.0, 3.0, 7.0, 12.0])
    p = np.array([2.0, 0.5, 3.0, 6.0, 11.0])
    w = np.array([
        [2, 3, 0, 0, 0],  # true scores constant: SD 0
        [0, 0, 5, 0, 0],  # one unit drawn five times
        [1, 1, 1, 1, 1],
        [0, 0, 0, 0, 0],  # nothing drawn
    ], dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = regression_metrics(y, p, w)
    for name in ("standardized_rmse", "r2", "pearson_r", "pearson_p", "spearman_rho", "spearman_p"):
        assert np.isnan(got[name][[0, 1, 3]]).all(), name
        assert np.isfinite(got[name][2]), name
    assert got["rmse"][0] == pytest.approx(np.sqrt((2 * 1 + 3 * 0.25) / 5))  # still defined
    # no unit in a range in that replicate
    assert np.isnan(got["mae_10_plus"][0]) and np.isnan(got["mae_5_10"][1]) and got["mae_0_5"][1] == 0.0
    assert got["mae_10_plus"][2] == 1.0
    assert np.isnan(got["mae"][3]) and np.isnan(got["rmse"][3])


def test_constant_predictions_give_nan_correlation():
    y = np.array([0.0, 2.0, 5.0, 9.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = regression_metrics(y, np.full(4, 3.0), np.ones((1, 4)))
    assert np.isnan(got["pearson_r"][0]) and np.isnan(got["spearman_rho"][0]) and np.isnan(got["pearson_p"][0])
    assert got["r2"][0] == pytest.approx(r2_score(y, np.full(4, 3.0)))


def test_range_counts_and_boundaries():
    y = np.array([0.0, 4.5, 5.0, 9.5, 10.0, 34.0])
    assert range_counts(y) == {"mae_0_5": 2, "mae_5_10": 2, "mae_10_plus": 2}
    got = regression_metrics(y, y + np.array([1, 2, 3, 4, 5, 6.0]), np.ones((1, 6)), ("mae_0_5", "mae_5_10", "mae_10_plus"))
    assert (got["mae_0_5"][0], got["mae_5_10"][0], got["mae_10_plus"][0]) == (1.5, 3.5, 5.5)


def test_nan_percentile_ci_skips_undefined_replicates():
    reps = np.r_[np.arange(100.0), np.full(20, np.nan)]
    assert nan_percentile_ci(reps) == pytest.approx(tuple(np.percentile(np.arange(100.0), [2.5, 97.5])))
    lo, hi = nan_percentile_ci(np.full(5, np.nan))
    assert np.isnan(lo) and np.isnan(hi)


def test_registry_knows_the_regression_names():
    assert all(known(n) for n in REGRESSION)
    with pytest.raises(ValueError, match="y_pred"):
        compute("rmse", pd.DataFrame({"y_true": [1.0, 2.0]}), np.ones((1, 2)))
