"""Fracture segmentation and presence metrics, in both conventions, with bootstrap CIs over images.

Two segmentation conventions are reported side by side, because they give different numbers on
the same predictions when most images have no fracture:

* **benchmark** (the public X-ray fracture benchmark's released definitions): per image
  ``Dice = (2 tp + 1e-6) / (p + t + 1e-6)`` and ``IoU = (tp + 1e-6) / (tp + fp + fn + 1e-6)``,
  where ``p`` / ``t`` are the predicted / true foreground pixel counts, so an empty prediction on
  an empty truth scores 1. ``dice_pos`` / ``iou_pos`` average them over the images whose truth is
  non-empty only. ``precision_pos`` = sum tp / (sum tp + sum fp + 1e-6) and ``recall_pos`` =
  sum tp / (sum tp + sum fn + 1e-6) are pooled over the pixels of ALL images, negatives
  included (despite the name).
* **nnU-Net** (``nnunetv2/evaluation/evaluate_predictions.py`` of MIC-DKFZ/nnUNet, matched at
  commit 0e495086eb108ff79afe106291e8c15bd2f2bc3a, file last changed in 26553c4653b4):
  ``compute_metrics`` gives per image ``Dice = 2tp / (2tp + fp + fn)`` and
  ``IoU = tp / (tp + fp + fn)``, NaN when ``tp + fp + fn == 0`` (truth and prediction both
  empty); ``compute_metrics_on_folder`` averages them with ``np.nanmean``. ``dice_nnunet`` /
  ``iou_nnunet`` are those nan-means over all images. (MONAI's ``DiceMetric(ignore_empty=True)``
  instead skips every image with an empty truth; on images with a non-empty truth all three Dice
  definitions agree up to the 1e-6 smoothing.)

**Presence** (image level): the label is "the truth mask has a positive pixel"; the score is one
of :data:`VARIANTS` computed from the probability map (:func:`presence_scores`). ``roc_auc_<v>``
and ``ap_<v>`` equal scikit-learn's ``roc_auc_score`` and ``average_precision_score``; both are
NaN (shown as "-") when only one class is present.

Every aggregate is a function of per-image values under bootstrap weights ``(B, n)`` (a unit's
weight is how often it was drawn; a row of ones is the point estimate), and equals the plain
statistic on the *expanded* sample in which each image is repeated as often as its weight says.
:func:`evaluate` draws the weights with the shared
:func:`medrepro.metrics.bootstrap.cluster_weights` (each image its own cluster) and reports
percentile CIs that leave out replicates where a metric is undefined.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from medrepro.errors import InputError
from medrepro.metrics.bootstrap import cluster_weights, percentile_ci

__all__ = [
    "CONVENTION", "EPS", "LEVEL", "SEGMENTATION", "VARIANTS", "average_precision", "compute_weighted",
    "dice_bench", "dice_nnunet", "evaluate", "iou_bench", "iou_nnunet", "metric_names", "paired_difference",
    "per_image_table", "pixel_counts", "presence_scores", "roc_auc",
]

EPS = 1e-6
"""The benchmark's smoothing constant."""

LEVEL = 0.95

VARIANTS: tuple[str, ...] = ("max", "mean", "area", "top1", "head")
"""Presence score variants: ``max`` / ``mean`` of the probability map, ``area`` (fraction of
pixels at or above the segmentation threshold), ``top1`` (mean of the top 1% probabilities), ``head``
(a classification head's probability, passed in)."""

SEGMENTATION: tuple[str, ...] = ("dice_pos", "iou_pos", "precision_pos", "recall_pos", "dice_nnunet", "iou_nnunet")

CONVENTION: dict[str, str] = {
    "dice_pos": "benchmark", "iou_pos": "benchmark", "precision_pos": "benchmark", "recall_pos": "benchmark",
    "dice_nnunet": "nnU-Net", "iou_nnunet": "nnU-Net",
    **{f"{kind}_{v}": "presence" for v in VARIANTS for kind in ("roc_auc", "ap")},
}
"""Which convention each metric follows, to label table columns."""

COUNT_COLUMNS = ("tp", "fp", "fn", "p", "t")


# --- per-image counts and values ---------------------------------------------------------------

