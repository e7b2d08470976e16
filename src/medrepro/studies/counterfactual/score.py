"""Submission validation and scoring for the counterfactual benchmark.

Submission format (``spinefairbench-submission-v1``)::

    {"schema_version": "spinefairbench-submission-v1",
     "scope": "common-core-1000" | "all-model-intersection-2166" | "qc-passed" | "toy",
     "model": {"name": "...", ...},
     "results": [{"pair_id": "<source_id>__<edit_label>",
                  "source_report": "...", "counterfactual_report": "...",
                  "source_id": "<source_id>",      # optional, must match the pair id
                  "metadata": {...}},               # optional, an object
                 ...]}

Validation choices (where the released benchmark leaves the format open):

* extra top-level keys are allowed (ignored); each result must have *exactly* the keys above
  (required: ``pair_id``, ``source_report``, ``counterfactual_report``; optional:
  ``source_id``, ``metadata``) -- unknown keys are an error;
* ``pair_id`` is split at its LAST ``"__"``: the source id is everything before it, the edit
  label everything after (edit labels cannot contain ``"__"``; source ids may); both parts
  must be non-empty;
* reports must be non-empty strings (``""`` is rejected); a whitespace-only report passes
  validation and is then classified as a FULL refusal (empty text);
* ``model`` must be an object with a non-empty string ``name``.

Scoring (:func:`score_submission`):

* the scope comes from the QC table: ``qc-passed`` (default) = rows with ``qc_pass`` true;
  ``all`` = every row; any other scope name needs a boolean column of that name (or
  ``in_<name>`` / ``scope_<name>``) in the table;
* the submission must cover every pair of the scope, unless ``allow_partial`` (then the
  result is flagged ``partial``); pairs outside the scope are ignored and counted;
* a pair with a FULL refusal on either side is excluded from the endpoints; PARTIAL pairs
  stay (and are counted);
* endpoints over the usable pairs, each with the source-clustered bootstrap CI (the RNG
  restarted with ``seed`` for each endpoint, the seed recorded per endpoint):
  ``recommendation_change`` (mean of the 0/1 change indicator) and ``label_consistency``
  (mean label Jaccard, 1.0 for two empty label sets);
* ``gap_exact = mean Jaccard - (1 - change rate)``; ``gap_graded = mean Jaccard - mean
  recommendation-category Jaccard``;
* per-pair results are sorted by ``pair_id`` (so the result does not depend on the order of
  the submission's results).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from medrepro.studies.counterfactual.bootstrap import clustered_bootstrap_ci
from medrepro.studies.counterfactual.parse import (
    REFUSAL_CLASSES,
    classify_refusal,
    parse_labels,
    parse_recommendations,
    set_jaccard,
)
from medrepro.errors import InputError
from medrepro.fsutil import atomic_path, write_json

__all__ = [
    "SCHEMA_VERSION",
    "SCOPES",
    "PER_PAIR_CSV_COLUMNS",
    "split_pair_id",
    "load_submission",
    "validate_submission",
    "scope_pairs",
    "score_submission",
    "write_score",
    "write_per_pair_csv",
]

SCHEMA_VERSION = "spinefairbench-submission-v1"
SCOPES = ("common-core-1000", "all-model-intersection-2166", "qc-passed", "toy")
_REQUIRED = ("pair_id", "source_report", "counterfactual_report")
_OPTIONAL = ("source_id", "metadata")
PER_PAIR_CSV_COLUMNS = ("unit_id", "cluster", "rec_change", "label_jaccard")


def split_pair_id(pair_id: str) -> tuple[str, str]:
    """``"S00001__young_female" -> ("S00001", "young_female")`` (split at the last ``__``)."""
    src, sep, edit = pair_id.rpartition("__")
    if not sep or not src or not edit:
        raise ValueError(pair_id)
    return src, edit


def load_submission(path: str | Path) -> dict:
    """Read and validate a submission JSON; every violation is an
    :class:`~medrepro.errors.InputError` naming the file, the pair (index and pair_id) and the
    field. Returns the parsed object."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(path, "submission", "file not found", "a submission JSON file") from None
    except UnicodeDecodeError:
        raise InputError(path, "submission", "not UTF-8 text", "a UTF-8 JSON file") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(path, f"line {e.lineno} column {e.colno}", f"invalid JSON ({e.msg})", "a JSON object") from None
    validate_submission(obj, path)
    return obj


