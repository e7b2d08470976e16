"""Submission validation and scoring for the counterfactual benchmark, by the released rules.

Submission format (``spinefairbench-submission-v1``)::

    {"schema_version": "spinefairbench-submission-v1",
     "scope": "common-core-1000" | "all-model-intersection-2166" | "qc-passed" | "toy",
     "model": {"name": "...", ...},
     "results": [{"pair_id": "<source_id>__<edit_label>",
                  "source_report": "...", "counterfactual_report": "...",
                  "source_id": "<source_id>",      # optional
                  "metadata": {...}},               # optional
                 ...]}

Validation (:func:`validate_submission`), in the released order, each violation an
:class:`~medrepro.errors.InputError` naming the file, the result (index and pair id) and the
field: the top level is an object; ``schema_version`` is the one above; ``scope`` is one of
the four; ``model`` is an object with a non-blank string ``name``; ``results`` is a non-empty
list of objects, each with only the five keys above, a non-blank string ``pair_id`` not used
before, non-blank string reports (a whitespace-only report is rejected), a non-blank string
``source_id`` when present and not null, and an object ``metadata`` when present and not
null. Extra top-level keys are allowed.

Scoring (:func:`score_submission`):

* the submission is scored in the scope it declares; a requested ``scope`` that differs is
  an error, not an override;
* the scope's pairs come from the QC table (:func:`scope_pairs`): ``qc-passed`` = rows with
  ``qc_pass`` true; ``common-core-1000`` = the QC-passed rows of the common-core sources,
  flagged in a boolean column of that name (or ``in_<name>`` / ``scope_<name>``; a source is
  in the core when one of its rows is flagged, and for this scope every core source needs a
  QC-passed row);
  ``all-model-intersection-2166`` = the rows flagged in such a column, each of which must be a
  QC-passed row of a common-core source; ``toy`` = the submitted pairs, each of which must be
  a QC-passed row;
* a submitted pair outside the scope is an error; a pair of the scope that is missing is an
  error unless ``allow_partial`` (the score is then flagged partial);
* a declared ``source_id`` must equal the QC table's source id of the pair;
* each report is classified (GENUINE / PARTIAL / FULL); a pair with a FULL refusal on either
  side is excluded from the endpoints, PARTIAL pairs stay and are counted;
* endpoints over the usable pairs, each with the source-clustered bootstrap CI (the RNG
  restarted with ``seed`` for each endpoint, the seed recorded per endpoint):
  ``recommendation_change`` (mean of ``sorted(source categories) != sorted(counterfactual
  categories)``) and ``label_consistency`` (mean label Jaccard, 1.0 for two empty sets);
* ``gap_exact = mean Jaccard - (1 - change rate)``; ``gap_graded = mean Jaccard - mean
  recommendation-category Jaccard``;
* per-pair results are sorted by ``pair_id`` (Python string order), as released.

Every score records the sha256 of the frozen registry (:data:`.parse.REGISTRY_SHA256`) and
the released commit it was transcribed from.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from medrepro.errors import InputError
from medrepro.fsutil import atomic_path, write_json
from medrepro.studies.counterfactual.bootstrap import clustered_bootstrap_ci
from medrepro.studies.counterfactual.parse import (
    REFUSAL_CLASSES,
    REGISTRY_INFO,
    REGISTRY_SHA256,
    SCOPES,
    SUBMISSION_SCHEMA_VERSION,
    parse_report,
    set_jaccard,
)

__all__ = [
    "SCHEMA_VERSION",
    "SCOPES",
    "PANEL_SCOPES",
    "PER_PAIR_CSV_COLUMNS",
    "registry_record",
    "load_submission",
    "validate_submission",
    "scope_pairs",
    "score_submission",
    "write_score",
    "write_per_pair_csv",
]

SCHEMA_VERSION = SUBMISSION_SCHEMA_VERSION
#: Scopes whose complete submissions are comparable with the released panel.
PANEL_SCOPES = ("common-core-1000", "all-model-intersection-2166")
_RESULT_KEYS = ("pair_id", "source_id", "source_report", "counterfactual_report", "metadata")
_REPORTS = ("source_report", "counterfactual_report")
PER_PAIR_CSV_COLUMNS = ("unit_id", "cluster", "rec_change", "label_jaccard")


def registry_record() -> dict:
    """The frozen registry's identity, recorded in every score and metrics.json."""
    return {"file": "registry.json", "sha256": REGISTRY_SHA256, "repository": REGISTRY_INFO["repository"],
            "commit": REGISTRY_INFO["commit"]}


