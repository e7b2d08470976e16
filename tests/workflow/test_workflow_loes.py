"""The loes study end to end on a tiny synthetic cohort (other studies off): normalization
variants with their figures and Nyul landmarks, training, standalone evaluation, model cards with
the paired comparison, the audit note, the leaderboard section, and predictions from outside the
pipeline entering the section through `external:` with only the affected jobs rerunning."""

import copy
import json
import re

import jsonschema
import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from medrepro.studies.loes.layout import DESCRIPTOR
from workflow_utils import REPO, TINY, make_workdir, planned_jobs, snakemake, write_config

pytestmark = pytest.mark.workflow

LOES_TINY = {
    "results": "results",
    "bootstrap": {"iterations": 200, "seed": 0},
    "studies": {
        "scoliosis": {**copy.deepcopy(TINY["studies"]["scoliosis"]), "enabled": False},
        "counterfactual": {"enabled": False},
        "fracture": {"enabled": False},
        "loes": {
            "data": {"synthetic": {"seed": 2, "n_subjects": 20}},
            "normalization": {
                "zscore": {"spacing": [4.0, 4.0, 4.0], "shape": [24, 24, 24], "intensity": "zscore"},
                "nyul": {"spacing": [4.0, 4.0, 4.0], "shape": [24, 24, 24], "intensity": "nyul",
                         "fit_split": "random"},
            },
            "train_defaults": {"epochs": 2, "batch_size": 4, "width": 0.125,
                               "resources": {"runtime": 10, "mem_mb": 2000, "gpu": 1, "cpus_per_gpu": 1}},
            "runs": {
                "mse": {"input": "zscore", "split": "random", "seeds": [0]},
                "nyul_mse": {"input": "nyul", "split": "random", "seeds": [0], "compare_to": "mse"},
            },
        },
    },
}


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    wd = make_workdir(tmp_path_factory.mktemp("loes"), LOES_TINY)
    proc = snakemake(wd, "-c", "2", timeout=600)
    return wd, proc


def test_plan_has_one_rule_per_step_and_variant(tmp_path):
    wd = make_workdir(tmp_path, LOES_TINY)
    jobs = planned_jobs(wd)
    assert jobs["loes_normalize"] == 2 and jobs["loes_nyul_fit"] == 1
    assert jobs["loes_train"] == 2 and jobs["loes_evaluate"] == 2 and jobs["loes_card"] == 2
    for rule in ("loes_synthesize", "loes_manifest", "loes_split", "loes_audit", "study_summary", "leaderboard"):
        assert jobs.get(rule) == 1, rule
    assert not any(r.startswith(("scoliosis_", "counterfactual_")) for r in jobs)


def test_a_nyul_variant_used_with_another_split_is_refused(tmp_path):
    cfg = copy.deepcopy(LOES_TINY)
    cfg["studies"]["loes"]["splits"] = {"random": {"mode": "random"}, "stratified": {"mode": "stratified"}}
    cfg["studies"]["loes"]["runs"]["nyul_mse"]["split"] = "stratified"
    wd = make_workdir(tmp_path, cfg)
    proc = snakemake(wd, "-n", check=False)
    assert proc.returncode != 0
    out = proc.stderr + proc.stdout
    assert "studies.loes.runs.nyul_mse.input" in out and "fits its Nyul landmarks on split 'random'" in out