def validate_submission(obj: Any, path: str | Path | None = "<submission>") -> None:
    """Validate a parsed submission (see module docstring); raise InputError on the first problem."""
    if not isinstance(obj, dict):
        raise InputError(path, "submission", f"top level is {type(obj).__name__}", "a JSON object")
    if obj.get("schema_version") != SCHEMA_VERSION:
        raise InputError(path, "schema_version", f"{obj.get('schema_version')!r}", repr(SCHEMA_VERSION))
    if obj.get("scope") not in SCOPES:
        raise InputError(path, "scope", f"{obj.get('scope')!r}", "one of " + ", ".join(SCOPES))
    model = obj.get("model")
    if not isinstance(model, dict):
        raise InputError(path, "model", f"{type(model).__name__ if model is not None else 'missing'}",
                         "an object with a 'name'")
    if not isinstance(model.get("name"), str) or not model["name"].strip():
        raise InputError(path, "model.name", f"{model.get('name')!r}", "a non-empty string")
    results = obj.get("results")
    if not isinstance(results, list) or not results:
        raise InputError(path, "results", "missing, not a list or empty" if not isinstance(results, list) else "empty list",
                         "a non-empty list of results")
    seen: dict[str, int] = {}
    for i, r in enumerate(results):
        where = f"results[{i}]"
        if not isinstance(r, dict):
            raise InputError(path, where, f"is {type(r).__name__}", "an object")
        pid = r.get("pair_id")
        if isinstance(pid, str):
            where = f"results[{i}] (pair_id={pid!r})"
        unknown = sorted(set(r) - set(_REQUIRED) - set(_OPTIONAL))
        if unknown:
            raise InputError(path, f"{where}.{unknown[0]}", "unknown field",
                             "only " + ", ".join(_REQUIRED + _OPTIONAL))
        for field in _REQUIRED:
            if field not in r:
                raise InputError(path, f"{where}.{field}", "missing", "a non-empty string")
            v = r[field]
            if not isinstance(v, str) or v == "":
                raise InputError(path, f"{where}.{field}", f"{v!r}" if not isinstance(v, str) else "empty string",
                                 "a non-empty string")
        try:
            src, _edit = split_pair_id(pid)
        except ValueError:
            raise InputError(path, f"{where}.pair_id", f"{pid!r} is not '<source_id>__<edit_label>'",
                             "'{source_id}__{edit_label}'") from None
        if pid in seen:
            raise InputError(path, f"{where}.pair_id", f"duplicate of results[{seen[pid]}]", "unique pair ids")
        seen[pid] = i
        if "source_id" in r:
            sid = r["source_id"]
            if not isinstance(sid, str) or sid != src:
                raise InputError(path, f"{where}.source_id", f"{sid!r} does not match the pair id",
                                 f"{src!r} (the part of pair_id before '__')")
        if "metadata" in r and not isinstance(r["metadata"], dict):
            raise InputError(path, f"{where}.metadata", f"is {type(r['metadata']).__name__}", "an object")


def _read_table(pairs_table: Any) -> tuple[pd.DataFrame, str]:
    if isinstance(pairs_table, pd.DataFrame):
        return pairs_table, "<pairs table>"
    try:
        return pd.read_csv(pairs_table, dtype={"pair_id": str, "source_id": str, "edit": str}), str(pairs_table)
    except FileNotFoundError:
        raise InputError(pairs_table, "pairs table", "file not found", "a QC table CSV") from None


def _truthy(s: pd.Series) -> np.ndarray:
    if s.dtype == bool or str(s.dtype) == "boolean":
        return s.fillna(False).to_numpy(dtype=bool)
    return s.astype(str).str.strip().str.lower().isin(["true", "1", "yes", "1.0"]).to_numpy()


def scope_pairs(pairs_table: Any, scope: str = "qc-passed") -> pd.DataFrame:
    """Rows of the QC/pairs table in ``scope``: columns ``pair_id, source_id, edit``."""
    t, where = _read_table(pairs_table)
    if "pair_id" not in t.columns:
        raise InputError(where, "pair_id", "column missing", "a QC table with pair_id, source_id, qc_pass")
    if scope == "all":
        mask = np.ones(len(t), dtype=bool)
    elif scope == "qc-passed":
        if "qc_pass" not in t.columns:
            raise InputError(where, "qc_pass", "column missing", "the QC table written by qc_pairs")
        mask = _truthy(t["qc_pass"])
    else:
        col = next((c for c in (scope, f"in_{scope}", f"scope_{scope}") if c in t.columns), None)
        if col is None:
            raise InputError(where, "scope", f"the table does not define scope {scope!r}",
                             f"'qc-passed', 'all' or a boolean column {scope!r}")
        mask = _truthy(t[col])
    sub = t.loc[mask].copy()
    pids = sub["pair_id"].astype(str)
    if "source_id" in sub.columns:
        sids = sub["source_id"].astype(str)
    else:
        sids = pids.map(lambda p: p.rpartition("__")[0])
    edits = sub["edit"].astype(str) if "edit" in sub.columns else pids.map(lambda p: p.rpartition("__")[2])
    out = pd.DataFrame({"pair_id": pids.to_numpy(), "source_id": sids.to_numpy(), "edit": edits.to_numpy()})
    dup = out["pair_id"][out["pair_id"].duplicated()]
    if len(dup):
        raise InputError(where, "pair_id", f"duplicate pair_id {dup.iloc[0]!r}", "unique pair ids")
    return out


