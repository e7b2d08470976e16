"""Smoke test of the single-node Slurm test cluster itself (not of the workflow)."""

import subprocess
import time

import pytest

pytestmark = pytest.mark.slurm

TERMINAL = {
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "OUT_OF_MEMORY",
    "NODE_FAIL",
    "BOOT_FAIL",
    "DEADLINE",
    "PREEMPTED",
}


def _run(*cmd, timeout=30):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)


def _sacct_state(jobid):
    out = _run("sacct", "-j", jobid, "-n", "-X", "-P", "-o", "State").stdout.split()
    return out[0].split()[0] if out else ""


def test_cluster_status_and_fake_gpu(slurm_cluster):
    status = subprocess.run(
        ["bash", str(slurm_cluster.script), "status", str(slurm_cluster.state_dir)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert status.returncode == 0, status.stdout + status.stderr
    sinfo = _run("sinfo", "-h", "-p", slurm_cluster.partition, "-o", "%P|%T|%G").stdout
    partition, state, gres = sinfo.strip().splitlines()[0].split("|")
    assert partition == slurm_cluster.partition + "*"  # the default partition
    assert state == "idle"
    assert "gpu:1" in gres


def test_gpu_job_runs_and_is_accounted(slurm_cluster, tmp_path):
    out = tmp_path / "job.out"
    submitted = _run(
        "sbatch",
        "--parsable",
        "--gpus=1",
        "--time=2",
        "--mem=100",
        "-o",
        str(out),
        "--wrap",
        'echo "CVD=${CUDA_VISIBLE_DEVICES:-unset}"; echo "JOB=${SLURM_JOB_ID:-unset}"',
    )
    jobid = submitted.stdout.strip().split(";")[0]
    assert jobid.isdigit(), submitted.stdout

    deadline = time.monotonic() + 60
    state = ""
    while time.monotonic() < deadline:
        state = _sacct_state(jobid)
        if state in TERMINAL:
            break
        time.sleep(0.5)
    assert state == "COMPLETED", f"job {jobid} ended as {state!r}"

    lines = out.read_text().splitlines()
    assert "CVD=0" in lines
    assert f"JOB={jobid}" in lines
    final = _run("sacct", "-j", jobid, "-n", "-X", "-o", "State").stdout.split()
    assert final[:1] == ["COMPLETED"]
