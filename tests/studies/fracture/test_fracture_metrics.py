"""Fracture metrics: both segmentation conventions on hand-computed cases, Dice against MONAI,
presence ROC-AUC / AP against scikit-learn (also under bootstrap weights), bootstrap CIs over
images, the paired difference."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from monai.metrics import DiceMetric
from sklearn.metrics import average_precision_score, roc_auc_score

from medrepro.errors import InputError
from medrepro.studies.fracture.metrics import (CONVENTION, VARIANTS, average_precision, compute_weighted, dice_bench,
                                               dice_nnunet, evaluate, iou_bench, iou_nnunet, paired_difference,
                                               per_image_table, pixel_counts, presence_scores, roc_auc)


def _hand_masks() -> tuple[np.ndarray, np.ndarray]:
    """Four 2 x 3 images: empty/empty; truth 2 px, prediction 3 px sharing 1; truth 1 px, empty
    prediction; empty truth, prediction 2 px."""
    truth = np.zeros((4, 2, 3), bool)
    pred = np.zeros((4, 2, 3), bool)
    truth[1, 0, 0] = truth[1, 0, 1] = True
    pred[1, 0, 1] = pred[1, 1, 1] = pred[1, 1, 2] = True
    truth[2, 1, 0] = True
    pred[3, 0, 2] = pred[3, 1, 2] = True
    return pred, truth


def _hand_table() -> pd.DataFrame:
    pred, truth = _hand_masks()
    c = pixel_counts(pred, truth)
    return pd.DataFrame({"image_id": ["a", "b", "c", "d"], **c, "label": (c["t"] > 0).astype(int),
                         "score_max": [0.1, 0.9, 0.4, 0.6]})


def test_pixel_counts_by_hand():
    pred, truth = _hand_masks()
    c = pixel_counts(pred, truth)
    assert c["tp"].tolist() == [0, 1, 0, 0]
    assert c["fp"].tolist() == [0, 2, 0, 2]
    assert c["fn"].tolist() == [0, 1, 1, 0]
    assert c["p"].tolist() == [0, 3, 0, 2]
    assert c["t"].tolist() == [0, 2, 1, 0]
    assert all(v.dtype == np.int64 for v in c.values())
    with pytest.raises(InputError):
        pixel_counts(pred.astype(np.uint8), truth)
    with pytest.raises(InputError):
        pixel_counts(pred, truth[:3])


def test_per_image_values_both_conventions():
    tp, fp, fn = np.array([0, 1, 0, 0]), np.array([0, 2, 0, 2]), np.array([0, 1, 1, 0])
    p, t = tp + fp, tp + fn
    e = 1e-6
    assert dice_bench(tp, p, t) == pytest.approx([1.0, (2 + e) / (5 + e), e / (1 + e), e / (2 + e)], rel=1e-12)
    assert iou_bench(tp, fp, fn) == pytest.approx([1.0, (1 + e) / (4 + e), e / (1 + e), e / (2 + e)], rel=1e-12)
    d = dice_nnunet(tp, fp, fn)
    assert math.isnan(d[0]) and d[1:].tolist() == pytest.approx([2 / 5, 0.0, 0.0])
    j = iou_nnunet(tp, fp, fn)
    assert math.isnan(j[0]) and j[1:].tolist() == pytest.approx([1 / 4, 0.0, 0.0])


def test_aggregates_by_hand():
    m = evaluate(_hand_table(), iterations=50, seed=0)
    e = 1e-6
    # positives are images b and c only
    assert m["dice_pos"]["estimate"] == pytest.approx(((2 + e) / (5 + e) + e / (1 + e)) / 2, rel=1e-12)
    assert m["iou_pos"]["estimate"] == pytest.approx(((1 + e) / (4 + e) + e / (1 + e)) / 2, rel=1e-12)
    assert m["dice_pos"]["n"] == 2
    # pooled over all four images: tp 1, fp 4, fn 2
    assert m["precision_pos"]["estimate"] == pytest.approx(1 / (1 + 4 + e), rel=1e-12)
    assert m["recall_pos"]["estimate"] == pytest.approx(1 / (1 + 2 + e), rel=1e-12)
    # nnU-Net: image a (empty on empty) is NaN and left out of the nan-mean
    assert m["dice_nnunet"]["estimate"] == pytest.approx((0.4 + 0 + 0) / 3)
    assert m["iou_nnunet"]["estimate"] == pytest.approx((0.25 + 0 + 0) / 3)
    assert m["dice_nnunet"]["n"] == 3
    # presence: positives b (0.9), c (0.4); negatives a (0.1), d (0.6): 3 of 4 pairs ordered
    assert m["roc_auc_max"]["estimate"] == pytest.approx(0.75)
    # thresholds 0.9 (precision 1, recall 1/2), 0.6 (1/2, 1/2), 0.4 (2/3, 1): AP = 1/2 * 1 + 1/2 * 2/3
    assert m["ap_max"]["estimate"] == pytest.approx(0.5 + 1 / 3)
    assert set(m) == {"dice_pos", "iou_pos", "precision_pos", "recall_pos", "dice_nnunet", "iou_nnunet",
                      "roc_auc_max", "ap_max"}
    for v in m.values():
        assert set(v) == {"estimate", "ci_low", "ci_high", "n"}


def test_all_empty_images():
    """Every truth and prediction empty: benchmark Dice is 1 on each image, but no image has a
    fracture, so Dice_pos is undefined; nnU-Net's Dice is NaN on each and its nan-mean too."""
    z = np.zeros((3, 4, 4), bool)
    c = pixel_counts(z, z)
    assert dice_bench(c["tp"], c["p"], c["t"]).tolist() == [1.0, 1.0, 1.0]
    assert iou_bench(c["tp"], c["fp"], c["fn"]).tolist() == [1.0, 1.0, 1.0]
    assert np.isnan(dice_nnunet(c["tp"], c["fp"], c["fn"])).all()
    table = pd.DataFrame({"image_id": ["x", "y", "z"], **c, "label": 0, "score_max": [0.1, 0.2, 0.3]})
    m = evaluate(table, iterations=20, seed=0)
    for name in ("dice_pos", "iou_pos", "dice_nnunet", "iou_nnunet", "roc_auc_max", "ap_max"):
        assert math.isnan(m[name]["estimate"]) and math.isnan(m[name]["ci_low"]), name
    assert m["precision_pos"]["estimate"] == 0.0 and m["recall_pos"]["estimate"] == 0.0