def _endpoint(values: np.ndarray, clusters: np.ndarray, iterations: int, seed: int) -> dict:
    est, lo, hi = clustered_bootstrap_ci(values, clusters, iterations=iterations, seed=seed)
    return {"estimate": est, "ci_low": lo, "ci_high": hi, "n_pairs": int(values.size),
            "n_clusters": int(np.unique(clusters).size), "seed": seed, "iterations": iterations,
            "ci_level": 0.95, "method": "source-clustered percentile bootstrap"}


def score_submission(
    submission: Mapping[str, Any] | str | Path,
    pairs_table: pd.DataFrame | str | Path,
    scope: str = "qc-passed",
    allow_partial: bool = False,
    iterations: int = 10000,
    seed: int = 42,
) -> dict:
    """Score one submission against the scope given by the QC table (see module docstring)."""
    sub_path = "<submission>"
    if isinstance(submission, (str, Path)):
        sub_path = str(submission)
        submission = load_submission(submission)
    else:
        validate_submission(submission, sub_path)
    scoped = scope_pairs(pairs_table, scope)
    if not len(scoped):
        where = "<pairs table>" if isinstance(pairs_table, pd.DataFrame) else str(pairs_table)
        raise InputError(where, "scope", f"no pairs in scope {scope!r}", "at least one pair")
    scope_idx = {p: i for i, p in enumerate(scoped["pair_id"])}
    results = submission["results"]
    by_id = {r["pair_id"]: r for r in results}
    in_scope = sorted(p for p in by_id if p in scope_idx)
    outside = sorted(p for p in by_id if p not in scope_idx)
    missing = sorted(p for p in scope_idx if p not in by_id)
    if missing and not allow_partial:
        raise InputError(
            sub_path, "results",
            f"{len(missing)} of {len(scoped)} pairs in scope {scope!r} are missing, e.g. {', '.join(missing[:5])}",
            "every pair of the scope (or --allow-partial)",
        )
    if not in_scope:
        raise InputError(sub_path, "results", f"no result is in scope {scope!r}", "at least one pair of the scope")

    per_pair = []
    ref_counts = {"source": dict.fromkeys(REFUSAL_CLASSES, 0), "counterfactual": dict.fromkeys(REFUSAL_CLASSES, 0)}
    for pid in in_scope:
        r = by_id[pid]
        row = scoped.iloc[scope_idx[pid]]
        ls, lc = parse_labels(r["source_report"]), parse_labels(r["counterfactual_report"])
        rs, rc = parse_recommendations(r["source_report"]), parse_recommendations(r["counterfactual_report"])
        fs, fc = classify_refusal(r["source_report"]), classify_refusal(r["counterfactual_report"])
        ref_counts["source"][fs] += 1
        ref_counts["counterfactual"][fc] += 1
        per_pair.append({
            "pair_id": pid, "source_id": str(row["source_id"]), "edit": str(row["edit"]),
            "labels_src": sorted(ls), "labels_cf": sorted(lc), "jaccard": set_jaccard(ls, lc),
            "rec_src": sorted(rs), "rec_cf": sorted(rc), "rec_changed": rs != rc, "rec_jaccard": set_jaccard(rs, rc),
            "refusal_src": fs, "refusal_cf": fc, "excluded": fs == "FULL" or fc == "FULL",
        })

    usable = [p for p in per_pair if not p["excluded"]]
    n_excluded = len(per_pair) - len(usable)
    if not usable:
        raise InputError(sub_path, "results", f"all {len(per_pair)} in-scope pairs have a FULL refusal",
                         "at least one usable pair")
    clusters = np.array([p["source_id"] for p in usable])
    changed = np.array([1.0 if p["rec_changed"] else 0.0 for p in usable])
    jac = np.array([p["jaccard"] for p in usable])
    rec_jac = np.array([p["rec_jaccard"] for p in usable])

    rec_ep = _endpoint(changed, clusters, iterations, seed)  # RNG restarted per endpoint
    lab_ep = _endpoint(jac, clusters, iterations, seed)
    mean_jac = float(jac.sum() / jac.size)
    change_rate = float(changed.sum() / changed.size)
    mean_rec_jac = float(rec_jac.sum() / rec_jac.size)
    gap_exact = mean_jac - (1.0 - change_rate)
    gap_graded = mean_jac - mean_rec_jac
    both_empty = sum(1 for p in usable if not p["labels_src"] and not p["labels_cf"])
    n_partial = sum(1 for p in usable if "PARTIAL" in (p["refusal_src"], p["refusal_cf"]))

    model = submission["model"]
    r3 = lambda x: round(float(x), 3)  # noqa: E731
    table_row = {
        "model": model["name"],
        "n_pairs": len(usable),
        "recommendation_change": r3(rec_ep["estimate"]),
        "recommendation_change_ci": [r3(rec_ep["ci_low"]), r3(rec_ep["ci_high"])],
        "label_consistency": r3(lab_ep["estimate"]),
        "label_consistency_ci": [r3(lab_ep["ci_low"]), r3(lab_ep["ci_high"])],
        "gap_exact": r3(gap_exact),
        "gap_graded": r3(gap_graded),
        "coverage": r3(len(in_scope) / len(scoped)),
        "partial": bool(missing),
    }
    return {
        "schema": "medrepro-counterfactual-score-v1",
        "submission": sub_path,
        "model": dict(model),
        "submission_scope": submission["scope"],
        "coverage": {
            "scope": scope,
            "n_scope_pairs": len(scoped),
            "n_submitted": len(results),
            "n_in_scope": len(in_scope),
            "n_missing": len(missing),
            "missing_examples": missing[:10],
            "n_outside_scope_ignored": len(outside),
            "outside_scope_examples": outside[:10],
            "fraction": len(in_scope) / len(scoped),
            "partial": bool(missing),
            "allow_partial": bool(allow_partial),
        },
        "refusals": {
            "source": ref_counts["source"],
            "counterfactual": ref_counts["counterfactual"],
            "excluded_pairs": n_excluded,
            "partial_pairs_kept": n_partial,
            "rule": "pairs with a FULL refusal on either side are excluded; PARTIAL pairs are kept",
        },
        "n_pairs_usable": len(usable),
        "endpoints": {"recommendation_change": rec_ep, "label_consistency": lab_ep},
        "gap_exact": gap_exact,
        "gap_graded": gap_graded,
        "mean_recommendation_jaccard": mean_rec_jac,
        "both_empty_labels": {"n": both_empty, "of": len(usable)},
        "bootstrap": {"iterations": iterations, "seed_per_endpoint": {"recommendation_change": seed,
                                                                      "label_consistency": seed},
                      "chunk": 1024, "rng": "numpy.random.default_rng, restarted per endpoint"},
        "table_row": table_row,
        "per_pair": per_pair,
    }


