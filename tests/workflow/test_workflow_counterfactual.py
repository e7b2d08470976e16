"""The counterfactual study end to end on a tiny synthetic bundle (scoliosis disabled): the
leaderboard section, the audit note, metrics.json in the shared schema, the leaderboard CI equal
to the benchmark's frozen CI, and a tampered bundle stopping the pipeline at verification."""

import copy
import json
import re

import jsonschema
import pandas as pd
import pytest
import yaml

from medrepro.fsutil import sha256_file
from medrepro.report.summary import rank_study
from medrepro.studies.counterfactual.layout import DESCRIPTOR
from medrepro.report.render import fmt_ci
from workflow_utils import REPO, TINY, make_workdir, planned_jobs, snakemake, write_config

pytestmark = pytest.mark.workflow

MODELS = ("sim-stable", "sim-moderate", "sim-sensitive")
CF_TINY = {
    "results": "results",
    "studies": {
        "scoliosis": {**copy.deepcopy(TINY["studies"]["scoliosis"]), "enabled": False},
        "loes": {"enabled": False},
        "fracture": {"enabled": False},
        "counterfactual": {
            "data": {"source": "synthetic",
                     "synthetic": {"n_sources": 24, "size": 64, "degraded_fraction": 0.2, "seed": 3}},
        },
    },
}
AUDIT_SECTIONS = ("Bundle integrity", "Counterfactual QC", "Refusal accounting", "Endpoints and ranking",
                  "published claims", "What these numbers support")


def _default_study() -> dict:
    return yaml.safe_load((REPO / "config/config.yaml").read_text())["studies"]["counterfactual"]


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    wd = make_workdir(tmp_path_factory.mktemp("cf"), CF_TINY)
    proc = snakemake(wd, "-c", "2", timeout=300)
    return wd, proc


def test_plan_has_the_study_and_disabling_it_removes_it(tmp_path):
    wd = make_workdir(tmp_path, CF_TINY)
    jobs = planned_jobs(wd)
    assert jobs["counterfactual_score"] == len(MODELS)
    for rule in ("counterfactual_synthesize", "counterfactual_verify_checksums", "counterfactual_qc", "counterfactual_audit", "study_summary", "leaderboard"):
        assert jobs.get(rule) == 1, rule
    assert not any(r.startswith("scoliosis_") for r in jobs)
    cfg = copy.deepcopy(CF_TINY)
    cfg["studies"]["counterfactual"]["enabled"] = False
    cfg["studies"]["scoliosis"]["enabled"] = True
    write_config(wd, cfg)
    assert not any(r.startswith("counterfactual_") for r in planned_jobs(wd))


def test_end_to_end_leaderboard_and_audit(done):
    wd, _ = done
    res = wd / "results"
    board = (res / "leaderboard.md").read_text()
    study = _default_study()
    assert f"## {DESCRIPTOR['title']} (`counterfactual`)" in board
    assert "scoliosis" not in board
    section = board.split("(`counterfactual`)", 1)[1]
    rows = [line for line in section.splitlines() if re.match(r"^\| \d+ \| `", line)]
    ranked = [re.match(r"^\| \d+ \| `([^`]+)`", r).group(1) for r in rows]
    assert sorted(ranked) == sorted(MODELS)
    # ranked by recommendation change, lower first; every row carries CIs
    rates = [json.loads((res / f"counterfactual/models/{m}/score.json").read_text())
             ["endpoints"]["recommendation_change"]["estimate"] for m in ranked]
    assert rates == sorted(rates)
    assert all(r.count("[") >= len(DESCRIPTOR["columns"]) for r in rows)

    audit = (res / "audit/counterfactual.md").read_text()
    for heading in AUDIT_SECTIONS:
        assert heading in audit, heading
    assert "not comparable" in audit and "reproduced |" not in audit
    assert "Canny" in audit  # the QC parity caveat
    for m in MODELS:
        assert f"`{m}`" in audit
    assert "| NO |" not in audit  # leaderboard CI = score CI for every model
    assert (res / "counterfactual/figures/qc.png").stat().st_size > 1000

    qc = pd.read_csv(res / "counterfactual/qc/qc_table.csv")
    assert len(qc) == 24 * 4
    for col in ("ssim", "ssim_windowed", "edge_preservation", "lpips", "lpips_policy", "qc_pass"):
        assert col in qc.columns
    summary = json.loads((res / "counterfactual/qc/qc_summary.json").read_text())
    assert summary["planted"]["degraded_failed"] == summary["planted"]["n_degraded"] > 0