def _random_masks(seed: int, n: int = 24, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.random((n, size, size)) < 0.15
    truth[: n // 3] = False  # a third of the truths empty
    pred = (truth & (rng.random(truth.shape) < 0.7)) | (rng.random(truth.shape) < 0.05)
    pred[n // 3: n // 3 + 3] = False  # some empty predictions on non-empty truths
    pred[:2] = False  # empty on empty
    return pred, truth


def test_dice_matches_monai_on_images_with_a_fracture():
    pred, truth = _random_masks(1)
    metric = DiceMetric(include_background=True, reduction="mean", ignore_empty=True)
    metric(torch.from_numpy(pred[:, None].astype(np.float32)), torch.from_numpy(truth[:, None].astype(np.float32)))
    monai_mean = float(metric.aggregate().item())
    c = pixel_counts(pred, truth)
    table = pd.DataFrame({"image_id": [f"i{k:02d}" for k in range(len(pred))], **c})
    m = evaluate(table, iterations=10, seed=0)
    assert m["dice_pos"]["estimate"] == pytest.approx(monai_mean, abs=1e-6)  # the 1e-6 smoothing only
    # nnU-Net's Dice on the same positive images is exactly MONAI's
    pos = c["t"] > 0
    assert np.mean(dice_nnunet(c["tp"], c["fp"], c["fn"])[pos]) == pytest.approx(monai_mean, rel=1e-6)


def test_nnunet_convention_written_out():
    """nnU-Net's compute_metrics per image (NaN when tp + fp + fn == 0) and np.nanmean."""
    pred, truth = _random_masks(2)
    per = []
    for p_, t_ in zip(pred, truth):
        tp = np.sum(t_ & p_)
        fp = np.sum(~t_ & p_)
        fn = np.sum(t_ & ~p_)
        per.append((np.nan, np.nan) if tp + fp + fn == 0 else (2 * tp / (2 * tp + fp + fn), tp / (tp + fp + fn)))
    per = np.array(per)
    c = pixel_counts(pred, truth)
    m = evaluate(pd.DataFrame({"image_id": range(len(pred)), **c}), iterations=10, seed=0)
    assert m["dice_nnunet"]["estimate"] == pytest.approx(np.nanmean(per[:, 0]))
    assert m["iou_nnunet"]["estimate"] == pytest.approx(np.nanmean(per[:, 1]))
    assert m["dice_nnunet"]["n"] == int((~np.isnan(per[:, 0])).sum())


def _presence(seed: int, n: int = 30) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.4
    s = np.round(rng.random(n) * 0.6 + 0.3 * y, 1)  # rounded: many ties
    return y.astype(int), s


def test_auc_ap_match_sklearn_with_ones():
    for seed in range(5):
        y, s = _presence(seed)
        one = np.ones((1, len(y)))
        assert roc_auc(y, s, one)[0] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
        assert average_precision(y, s, one)[0] == pytest.approx(average_precision_score(y, s), abs=1e-12)


def test_auc_ap_match_sklearn_on_the_expanded_sample():
    y, s = _presence(7)
    rng = np.random.default_rng(3)
    w = rng.integers(0, 4, size=(40, len(y))).astype(float)
    auc, ap = roc_auc(y, s, w), average_precision(y, s, w)
    checked = 0
    for b in range(len(w)):
        idx = np.repeat(np.arange(len(y)), w[b].astype(int))
        if len(set(y[idx])) < 2:
            assert math.isnan(auc[b]) and math.isnan(ap[b])
            continue
        assert auc[b] == pytest.approx(roc_auc_score(y[idx], s[idx]), abs=1e-12)
        assert ap[b] == pytest.approx(average_precision_score(y[idx], s[idx]), abs=1e-12)
        # sample_weight gives the same numbers
        assert auc[b] == pytest.approx(roc_auc_score(y, s, sample_weight=w[b]), abs=1e-12)
        checked += 1
    assert checked >= 35


def test_one_class_is_undefined():
    s = np.array([0.2, 0.5, 0.9])
    one = np.ones((1, 3))
    for y in ([0, 0, 0], [1, 1, 1]):
        assert math.isnan(roc_auc(y, s, one)[0]) and math.isnan(average_precision(y, s, one)[0])
    # a replicate that draws only negatives is undefined, the others are not
    w = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    auc = roc_auc([0, 0, 1], s, w)
    assert math.isnan(auc[0]) and auc[1] == 1.0


def test_presence_scores_by_hand():
    prob = np.zeros((2, 20, 20))
    prob[0, :2, :2] = [[0.9, 0.8], [0.7, 0.6]]  # top 1% of 400 px = the 4 largest
    prob[0, 5, 5] = 0.5
    prob[1] = 0.25
    s = presence_scores(prob, threshold=0.6, head=[0.3, 0.1])
    assert s["max"].tolist() == [0.9, 0.25]
    assert s["mean"] == pytest.approx([3.5 / 400, 0.25])
    assert s["area"].tolist() == [4 / 400, 0.0]  # 0.9, 0.8, 0.7 and 0.6 at or above 0.6; 0.5 is not
    assert s["top1"] == pytest.approx([(0.9 + 0.8 + 0.7 + 0.6) / 4, 0.25])
    assert s["head"].tolist() == [0.3, 0.1]
    with pytest.raises(InputError):
        presence_scores(prob, variants=("head",))
    truth = np.zeros((2, 20, 20), bool)
    truth[0, 0, 0] = True
    t = per_image_table(["p1", "p2"], truth, prob, threshold=0.6, head=[0.3, 0.1])
    assert t["label"].tolist() == [1, 0] and t["tp"].tolist() == [1, 0] and t["fp"].tolist() == [3, 0]
    assert [c for c in t.columns if c.startswith("score_")] == [f"score_{v}" for v in VARIANTS]


def _table(seed: int, n: int = 40) -> pd.DataFrame:
    pred, truth = _random_masks(seed, n=n)
    prob = np.where(pred, 0.8, 0.1) + np.random.default_rng(seed).random(pred.shape) * 0.1
    return per_image_table([f"img{k:03d}" for k in range(n)], truth, prob, head=np.linspace(0, 1, n))


def test_ci_is_the_percentile_of_image_resamples_with_sklearn():
    """The CI equals the percentile interval of sklearn's ROC-AUC and of the plain Dice_pos mean
    on resamples of images drawn as the frozen procedure draws them (sorted ids)."""
    t = _table(4)
    shuffled = t.sample(frac=1.0, random_state=1)  # row order must not matter
    B = 150
    m = evaluate(shuffled, iterations=B, seed=5)
    idx = np.random.default_rng(5).integers(0, len(t), size=(B, len(t)))  # ids img000.. sorted = row order of t
    aucs, dices = [], []
    for row in idx:
        sub = t.iloc[row]
        aucs.append(roc_auc_score(sub["label"], sub["score_max"]) if sub["label"].nunique() == 2 else np.nan)
        pos = sub[sub["t"] > 0]
        dices.append(np.mean((2 * pos["tp"] + 1e-6) / (pos["p"] + pos["t"] + 1e-6)) if len(pos) else np.nan)
    lo, hi = np.nanpercentile(aucs, [2.5, 97.5])
    assert m["roc_auc_max"]["ci_low"] == pytest.approx(lo) and m["roc_auc_max"]["ci_high"] == pytest.approx(hi)
    lo, hi = np.nanpercentile(dices, [2.5, 97.5])
    assert m["dice_pos"]["ci_low"] == pytest.approx(lo) and m["dice_pos"]["ci_high"] == pytest.approx(hi)
    assert m == evaluate(t, iterations=B, seed=5)
    assert set(m) >= {f"{k}_{v}" for v in VARIANTS for k in ("roc_auc", "ap")}


def test_compute_weighted_and_conventions():
    t = _table(6)
    m = evaluate(t, iterations=10, seed=0)
    one = np.ones((1, len(t)))
    for name in ("dice_pos", "recall_pos", "dice_nnunet", "roc_auc_top1", "ap_head"):
        assert compute_weighted(name, t, one)[0] == pytest.approx(m[name]["estimate"])
    doubled = pd.concat([t, t.assign(image_id=t["image_id"] + "b")])
    twice = compute_weighted("dice_pos", doubled, np.ones((1, 2 * len(t))))
    assert twice[0] == pytest.approx(m["dice_pos"]["estimate"])
    with pytest.raises(InputError):
        compute_weighted("dice_pos", t, np.ones((1, 3)))
    with pytest.raises(InputError):
        compute_weighted("sensitivity", t, one)
    assert CONVENTION["dice_pos"] == "benchmark" and CONVENTION["dice_nnunet"] == "nnU-Net"
    assert all(CONVENTION[n] == "presence" for n in m if n.startswith(("roc_auc_", "ap_")))


def test_unit_id_names_the_images_too():
    """medrepro's per-unit tables call the image ``unit_id``; the numbers are the same."""
    t = _table(3)
    a = evaluate(t, iterations=30, seed=2)
    b = evaluate(t.rename(columns={"image_id": "unit_id"}).assign(cluster=t["image_id"]), iterations=30, seed=2)
    assert a == b


def test_bad_tables():
    t = _hand_table()
    with pytest.raises(InputError, match="duplicate"):
        evaluate(pd.concat([t, t.iloc[:1]]), iterations=5)
    with pytest.raises(InputError, match="label"):
        evaluate(t.assign(label=[0, 2, 1, 0]), iterations=5)
    with pytest.raises(InputError, match="counts"):
        evaluate(t.assign(p=[0, 9, 0, 2]), iterations=5)
    with pytest.raises(InputError, match="score_head"):
        evaluate(t, iterations=5, variants=("head",))


def test_paired_difference():
    t = _table(8)
    same = paired_difference(t, t.sample(frac=1.0, random_state=0), iterations=100, seed=0)
    assert same["estimate"] == same["ci_low"] == same["ci_high"] == 0.0
    # perfect predictions vs empty predictions on the same images: Dice_pos 1 vs about 0
    perfect = t.assign(tp=t["t"], fp=0, fn=0, p=t["t"])
    empty = t.assign(tp=0, fp=0, fn=t["t"], p=0).iloc[5:]  # tested on fewer images
    d = paired_difference(perfect, empty, iterations=100, seed=0)
    assert d["n_images"] == len(t) - 5 and d["n_positive"] == int((t["t"].iloc[5:] > 0).sum())
    assert d["ci_low"] == pytest.approx(1.0, abs=1e-5) and d["ci_high"] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(InputError, match="true foreground"):
        paired_difference(t, t.assign(t=t["t"] + 1, fn=t["fn"] + 1), iterations=10)
    with pytest.raises(InputError, match="no image in common"):
        paired_difference(t, t.assign(image_id="other" + t["image_id"]), iterations=10)
