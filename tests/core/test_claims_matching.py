"""The generic claim matcher and per-metric verdicts (medrepro.report.claims) on a made-up study:
runs carry attributes the study computes, claims state some of them (null: not stated)."""

import pytest
import yaml

from medrepro.errors import InputError
from medrepro.report.claims import best_match, claims_table, load_claims, no_match_reason

ATTRIBUTES = {"arch": ("a", "b"), "view": ("front", "side"), "fold": ("1", "2")}
METRICS = ["acc", "f1"]


def row(run, rank, acc=(0.80, 0.70, 0.90), f1=(0.60, 0.50, 0.70)):
    return {"run": run, "rank": rank, "test_guided": False,
            "point": {"acc": acc[0], "f1": f1[0]}, "ci": {"acc": acc[1:], "f1": f1[1:]}}


def claim(**match):
    return {"id": "c1", "claim": "a claim", "source": "a paper", "dataset": "D", "unit": "percent",
            "match": match, "metrics": {"acc": 75.0, "f1": 80.0}}


RUNS = {"r_a_front_1": {"arch": "a", "view": "front", "fold": "1"},
        "r_a_front_2": {"arch": "a", "view": "front", "fold": "2"},
        "r_b_front_1": {"arch": "b", "view": "front", "fold": "1"}}
RANKED = [row("r_a_front_1", 1), row("r_b_front_1", 2), row("r_a_front_2", 3)]


def test_a_stated_attribute_picks_the_matching_run_even_when_another_ranks_higher():
    assert best_match(claim(arch="a", fold="2"), RANKED, RUNS)["run"] == "r_a_front_2"


def test_of_two_matching_runs_the_higher_ranked_is_taken():
    assert best_match(claim(fold="1", view="front"), RANKED, RUNS)["run"] == "r_a_front_1"
    assert best_match(claim(arch="b"), RANKED, RUNS)["run"] == "r_b_front_1"


def test_a_null_attribute_does_not_constrain():
    assert best_match(claim(arch="a", view=None, fold="2"), RANKED, RUNS)["run"] == "r_a_front_2"
    assert best_match(claim(arch=None, view=None, fold=None), RANKED, RUNS)["run"] == "r_a_front_1"


def test_no_comparable_run_names_the_attribute_no_run_has():
    c = claim(arch="a", view="side", fold="1")
    assert best_match(c, RANKED, RUNS) is None
    assert no_match_reason(c, RUNS) == "no run with view side"
    # each value exists, but not together in one run
    assert no_match_reason(claim(arch="b", fold="2"), RUNS) == "no run with arch b, fold 2 together"
    (t,) = claims_table([c], RANKED, RUNS, METRICS, "real")
    assert t["run"] is None and t["no_match"] == "no run with view side"
    assert [m["verdict"] for m in t["metrics"]] == ["not comparable"] * 2
    assert [m["published"] for m in t["metrics"]] == [0.75, 0.80]
    assert t["attributes"] == {"arch": "a", "view": "side", "fold": "1"}


def test_each_metric_gets_its_own_verdict_against_its_ci():
    (t,) = claims_table([claim(arch="a", view=None, fold="1")], RANKED, RUNS, METRICS, "real")
    assert t["run"] == "r_a_front_1" and t["attributes"]["view"] == "not stated"
    acc, f1 = t["metrics"]
    assert (acc["name"], acc["verdict"]) == ("acc", "reproduced")  # 0.75 in [0.70, 0.90]
    assert "[0.700, 0.900]" in acc["reason"] and acc["ours"] == (0.80, (0.70, 0.90))
    assert (f1["name"], f1["verdict"]) == ("f1", "not reproduced")  # 0.80 outside [0.50, 0.70]
    assert "outside" in f1["reason"] and "[0.500, 0.700]" in f1["reason"]


def test_other_data_is_not_comparable_but_the_matched_run_is_shown():
    (t,) = claims_table([claim(arch="b")], RANKED, RUNS, METRICS, "synthetic")
    assert t["run"] == "r_b_front_1" and t["run_attributes"] == RUNS["r_b_front_1"]
    assert {m["verdict"] for m in t["metrics"]} == {"not comparable"}
    assert all("synthetic" in m["reason"] for m in t["metrics"])


def write(tmp_path, claims):
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump({"toy": claims}))
    return path


def good(**over):
    c = {"id": "c7", "claim": "x", "source": "y", "dataset": "D",
         "match": {"arch": "a", "view": None, "fold": "1"}, "metrics": {"acc": 1.0, "f1": 2.0}}
    return {**c, **over}


def test_load_checks_metrics_and_attributes(tmp_path):
    path = write(tmp_path, [good()])
    assert load_claims(path, "toy", METRICS, ATTRIBUTES)[0]["id"] == "c7"
    cases = [
        (good(metrics={"acc": 1.0}), "missing key 'f1'"),
        (good(metrics={"acc": 1.0, "f1": "high"}), "f1: bad value"),
        (good(match={"arch": "c", "view": None, "fold": "1"}), "arch: bad value 'c'"),
        (good(match={"arch": "a", "fold": "1"}), "missing key 'view'"),
        (good(match={"arch": "a", "view": None, "fold": 1}), "fold: bad value 1"),
        (good(match={"arch": "a", "view": None, "fold": "1", "size": 3}), "size: unknown key"),
    ]
    for bad, message in cases:
        path = write(tmp_path, [good(id="ok"), bad])
        with pytest.raises(InputError, match=message) as e:
            load_claims(path, "toy", METRICS, ATTRIBUTES)
        assert str(path) in str(e.value) and "toy.c7" in str(e.value)


def test_load_without_a_schema_checks_only_the_required_keys(tmp_path):
    path = write(tmp_path, [good(metrics={"other": 3}, match={"anything": "goes"})])
    assert load_claims(path, "toy")[0]["match"] == {"anything": "goes"}
    bad = good()
    del bad["source"]
    with pytest.raises(InputError, match=r"toy\.c7: missing keys \['source'\]"):
        load_claims(write(tmp_path, [bad]), "toy")
