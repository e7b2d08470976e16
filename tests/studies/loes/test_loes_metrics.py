"""Loes metrics: subject-level bootstrap CIs and the paired comparison of two models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from medrepro.errors import InputError
from medrepro.metrics.regression import REGRESSION
from medrepro.studies.loes.metrics import evaluate_table, n_scans, n_subjects, paired_comparison, verdict


def _table(seed: int, n_subj: int = 20, noise: float = 2.0, truth_seed: int = 0) -> pd.DataFrame:
    """Two sessions per subject; truth fixed by ``truth_seed``, predictions noisy by ``noise``."""
    rng = np.random.default_rng(truth_seed)
    base = rng.gamma(1.5, 3.0, n_subj)
    y = np.round(np.repeat(base, 2) + rng.normal(0, 0.5, 2 * n_subj).clip(0), 0).clip(0, 34)
    pred = y + np.random.default_rng(seed).normal(0, noise, 2 * n_subj)
    return pd.DataFrame({"unit_id": [f"sub{i // 2:02d}/ses{i % 2}/mprage" for i in range(2 * n_subj)],
                         "cluster": [f"sub{i // 2:02d}" for i in range(2 * n_subj)],
                         "y_true": y, "y_pred": pred})


def test_whole_subjects_are_resampled():
    """Each subject has two scans with absolute errors 1 and 3: any replicate that draws whole
    subjects has MAE exactly 2 and RMSE exactly sqrt(5); drawing scans would not."""
    k = 15
    y = np.arange(2 * k, dtype=float) % 9
    err = np.tile([1.0, -3.0], k)
    t = pd.DataFrame({"unit_id": [f"u{i:02d}" for i in range(2 * k)], "cluster": [f"s{i // 2:02d}" for i in range(2 * k)],
                      "y_true": y, "y_pred": y + err})
    m = evaluate_table(t, iterations=300, seed=1)
    assert m["mae"]["estimate"] == m["mae"]["ci_low"] == m["mae"]["ci_high"] == pytest.approx(2.0)
    assert m["rmse"]["ci_low"] == pytest.approx(np.sqrt(5.0)) and m["rmse"]["ci_high"] == pytest.approx(np.sqrt(5.0))
    by_scan = evaluate_table(t.assign(cluster=t["unit_id"]), iterations=300, seed=1)
    assert by_scan["mae"]["ci_low"] < 2.0 - 0.2 and by_scan["mae"]["ci_high"] > 2.0 + 0.2


def test_estimates_match_scipy_and_ci_brackets_them():
    t = _table(3)
    m = evaluate_table(t, iterations=400, seed=0)
    assert set(m) == set(REGRESSION)
    y, p = t["y_true"].to_numpy(), t["y_pred"].to_numpy()
    assert m["pearson_r"]["estimate"] == pytest.approx(stats.pearsonr(y, p).statistic)
    assert m["spearman_p"]["estimate"] == pytest.approx(stats.spearmanr(y, p).pvalue)
    assert m["standardized_rmse"]["estimate"] == pytest.approx(np.sqrt(np.mean((y - p) ** 2)) / np.std(y, ddof=1))
    for name in ("rmse", "standardized_rmse", "mae", "r2", "pearson_r", "spearman_rho", "mae_0_5"):
        assert m[name]["ci_low"] <= m[name]["estimate"] <= m[name]["ci_high"], name
        assert m[name]["ci_low"] < m[name]["ci_high"], name
    assert m["rmse"]["n"] == 40 and m["mae_0_5"]["n"] == int((y < 5).sum())
    assert n_scans(t) == 40 and n_subjects(t) == 20


def test_ci_is_the_percentile_of_expanded_subject_resamples():
    """The CI equals the percentile interval of numpy's RMSE on resamples of whole subjects drawn
    as the frozen procedure draws them (sorted subject keys, rng.integers(0, K, (B, K)))."""
    t = _table(5, n_subj=8).sample(frac=1.0, random_state=0)  # row order must not matter
    B = 200
    m = evaluate_table(t, iterations=B, seed=9)
    keys = sorted(t["cluster"].unique())
    idx = np.random.default_rng(9).integers(0, len(keys), size=(B, len(keys)))
    reps = []
    for row in idx:
        sub = pd.concat([t[t["cluster"] == keys[j]] for j in row])
        reps.append(np.sqrt(np.mean((sub["y_true"] - sub["y_pred"]) ** 2)))
    lo, hi = np.percentile(reps, [2.5, 97.5])
    assert m["rmse"]["ci_low"] == pytest.approx(lo) and m["rmse"]["ci_high"] == pytest.approx(hi)


def test_range_metric_without_scans_is_left_out():
    t = _table(0)
    t = t[t["y_true"] < 10].reset_index(drop=True)
    m = evaluate_table(t, iterations=50, seed=0)
    assert "mae_10_plus" not in m and "mae_0_5" in m


def test_identical_predictions_differ_by_exactly_zero():
    t = _table(1)
    c = paired_comparison(t, t.copy(), iterations=300, seed=0)
    for key in ("standardized_rmse_diff", "pearson_r_diff"):
        assert c[key] == {"estimate": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    assert c["verdict"] == "not distinguishable"
    assert (c["n_scans"], c["n_subjects"]) == (40, 20)


def test_clearly_better_and_worse():
    good, bad = _table(1, noise=0.5), _table(2, noise=4.0)
    c = paired_comparison(good, bad, iterations=400, seed=0)
    assert c["verdict"] == "better"
    assert c["standardized_rmse_diff"]["ci_high"] < 0 and c["pearson_r_diff"]["ci_low"] > 0
    s = paired_comparison(bad, good, iterations=400, seed=0)
    assert s["verdict"] == "worse"
    # the same draws for both models: swapping negates every replicate, so the CI mirrors
    assert s["standardized_rmse_diff"]["estimate"] == pytest.approx(-c["standardized_rmse_diff"]["estimate"])
    assert s["standardized_rmse_diff"]["ci_low"] == pytest.approx(-c["standardized_rmse_diff"]["ci_high"])


def test_similar_models_are_not_distinguishable():
    c = paired_comparison(_table(1, noise=2.0), _table(2, noise=2.0), iterations=400, seed=0)
    assert c["verdict"] == "not distinguishable"
    d = c["standardized_rmse_diff"]
    assert d["ci_low"] <= d["estimate"] <= d["ci_high"] and d["ci_low"] < 0 < d["ci_high"]


def test_verdict_rule():
    def ci(lo, hi):
        return {"ci_low": lo, "ci_high": hi}

    assert verdict(ci(-0.2, -0.1), ci(-0.05, 0.05)) == "better"
    assert verdict(ci(-0.2, 0.1), ci(0.01, 0.05)) == "better"
    assert verdict(ci(0.1, 0.2), ci(-0.05, 0.05)) == "worse"
    assert verdict(ci(-0.2, 0.1), ci(-0.05, -0.01)) == "worse"
    assert verdict(ci(-0.2, -0.1), ci(-0.05, -0.01)) == "not distinguishable"  # conflicting
    assert verdict(ci(-0.2, 0.1), ci(-0.05, 0.05)) == "not distinguishable"
    assert verdict(ci(float("nan"), float("nan")), ci(0.01, 0.05)) == "better"


def test_comparison_uses_only_the_shared_scans():
    cur, prev = _table(1, noise=1.0), _table(2, noise=3.0)
    prev_part = pd.concat([prev.iloc[6:], prev.iloc[:2].assign(unit_id=["x/1/a", "x/2/a"], cluster="x")])
    c = paired_comparison(cur.iloc[2:], prev_part, iterations=300, seed=4)
    shared = sorted(set(cur["unit_id"].iloc[2:]) & set(prev_part["unit_id"]))
    assert c["n_scans"] == len(shared) == 34 and c["n_subjects"] == 17
    direct = paired_comparison(cur[cur["unit_id"].isin(shared)], prev[prev["unit_id"].isin(shared)], iterations=300, seed=4)
    assert c == direct


def test_comparison_errors():
    t = _table(1)
    other = t.assign(unit_id="other/" + t["unit_id"])
    with pytest.raises(InputError, match="prev.csv: unit_id: no scan in common"):
        paired_comparison(t, other, iterations=10, seed=0, previous_path="prev.csv")
    changed = t.copy()
    changed.loc[5, "y_true"] += 1
    with pytest.raises(InputError, match=r"sub02/ses1/mprage.*true score"):
        paired_comparison(t, changed, iterations=10, seed=0)
    moved = t.copy()
    moved.loc[5, "cluster"] = "elsewhere"
    with pytest.raises(InputError, match="subject"):
        paired_comparison(t, moved, iterations=10, seed=0)
