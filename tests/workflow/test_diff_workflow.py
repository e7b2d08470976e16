"""`medrepro diff` on two tiny runs that differ in one learning rate: a copy of the finished tiny
run, one run's lr changed in its config, run again (only that run's chain reruns), compared
with the original."""

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from workflow_utils import TINY, recorded_outputs, snakemake, write_config

pytestmark = pytest.mark.workflow
MEDREPRO = str(Path(sys.executable).parent / "medrepro")
# a run of the tiny config that no other run starts from; 0.005 changes its predictions
STUDY, RUN, NEW_LR = "scoliosis", "drf_112", 0.005


def test_diff_reports_the_one_changed_learning_rate(tiny_local_results, tmp_path):
    original = tiny_local_results.workdir
    wd = tmp_path / "wd"
    shutil.copytree(original, wd, symlinks=True)
    config = copy.deepcopy(TINY)
    config["studies"][STUDY]["runs"][RUN]["lr"] = NEW_LR
    write_config(wd, config)
    snakemake(wd, "-c", "2")
    before, after = recorded_outputs(original), recorded_outputs(wd)
    rerun = {p for p in after if before.get(p) != after[p]}
    assert any(f"/runs/{RUN}/" in p for p in rerun)
    assert not any("/runs/" in p and f"/runs/{RUN}/" not in p for p in rerun), sorted(rerun)

    out = tmp_path / "diff.json"
    proc = subprocess.run([MEDREPRO, "diff", str(original / "results"), str(wd / "results"), "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    n_runs = sum(len(c["seeds"]) for c in TINY["studies"][STUDY]["runs"].values())
    assert report["counts"]["in both"] == n_runs and report["counts"]["changed_params"] == 1
    assert report["counts"]["only in A"] == report["counts"]["only in B"] == 0

    for entry in report["runs"]:
        if entry["run"] != RUN:
            assert entry["params"] == [] and entry["upstream_params"] == [], entry["run"]
            assert entry["summary"] == "records identical", entry["run"]
            continue
        assert [(p["key"], p["change"], p["b"]) for p in entry["params"]] == [("run.lr", "changed", NEW_LR)]
        assert entry["params"][0]["a"] != NEW_LR
        assert entry["upstream_params"] == []
        primary = [m for m in entry["metrics"] if m["primary"]]
        assert len(primary) == 1 and len(entry["metrics"]) > 1
        for m in entry["metrics"]:
            assert m["n_units"] > 0 and m["ci_low"] is not None and m["ci_high"] is not None, m
            assert m["verdict"] == ("changed" if m["ci_low"] > 0 or m["ci_high"] < 0 else "not distinguishable")
        assert any(m["delta"] != 0 for m in entry["metrics"]), "the new lr no longer changes a metric"
    assert f"| {STUDY} | {RUN} | 0 | run.lr | changed |" in proc.stdout
