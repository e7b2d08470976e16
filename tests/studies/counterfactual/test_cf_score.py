"""Submission validation and scoring, by the released scorer's rules.

Expected values marked "released" were obtained by running the released scoring package
(``ahmedtaha100/SpineFairBench`` at the commit recorded in ``registry.json``) on the same
submissions; they are copied here.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest

from medrepro.errors import InputError
from medrepro.studies.counterfactual.bootstrap import clustered_bootstrap_ci
from medrepro.studies.counterfactual.parse import REGISTRY_SHA256
from medrepro.studies.counterfactual.score import (
    load_submission,
    score_submission,
    scope_pairs,
    validate_submission,
    write_per_pair_csv,
    write_score,
)

EDITS = ["young_female", "young_male", "elderly_female", "elderly_male"]

G1 = "Findings: osteophytes and disc space narrowing. Recommendation: physical therapy."
G2 = "Findings: osteophytes. Recommendation: physical therapy and an MRI of the lumbar spine."
G3 = "Findings: alignment is maintained. Recommendation: conservative management."
G4 = "Findings: alignment is maintained. Recommendation: no further action."
FULL = "I'm unable to interpret medical images."
PART = "I am unable to interpret this image, but management might include physical therapy."


def _qc_table(n_src=4):
    rows = []
    for s in range(n_src):
        for e in EDITS:
            rows.append({"pair_id": f"S{s}__{e}", "source_id": f"S{s}", "edit": e,
                         "qc_pass": not (s == 0 and e == "elderly_male"), "common-core-1000": s < 2,
                         "all-model-intersection-2166": s == 1 and e != "young_female"})
    return pd.DataFrame(rows)


def _submission(table, texts, scope="qc-passed"):
    res = [{"pair_id": pid, "source_report": a, "counterfactual_report": b}
           for pid, ok, (a, b) in zip(table["pair_id"], table["qc_pass"], texts) if ok]
    return {"schema_version": "spinefairbench-submission-v1", "scope": scope, "model": {"name": "m1"},
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


# ---------------------------------------------------------------- validation (released rules)

ACCEPTED = {
    "source_id null": lambda s: s["results"][1].update(source_id=None),
    "metadata null": lambda s: s["results"][1].update(metadata=None),
    "extra top-level key": lambda s: s.update(extra=1),
    "extra model keys": lambda s: s["model"].update(version="1"),
    "padded report": lambda s: s["results"][1].update(source_report="  a  "),
}
REJECTED = {
    "schema wrong": (lambda s: s.update(schema_version="v2"), "schema_version"),
    "schema missing": (lambda s: s.pop("schema_version"), "schema_version"),
    "scope invalid": (lambda s: s.update(scope="all"), "scope"),
    "scope missing": (lambda s: s.pop("scope"), "scope"),
    "model missing": (lambda s: s.pop("model"), "model"),
    "model str": (lambda s: s.update(model="m"), "model"),
    "model name blank": (lambda s: s.update(model={"name": "  "}), "model.name"),
    "model name int": (lambda s: s.update(model={"name": 1}), "model.name"),
    "results empty": (lambda s: s.update(results=[]), "results"),
    "results dict": (lambda s: s.update(results={}), "results"),
    "entry not object": (lambda s: s["results"].__setitem__(1, "x"), "results[1]"),
    "entry extra key": (lambda s: s["results"][1].update(score=1), ".score"),
    "pair_id blank": (lambda s: s["results"][1].update(pair_id=" "), ".pair_id"),
    "pair_id int": (lambda s: s["results"][1].update(pair_id=7), ".pair_id"),
    "pair_id missing": (lambda s: s["results"][1].pop("pair_id"), ".pair_id"),
    "pair_id duplicate": (lambda s: s["results"][1].update(pair_id=s["results"][0]["pair_id"]), ".pair_id"),
    "source_report missing": (lambda s: s["results"][1].pop("source_report"), ".source_report"),
    "source_report empty": (lambda s: s["results"][1].update(source_report=""), ".source_report"),
    "source_report whitespace": (lambda s: s["results"][1].update(source_report=" \n\t"), ".source_report"),
    "source_report nbsp": (lambda s: s["results"][1].update(source_report="\u00a0"), ".source_report"),
    "source_report int": (lambda s: s["results"][1].update(source_report=3), ".source_report"),
    "cf_report whitespace": (lambda s: s["results"][1].update(counterfactual_report="   "), ".counterfactual_report"),
    "cf_report null": (lambda s: s["results"][1].update(counterfactual_report=None), ".counterfactual_report"),
    "source_id empty": (lambda s: s["results"][1].update(source_id=""), ".source_id"),
    "source_id int": (lambda s: s["results"][1].update(source_id=5), ".source_id"),
    "metadata list": (lambda s: s["results"][1].update(metadata=[1]), ".metadata"),
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_released_validation_accepts(case, name):
    _, sub = case
    ACCEPTED[name](sub)
    validate_submission(sub, "sub.json")


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_released_validation_rejects_naming_file_and_field(tmp_path, case, name):
    _, sub = case
    mutate, field = REJECTED[name]
    mutate(sub)
    p = _write(tmp_path, sub)
    with pytest.raises(InputError) as ei:
        load_submission(p)
    assert str(p) in str(ei.value) and ei.value.field.endswith(field) and ei.value.expected


def test_result_errors_name_pair_and_field(tmp_path, case):
    _, sub = case
    sub["results"][2]["counterfactual_report"] = "  "
    p = _write(tmp_path, sub)
    with pytest.raises(InputError) as ei:
        load_submission(p)
    assert "results[2] (pair_id='S0__elderly_female')" in str(ei.value)
    assert ei.value.problem == "empty or whitespace-only" and ei.value.expected == "a non-empty string"


def test_bad_json_and_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": ')
    with pytest.raises(InputError, match="invalid JSON"):
        load_submission(bad)
    with pytest.raises(InputError, match="file not found"):
        load_submission(tmp_path / "nope.json")
    with pytest.raises(InputError, match="top level is list"):
        load_submission(_write(tmp_path, [1], "list.json"))
    (tmp_path / "latin1.json").write_bytes(b'{"a": "\xe9"}')
    with pytest.raises(InputError, match="not UTF-8"):
        load_submission(tmp_path / "latin1.json")


# ---------------------------------------------------------------- scoring

def test_score_equals_the_released_scorer(case):
    t, sub = case
    s = score_submission(sub, t, iterations=2000, seed=42)
    ep = s["endpoints"]
    rec, lab = ep["recommendation_change"], ep["label_consistency"]
    # released
    assert (rec["estimate"], rec["ci_low"], rec["ci_high"]) == (0.14285714285714285, 0.0, 0.25)
    assert (lab["estimate"], lab["ci_low"], lab["ci_high"]) == (0.8571428571428571, 0.78125, 0.95)
    assert s["data_quality"] == {"submitted_pairs": 15, "source_full_refusals": 0, "counterfactual_full_refusals": 1,
                                 "pair_full_refusals": 1, "pair_partial_refusals": 1, "usable_pairs": 14}
    row = s["table_row"]
    assert (row["recommendation_change"], row["recommendation_change_ci"]) == (0.143, [0.0, 0.25])
    assert (row["label_consistency"], row["label_consistency_ci"]) == (0.857, [0.781, 0.95])
    pp = {p["pair_id"]: p for p in s["per_pair"]}
    assert pp["S0__young_female"]["labels_src"] == ["Disc space narrowing", "Osteophytes"]
    assert pp["S0__elderly_female"]["rec_src"] == ["no_action"] and pp["S0__elderly_female"]["labels_src"] == []
    assert pp["S0__young_male"]["excluded"] and pp["S0__young_male"]["refusal_cf"] == "FULL"
    assert pp["S1__young_male"]["refusal_src"] == "PARTIAL" and not pp["S1__young_male"]["excluded"]
    assert s["registry"]["sha256"] == REGISTRY_SHA256 and s["submission_scope"] == "qc-passed"
    assert s["bootstrap"]["recommendation_bootstrap_seed"] == s["bootstrap"]["diagnostic_bootstrap_seed"] == 42


def test_endpoints_accounting_and_gaps(case):
    t, sub = case
    s = score_submission(sub, t, iterations=2000, seed=42)
    cov = s["coverage"]
    assert cov["n_scope_pairs"] == 15 and cov["n_in_scope"] == 15 and cov["complete"]
    assert cov["comparable_to_panel_scope"] is False  # qc-passed is not a panel scope
    assert [p["pair_id"] for p in s["per_pair"]] == sorted(p["pair_id"] for p in s["per_pair"])
    assert s["refusals"]["source"] == {"GENUINE": 14, "PARTIAL": 1, "FULL": 0}
    assert s["refusals"]["counterfactual"] == {"GENUINE": 14, "PARTIAL": 0, "FULL": 1}
    usable = [p for p in s["per_pair"] if not p["excluded"]]
    clusters = [p["source_id"] for p in usable]
    ch = [float(p["rec_changed"]) for p in usable]
    jac = [p["jaccard"] for p in usable]
    rj = [p["rec_jaccard"] for p in usable]
    rec = s["endpoints"]["recommendation_change"]
    assert (rec["estimate"], rec["ci_low"], rec["ci_high"]) == clustered_bootstrap_ci(ch, clusters, 2000, 42)
    assert rec["n_pairs"] == 14 and rec["n_clusters"] == 4
    assert s["gap_exact"] == pytest.approx(np.mean(jac) - (1 - np.mean(ch)), abs=1e-15)
    assert s["gap_graded"] == pytest.approx(np.mean(jac) - np.mean(rj), abs=1e-15)
    assert s["both_empty_labels"]["of"] == 14


def test_order_of_results_does_not_matter(case):
    t, sub = case
    shuffled = copy.deepcopy(sub)
    shuffled["results"].reverse()
    a = score_submission(sub, t, iterations=500)
    b = score_submission(shuffled, t, iterations=500)
    assert a["endpoints"] == b["endpoints"] and a["per_pair"] == b["per_pair"]


def test_toy_submission_reproduces_the_released_readme():
    """Five pairs, four edits of one source and one of another, two recommendation changes and
    identical labels: the benchmark README's toy values with 1,000 iterations."""
    a = "Lumbar spine. Findings: disc space narrowing. Recommendation: physical therapy."
    b = "Lumbar spine. Findings: disc space narrowing. Recommendation: physical therapy and an MRI of the lumbar spine."
    pids = [f"toy001__{e}" for e in EDITS] + ["toy002__young_female"]
    texts = [(a, a), (a, b), (a, a), (b, a), (a, a)]
    sub = {"schema_version": "spinefairbench-submission-v1", "scope": "toy", "model": {"name": "toy"},
           "results": [{"pair_id": p, "source_report": x, "counterfactual_report": y} for p, (x, y) in zip(pids, texts)]}
    table = pd.DataFrame({"pair_id": pids + ["toy003__young_male"], "source_id": ["toy001"] * 4 + ["toy002", "toy003"],
                          "edit": EDITS + ["young_female", "young_male"], "qc_pass": True})
    s = score_submission(sub, table, iterations=1000, seed=42)
    row = s["table_row"]
    assert (row["recommendation_change"], row["recommendation_change_ci"]) == (0.4, [0.0, 0.5])
    assert (row["label_consistency"], row["label_consistency_ci"]) == (1.0, [1.0, 1.0])
    assert s["coverage"]["n_scope_pairs"] == 5 and s["coverage"]["complete"]  # toy: the submitted pairs
    assert s["submission_scope"] == "toy" and row["n_pairs"] == 5


