"""The scoliosis claims: the attributes of config/claims.yaml, the attributes of runs, and which
run each claim is set beside in the audit note."""

import jinja2
import pytest
import yaml

from medrepro.errors import InputError
from medrepro.report.claims import claims_table
from medrepro.report.render import fmt_ci
from medrepro.studies.scoliosis.audit import CLAIM_ATTRIBUTES, load_scoliosis_claims, run_attributes
from medrepro.studies.scoliosis.layout import DESCRIPTOR

from repo_paths import REPO

CLAIMS = REPO / "config/claims.yaml"
METRICS = DESCRIPTOR["columns"]
STUDY = {
    "skeleton_maps": {"body_only": {"representation": "body-only"}, "head_lite": {"representation": "head-lite"},
                      "plain": {"sigma": 4.0}},
    "train_defaults": {"selection": "val"},
}


def run(model="sconet", input="skeleton_maps.body_only", split="112", **kw):
    return {**STUDY["train_defaults"], "model": model, "input": input, "split": split, **kw}


def ranked_row(name, rank, ci=(0.50, 0.60)):
    return {"run": name, "rank": rank, "test_guided": False,
            "point": {m: sum(ci) / 2 for m in METRICS}, "ci": {m: ci for m in METRICS}}


def by_id():
    return {c["id"]: c for c in load_scoliosis_claims(CLAIMS, METRICS)}


def test_the_shipped_claims_load_with_four_metrics_and_every_attribute():
    claims = by_id()
    assert len(claims) == 6
    for c in claims.values():
        assert set(c["metrics"]) == set(METRICS)
        assert set(c["match"]) == set(CLAIM_ATTRIBUTES)
        assert c["unit"] == "percent"
    head_lite = claims["head_lite_7000_112"]["match"]
    assert (head_lite["input"], head_lite["split"]) == ("head-lite", "112")
    assert claims["body_only_7000_112"]["match"]["input"] == "body-only"
    best = claims["practical_best_body_only_112"]
    assert best["test_guided"] and best["match"] == {
        "model": "sconet", "input": "body-only", "split": "112", "selection": "test", "init_from": True}
    assert claims["drf_paper"]["match"]["model"] == "drf" and claims["drf_paper"]["match"]["split"] == "118"
    baseline = claims["sconet_mt_ske_in_drf_paper"]["match"]
    assert baseline["input"] == "full-body" and baseline["split"] is None


def test_run_attributes_come_from_the_run_and_its_skeleton_map_variant():
    assert run_attributes(run(input="silhouette"), STUDY) == {
        "model": "sconet", "input": "silhouette", "split": "112", "selection": "val", "init_from": False}
    assert run_attributes(run(input="skeleton_maps.head_lite"), STUDY)["input"] == "head-lite"
    assert run_attributes(run(input="skeleton_maps.plain"), STUDY)["input"] == "full-body"  # the default
    ft = run_attributes(run(init_from="ske_body_112", selection="test"), STUDY)
    assert ft["init_from"] is True and ft["selection"] == "test"
    no_default = {k: v for k, v in run().items() if k != "selection"}
    assert run_attributes(no_default, STUDY)["selection"] == "val"


def table(claim_ids, runs, order):
    claims = by_id()
    attrs = {name: run_attributes(cfg, STUDY) for name, cfg in runs.items()}
    ranked = [ranked_row(name, i + 1) for i, name in enumerate(order)]
    return claims_table([claims[i] for i in claim_ids], ranked, attrs, METRICS, "real")


def test_head_lite_claim_with_only_body_only_runs_has_no_comparable_run():
    runs = {"ske_body_112": run(), "ske_body_118": run(split="118")}
    (t,) = table(["head_lite_7000_112"], runs, ["ske_body_112", "ske_body_118"])
    assert t["run"] is None and t["no_match"] == "no run with input head-lite"
    assert {m["verdict"] for m in t["metrics"]} == {"not comparable"}


def test_the_118_claim_is_set_beside_the_118_run_even_when_the_112_run_ranks_higher():
    runs = {"drf_112": run(model="drf"), "drf_118": run(model="drf", split="118"), "ske_body_112": run()}
    drf_paper, local_112 = table(["drf_paper", "drf_local_reproduction_112"], runs,
                                 ["drf_112", "ske_body_112", "drf_118"])
    assert drf_paper["run"] == "drf_118" and drf_paper["attributes"]["input"] == "not stated"
    assert local_112["run"] == "drf_112"


def test_the_practical_best_needs_a_fine_tuned_test_selected_body_only_run():
    runs = {"ske_body_112": run(), "ske_body_112_adamw_ft": run(init_from="ske_body_112")}
    (t,) = table(["practical_best_body_only_112"], runs, ["ske_body_112", "ske_body_112_adamw_ft"])
    assert t["run"] is None and t["no_match"] == "no run with selection test"
    runs["ske_body_112_adamw_ft"]["selection"] = "test"
    (t,) = table(["practical_best_body_only_112"], runs, ["ske_body_112", "ske_body_112_adamw_ft"])
    assert t["run"] == "ske_body_112_adamw_ft"


def test_a_bad_attribute_or_a_missing_metric_names_the_claim(tmp_path):
    data = yaml.safe_load(CLAIMS.read_text())
    data["scoliosis"][5]["match"]["input"] = "head_lite"
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError, match=r"head_lite_7000_112\.match\.input: bad value 'head_lite'"):
        load_scoliosis_claims(path, METRICS)
    data = yaml.safe_load(CLAIMS.read_text())
    del data["scoliosis"][1]["metrics"]["macro_recall"]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError, match=r"drf_paper\.metrics: missing key 'macro_recall'"):
        load_scoliosis_claims(path, METRICS)


def test_the_claims_section_of_the_audit_template_renders_every_metric_with_its_ci():
    """Only section 2 of the template, rendered from claims_table rows."""
    text = (REPO / "workflow/templates/scoliosis/audit.md.j2").read_text()
    section = text[text.index("## 2."):text.index("## 3.")]
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    runs = {"ske_body_112": run()}
    rows = table(["body_only_7000_112", "head_lite_7000_112"], runs, ["ske_body_112"])
    md = env.from_string(section).render(claims=rows, primary="macro_f1", fmt_ci=fmt_ci)
    lines = [line for line in md.splitlines() if line.startswith("| ")]
    assert len(lines) == 1 + 2 * len(METRICS)  # header + one line per claim and metric
    assert "`ske_body_112` (rank 1): model sconet, input body-only, split 112" in md
    assert "no comparable run: no run with input head-lite" in md
    assert md.count("0.550 [0.500, 0.600]") == len(METRICS)
    assert "selection not stated" in md
