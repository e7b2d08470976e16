"""A changed file cannot pass unnoticed, and the chain behind a number can be run again to the
same bytes: a copy of the finished tiny run is verified, reproduced and tampered with. (That
equal work gives equal bytes across two whole runs is checked in test_slurm_workflow.py, whose
SLURM run of the same config is compared output by output with the local run.)"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from workflow_utils import recorded_outputs, snakemake

pytestmark = pytest.mark.workflow
MEDREPRO = str(Path(sys.executable).parent / "medrepro")


@pytest.fixture(scope="module")
def second(tmp_path_factory, tiny_local_results):
    """A copy of the finished tiny run (with Snakemake's metadata), for the tests to tamper with."""
    wd = tmp_path_factory.mktemp("tiny-copy") / "wd"
    shutil.copytree(tiny_local_results.workdir, wd, symlinks=True)
    assert recorded_outputs(wd) == recorded_outputs(tiny_local_results.workdir) and len(recorded_outputs(wd)) > 30
    return wd


def _verify(wd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([MEDREPRO, "verify", "results"], cwd=wd, capture_output=True, text=True, timeout=300)


def test_the_run_verifies(second):
    proc = _verify(second)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK: every file matches its record" in proc.stdout


def test_reproduce_reruns_the_chain_behind_a_number_and_gets_the_same_bytes(second, tmp_path):
    target = "results/scoliosis/runs/drf_112/seed0/metrics.json"
    prov = json.loads((second / "results/scoliosis/runs/drf_112/seed0/scoliosis_evaluate.provenance.json").read_text())
    # under CI the tree is committed and the recorded commit is archived; a developer's
    # uncommitted tree is run as it is
    flags = ["--allow-dirty"] if prov["code"]["dirty"] else []
    proc = subprocess.run([MEDREPRO, "reproduce", target, "--scratch", str(tmp_path / "scratch"), *flags],
                          cwd=second, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "comparison: bytes" in out and "OK: every output of the chain reproduced" in out
    for rule_output in ("data/manifest.json", "prep/pav/112/pav.npz", "drf_112/seed0/checkpoint.pt", target):
        assert re.search(rf"bytes equal\s+\S*{re.escape(rule_output)}", out), rule_output
    assert "ske_118" not in out  # only the chain behind the number
    # by lineage id, as the leaderboard shows it
    lid = prov["lineage_id"][:12]
    proc = subprocess.run([MEDREPRO, "reproduce", lid, *flags], cwd=second, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stdout + proc.stderr


def test_reproduce_refuses_unknown_targets(second):
    proc = subprocess.run([MEDREPRO, "reproduce", "results/nope.json"], cwd=second, capture_output=True, text=True)
    assert proc.returncode == 2 and "no output and no lineage id" in proc.stderr


def test_a_hand_edited_metrics_file_stops_the_leaderboard(second):
    path = second / "results/scoliosis/runs/drf_112/seed0/metrics.json"
    original = path.read_text()
    m = json.loads(original)
    m["metrics"]["macro_f1"]["estimate"] = 0.99
    path.write_text(json.dumps(m))
    try:
        proc = snakemake(second, "-c", "1", "--forcerun", "study_summary", check=False, timeout=600)
        assert proc.returncode != 0
        log = (second / "results/logs/scoliosis/summary.log").read_text()
        assert "drf_112/seed0/metrics.json: sha256:" in log
        ver = _verify(second)
        assert ver.returncode == 1 and "DIFFERS results/scoliosis/runs/drf_112/seed0/metrics.json" in ver.stdout
    finally:
        path.write_text(original)


def test_a_zeroed_skeleton_map_fails_the_retrain_and_verify(second):
    maps = second / "results/scoliosis/prep/skeleton_maps/body_only"
    target = sorted(maps.glob("*.npy"))[0]
    original = target.read_bytes()
    arr = np.load(target)
    np.save(target, np.zeros_like(arr))
    try:
        proc = snakemake(second, "-c", "1", "--forcerun", "scoliosis_train", "--until", "scoliosis_train",
                         check=False, timeout=600)
        assert proc.returncode != 0
        log = "".join(p.read_text() for p in (second / "results/logs/scoliosis").glob("train_*.log"))
        assert "prep/skeleton_maps/body_only: sha256:" in log and "producer's record" in log
        ver = _verify(second)
        assert ver.returncode == 1
        assert "DIFFERS results/scoliosis/prep/skeleton_maps/body_only" in ver.stdout
        # Snakemake removed the failed job's outputs; the other runs on these maps are listed
        assert re.search(r"leaderboard row: scoliosis / (ske_112|ske_118|drf_112|ske_112_ft) / seed 0", ver.stdout)
    finally:
        target.write_bytes(original)
