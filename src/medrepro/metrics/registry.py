"""Metrics computed from a per-unit table under bootstrap weights.

Every metric is a function ``f(table, weights) -> values`` where ``table`` is the per-unit
predictions table (pandas DataFrame) and ``weights`` is a (B, n) array (one row per replicate;
a row of ones is the point estimate). Names:

- ``accuracy``, ``macro_precision``, ``macro_recall``, ``macro_f1``: classification metrics from
  the ``y_true`` and ``y_pred`` columns (integer class indices), computed like scikit-learn with
  ``average="macro"`` over all classes and ``zero_division=0``.
- ``mean:<column>``: weighted mean of a numeric column (e.g. ``mean:rec_change``).

The leaderboard reads the study's primary metric name from the study descriptor in the config,
so the aggregation code never names a study.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from medrepro.errors import InputError

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


def compute(name: str, table: pd.DataFrame, weights: np.ndarray, n_classes: int | None = None) -> np.ndarray:
    """Values of metric ``name`` under each row of ``weights``."""
    weights = np.atleast_2d(weights)
    if name in CLASSIFICATION:
        if n_classes is None:
            n_classes = int(max(table["y_true"].max(), table["y_pred"].max())) + 1
        cm = confusion_counts(table["y_true"], table["y_pred"], n_classes, weights)
        return classification_from_confusion(cm)[name]
    if name.startswith("mean:"):
        column = name.split(":", 1)[1]
        if column not in table.columns:
            raise InputError(None, name, f"column {column!r} not in the per-unit table", "an existing column")
        values = table[column].to_numpy(dtype=np.float64)
        return (weights @ values) / weights.sum(axis=1)
    raise InputError(None, "metric", f"unknown metric {name!r}", f"one of {CLASSIFICATION} or mean:<column>")


def known(name: str) -> bool:
    return name in CLASSIFICATION or name.startswith("mean:")


MetricFn = Callable[[pd.DataFrame, np.ndarray], np.ndarray]