def load_submission(path: str | Path) -> dict:
    """Read and validate a submission JSON (:func:`validate_submission`); returns the object."""
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


def _blank(v: Any) -> bool:
    return not isinstance(v, str) or not v.strip()


def validate_submission(obj: Any, path: str | Path | None = "<submission>") -> None:
    """Validate a parsed submission by the released rules (module docstring); raise
    :class:`InputError` on the first problem."""
    if not isinstance(obj, dict):
        raise InputError(path, "submission", f"top level is {type(obj).__name__}", "a JSON object")
    if obj.get("schema_version") != SCHEMA_VERSION:
        raise InputError(path, "schema_version", f"{obj.get('schema_version')!r}", repr(SCHEMA_VERSION))
    if obj.get("scope") not in SCOPES:
        raise InputError(path, "scope", f"{obj.get('scope')!r}", "one of " + ", ".join(SCOPES))
    model = obj.get("model")
    if not isinstance(model, dict):
        raise InputError(path, "model", "missing" if model is None else f"is {type(model).__name__}",
                         "an object with a 'name'")
    if _blank(model.get("name")):
        raise InputError(path, "model.name", f"{model.get('name')!r}", "a non-empty string")
    results = obj.get("results")
    if not isinstance(results, list) or not results:
        raise InputError(path, "results", "empty list" if isinstance(results, list) else "missing or not a list",
                         "a non-empty list of results")
    seen: dict[str, int] = {}
    for i, r in enumerate(results):
        where = f"results[{i}]"
        if not isinstance(r, dict):
            raise InputError(path, where, f"is {type(r).__name__}", "an object")
        pid = r.get("pair_id")
        if isinstance(pid, str):
            where = f"results[{i}] (pair_id={pid!r})"
        unknown = sorted(set(r) - set(_RESULT_KEYS))
        if unknown:
            raise InputError(path, f"{where}.{unknown[0]}", f"unknown field(s) {unknown}", "only " + ", ".join(_RESULT_KEYS))
        if _blank(pid):
            raise InputError(path, f"{where}.pair_id", f"{pid!r}", "a non-empty string")
        if pid in seen:
            raise InputError(path, f"{where}.pair_id", f"duplicate of results[{seen[pid]}]", "unique pair ids")
        seen[pid] = i
        for field in _REPORTS:
            v = r.get(field)
            if _blank(v):
                problem = ("missing" if field not in r else "empty or whitespace-only" if isinstance(v, str)
                           else f"{v!r}")
                raise InputError(path, f"{where}.{field}", problem, "a non-empty string")
        sid = r.get("source_id")
        if sid is not None and _blank(sid):
            raise InputError(path, f"{where}.source_id", f"{sid!r}", "a non-empty string when present")
        meta = r.get("metadata")
        if meta is not None and not isinstance(meta, dict):
            raise InputError(path, f"{where}.metadata", f"is {type(meta).__name__}", "an object when present")


def _read_table(pairs_table: Any) -> tuple[pd.DataFrame, str]:
    if isinstance(pairs_table, pd.DataFrame):
        return pairs_table, "<pairs table>"
    try:
        return pd.read_csv(pairs_table, dtype={"pair_id": str, "source_id": str, "edit": str},
                           keep_default_na=False), str(pairs_table)
    except FileNotFoundError:
        raise InputError(pairs_table, "pairs table", "file not found", "a QC table CSV") from None


