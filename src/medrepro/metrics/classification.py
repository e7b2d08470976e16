"""Classification metrics under bootstrap weights: weighted confusion matrices, accuracy and
macro precision / recall / F1 computed like scikit-learn's ``average="macro"`` over all classes
with ``zero_division=0``."""

from __future__ import annotations

import numpy as np

CLASSIFICATION = ("accuracy", "macro_precision", "macro_recall", "macro_f1")


def confusion_counts(y_true, y_pred, n_classes: int, weights: np.ndarray) -> np.ndarray:
    """(B, C, C) weighted confusion matrices, rows = true class, columns = predicted."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    cell = y_true * n_classes + y_pred
    onehot = np.zeros((len(cell), n_classes * n_classes))
    onehot[np.arange(len(cell)), cell] = 1.0
    return (np.atleast_2d(weights) @ onehot).reshape(-1, n_classes, n_classes)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 0)


def classification_from_confusion(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy and macro precision/recall/F1 for each (C, C) matrix in a (B, C, C) stack."""
    tp = np.diagonal(cm, axis1=1, axis2=2)
    pred = cm.sum(axis=1)
    true = cm.sum(axis=2)
    precision = _safe_div(tp, pred)
    recall = _safe_div(tp, true)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    return {
        "accuracy": _safe_div(tp.sum(axis=1), cm.sum(axis=(1, 2))),
        "macro_precision": precision.mean(axis=1),
        "macro_recall": recall.mean(axis=1),
        "macro_f1": f1.mean(axis=1),
        "per_class_recall": recall,
    }
