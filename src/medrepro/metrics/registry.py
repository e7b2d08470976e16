"""Metrics computed from a per-unit table under bootstrap weights.

Every metric is a function ``f(table, weights) -> values`` where ``table`` is the per-unit
predictions table (pandas DataFrame) and ``weights`` is a (B, n) array (one row per replicate;
a row of ones is the point estimate). Names:

- ``accuracy``, ``macro_precision``, ``macro_recall``, ``macro_f1``: classification metrics from
  the ``y_true`` and ``y_pred`` columns (integer class indices), computed like scikit-learn with
  ``average="macro"`` over all classes and ``zero_division=0``.
- ``mean:<column>``: weighted mean of a numeric column of the per-unit table (a per-unit
  rate, count or score).
- the regression metrics of :mod:`medrepro.metrics.regression` (``rmse``,
  ``standardized_rmse``, ``pearson_r``, ...; :data:`REGRESSION`) from float ``y_true`` and
  ``y_pred`` columns.

The leaderboard reads the study's primary metric name from the study's descriptor, so the
aggregation code never names a study.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from medrepro.errors import InputError
from medrepro.metrics.classification import CLASSIFICATION, classification_from_confusion, confusion_counts
from medrepro.metrics.regression import REGRESSION, compute_regression

__all__ = ["CLASSIFICATION", "REGRESSION", "classification_from_confusion", "compute", "confusion_counts", "known"]


def compute(name: str, table: pd.DataFrame, weights: np.ndarray, n_classes: int | None = None) -> np.ndarray:
    """Values of metric ``name`` under each row of ``weights``."""
    weights = np.atleast_2d(weights)
    if name in CLASSIFICATION:
        if n_classes is None:
            n_classes = int(max(table["y_true"].max(), table["y_pred"].max())) + 1
        cm = confusion_counts(table["y_true"], table["y_pred"], n_classes, weights)
        return classification_from_confusion(cm)[name]
    if name in REGRESSION:
        return compute_regression(name, table, weights)
    if name.startswith("mean:"):
        column = name.split(":", 1)[1]
        if column not in table.columns:
            raise InputError(None, name, f"column {column!r} not in the per-unit table", "an existing column")
        values = table[column].to_numpy(dtype=np.float64)
        return (weights @ values) / weights.sum(axis=1)
    raise InputError(None, "metric", f"unknown metric {name!r}", f"one of {CLASSIFICATION + REGRESSION} or mean:<column>")


def known(name: str) -> bool:
    return name in CLASSIFICATION or name in REGRESSION or name.startswith("mean:")


MetricFn = Callable[[pd.DataFrame, np.ndarray], np.ndarray]
