"""Benchmark: scoring one 4,000-pair submission (1,000 sources x 4 edits), 10,000 iterations.

Library path (``score_submission``): one compiled alternation per category, the three refusal
pattern lists as one search each, every distinct report text parsed once, the vectorised
source-clustered bootstrap. Baseline: a straightforward per-text loop over the same frozen
registry, written the way the released scorer runs it -- for every report, every category and
every synonym ``re.search(r"\\b" + re.escape(synonym) + r"\\b", text.lower())`` until one
matches, every refusal pattern searched in turn, each report's refusal class computed twice
(once for the accounting, once when the pair is scored) -- followed by the same bootstrap.
Both score the same submission; the per-pair labels, categories and refusal classes, the
accounting and the endpoints (estimates and CIs) are checked to be identical.

The reports are the simulated models' reports of ``medrepro.studies.counterfactual.synthetic``
with three sentences of ordinary radiology prose appended (about 400 characters each), so the
parsers work on report-length text.

    .venv/bin/python bench/score.py [--sources 1000] [--iterations 10000]
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from medrepro.studies.counterfactual.bootstrap import clustered_bootstrap_ci
from medrepro.studies.counterfactual.parse import (
    CLINICAL_CONTENT_PATTERNS,
    HEDGING_PATTERNS,
    LABEL_SYNONYMS,
    RECOMMENDATION_SYNONYMS,
    REFUSAL_PATTERNS,
)
from medrepro.studies.counterfactual.score import load_submission, score_submission
from medrepro.studies.counterfactual.synthetic import EDITS, generate_submissions

PROSE = (
    " The vertebral bodies are aligned and the pedicles are intact. Soft tissues show no acute change;"
    " the sacroiliac joints are preserved. Correlate with the clinical history and the examination."
)
_REFUSAL = [re.compile(p, re.IGNORECASE) for p in REFUSAL_PATTERNS]
_CLINICAL = [re.compile(p, re.IGNORECASE) for p in CLINICAL_CONTENT_PATTERNS]
_HEDGE = [re.compile(p, re.IGNORECASE) for p in HEDGING_PATTERNS]


def loop_categories(text: str, table: dict[str, tuple[str, ...]]) -> set[str]:
    low = text.lower()
    found = set()
    for cat, synonyms in table.items():
        for s in synonyms:
            if re.search(r"\b" + re.escape(s) + r"\b", low):
                found.add(cat)
                break
    return found


def loop_refusal(text: str) -> str:
    if not text or not text.strip():
        return "FULL"
    if not any(p.search(text) for p in _REFUSAL):
        return "GENUINE"
    if any(p.search(text) for p in _CLINICAL):
        return "GENUINE"
    if any(p.search(text) for p in _HEDGE):
        return "PARTIAL"
    return "FULL"


def jaccard(a: set, b: set) -> float:
    return 1.0 if not a and not b else len(a & b) / len(a | b)


def baseline_score(path: Path, table: pd.DataFrame, iterations: int, seed: int) -> dict:
    sub = load_submission(path)
    sid = dict(zip(table["pair_id"], table["source_id"]))
    per_pair, changed, jac, clusters = [], [], [], []
    for r in sorted(sub["results"], key=lambda r: r["pair_id"]):
        s_txt, c_txt = r["source_report"], r["counterfactual_report"]
        fs, fc = loop_refusal(s_txt), loop_refusal(c_txt)  # accounting
        row = {"pair_id": r["pair_id"], "refusal_src": fs, "refusal_cf": fc, "excluded": "FULL" in (fs, fc)}
        if not row["excluded"]:
            fs, fc = loop_refusal(s_txt), loop_refusal(c_txt)  # the scored pair
            ls, lc = loop_categories(s_txt, LABEL_SYNONYMS), loop_categories(c_txt, LABEL_SYNONYMS)
            rs, rc = loop_categories(s_txt, RECOMMENDATION_SYNONYMS), loop_categories(c_txt, RECOMMENDATION_SYNONYMS)
            row.update(labels_src=sorted(ls), labels_cf=sorted(lc), rec_src=sorted(rs), rec_cf=sorted(rc))
            changed.append(float(sorted(rs) != sorted(rc)))
            jac.append(jaccard(ls, lc))
            clusters.append(sid[r["pair_id"]])
        per_pair.append(row)
    return {"per_pair": per_pair,
            "recommendation_change": clustered_bootstrap_ci(changed, clusters, iterations=iterations, seed=seed),
            "label_consistency": clustered_bootstrap_ci(jac, clusters, iterations=iterations, seed=seed)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sources", type=int, default=1000)
    ap.add_argument("--iterations", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=42)
    a = ap.parse_args()

    pairs = pd.DataFrame({"source_id": [f"S{i:05d}" for i in range(a.sources) for _ in EDITS]})
    pairs["pair_id"] = pairs["source_id"] + "__" + np.tile(EDITS, a.sources)
    table = pairs.assign(edit=np.tile(EDITS, a.sources), qc_pass=True)
    model = {"sim-moderate": {"rec_change_rate": 0.40, "label_flip_rate": 0.30, "refusal_full_rate": 0.03,
                              "refusal_partial_rate": 0.05}}
    with tempfile.TemporaryDirectory() as d:
        (path,) = generate_submissions(d, pairs, models=model, seed=0)
        sub = load_submission(path)
        for r in sub["results"]:
            r["source_report"] += PROSE
            r["counterfactual_report"] += PROSE
        path.write_text(__import__("json").dumps(sub))
        n_chars = np.mean([len(r[k]) for r in sub["results"] for k in ("source_report", "counterfactual_report")])

        score_submission(path, table, iterations=10)  # warm-up (imports, regex compilation)
        t0 = time.perf_counter()
        lib = score_submission(path, table, iterations=a.iterations, seed=a.seed)
        t_lib = time.perf_counter() - t0
        t0 = time.perf_counter()
        base = baseline_score(path, table, a.iterations, a.seed)
        t_base = time.perf_counter() - t0

    same_pairs = all(
        all(p[k] == q[k] for k in q)
        for p, q in zip(lib["per_pair"], base["per_pair"])
    ) and len(lib["per_pair"]) == len(base["per_pair"])
    same_ep = all(
        (lib["endpoints"][k]["estimate"], lib["endpoints"][k]["ci_low"], lib["endpoints"][k]["ci_high"]) == base[k]
        for k in ("recommendation_change", "label_consistency"))
    n = len(lib["per_pair"])
    print(f"scoring benchmark: {n} pairs ({a.sources} sources x 4 edits), {2 * n} reports of {n_chars:.0f} "
          f"characters on average, {a.iterations} bootstrap iterations per endpoint")
    print(f"  library score_submission: {t_lib:.2f} s")
    print(f"  straightforward per-text loop over the same registry: {t_base:.2f} s")
    print(f"  ratio: {t_base / t_lib:.1f}x")
    print(f"  identical per-pair results: {same_pairs}; identical endpoints: {same_ep}; "
          f"recommendation change {lib['table_row']['recommendation_change']:.3f} "
          f"{lib['table_row']['recommendation_change_ci']}, usable pairs {lib['n_pairs_usable']}")
    if not (same_pairs and same_ep):
        raise SystemExit("outputs differ")


if __name__ == "__main__":
    main()