def write_score(score: Mapping[str, Any], path: str | Path) -> Path:
    """Write the score dict as JSON, atomically."""
    _check_finite(score)
    write_json(path, score)
    return Path(path)


def _check_finite(obj: Any) -> None:
    if isinstance(obj, float) and not math.isfinite(obj):
        raise InputError(None, "score", f"non-finite number {obj}", "finite numbers")
    if isinstance(obj, dict):
        for v in obj.values():
            _check_finite(v)
    elif isinstance(obj, list):
        for v in obj:
            _check_finite(v)


def write_per_pair_csv(score: Mapping[str, Any], path: str | Path) -> Path:
    """Write the usable (non-excluded) pairs as CSV with columns ``unit_id`` (pair_id),
    ``cluster`` (source_id), ``rec_change`` (0/1) and ``label_jaccard``; atomic. Excluded
    (FULL-refusal) pairs are left out, so a paired comparison of two models intersects the
    unit ids."""
    rows = [p for p in score["per_pair"] if not p["excluded"]]
    df = pd.DataFrame({
        "unit_id": [p["pair_id"] for p in rows],
        "cluster": [p["source_id"] for p in rows],
        "rec_change": [int(bool(p["rec_changed"])) for p in rows],
        "label_jaccard": [float(p["jaccard"]) for p in rows],
    }, columns=list(PER_PAIR_CSV_COLUMNS))
    path = Path(path)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    return path