def _truthy(s: pd.Series) -> np.ndarray:
    if s.dtype == bool or str(s.dtype) == "boolean":
        return s.fillna(False).to_numpy(dtype=bool)
    return s.astype(str).str.strip().str.lower().isin(["true", "1", "yes", "1.0"]).to_numpy()


def _scope_column(t: pd.DataFrame, where: str, scope: str) -> tuple[str, np.ndarray]:
    col = next((c for c in (scope, f"in_{scope}", f"scope_{scope}") if c in t.columns), None)
    if col is None:
        raise InputError(where, "scope", f"the table does not define scope {scope!r}",
                         f"a boolean column {scope!r} (carried from the pairs table)")
    return col, _truthy(t[col])


def scope_pairs(pairs_table: Any, scope: str = "qc-passed") -> pd.DataFrame:
    """Rows of the QC table in ``scope``, columns ``pair_id, source_id, edit`` (module
    docstring). For ``toy`` these are all QC-passed rows; :func:`score_submission` keeps the
    submitted ones."""
    if scope not in SCOPES:
        raise InputError(None, "scope", f"{scope!r}", "one of " + ", ".join(SCOPES))
    t, where = _read_table(pairs_table)
    for col in ("pair_id", "qc_pass"):
        if col not in t.columns:
            raise InputError(where, col, "column missing", "the QC table written by the QC job (pair_id, source_id, qc_pass)")
    passed = _truthy(t["qc_pass"])
    pids = t["pair_id"].astype(str)
    sids = t["source_id"].astype(str) if "source_id" in t.columns else pids.map(lambda p: p.rpartition("__")[0])
    edits = t["edit"].astype(str) if "edit" in t.columns else pids.map(lambda p: p.rpartition("__")[2])
    mask = passed
    if scope in PANEL_SCOPES:
        core_col, core = _scope_column(t, where, "common-core-1000")
        core_sources = set(sids[core])
        missing = sorted(core_sources - set(sids[passed])) if scope == "common-core-1000" else []
        if missing:
            raise InputError(where, core_col, f"{len(missing)} source(s) of the common core have no QC-passed pair, "
                             f"e.g. {', '.join(missing[:5])}", "every common-core source among the QC-passed pairs")
        mask = passed & sids.isin(core_sources).to_numpy()
        if scope == "all-model-intersection-2166":
            col, member = _scope_column(t, where, scope)
            for bad, why in ((member & ~passed, "did not pass QC"),
                             (member & ~sids.isin(core_sources).to_numpy(), "are outside the common core")):
                if bad.any():
                    ex = pids[bad].tolist()
                    raise InputError(where, col, f"{len(ex)} pair(s) of the scope {why}, e.g. {', '.join(ex[:5])}",
                                     "every pair of the scope a QC-passed pair of the common core")
            mask = member
    out = pd.DataFrame({"pair_id": pids[mask].to_numpy(), "source_id": sids[mask].to_numpy(),
                        "edit": edits[mask].to_numpy()})
    dup = out["pair_id"][out["pair_id"].duplicated()]
    if len(dup):
        raise InputError(where, "pair_id", f"duplicate pair_id {dup.iloc[0]!r}", "unique pair ids")
    return out


