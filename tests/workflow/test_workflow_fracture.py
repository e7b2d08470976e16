"""The fracture study end to end on a tiny synthetic set (other studies off): preparation,
training with thresholds chosen on validation (one run searching them on test, flagged), flip
TTA evaluation in both conventions, the challenge-rules section of the leaderboard with a paired
delta against the reference run, the audit note, and a lab's folder of result files entering the
section through `external:` with only the aggregation rerunning."""

import copy
import json
import re

import jsonschema
import pytest

from medrepro.fsutil import sha256_file
from workflow_utils import REPO, TINY, make_workdir, planned_jobs, snakemake, write_config

pytestmark = pytest.mark.workflow

FR_TINY = {
    "results": "results",
    "bootstrap": {"iterations": 200, "seed": 0},
    "studies": {
        "scoliosis": {**copy.deepcopy(TINY["studies"]["scoliosis"]), "enabled": False},
        "counterfactual": {"enabled": False},
        "loes": {"enabled": False},
        "fracture": {
            "data": {"synthetic": {"seed": 1, "n_images": 60, "size": 64}},
            "preprocessing": {"s64": {"size": 64, "intensity": "zscore"}},
            "reference": "unet",
            "train_defaults": {"iterations": 30, "eval_every": 15, "checkpoint_every": 15, "width": 0.25,
                               "channels": [16, 32, 64],
                               "resources": {"runtime": 10, "mem_mb": 2000, "gpu": 1, "cpus_per_gpu": 1}},
            "runs": {
                "unet": {"input": "s64", "seeds": [0]},
                "unet_head": {"model": "unet_presence", "input": "s64", "presence_score": "head", "seeds": [0]},
                "unet_guided": {"input": "s64", "threshold_split": "test", "seeds": [0]},
            },
        },
    },
}


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    wd = make_workdir(tmp_path_factory.mktemp("fracture"), FR_TINY)
    proc = snakemake(wd, "-c", "2", timeout=600)
    return wd, proc


def test_end_to_end(done):
    wd, _ = done
    res = wd / "results"
    schema = json.loads((REPO / "workflow/schemas/metrics.schema.json").read_text())
    for run in FR_TINY["studies"]["fracture"]["runs"]:
        m = json.loads((res / f"fracture/runs/{run}/seed0/metrics.json").read_text())
        jsonschema.validate(m, schema)
        for name in ("dice_pos", "iou_pos", "precision_pos", "recall_pos", "dice_nnunet", "roc_auc_max", "ap_top1"):
            assert name in m["metrics"], name
        assert m["details"]["thresholds"]["chosen_on"] == ("test" if run == "unet_guided" else "val")
        assert m["selection"]["test_guided"] == (run == "unet_guided")
    assert "roc_auc_head" in json.loads((res / "fracture/runs/unet_head/seed0/metrics.json").read_text())["metrics"]

    board = (res / "leaderboard.md").read_text()
    section = board.split("(`fracture`)", 1)[1]
    assert "| rank | run | Dice_pos | IoU_pos | ROC-AUC | AP | precision_pos | recall_pos | source |" in section
    assert re.search(r"\| \d \| unet_guided \(test-guided\) \|", section)
    assert "### Analysis" in section and "Highest value per metric" in section
    assert ("paired bootstrap 95% CI of the difference" in section
            or "is the reference run `unet`: no delta" in section)
    csv = (res / "fracture/challenge.csv").read_text().splitlines()
    assert csv[0] == "rank,run,dice_pos,iou_pos,roc_auc,ap,precision_pos,recall_pos,source" and len(csv) == 4

    audit = (res / "audit/fracture.md").read_text()
    assert "Two conventions, side by side" in audit and "(LEAKAGE)" in audit
    assert "nnU-Net fold-0 reference" in audit and "not comparable" in audit


def test_a_labs_result_folder_enters_the_section(done, tmp_path):
    wd, _ = done
    lab = wd / "lab_results"
    (lab / "dg_aug_seeds" / "seed_2025").mkdir(parents=True)
    (lab / "dg_aug_seeds" / "seed_2025" / "final_test_metrics.json").write_text(
        json.dumps({"metrics": {"dice_pos": 0.31, "iou_pos": 0.22, "auc": 0.81, "average_precision": 0.6}}))
    (lab / "nnunet_fold0_final_test_metrics.json").write_text(json.dumps({"dice_pos": 0.1068, "roc_auc": 0.6849}))
    (lab / "smoke_metrics.json").write_text(json.dumps({"dice_pos": 0.99}))
    cfg = copy.deepcopy(FR_TINY)
    cfg["studies"]["fracture"]["external"] = {"lab": {"path": str(lab), "data": "real"}}
    write_config(wd, cfg)
    assert set(planned_jobs(wd)) == {"external_import", "fracture_challenge", "fracture_audit", "study_summary",
                                     "leaderboard", "crate", "all"}
    snakemake(wd, "-c", "2", timeout=300)
    section = (wd / "results/leaderboard.md").read_text().split("(`fracture`)", 1)[1]
    sha = sha256_file(lab / "dg_aug_seeds" / "seed_2025" / "final_test_metrics.json")
    assert f"lab/dg_aug_seeds/seed_2025 (external, sha256 `{sha[:12]}`)" in section
    assert "lab/nnunet_fold0_final_test_metrics" in section and "0.1068" in section
    assert "smoke_metrics.json" in section and "0.9900" not in section  # listed as left out, not ranked