def test_end_to_end(done):
    wd, _ = done
    res = wd / "results"
    board = (res / "leaderboard.md").read_text()
    assert f"## {DESCRIPTOR['title']} (`loes`)" in board
    section = board.split("(`loes`)", 1)[1]
    ranked = re.findall(r"^\| \d+ \| `([^`]+)`", section, re.M)
    assert sorted(ranked) == ["mse", "nyul_mse"]

    metrics_schema = json.loads((REPO / "workflow/schemas/metrics.schema.json").read_text())
    prov_schema = json.loads((REPO / "workflow/schemas/provenance.schema.json").read_text())
    for run in ("mse", "nyul_mse"):
        m = json.loads((res / f"loes/runs/{run}/seed0/metrics.json").read_text())
        jsonschema.validate(m, metrics_schema)
        for name in ("rmse", "standardized_rmse", "mae", "pearson_r", "pearson_p", "spearman_rho", "spearman_p", "r2"):
            v = m["metrics"][name]
            assert v["ci_low"] <= v["estimate"] <= v["ci_high"] or np.isnan(v["estimate"]), name
        assert m["bootstrap"]["cluster"] == "test subject"
        pred = pd.read_csv(res / f"loes/runs/{run}/seed0/predictions.csv")
        assert m["details"]["n_scans"] == len(pred) and m["details"]["n_subjects"] == pred["cluster"].nunique()
    for p in res.rglob("*.provenance.json"):
        jsonschema.validate(json.loads(p.read_text()), prov_schema)

    # normalization: valid RAS NIfTI of the variant's shape, a figure per variant, landmarks from TRAIN only
    split = json.loads((res / "loes/splits/random.json").read_text())
    lm = json.loads((res / "loes/prep/nyul.nyul_landmarks.json").read_text())
    assert sorted(lm["fitted_on"]) == sorted(split["train"])
    index = json.loads((res / "loes/prep/nyul/index.json").read_text())
    some = nib.load(res / "loes/prep/nyul" / next(iter(index["scans"].values()))["file"])
    assert some.shape == (24, 24, 24) and "".join(nib.aff2axcodes(some.affine)) == "RAS"
    for v in ("zscore", "nyul"):
        assert (res / f"loes/prep/{v}.png").read_bytes()[:4] == b"\x89PNG"

    # model cards: configuration, CIs, figures, the paired comparison with a verdict word
    card = (res / "cards/loes/nyul_mse.md").read_text()
    card_json = json.loads((res / "cards/loes/nyul_mse.json").read_text())
    assert card_json["comparison"]["verdict"] in ("better", "not distinguishable", "worse")
    assert card_json["comparison"]["verdict"] in card
    assert "onecycle" in card and "predicted_vs_true.png" in card
    assert json.loads((res / "cards/loes/mse.json").read_text())["comparison"] is None

    audit = (res / "audit/loes.md").read_text()
    assert "Leakage checks" in audit and "| pass |" in audit
    assert "loes_model_20" in audit and "not comparable" in audit


def test_external_predictions_enter_the_section_and_only_aggregation_reruns(done, tmp_path):
    wd, _ = done
    res = wd / "results"
    lab = pd.read_csv(res / "loes/runs/mse/seed0/predictions_lab.csv")
    lab["predicted_loes_score"] = lab["loes-score"] + np.random.default_rng(0).normal(0, 1.0, len(lab))
    lab.loc[0, "predicted_loes_score"] = np.nan  # not in that model's test set: skipped and counted
    ext = wd / "lab_predictions.csv"
    lab.to_csv(ext, index=False)
    cfg = copy.deepcopy(LOES_TINY)
    cfg["studies"]["loes"]["external"] = {"lab_model": {"path": str(ext), "data": "synthetic"}}
    write_config(wd, cfg)
    jobs = planned_jobs(wd)
    assert set(jobs) == {"external_import", "study_summary", "leaderboard", "loes_audit", "crate", "all"}, jobs
    snakemake(wd, "-c", "2", timeout=300)
    m = json.loads((res / "loes/external/lab_model/metrics.json").read_text())
    from medrepro.fsutil import sha256_file

    assert m["external"]["sha256"] == sha256_file(ext)
    assert m["details"]["skipped_empty"] == 1 and m["details"]["n_scans"] == len(lab) - 1
    board = (res / "leaderboard.md").read_text()
    assert re.search(r"`lab_model` \(external, sha256 `" + m["external"]["sha256"][:12], board)
    prov = json.loads((res / "loes/external/lab_model/external_import.provenance.json").read_text())
    assert any(i["path"].endswith("lab_predictions.csv") and i["sha256"] == m["external"]["sha256"]
               for i in prov["inputs"])
