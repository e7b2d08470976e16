import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

from medrepro.metrics.bootstrap import cluster_weights, draw_chunks, percentile_ci
from medrepro.metrics.registry import compute


def _table(seed, n=60, classes=3):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    pred = np.where(rng.random(n) < 0.6, y, rng.integers(0, classes, n))
    return pd.DataFrame({"unit_id": [f"{i:05d}" for i in range(n)], "cluster": [f"{i:05d}" for i in range(n)],
                         "y_true": y, "y_pred": pred})


@pytest.mark.parametrize("seed", range(5))
def test_classification_matches_sklearn(seed):
    t = _table(seed)
    if seed == 4:  # a class never predicted: zero_division=0 path
        t.loc[t["y_pred"] == 2, "y_pred"] = 0
    p, r, f, _ = precision_recall_fscore_support(t["y_true"], t["y_pred"], labels=[0, 1, 2], average="macro", zero_division=0)
    one = np.ones((1, len(t)))
    assert compute("accuracy", t, one, 3)[0] == pytest.approx(accuracy_score(t["y_true"], t["y_pred"]))
    assert compute("macro_precision", t, one, 3)[0] == pytest.approx(p)
    assert compute("macro_recall", t, one, 3)[0] == pytest.approx(r)
    assert compute("macro_f1", t, one, 3)[0] == pytest.approx(f)


def test_weighted_metric_equals_metric_on_resampled_rows():
    t = _table(1)
    w = cluster_weights(t["cluster"], 20, seed=3)
    for b in range(20):
        rows = np.repeat(np.arange(len(t)), w[b].astype(int))
        sub = t.iloc[rows]
        _, _, f, _ = precision_recall_fscore_support(sub["y_true"], sub["y_pred"], labels=[0, 1, 2], average="macro", zero_division=0)
        assert compute("macro_f1", t, w[b : b + 1], 3)[0] == pytest.approx(f)


def test_draws_follow_the_frozen_procedure():
    # chunks of 1024 from one RNG: the same as drawing them by hand
    rng = np.random.default_rng(42)
    expected = [rng.integers(0, 7, size=(1024, 7)), rng.integers(0, 7, size=(476, 7))]
    got = list(draw_chunks(7, 1500, 42))
    assert [g.shape for g in got] == [(1024, 7), (476, 7)]
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)


def test_cluster_weights_resample_whole_clusters():
    clusters = ["b", "a", "a", "c", "b", "b"]
    w = cluster_weights(clusters, 50, seed=0)
    assert w.shape == (50, 6)
    # units of one cluster always share a weight, and K clusters are drawn per replicate
    assert np.all(w[:, 1] == w[:, 2]) and np.all(w[:, 0] == w[:, 4])
    keys_drawn = w[:, [1, 0, 3]].sum(axis=1)
    assert np.all(keys_drawn == 3)


def test_mean_metric_and_ci_cover_the_truth():
    rng = np.random.default_rng(0)
    t = pd.DataFrame({"unit_id": range(400), "cluster": range(400), "v": rng.random(400) < 0.3})
    reps = compute("mean:v", t, cluster_weights(t["cluster"], 2000, 1))
    lo, hi = percentile_ci(reps)
    assert lo < t["v"].mean() < hi
    assert 0.22 < lo < hi < 0.38


def test_unknown_metric_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown metric"):
        compute("auroc", _table(0), np.ones((1, 60)))