def test_metrics_follow_the_shared_schema_and_equal_the_benchmark_score(done, monkeypatch):
    wd, _ = done
    monkeypatch.chdir(wd)  # summary.csv names files relative to the workdir
    res = wd / "results"
    metrics_schema = json.loads((REPO / "workflow/schemas/metrics.schema.json").read_text())
    prov_schema = json.loads((REPO / "workflow/schemas/provenance.schema.json").read_text())
    for m in MODELS:
        d = res / "counterfactual/models" / m
        metrics = json.loads((d / "metrics.json").read_text())
        jsonschema.validate(metrics, metrics_schema)
        score = json.loads((d / "score.json").read_text())
        assert metrics["run"] == m and metrics["seed"] is None and metrics["primary"] == "mean:rec_change"
        assert metrics["selection"] == {"policy": "none", "test_guided": False, "step": None}
        assert metrics["bootstrap"]["iterations"] == 10000 and metrics["bootstrap"]["seed"] == 42
        for name, ep in (("mean:rec_change", "recommendation_change"), ("mean:label_jaccard", "label_consistency")):
            e = score["endpoints"][ep]
            assert metrics["metrics"][name] == {"estimate": e["estimate"], "ci_low": e["ci_low"],
                                                "ci_high": e["ci_high"], "n": e["n_pairs"]}
        units = pd.read_csv(d / metrics["units"])
        assert list(units.columns[:2]) == ["unit_id", "cluster"]
        assert len(units) == score["n_pairs_usable"]
        for det in ("refusals", "gaps", "both_empty_labels", "coverage", "table_row"):
            assert det in metrics["details"]
    for p in res.rglob("*.provenance.json"):
        jsonschema.validate(json.loads(p.read_text()), prov_schema)

    # the leaderboard's CI (its own bootstrap over the per-pair CSV) is the benchmark's CI
    desc = DESCRIPTOR
    summary = pd.read_csv(res / "counterfactual/summary.csv", dtype={"split": str, "lineage_id": str})
    board = (res / "leaderboard.md").read_text()
    for row in rank_study(summary, desc, 1000, 0):
        score = json.loads((res / f"counterfactual/models/{row['run']}/score.json").read_text())
        for name, ep in (("mean:rec_change", "recommendation_change"), ("mean:label_jaccard", "label_consistency")):
            e = score["endpoints"][ep]
            assert row["point"][name] == pytest.approx(e["estimate"], abs=1e-12)
            assert row["ci"][name] == pytest.approx((e["ci_low"], e["ci_high"]), abs=1e-12)
            assert fmt_ci(e["estimate"], (e["ci_low"], e["ci_high"])) in board
        assert row["n_units"] == score["n_pairs_usable"]


def test_rerun_plans_nothing(done):
    wd, _ = done
    assert planned_jobs(wd) == {}


def test_tampered_bundle_fails_verification_and_nothing_downstream_runs(tmp_path):
    wd = make_workdir(tmp_path, CF_TINY)
    snakemake(wd, "-c", "2", "--until", "counterfactual_verify_checksums", timeout=300)
    res = wd / "results/counterfactual"
    assert json.loads((res / "checks/checksums.json").read_text())["ok"] is True
    bundle = res / "data/bundle"
    rel = "counterfactuals/young_male/S00005__young_male.png"
    expected = next(line.split()[0] for line in (bundle / "SHA256SUMS.txt").read_text().splitlines()
                    if line.endswith(rel))
    with open(bundle / rel, "ab") as f:
        f.write(b"tampered")
    actual = sha256_file(bundle / rel)
    assert actual != expected

    proc = snakemake(wd, "-c", "2", "--forcerun", "counterfactual_verify_checksums", check=False, timeout=300)
    assert proc.returncode != 0
    log = (wd / "results/logs/counterfactual/verify_checksums.log").read_text()
    for text in (proc.stdout + proc.stderr, log):
        assert rel in text and expected in text and actual in text
    assert not (res / "checks/checksums.json").exists()
    for downstream in ("qc/qc_table.csv", "figures/qc.png", "models", "summary.csv"):
        assert not (res / downstream).exists(), downstream
    assert not (wd / "results/audit/counterfactual.md").exists()
    assert not (wd / "results/leaderboard.md").exists()


@pytest.mark.parametrize("mutate,needle", [
    (lambda c: c["qc"].update(lpips="sometimes"), "sometimes"),
    (lambda c: c["scoring"].update(iterationz=5), "iterationz"),
    (lambda c: c.update(models={"bad/name": {"rec_change_rate": 0.1}}), "bad/name"),
])
def test_config_schema_rejects_bad_counterfactual_keys(tmp_path, mutate, needle):
    wd = make_workdir(tmp_path)
    cfg = copy.deepcopy(CF_TINY)
    cf = cfg["studies"]["counterfactual"]
    cf.setdefault("qc", {})
    cf.setdefault("scoring", {})
    mutate(cf)
    write_config(wd, cfg)
    proc = snakemake(wd, "-n", check=False)
    assert proc.returncode != 0
    assert needle in proc.stdout + proc.stderr


def test_the_finished_run_verifies(done):
    """Every lineage link holds, figures and submissions written beside other folders included."""
    import subprocess
    import sys
    from pathlib import Path

    wd, _ = done
    proc = subprocess.run([str(Path(sys.executable).parent / "medrepro"), "verify", "results"], cwd=wd,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