def pixel_counts(pred: np.ndarray, truth: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image pixel counts of a batch: ``tp``, ``fp``, ``fn``, ``p`` (predicted foreground) and
    ``t`` (true foreground), each an int64 array of length N, from boolean (N, H, W) masks."""
    pred, truth = np.asarray(pred), np.asarray(truth)
    if pred.dtype != bool or truth.dtype != bool:
        raise InputError(None, "masks", f"dtypes {pred.dtype} and {truth.dtype}", "boolean masks")
    if pred.ndim != 3 or pred.shape != truth.shape:
        raise InputError(None, "masks", f"shapes {pred.shape} and {truth.shape}",
                         "two boolean arrays of one shape (N, H, W)")
    flat_p = pred.reshape(len(pred), -1)
    flat_t = truth.reshape(len(truth), -1)
    tp = np.count_nonzero(flat_p & flat_t, axis=1).astype(np.int64)
    p = np.count_nonzero(flat_p, axis=1).astype(np.int64)
    t = np.count_nonzero(flat_t, axis=1).astype(np.int64)
    return {"tp": tp, "fp": p - tp, "fn": t - tp, "p": p, "t": t}


def dice_bench(tp, p, t) -> np.ndarray:
    """Benchmark per-image Dice ``(2tp + 1e-6) / (p + t + 1e-6)`` (1 for empty on empty)."""
    tp, p, t = (np.asarray(x, dtype=np.float64) for x in (tp, p, t))
    return (2.0 * tp + EPS) / (p + t + EPS)


def iou_bench(tp, fp, fn) -> np.ndarray:
    """Benchmark per-image IoU ``(tp + 1e-6) / (tp + fp + fn + 1e-6)``."""
    tp, fp, fn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn))
    return (tp + EPS) / (tp + fp + fn + EPS)


def _nan_where_empty(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(den.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def dice_nnunet(tp, fp, fn) -> np.ndarray:
    """nnU-Net per-image Dice ``2tp / (2tp + fp + fn)``; NaN when ``tp + fp + fn == 0``."""
    tp, fp, fn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn))
    return _nan_where_empty(2.0 * tp, 2.0 * tp + fp + fn)


def iou_nnunet(tp, fp, fn) -> np.ndarray:
    """nnU-Net per-image IoU ``tp / (tp + fp + fn)``; NaN when ``tp + fp + fn == 0``."""
    tp, fp, fn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn))
    return _nan_where_empty(tp, tp + fp + fn)


def presence_scores(prob: np.ndarray, threshold: float = 0.5, head=None,
                    variants: tuple[str, ...] = VARIANTS) -> dict[str, np.ndarray]:
    """Image-level presence scores of a batch of probability maps (N, H, W), one (N,) float64
    array per variant. ``area`` counts the pixels with ``prob >= threshold`` (the segmentation
    mask :func:`per_image_table` uses, as the study's threshold search does); ``top1`` averages
    the ``ceil(H*W / 100)`` largest probabilities; ``head`` is the given per-image classifier
    probability (required when asked)."""
    prob = np.asarray(prob)
    if prob.ndim != 3:
        raise InputError(None, "probabilities", f"shape {prob.shape}", "an (N, H, W) array")
    flat = prob.reshape(len(prob), -1).astype(np.float64, copy=False)
    out: dict[str, np.ndarray] = {}
    for v in variants:
        if v == "max":
            out[v] = flat.max(axis=1) if flat.shape[1] else np.zeros(len(flat))
        elif v == "mean":
            out[v] = flat.mean(axis=1)
        elif v == "area":
            out[v] = np.count_nonzero(flat >= threshold, axis=1) / flat.shape[1]
        elif v == "top1":
            k = max(1, math.ceil(flat.shape[1] / 100))
            out[v] = np.partition(flat, flat.shape[1] - k, axis=1)[:, -k:].mean(axis=1)
        elif v == "head":
            if head is None:
                raise InputError(None, "score_head", "no classification-head probabilities given",
                                 "the dual-head model's per-image presence probabilities")
            h = np.asarray(head, dtype=np.float64).reshape(-1)
            if h.shape != (len(flat),):
                raise InputError(None, "score_head", f"{h.size} values for {len(flat)} images", "one value per image")
            out[v] = h
        else:
            raise InputError(None, "presence variant", repr(v), f"one of {list(VARIANTS)}")
    return out


def per_image_table(image_ids, truth: np.ndarray, prob: np.ndarray, threshold: float = 0.5, head=None,
                    variants: tuple[str, ...] = VARIANTS) -> pd.DataFrame:
    """The per-image table :func:`evaluate` reads, for a batch: ``image_id``, the counts of
    :func:`pixel_counts` with the prediction ``prob >= threshold``, ``label`` (truth non-empty,
    0/1) and ``score_<variant>`` for each variant. Concatenate batches with ``pd.concat``."""
    truth = np.asarray(truth).astype(bool, copy=False)
    prob = np.asarray(prob)
    counts = pixel_counts(prob >= threshold, truth)
    ids = [str(i) for i in image_ids]
    if len(ids) != len(prob):
        raise InputError(None, "image_id", f"{len(ids)} ids for {len(prob)} images", "one id per image")
    table = pd.DataFrame({"image_id": ids, **counts, "label": (counts["t"] > 0).astype(np.int64)})
    for v, s in presence_scores(prob, threshold, head, variants).items():
        table[f"score_{v}"] = s
    return table


# --- rank-based presence metrics under weights -------------------------------------------------

def _grouped(labels, scores, weights) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative weight per distinct score value, scores ascending: two (B, G)."""
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    order = np.argsort(s, kind="stable")
    ss = s[order]
    starts = np.flatnonzero(np.r_[True, ss[1:] != ss[:-1]])
    ws, ys = w[:, order], y[order]
    pos = np.add.reduceat(np.where(ys, ws, 0.0), starts, axis=1)
    neg = np.add.reduceat(np.where(ys, 0.0, ws), starts, axis=1)
    return pos, neg


def roc_auc(labels, scores, weights) -> np.ndarray:
    """(B,) ROC-AUC under each weight row: the probability that a drawn positive scores above a
    drawn negative, ties counting one half (scikit-learn's ``roc_auc_score`` on the expanded
    sample). NaN where the drawn images hold only one class."""
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if w.shape[1] == 0:
        return np.full(w.shape[0], np.nan)
    pos, neg = _grouped(labels, scores, w)
    neg_below = np.cumsum(neg, axis=1) - neg
    num = (pos * (neg_below + 0.5 * neg)).sum(axis=1)
    return _nan_where_empty(num, pos.sum(axis=1) * neg.sum(axis=1))


def average_precision(labels, scores, weights) -> np.ndarray:
    """(B,) average precision under each weight row: ``sum_k (R_k - R_{k-1}) P_k`` over the
    distinct score thresholds, highest first, without interpolation (scikit-learn's
    ``average_precision_score`` on the expanded sample). NaN where only one class is drawn."""
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if w.shape[1] == 0:
        return np.full(w.shape[0], np.nan)
    pos, neg = _grouped(labels, scores, w)
    pos, neg = pos[:, ::-1], neg[:, ::-1]
    tp, fp = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
    precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
    wp, wn = pos.sum(axis=1), neg.sum(axis=1)
    ap = _nan_where_empty((pos * precision).sum(axis=1), wp)
    ap[wn == 0] = np.nan
    return ap


# --- aggregates of a per-image table -------------------------------------------------------------

class _Arrays:
    """The validated columns of a per-image table as numpy arrays."""

    def __init__(self, table: pd.DataFrame, variants: tuple[str, ...] | None = None, where=None):
        missing = [c for c in COUNT_COLUMNS if c not in table.columns]
        if missing:
            raise InputError(where, "per-image table", f"no column(s) {missing}",
                             f"columns image_id, {', '.join(COUNT_COLUMNS)}, label, score_<variant>")
        self.n = len(table)
        self.ids = table[_id_column(table, where)].astype(str).to_numpy()
        counts = {}
        for c in COUNT_COLUMNS:
            v = pd.to_numeric(table[c], errors="coerce").to_numpy(dtype=np.float64)
            bad = ~np.isfinite(v) | (v < 0) | (v != np.round(v))
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise InputError(where, f"row {i} ({self.ids[i]}): {c}", repr(table[c].iloc[i]), "a pixel count >= 0")
            counts[c] = v
        self.tp, self.fp, self.fn, self.p, self.t = (counts[c] for c in COUNT_COLUMNS)
        bad = (self.p != self.tp + self.fp) | (self.t != self.tp + self.fn)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(where, f"row {i} ({self.ids[i]}): counts", "p != tp + fp or t != tp + fn",
                             "consistent pixel counts")
        if "label" in table.columns:
            lab = pd.to_numeric(table["label"], errors="coerce").to_numpy(dtype=np.float64)
            bad = ~np.isin(lab, (0.0, 1.0))
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise InputError(where, f"row {i} ({self.ids[i]}): label", repr(table["label"].iloc[i]), "0 or 1")
            self.label = lab.astype(bool)
        else:
            self.label = self.t > 0
        if variants is None:
            variants = tuple(v for v in VARIANTS if f"score_{v}" in table.columns)
        self.variants = tuple(variants)
        self.scores: dict[str, np.ndarray] = {}
        for v in self.variants:
            col = f"score_{v}"
            if col not in table.columns:
                raise InputError(where, "per-image table", f"no column {col!r}",
                                 f"a {col} column for presence variant {v!r}")
            s = pd.to_numeric(table[col], errors="coerce").to_numpy(dtype=np.float64)
            bad = ~np.isfinite(s)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise InputError(where, f"row {i} ({self.ids[i]}): {col}", repr(table[col].iloc[i]), "a finite score")
            self.scores[v] = s

    def names(self) -> list[str]:
        return metric_names(self.variants)

    def count(self, name: str) -> int:
        """Number of images the metric is computed from."""
        if name in ("dice_pos", "iou_pos"):
            return int((self.t > 0).sum())
        if name in ("dice_nnunet", "iou_nnunet"):
            return int((self.tp + self.fp + self.fn > 0).sum())
        return self.n

    def compute(self, name: str, w: np.ndarray) -> np.ndarray:
        if name in ("dice_pos", "iou_pos"):
            values = dice_bench(self.tp, self.p, self.t) if name == "dice_pos" else iou_bench(self.tp, self.fp, self.fn)
            positive = (self.t > 0).astype(np.float64)
            return _nan_where_empty(w @ (values * positive), w @ positive)
        if name in ("precision_pos", "recall_pos"):
            tp = w @ self.tp
            other = w @ (self.fp if name == "precision_pos" else self.fn)
            return tp / (tp + other + EPS)
        if name in ("dice_nnunet", "iou_nnunet"):
            per_image = dice_nnunet if name == "dice_nnunet" else iou_nnunet
            values = per_image(self.tp, self.fp, self.fn)
            defined = ~np.isnan(values)
            return _nan_where_empty(w @ np.where(defined, values, 0.0), w @ defined.astype(np.float64))
        for kind, fn in (("roc_auc_", roc_auc), ("ap_", average_precision)):
            if name.startswith(kind):
                v = name[len(kind):]
                if v not in self.scores:
                    raise InputError(None, name, f"no score_{v} column in the per-image table", f"a score_{v} column")
                return fn(self.label, self.scores[v], w)
        raise InputError(None, "metric", f"unknown metric {name!r}", f"one of {metric_names()}")


def metric_names(variants: tuple[str, ...] = VARIANTS) -> list[str]:
    """The names :func:`evaluate` reports for the given presence variants, in order."""
    return [*SEGMENTATION, *(f"{k}_{v}" for v in variants for k in ("roc_auc", "ap"))]


def _variant_of(name: str) -> tuple[str, ...]:
    """The presence variant a metric name needs (``roc_auc_max`` -> ("max",)); () for the others."""
    for kind in ("roc_auc_", "ap_"):
        if name.startswith(kind):
            return (name[len(kind):],)
    return ()


def compute_weighted(name: str, table: pd.DataFrame, weights: np.ndarray) -> np.ndarray:
    """(B,) values of metric ``name`` (a key of :data:`CONVENTION`) of the per-image ``table``
    under each row of the (B, n) ``weights`` (rows in the table's row order)."""
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    arrays = _Arrays(table, _variant_of(name))
    if w.shape[1] != arrays.n:
        raise InputError(None, "weights", f"{w.shape[1]} columns for {arrays.n} images",
                         "one weight column per table row")
    return arrays.compute(name, w)


def _id_column(table: pd.DataFrame, where=None) -> str:
    """``image_id``, or ``unit_id`` (medrepro's per-unit table name) when there is no image_id."""
    for c in ("image_id", "unit_id"):
        if c in table.columns:
            return c
    raise InputError(where, "per-image table", "no column 'image_id' (or 'unit_id')", "one row per image with its id")


def _prepared(table: pd.DataFrame, where=None) -> pd.DataFrame:
    """The table with a string ``image_id`` column, sorted by it (numbers do not depend on the row
    order); one row per image."""
    col = _id_column(table, where)
    t = table.assign(image_id=table[col].astype(str))
    dup = t["image_id"][t["image_id"].duplicated()]
    if len(dup):
        raise InputError(where, col, f"duplicate image {dup.iloc[0]!r}", "one row per image")
    if len(t) == 0:
        raise InputError(where, "per-image table", "no images", "at least one image")
    return t.sort_values("image_id", kind="stable").reset_index(drop=True)


def evaluate(per_image: pd.DataFrame, iterations: int = 1000, seed: int = 0,
             variants: tuple[str, ...] | None = None, level: float = LEVEL, where=None) -> dict[str, dict]:
    """``{name: {"estimate", "ci_low", "ci_high", "n"}}`` for the segmentation metrics
    (:data:`SEGMENTATION`) and ``roc_auc_<v>`` / ``ap_<v>`` for every presence variant (default:
    every ``score_<v>`` column of the table). ``n`` is the number of images the metric is
    computed from (images with a fracture for dice_pos / iou_pos, images not empty-on-empty for
    the nnU-Net means, all images otherwise). CIs: percentile at ``level`` over ``iterations``
    bootstrap replicates of the images (each image its own cluster), drawn with ``seed``;
    replicates where a metric is undefined are left out. An undefined estimate is NaN."""
    t = _prepared(per_image, where)
    arrays = _Arrays(t, variants, where)
    w = cluster_weights(arrays.ids, iterations, seed)
    one = np.ones((1, arrays.n))
    out: dict[str, dict] = {}
    for name in arrays.names():
        lo, hi = percentile_ci(arrays.compute(name, w), level)
        out[name] = {"estimate": float(arrays.compute(name, one)[0]), "ci_low": lo, "ci_high": hi,
                     "n": arrays.count(name)}
    return out


def paired_difference(current: pd.DataFrame, reference: pd.DataFrame, name: str = "dice_pos",
                      iterations: int = 1000, seed: int = 0, level: float = LEVEL,
                      *, current_path=None, reference_path=None) -> dict:
    """``name`` of ``current`` minus ``name`` of ``reference`` on the images both were tested on,
    both computed under the SAME bootstrap draws of those images (a paired CI). Returns
    ``{"estimate", "ci_low", "ci_high", "n_images", "n_positive"}``. Errors: no shared image, or a
    shared image whose true foreground count differs between the tables (not the same data)."""
    a, b = _prepared(current, current_path), _prepared(reference, reference_path)
    shared = sorted(set(a["image_id"]) & set(b["image_id"]))
    where = reference_path if reference_path is not None else current_path
    if not shared:
        raise InputError(where, "image_id", "no image in common with the other run's test set",
                         "two runs tested on some of the same images")
    a = a.set_index("image_id").loc[shared].reset_index()
    b = b.set_index("image_id").loc[shared].reset_index()
    aa, bb = _Arrays(a, _variant_of(name), current_path), _Arrays(b, _variant_of(name), reference_path)
    bad = aa.t != bb.t
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(where, f"image {shared[i]!r}: t",
                         f"true foreground {int(bb.t[i])} differs from {int(aa.t[i])}",
                         "the same truth mask for an image both runs were tested on")
    w = cluster_weights(np.asarray(shared), iterations, seed)
    one = np.ones((1, len(shared)))
    point = float(aa.compute(name, one)[0] - bb.compute(name, one)[0])
    lo, hi = percentile_ci(aa.compute(name, w) - bb.compute(name, w), level)
    return {"estimate": point, "ci_low": lo, "ci_high": hi, "n_images": len(shared),
            "n_positive": int((aa.t > 0).sum())}