# ---------------------------------------------------------------- scopes

def test_declared_scope_is_used_and_a_different_one_is_an_error(case, tmp_path):
    t, sub = case
    p = _write(tmp_path, sub)
    assert score_submission(p, t, scope="qc-passed", iterations=100)["coverage"]["scope"] == "qc-passed"
    with pytest.raises(InputError) as ei:
        score_submission(p, t, scope="common-core-1000", iterations=100)
    assert str(p) in str(ei.value) and ei.value.field == "scope" and "declares 'qc-passed'" in ei.value.problem
    with pytest.raises(InputError, match="'everything'"):
        score_submission(p, t, scope="everything", iterations=100)


def test_pair_outside_the_scope_is_rejected(case, tmp_path):
    t, sub = case
    sub["results"].append({"pair_id": "S0__elderly_male", "source_report": G1, "counterfactual_report": G1})
    p = _write(tmp_path, sub)
    with pytest.raises(InputError, match=r"1 pair id\(s\) outside scope 'qc-passed'.*S0__elderly_male") as ei:
        score_submission(p, t, iterations=100)
    assert str(p) in str(ei.value) and ei.value.field == "results"
    sub["results"][-1]["pair_id"] = "S9__young_male"  # not in the table at all
    with pytest.raises(InputError, match="outside scope"):
        score_submission(sub, t, iterations=100)