def _endpoint(values: list[float], clusters: list[str], iterations: int, seed: int) -> dict:
    est, lo, hi = clustered_bootstrap_ci(values, clusters, iterations=iterations, seed=seed)
    return {"estimate": est, "ci_low": lo, "ci_high": hi, "n_pairs": len(values),
            "n_clusters": len(set(clusters)), "seed": seed, "iterations": iterations,
            "ci_level": 0.95, "method": "source-clustered percentile bootstrap"}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def score_submission(
    submission: Mapping[str, Any] | str | Path,
    pairs_table: pd.DataFrame | str | Path,
    scope: str | None = None,
    allow_partial: bool = False,
    iterations: int = 10000,
    seed: int = 42,
    name: str | None = None,
) -> dict:
    """Score one submission against its declared scope in the QC table (module docstring).
    ``scope``: the scope the caller expects (``None``: whatever the submission declares).
    ``name``: the submission's file name in messages when ``submission`` is a parsed object."""
    sub_path = name or "<submission>"
    if isinstance(submission, (str, Path)):
        sub_path = str(submission)
        submission = load_submission(submission)
    else:
        validate_submission(submission, sub_path)
    declared = submission["scope"]
    if scope is not None and scope != declared:
        if scope not in SCOPES:
            raise InputError(None, "scope", f"{scope!r}", "one of " + ", ".join(SCOPES))
        raise InputError(sub_path, "scope", f"the submission declares {declared!r}, the scorer was asked for {scope!r}",
                         f"{declared!r}: a submission is scored in the scope it declares")
    table_where = "<pairs table>" if isinstance(pairs_table, pd.DataFrame) else str(pairs_table)
    scoped = scope_pairs(pairs_table, declared)
    results = submission["results"]
    index = {r["pair_id"]: i for i, r in enumerate(results)}
    submitted = set(index)
    if declared == "toy":
        unknown = sorted(submitted - set(scoped["pair_id"]))
        if unknown:
            raise InputError(sub_path, "results", f"toy submission has {len(unknown)} pair id(s) that are not QC-passed "
                             f"pairs of {table_where}, e.g. {', '.join(unknown[:5])}", "QC-passed pair ids only")
        scoped = scoped[scoped["pair_id"].isin(submitted)].reset_index(drop=True)
    info = dict(zip(scoped["pair_id"], zip(scoped["source_id"], scoped["edit"])))
    unexpected = sorted(submitted - set(info))
    if unexpected:
        raise InputError(sub_path, "results", f"{len(unexpected)} pair id(s) outside scope {declared!r} "
                         f"of {table_where}, e.g. {', '.join(unexpected[:5])}", f"only pairs of scope {declared!r}")
    missing = sorted(set(info) - submitted)
    if missing and not allow_partial:
        raise InputError(
            sub_path, "results",
            f"{len(missing)} of {len(info)} pairs in scope {declared!r} are missing, e.g. {', '.join(missing[:5])}",
            "every pair of the scope (or --allow-partial)",
        )

    cache: dict[str, tuple[frozenset[str], frozenset[str], str]] = {}

    def parsed(text: str) -> tuple[frozenset[str], frozenset[str], str]:
        out = cache.get(text)
        if out is None:
            out = cache[text] = parse_report(text)
        return out

    per_pair = []
    ref_counts = {"source": dict.fromkeys(REFUSAL_CLASSES, 0), "counterfactual": dict.fromkeys(REFUSAL_CLASSES, 0)}
    for pid in sorted(submitted):
        i = index[pid]
        r = results[i]
        sid, edit = info[pid]
        declared_sid = r.get("source_id")
        if declared_sid is not None and declared_sid != sid:
            raise InputError(sub_path, f"results[{i}] (pair_id={pid!r}).source_id",
                             f"{declared_sid!r} but the QC table gives {sid!r}", f"{sid!r} or no source_id")
        ls, rs, fs = parsed(r["source_report"])
        lc, rc, fc = parsed(r["counterfactual_report"])
        ref_counts["source"][fs] += 1
        ref_counts["counterfactual"][fc] += 1
        per_pair.append({
            "pair_id": pid, "source_id": sid, "edit": edit,
            "labels_src": sorted(ls), "labels_cf": sorted(lc), "jaccard": set_jaccard(ls, lc),
            "rec_src": sorted(rs), "rec_cf": sorted(rc), "rec_changed": sorted(rs) != sorted(rc),
            "rec_jaccard": set_jaccard(rs, rc),
            "refusal_src": fs, "refusal_cf": fc, "excluded": fs == "FULL" or fc == "FULL",
        })

    usable = [p for p in per_pair if not p["excluded"]]
    n_excluded = len(per_pair) - len(usable)
    if not usable:
        raise InputError(sub_path, "results", f"all {len(per_pair)} pairs have a FULL refusal on at least one side",
                         "at least one usable pair")
    clusters = [p["source_id"] for p in usable]
    changed = [1.0 if p["rec_changed"] else 0.0 for p in usable]
    jac = [float(p["jaccard"]) for p in usable]
    rec_jac = [float(p["rec_jaccard"]) for p in usable]

    rec_ep = _endpoint(changed, clusters, iterations, seed)  # RNG restarted per endpoint
    lab_ep = _endpoint(jac, clusters, iterations, seed)
    mean_jac, change_rate, mean_rec_jac = _mean(jac), _mean(changed), _mean(rec_jac)
    gap_exact = mean_jac - (1.0 - change_rate)
    gap_graded = mean_jac - mean_rec_jac
    both_empty = sum(1 for p in usable if not p["labels_src"] and not p["labels_cf"])
    n_partial = sum(1 for p in usable if "PARTIAL" in (p["refusal_src"], p["refusal_cf"]))
    n_full_src = ref_counts["source"]["FULL"]
    n_full_cf = ref_counts["counterfactual"]["FULL"]

    model = submission["model"]
    r3 = lambda x: round(float(x), 3)  # noqa: E731
    table_row = {
        "model": model["name"],
        "scope": declared,
        "n_pairs": len(usable),
        "recommendation_change": r3(rec_ep["estimate"]),
        "recommendation_change_ci": [r3(rec_ep["ci_low"]), r3(rec_ep["ci_high"])],
        "label_consistency": r3(lab_ep["estimate"]),
        "label_consistency_ci": [r3(lab_ep["ci_low"]), r3(lab_ep["ci_high"])],
        "gap_exact": r3(gap_exact),
        "gap_graded": r3(gap_graded),
        "coverage": r3(len(submitted) / len(info)),
        "partial": bool(missing),
    }
    return {
        "schema": "medrepro-counterfactual-score-v2",
        "registry": registry_record(),
        "submission": sub_path,
        "model": dict(model),
        "submission_scope": declared,
        "coverage": {
            "scope": declared,
            "n_scope_pairs": len(info),
            "n_submitted": len(results),
            "n_in_scope": len(submitted),
            "n_missing": len(missing),
            "missing_examples": missing[:10],
            "fraction": len(submitted) / len(info),
            "partial": bool(missing),
            "allow_partial": bool(allow_partial),
            "complete": not missing,
            "comparable_to_panel_scope": not missing and declared in PANEL_SCOPES,
            "unique_sources_usable": len(set(clusters)),
        },
        "refusals": {
            "source": ref_counts["source"],
            "counterfactual": ref_counts["counterfactual"],
            "excluded_pairs": n_excluded,
            "partial_pairs_kept": n_partial,
            "rule": "pairs with a FULL refusal on either side are excluded; PARTIAL pairs are kept",
        },
        # the released scorer's refusal accounting, under its names
        "data_quality": {"submitted_pairs": len(submitted), "source_full_refusals": n_full_src,
                         "counterfactual_full_refusals": n_full_cf, "pair_full_refusals": n_excluded,
                         "pair_partial_refusals": n_partial, "usable_pairs": len(usable)},
        "n_pairs_usable": len(usable),
        "endpoints": {"recommendation_change": rec_ep, "label_consistency": lab_ep},
        "gap_exact": gap_exact,
        "gap_graded": gap_graded,
        "mean_recommendation_jaccard": mean_rec_jac,
        "both_empty_labels": {"n": both_empty, "of": len(usable)},
        "bootstrap": {"iterations": iterations,
                      "seed_per_endpoint": {"recommendation_change": seed, "label_consistency": seed},
                      "recommendation_bootstrap_seed": seed, "diagnostic_bootstrap_seed": seed,
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
