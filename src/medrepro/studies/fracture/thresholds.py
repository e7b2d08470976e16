"""The thresholds a run chooses on its validation split (or, flagged test-guided, on test) and
saves with its checkpoint."""

from __future__ import annotations

import numpy as np

from medrepro.studies.fracture.metrics import presence_scores

#: Segmentation thresholds searched (benchmark Dice_pos is maximized over them).
SEG_GRID = tuple(round(t, 2) for t in np.arange(0.05, 0.96, 0.05))


def dice_pos_at(prob: np.ndarray, truth: np.ndarray, threshold: float) -> float:
    pred = prob >= threshold
    t = truth.astype(bool)
    tp = (pred & t).sum(axis=(1, 2))
    dice = (2 * tp + 1e-6) / (pred.sum(axis=(1, 2)) + t.sum(axis=(1, 2)) + 1e-6)
    pos = t.any(axis=(1, 2))
    return float(dice[pos].mean()) if pos.any() else float("nan")


def choose_segmentation_threshold(prob: np.ndarray, truth: np.ndarray) -> tuple[float, dict[float, float]]:
    """The grid threshold with the highest benchmark Dice_pos (the lowest such threshold on ties)."""
    curve = {t: dice_pos_at(prob, truth, t) for t in SEG_GRID}
    finite = {t: v for t, v in curve.items() if v == v}
    best = max(finite, key=lambda t: (finite[t], -t)) if finite else 0.5
    return float(best), curve


def choose_presence_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The score threshold with the highest Youden J (sensitivity + specificity - 1); a score at or
    above it calls a fracture present. With one class only: the midpoint of the scores' range."""
    labels = np.asarray(labels).astype(bool)
    if labels.all() or not labels.any():
        return float((scores.min() + scores.max()) / 2) if len(scores) else 0.5
    cands = np.unique(scores)
    pred = scores[None, :] >= cands[:, None]
    tpr = (pred & labels).sum(1) / labels.sum()
    fpr = (pred & ~labels).sum(1) / (~labels).sum()
    return float(cands[int(np.argmax(tpr - fpr))])


def choose_thresholds(prob: np.ndarray, truth: np.ndarray, head: np.ndarray | None, presence_score: str,
                      chosen_on: str) -> dict:
    seg, curve = choose_segmentation_threshold(prob, truth)
    scores = presence_scores(prob, seg, head, variants=(presence_score,))[presence_score]
    labels = truth.reshape(len(truth), -1).any(axis=1)
    return {"segmentation": seg, "presence": choose_presence_threshold(scores, labels),
            "presence_score": presence_score, "chosen_on": chosen_on, "n_images": int(len(prob)),
            "dice_pos_by_threshold": {f"{t:.2f}": v for t, v in curve.items()}}