def test_missing_pairs_need_allow_partial(case, tmp_path):
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


def test_panel_scopes_from_the_table(case):
    t, sub = case
    core = [r for r in sub["results"] if r["pair_id"] < "S2"]
    s = score_submission({**sub, "scope": "common-core-1000", "results": core}, t, iterations=100)
    assert s["coverage"]["n_scope_pairs"] == 7  # S0 (3 QC-passed) and S1 (4)
    assert s["coverage"]["comparable_to_panel_scope"] is True
    inter = [r for r in sub["results"] if r["pair_id"].startswith("S1__") and r["pair_id"] != "S1__young_female"]
    s = score_submission({**sub, "scope": "all-model-intersection-2166", "results": inter}, t, iterations=100)
    assert s["coverage"]["n_scope_pairs"] == 3
    bad = t.copy()
    bad.loc[bad["pair_id"] == "S0__elderly_male", "all-model-intersection-2166"] = True  # failed QC
    with pytest.raises(InputError, match="did not pass QC"):
        scope_pairs(bad, "all-model-intersection-2166")
    bad = t.copy()
    bad.loc[bad["pair_id"] == "S3__young_male", "all-model-intersection-2166"] = True  # not a core source
    with pytest.raises(InputError, match="outside the common core"):
        scope_pairs(bad, "all-model-intersection-2166")
    bad = t.copy()
    bad.loc[bad["source_id"] == "S1", "qc_pass"] = False  # a core source without a QC-passed pair
    with pytest.raises(InputError, match="have no QC-passed pair"):
        scope_pairs(bad, "common-core-1000")
    with pytest.raises(InputError, match="does not define scope 'common-core-1000'"):
        scope_pairs(t.drop(columns=["common-core-1000"]), "common-core-1000")
    assert len(scope_pairs(t)) == 15


