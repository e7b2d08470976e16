"""Loes-score regression metrics with 95% CIs from a bootstrap over SUBJECTS, and the paired
comparison of two models on the scans both were tested on.

A per-unit table has one row per test scan: ``unit_id`` (the scan), ``cluster`` (its subject),
``y_true``, ``y_pred``. All scans of a subject are drawn together, so a subject with several
sessions counts as one independent observation in the CIs (scans of one subject are correlated).
The draws are the shared :func:`medrepro.metrics.bootstrap.cluster_weights`; percentile 95%
intervals ignore the replicates where a statistic is undefined (see
:mod:`medrepro.metrics.regression`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from medrepro.errors import InputError
from medrepro.metrics.bootstrap import cluster_weights
from medrepro.metrics.regression import REGRESSION, SCORE_RANGES, nan_percentile_ci, range_counts, regression_metrics

__all__ = ["LEVEL", "VERDICTS", "evaluate_table", "n_scans", "n_subjects", "paired_comparison", "verdict"]

LEVEL = 0.95
COLUMNS = ("unit_id", "cluster", "y_true", "y_pred")
VERDICTS = ("better", "worse", "not distinguishable")


def _prepared(table: pd.DataFrame, where: str | None = None) -> pd.DataFrame:
    """The table's needed columns, ids as strings, sorted by unit_id (so the numbers do not depend
    on the row order); a missing column or duplicate unit is an error."""
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise InputError(where, "per-unit table", f"no column(s) {missing}", f"columns {list(COLUMNS)}")
    t = table.loc[:, list(COLUMNS)].copy()
    t["unit_id"] = t["unit_id"].astype(str)
    t["cluster"] = t["cluster"].astype(str)
    t["y_true"] = t["y_true"].astype(np.float64)
    t["y_pred"] = t["y_pred"].astype(np.float64)
    dup = t["unit_id"][t["unit_id"].duplicated()]
    if len(dup):
        raise InputError(where, "unit_id", f"duplicate unit {dup.iloc[0]!r}", "one row per scan")
    if len(t) == 0:
        raise InputError(where, "per-unit table", "no scans", "at least one scan")
    return t.sort_values("unit_id", kind="stable").reset_index(drop=True)


def n_scans(table: pd.DataFrame) -> int:
    """Number of test scans (rows) of a per-unit table."""
    return int(len(table))


def n_subjects(table: pd.DataFrame) -> int:
    """Number of distinct subjects (bootstrap clusters) of a per-unit table."""
    return int(table["cluster"].astype(str).nunique())


def evaluate_table(table: pd.DataFrame, iterations: int = 1000, seed: int = 0, level: float = LEVEL) -> dict[str, dict]:
    """``{name: {"estimate", "ci_low", "ci_high", "n"}}`` for every regression metric
    (:data:`~medrepro.metrics.regression.REGRESSION`); ``n`` is the number of scans the metric
    is computed from (those in the score range for ``mae_0_5`` ...). A score-range metric with
    no scan in its range is left out. CIs: percentile, ``level``, over ``iterations`` bootstrap
    replicates of the subjects (``cluster`` column) drawn with ``seed``. An estimate that is
    undefined on the data (e.g. a correlation of constant predictions) is NaN."""
    t = _prepared(table)
    w = cluster_weights(t["cluster"], iterations, seed)
    point = regression_metrics(t["y_true"], t["y_pred"], np.ones((1, len(t))))
    reps = regression_metrics(t["y_true"], t["y_pred"], w)
    counts = range_counts(t["y_true"])
    out: dict[str, dict] = {}
    for name in REGRESSION:
        n = counts[name] if name in SCORE_RANGES else len(t)
        if n == 0:
            continue
        lo, hi = nan_percentile_ci(reps[name], level)
        out[name] = {"estimate": float(point[name][0]), "ci_low": lo, "ci_high": hi, "n": int(n)}
    return out


def verdict(standardized_rmse_diff: dict, pearson_r_diff: dict) -> str:
    """The comparison's word from the two paired differences (current minus previous), each with
    ``ci_low`` / ``ci_high``.

    An interval favours the current model when it excludes 0 on its side (standardized RMSE
    difference entirely below 0, Pearson r difference entirely above 0) and goes against it when
    it excludes 0 on the other side. ``better``: at least one interval favours the current model
    and none goes against it; ``worse``: the mirror image; ``not distinguishable``: neither
    interval excludes 0, or they point in opposite directions. An undefined (NaN) interval
    excludes nothing."""
    s_lo, s_hi = standardized_rmse_diff["ci_low"], standardized_rmse_diff["ci_high"]
    r_lo, r_hi = pearson_r_diff["ci_low"], pearson_r_diff["ci_high"]
    favours = bool(s_hi < 0.0) or bool(r_lo > 0.0)  # NaN comparisons are False
    against = bool(s_lo > 0.0) or bool(r_hi < 0.0)
    if favours and not against:
        return "better"
    if against and not favours:
        return "worse"
    return "not distinguishable"


def paired_comparison(current: pd.DataFrame, previous: pd.DataFrame, iterations: int = 1000, seed: int = 0,
                      level: float = LEVEL, *, current_path=None, previous_path=None) -> dict:
    """Current model minus previous model on the scans (``unit_id``) both tables hold.

    Both models' metrics are computed under the SAME subject-bootstrap draws of the shared scans,
    so each replicate's difference is a paired one. Returns ``{"standardized_rmse_diff",
    "pearson_r_diff"}`` (each ``{"estimate", "ci_low", "ci_high"}``), ``"verdict"`` (see
    :func:`verdict`), and ``"n_scans"`` / ``"n_subjects"`` of the overlap. Errors (naming
    ``current_path`` / ``previous_path`` when given): no shared scan, or a shared scan whose true
    score or subject differs between the tables (they were not tested on the same data)."""
    cur, prev = _prepared(current, current_path), _prepared(previous, previous_path)
    shared = sorted(set(cur["unit_id"]) & set(prev["unit_id"]))
    where = previous_path if previous_path is not None else current_path
    if not shared:
        raise InputError(where, "unit_id", "no scan in common with the current model's test set",
                         "the two models tested on some of the same scans (subject/session/scan)")
    a = cur.set_index("unit_id").loc[shared].reset_index()
    b = prev.set_index("unit_id").loc[shared].reset_index()
    bad_truth = ~np.isclose(a["y_true"].to_numpy(), b["y_true"].to_numpy(), rtol=0.0, atol=1e-9)
    if bad_truth.any():
        i = int(np.flatnonzero(bad_truth)[0])
        raise InputError(where, f"unit {shared[i]!r}: y_true",
                         f"true score {b.at[i, 'y_true']} differs from {a.at[i, 'y_true']} of the current model's table",
                         "the same true score for a scan both models were tested on")
    bad_subject = a["cluster"].to_numpy() != b["cluster"].to_numpy()
    if bad_subject.any():
        i = int(np.flatnonzero(bad_subject)[0])
        raise InputError(where, f"unit {shared[i]!r}: cluster",
                         f"subject {b.at[i, 'cluster']!r} differs from {a.at[i, 'cluster']!r} of the current model's table",
                         "the same subject for a scan both models were tested on")
    names = ("standardized_rmse", "pearson_r")
    w = cluster_weights(a["cluster"], iterations, seed)
    one = np.ones((1, len(shared)))
    out: dict = {}
    for name in names:
        point = (regression_metrics(a["y_true"], a["y_pred"], one, (name,))[name]
                 - regression_metrics(b["y_true"], b["y_pred"], one, (name,))[name])[0]
        reps = (regression_metrics(a["y_true"], a["y_pred"], w, (name,))[name]
                - regression_metrics(b["y_true"], b["y_pred"], w, (name,))[name])
        lo, hi = nan_percentile_ci(reps, level)
        out[f"{name}_diff"] = {"estimate": float(point), "ci_low": lo, "ci_high": hi}
    out["verdict"] = verdict(out["standardized_rmse_diff"], out["pearson_r_diff"])
    out["n_scans"] = n_scans(a)
    out["n_subjects"] = n_subjects(a)
    return out
