"""Benchmark: fracture evaluation throughput (images per second) on synthetic probability maps.

Work measured, for both paths: from (N, H, W) probability maps and truth masks to every metric of
:func:`medrepro.studies.fracture.metrics.evaluate` (benchmark Dice_pos / IoU_pos /
precision_pos / recall_pos, nnU-Net Dice / IoU, presence ROC-AUC and AP for all five score
variants) with a 1000-replicate bootstrap over images and percentile 95% CIs.

Library path: ``per_image_table`` (counts and presence scores vectorised over the batch) and
``evaluate`` (every metric under the (B, n) bootstrap weights at once; rank-based AUC / AP).
Baseline: a straightforward loop: per image, the counts and the five scores with NumPy; per
replicate, the resampled rows' means and scikit-learn's ``roc_auc_score`` /
``average_precision_score`` for each variant. Both use the same draws (the baseline expands
each weight row into its resampled rows), so their numbers are checked to agree.

    .venv/bin/python bench/fracture_eval.py [--images 400] [--size 96] [--iterations 1000]
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from medrepro.metrics.bootstrap import cluster_weights, percentile_ci
from medrepro.studies.fracture.metrics import VARIANTS, evaluate, per_image_table

EPS = 1e-6


def synthetic(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Truth masks (a third with an elliptical fracture), probability maps that find most of them
    with some false alarms, and a presence head's probability."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    truth = np.zeros((n, size, size), bool)
    prob = rng.random((n, size, size), dtype=np.float32) * 0.3
    has = rng.random(n) < 0.33
    for i in range(n):
        cy, cx = rng.uniform(0.2, 0.8, 2) * size
        ry, rx = rng.uniform(0.03, 0.12, 2) * size
        blob = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
        if has[i]:
            truth[i] = blob
        if has[i] and rng.random() < 0.7 or not has[i] and rng.random() < 0.15:
            shift = rng.integers(-3, 4, 2)
            prob[i] = np.maximum(prob[i], np.roll(blob, tuple(shift), (0, 1)) * rng.uniform(0.4, 0.95))
    head = np.clip(has * 0.5 + rng.normal(0.25, 0.2, n), 0, 1)
    return truth, prob, head


def baseline(ids, truth, prob, head, threshold: float, weights: np.ndarray) -> dict[str, tuple[float, float, float]]:
    """The per-image / per-replicate loop: {name: (estimate, ci_low, ci_high)}."""
    rows = []
    k = max(1, math.ceil(truth[0].size / 100))
    for i in range(len(ids)):
        pred, t_ = prob[i] >= threshold, truth[i]
        tp = int(np.sum(pred & t_))
        fp = int(np.sum(pred & ~t_))
        fn = int(np.sum(~pred & t_))
        flat = np.sort(prob[i].ravel().astype(np.float64))
        scores = {"max": flat[-1], "mean": flat.mean(), "area": np.mean(flat >= threshold), "top1": flat[-k:].mean(),
                  "head": head[i]}
        rows.append((tp, fp, fn, int(t_.sum()) > 0, scores))
    tp = np.array([r[0] for r in rows], float)
    fp = np.array([r[1] for r in rows], float)
    fn = np.array([r[2] for r in rows], float)
    label = np.array([r[3] for r in rows], int)
    scores = {v: np.array([r[4][v] for r in rows]) for v in VARIANTS}
    dice = (2 * tp + EPS) / (2 * tp + fp + fn + EPS)
    iou = (tp + EPS) / (tp + fp + fn + EPS)
    den = 2 * tp + fp + fn
    dnn = np.where(den > 0, 2 * tp / np.where(den > 0, den, 1), np.nan)
    inn = np.where(den > 0, tp / np.where(den > 0, tp + fp + fn, 1), np.nan)

    def stats(idx: np.ndarray) -> dict[str, float]:
        pos = label[idx] == 1
        out = {"dice_pos": dice[idx][pos].mean() if pos.any() else np.nan,
               "iou_pos": iou[idx][pos].mean() if pos.any() else np.nan,
               "precision_pos": tp[idx].sum() / (tp[idx].sum() + fp[idx].sum() + EPS),
               "recall_pos": tp[idx].sum() / (tp[idx].sum() + fn[idx].sum() + EPS),
               "dice_nnunet": np.nanmean(dnn[idx]) if np.isfinite(dnn[idx]).any() else np.nan,
               "iou_nnunet": np.nanmean(inn[idx]) if np.isfinite(inn[idx]).any() else np.nan}
        two = 0 < pos.sum() < len(idx)
        for v in VARIANTS:
            out[f"roc_auc_{v}"] = roc_auc_score(label[idx], scores[v][idx]) if two else np.nan
            out[f"ap_{v}"] = average_precision_score(label[idx], scores[v][idx]) if two else np.nan
        return out

    point = stats(np.arange(len(ids)))
    reps: dict[str, list[float]] = {name: [] for name in point}
    units = np.arange(len(ids))
    for w in weights:
        for name, value in stats(np.repeat(units, w.astype(int))).items():
            reps[name].append(value)
    return {name: (point[name], *percentile_ci(np.array(reps[name]))) for name in point}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=400)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--iterations", type=int, default=1000)
    ap.add_argument("--threshold", type=float, default=0.5)
    a = ap.parse_args()

    truth, prob, head = synthetic(a.images, a.size)
    ids = [f"img{i:05d}" for i in range(a.images)]
    n = a.images

    per_image_table(ids[:8], truth[:8], prob[:8], a.threshold, head[:8])  # warm-up
    t0 = time.perf_counter()
    table = per_image_table(ids, truth, prob, a.threshold, head)
    lib = evaluate(table, iterations=a.iterations, seed=0)
    t_lib = time.perf_counter() - t0

    t0 = time.perf_counter()
    weights = cluster_weights(ids, a.iterations, 0)  # ids are sorted, so weight columns follow ids
    base = baseline(ids, truth, prob, head, a.threshold, weights)
    t_base = time.perf_counter() - t0

    diff = max(abs(lib[name][key] - base[name][j]) for name in base
               for j, key in enumerate(("estimate", "ci_low", "ci_high")))
    print(f"fracture evaluation benchmark: {n} images of {a.size} x {a.size}, {int(table['label'].sum())} with a "
          f"fracture, {len(lib)} metrics ({len(VARIANTS)} presence variants), {a.iterations} bootstrap replicates, "
          f"{os.cpu_count()} CPU(s)")
    print(f"  library (per_image_table + evaluate, vectorised): {t_lib:.2f} s = {n / t_lib:.1f} images/s")
    print(f"  baseline (per-image loop, per-replicate scikit-learn AUC / AP): {t_base:.2f} s = "
          f"{n / t_base:.1f} images/s")
    print(f"  speed-up: {t_base / t_lib:.1f}x")
    print(f"  agreement: max |diff| over estimates and CI ends {diff:.1e}; Dice_pos {lib['dice_pos']['estimate']:.4f} "
          f"[{lib['dice_pos']['ci_low']:.4f}, {lib['dice_pos']['ci_high']:.4f}], ROC-AUC (max) "
          f"{lib['roc_auc_max']['estimate']:.4f}")


if __name__ == "__main__":
    main()
