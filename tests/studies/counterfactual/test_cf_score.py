"""Submission validation and scoring."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest

from medrepro.studies.counterfactual.bootstrap import clustered_bootstrap_ci
from medrepro.studies.counterfactual.score import (
    load_submission,
    score_submission,
    scope_pairs,
    write_per_pair_csv,
    write_score,
)
from medrepro.errors import InputError

EDITS = ["young_female", "young_male", "elderly_female", "elderly_male"]

G1 = "Findings: osteophytes and disc space narrowing. Recommendation: physical therapy."
G2 = "Findings: osteophytes. Recommendation: physical therapy and MRI of the lumbar spine."
G3 = "Findings: alignment is maintained. Recommendation: conservative management."
G4 = "Findings: alignment is maintained. Recommendation: no further action."
FULL = "I'm sorry, but I cannot interpret medical images."
PART = "I cannot provide a definitive diagnosis, but management may include physical therapy."


def _qc_table(n_src=4):
    rows = []
    for s in range(n_src):
        for e in EDITS:
            rows.append({"pair_id": f"S{s}__{e}", "source_id": f"S{s}", "edit": e,
                         "qc_pass": not (s == 0 and e == "elderly_male"), "core": s < 2})
    return pd.DataFrame(rows)


def _submission(table, texts):
    res = []
    for pid, (a, b) in zip(table["pair_id"], texts):
        res.append({"pair_id": pid, "source_report": a, "counterfactual_report": b})
    return {"schema_version": "spinefairbench-submission-v1", "scope": "qc-passed", "model": {"name": "m1"},
            "results": res}


@pytest.fixture
def case():
    t = _qc_table()
    texts = [(G1, G1), (G1, G2), (G3, G4), (G3, G3)] * 4
    texts[1] = (G1, FULL)  # S0__young_male excluded
    texts[5] = (PART, G1)  # S1__young_male: PARTIAL kept
    return t, _submission(t, texts)


def _write(tmp_path, obj, name="sub.json"):
    p = tmp_path / name
    p.write_text(json.dumps(obj))
    return p


# ---------------------------------------------------------------- validation

def test_load_valid_submission(tmp_path, case):
    _, sub = case
    sub["results"][0]["source_id"] = "S0"
    sub["results"][0]["metadata"] = {"temperature": 0}
    sub["extra_top_level"] = 1  # allowed
    assert load_submission(_write(tmp_path, sub))["model"]["name"] == "m1"


@pytest.mark.parametrize(
    "mutate, field, problem",
    [
        (lambda s: s.update(schema_version="v2"), "schema_version", "'v2'"),
        (lambda s: s.update(scope="everything"), "scope", "everything"),
        (lambda s: s.pop("model"), "model", "missing"),
        (lambda s: s.update(model={"name": ""}), "model.name", "''"),
        (lambda s: s.update(model={"version": 1}), "model.name", "None"),
        (lambda s: s.update(results=[]), "results", "empty"),
        (lambda s: s.update(results={}), "results", "not a list"),
    ],
)
def test_top_level_errors(tmp_path, case, mutate, field, problem):
    _, sub = case
    mutate(sub)
    p = _write(tmp_path, sub)
    with pytest.raises(InputError) as ei:
        load_submission(p)
    assert str(p) in str(ei.value) and ei.value.field == field and problem in ei.value.problem


@pytest.mark.parametrize(
    "mutate, field, problem",
    [
        (lambda r: r.pop("source_report"), "source_report", "missing"),
        (lambda r: r.update(counterfactual_report=""), "counterfactual_report", "empty string"),
        (lambda r: r.update(source_report=3), "source_report", "3"),
        (lambda r: r.update(extra="x"), "extra", "unknown field"),
        (lambda r: r.update(source_id="S9"), "source_id", "does not match"),
        (lambda r: r.update(source_id=1), "source_id", "does not match"),
        (lambda r: r.update(metadata=[1]), "metadata", "is list"),
    ],
)
def test_result_errors_name_pair_and_field(tmp_path, case, mutate, field, problem):
    _, sub = case
    mutate(sub["results"][2])
    p = _write(tmp_path, sub)
    with pytest.raises(InputError) as ei:
        load_submission(p)
    msg = str(ei.value)
    assert str(p) in msg and "results[2]" in msg and "S0__elderly_female" in msg
    assert ei.value.field.endswith("." + field) and problem in ei.value.problem


@pytest.mark.parametrize("pid", ["S0-young_female", "__young_female", "S0__", 7])
def test_bad_pair_id(tmp_path, case, pid):
    _, sub = case
    sub["results"][3]["pair_id"] = pid
    with pytest.raises(InputError, match=r"results\[3\]") as ei:
        load_submission(_write(tmp_path, sub))
    assert ei.value.field.endswith("pair_id")


def test_duplicate_pair_id_and_bad_json(tmp_path, case):
    _, sub = case
    sub["results"][4]["pair_id"] = sub["results"][0]["pair_id"]
    with pytest.raises(InputError, match=r"results\[4\].*pair_id: duplicate of results\[0\]"):
        load_submission(_write(tmp_path, sub))
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": ')
    with pytest.raises(InputError, match="invalid JSON"):
        load_submission(bad)
    with pytest.raises(InputError, match="file not found"):
        load_submission(tmp_path / "nope.json")
    with pytest.raises(InputError, match="top level is list"):
        load_submission(_write(tmp_path, [1], "list.json"))


def test_source_id_with_double_underscore_split_at_last():
    sub = {"schema_version": "spinefairbench-submission-v1", "scope": "toy", "model": {"name": "x"},
           "results": [{"pair_id": "a__b__young_male", "source_id": "a__b", "source_report": "r",
                        "counterfactual_report": "r"}]}
    t = pd.DataFrame({"pair_id": ["a__b__young_male"], "qc_pass": [True]})
    s = score_submission(sub, t, iterations=10)
    assert s["per_pair"][0]["source_id"] == "a__b" and s["per_pair"][0]["edit"] == "young_male"


# ---------------------------------------------------------------- scoring

def test_score_endpoints_and_accounting(case):
    t, sub = case
    s = score_submission(sub, t, iterations=2000, seed=42)
    cov = s["coverage"]
    assert cov["n_scope_pairs"] == 15 and cov["n_in_scope"] == 15 and cov["n_outside_scope_ignored"] == 1
    assert cov["outside_scope_examples"] == ["S0__elderly_male"] and cov["partial"] is False
    pp = {p["pair_id"]: p for p in s["per_pair"]}
    assert [p["pair_id"] for p in s["per_pair"]] == sorted(pp)
    assert pp["S0__young_male"]["excluded"] and pp["S0__young_male"]["refusal_cf"] == "FULL"
    assert pp["S1__young_male"]["refusal_src"] == "PARTIAL" and not pp["S1__young_male"]["excluded"]
    assert s["refusals"]["excluded_pairs"] == 1 and s["refusals"]["partial_pairs_kept"] == 1
    assert s["refusals"]["source"] == {"GENUINE": 14, "PARTIAL": 1, "FULL": 0}
    assert s["refusals"]["counterfactual"] == {"GENUINE": 14, "PARTIAL": 0, "FULL": 1}
    usable = [p for p in s["per_pair"] if not p["excluded"]]
    assert s["n_pairs_usable"] == len(usable) == 14
    p = pp["S1__young_female"]
    assert p["labels_src"] == ["disc space narrowing", "osteophytes"] and p["labels_cf"] == p["labels_src"]
    assert p["jaccard"] == 1.0 and p["rec_changed"] is False
    p = pp["S2__young_male"]
    assert p["jaccard"] == 0.5 and p["rec_changed"] is True and p["rec_jaccard"] == 0.5
    assert p["rec_cf"] == ["imaging", "physical therapy"]
    p = pp["S2__elderly_female"]  # G3 vs G4: both empty labels, same rec category via different wording
    assert p["labels_src"] == [] and p["jaccard"] == 1.0 and p["rec_changed"] is False
    clusters = [p["source_id"] for p in usable]
    ch = np.array([float(p["rec_changed"]) for p in usable])
    jac = np.array([p["jaccard"] for p in usable])
    ep = s["endpoints"]
    assert (ep["recommendation_change"]["estimate"], ep["recommendation_change"]["ci_low"],
            ep["recommendation_change"]["ci_high"]) == clustered_bootstrap_ci(ch, clusters, 2000, 42)
    assert (ep["label_consistency"]["estimate"], ep["label_consistency"]["ci_low"],
            ep["label_consistency"]["ci_high"]) == clustered_bootstrap_ci(jac, clusters, 2000, 42)
    assert ep["recommendation_change"]["seed"] == ep["label_consistency"]["seed"] == 42
    assert ep["recommendation_change"]["n_pairs"] == 14 and ep["recommendation_change"]["n_clusters"] == 4
    rj = np.array([p["rec_jaccard"] for p in usable])
    assert s["gap_exact"] == pytest.approx(jac.mean() - (1 - ch.mean()), abs=1e-15)
    assert s["gap_graded"] == pytest.approx(jac.mean() - rj.mean(), abs=1e-15)
    assert s["both_empty_labels"] == {"n": sum(1 for p in usable if not p["labels_src"] and not p["labels_cf"]),
                                      "of": 14}
    row = s["table_row"]
    assert row["recommendation_change"] == round(ch.mean(), 3) and row["n_pairs"] == 14
    assert row["label_consistency_ci"] == [round(ep["label_consistency"]["ci_low"], 3),
                                           round(ep["label_consistency"]["ci_high"], 3)]
    assert row["gap_exact"] == round(s["gap_exact"], 3) and row["model"] == "m1"


def test_order_of_results_does_not_matter(case):
    t, sub = case
    shuffled = copy.deepcopy(sub)
    shuffled["results"].reverse()
    a = score_submission(sub, t, iterations=500)
    b = score_submission(shuffled, t, iterations=500)
    assert a["endpoints"] == b["endpoints"] and a["per_pair"] == b["per_pair"]


def test_scope_coverage_and_allow_partial(case, tmp_path):
    t, sub = case
    sub["results"] = [r for r in sub["results"] if r["pair_id"] not in ("S3__young_male", "S2__elderly_male")]
    p = _write(tmp_path, sub)
    with pytest.raises(InputError) as ei:
        score_submission(p, t, iterations=100)
    msg = str(ei.value)
    assert "2 of 15 pairs in scope 'qc-passed' are missing" in msg and "S2__elderly_male, S3__young_male" in msg
    assert str(p) in msg and "allow-partial" in msg
    s = score_submission(p, t, iterations=100, allow_partial=True)
    assert s["coverage"]["partial"] is True and s["coverage"]["n_missing"] == 2 and s["table_row"]["partial"]
    assert s["coverage"]["fraction"] == pytest.approx(13 / 15)


def test_other_scopes(case, tmp_path):
    t, sub = case
    s = score_submission(sub, t, scope="all", iterations=100)
    assert s["coverage"]["n_scope_pairs"] == 16 and s["coverage"]["n_outside_scope_ignored"] == 0
    t2 = t.rename(columns={"core": "common-core-1000"})
    s = score_submission(sub, t2, scope="common-core-1000", iterations=100)
    assert s["coverage"]["n_scope_pairs"] == 8 and s["coverage"]["n_outside_scope_ignored"] == 8
    with pytest.raises(InputError, match="does not define scope 'toy'"):
        score_submission(sub, t, scope="toy", iterations=100)
    assert len(scope_pairs(t)) == 15


def test_qc_table_from_csv_and_all_full_refusals(case, tmp_path):
    t, sub = case
    t.to_csv(tmp_path / "qc.csv", index=False)
    a = score_submission(sub, tmp_path / "qc.csv", iterations=300)
    b = score_submission(sub, t, iterations=300)
    assert a["endpoints"] == b["endpoints"]
    for r in sub["results"]:
        r["source_report"] = "   "  # whitespace-only passes validation, classified FULL
    with pytest.raises(InputError, match="FULL refusal"):
        score_submission(sub, t, iterations=100)


def test_write_score_and_per_pair_csv(case, tmp_path):
    t, sub = case
    s = score_submission(sub, t, iterations=300)
    out = write_score(s, tmp_path / "out" / "score.json")
    back = json.loads(out.read_text())
    assert back["table_row"] == s["table_row"] and len(back["per_pair"]) == 15
    csv = write_per_pair_csv(s, tmp_path / "out" / "pairs.csv")
    df = pd.read_csv(csv)
    assert list(df.columns) == ["unit_id", "cluster", "rec_change", "label_jaccard"]
    assert len(df) == 14 and "S0__young_male" not in set(df["unit_id"])
    assert set(df["rec_change"]) <= {0, 1}
    assert df["label_jaccard"].mean() == pytest.approx(s["endpoints"]["label_consistency"]["estimate"], abs=1e-12)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["pairs.csv", "score.json"]