def test_toy_scope_needs_qc_passed_pairs(case):
    t, sub = case
    toy = {**sub, "scope": "toy", "results": sub["results"][:3]}
    assert score_submission(toy, t, iterations=100)["coverage"]["n_scope_pairs"] == 3
    toy["results"].append({"pair_id": "S0__elderly_male", "source_report": G1, "counterfactual_report": G1})
    with pytest.raises(InputError, match="not QC-passed pairs.*S0__elderly_male"):
        score_submission(toy, t, iterations=100)


def test_declared_source_id_must_match_the_table(case):
    t, sub = case
    sub["results"][3]["source_id"] = sub["results"][3]["pair_id"].split("__")[0]
    score_submission(sub, t, iterations=50)
    sub["results"][3]["source_id"] = "S9"
    with pytest.raises(InputError) as ei:
        score_submission(sub, t, iterations=50)
    assert ei.value.field.endswith(".source_id") and "results[3]" in ei.value.field and "'S9'" in ei.value.problem


def test_source_ids_come_from_the_table():
    sub = {"schema_version": "spinefairbench-submission-v1", "scope": "toy", "model": {"name": "x"},
           "results": [{"pair_id": "a__b__young_male", "source_id": "a__b", "source_report": "r",
                        "counterfactual_report": "r"}]}
    t = pd.DataFrame({"pair_id": ["a__b__young_male"], "source_id": ["a__b"], "edit": ["young_male"], "qc_pass": [True]})
    s = score_submission(sub, t, iterations=10)
    assert s["per_pair"][0]["source_id"] == "a__b" and s["per_pair"][0]["edit"] == "young_male"


def test_qc_table_from_csv_and_all_full_refusals(case, tmp_path):
    t, sub = case
    t.to_csv(tmp_path / "qc.csv", index=False)
    a = score_submission(sub, tmp_path / "qc.csv", iterations=300)
    b = score_submission(sub, t, iterations=300)
    assert a["endpoints"] == b["endpoints"]
    for r in sub["results"]:
        r["source_report"] = FULL
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
