"""The tiny config through `snakemake --profile slurm` on a real single-node Slurm cluster.

One workdir, two invocations of the SLURM profile (tests/slurm/README.md):

1. the tiny config plus a broken run (``device: cuda``: the trainer raises at runtime, torch
   sees no GPU on the fake-GPU node), with ``--keep-going``: the broken job fails on every
   attempt and is reported with its SLURM log path, every other run finishes;
2. the broken run removed from the config: the rest (summary, leaderboard, audit) completes.

Then: every training and evaluation job ran through sbatch (its provenance has a SLURM job id;
sacct lists that job COMPLETED, with its GPU request, in this run); light rules ran on the
submit host; and every run's metrics equal those of the local run of the same config.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import re
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from medrepro import workflow as mw
from workflow_utils import SNAKEMAKE, TINY, full_config, make_workdir, recorded_outputs, write_config

pytestmark = pytest.mark.slurm

STUDY = "scoliosis"
BROKEN = "broken_cuda"
CUDA_ERROR = "device 'cuda' requested but torch sees no GPU"
# wall-clock limits for the two snakemake invocations (the executor can hang: timeout -k)
TIMEOUT_BROKEN = 720
TIMEOUT_FIXED = 240
SACCT_FIELDS = ("JobID", "JobName", "State", "Account", "Partition", "Elapsed",
                "AllocTRES", "ReqTRES", "Comment")


# ----------------------------------------------------------------- helpers ---

def broken_config() -> dict:
    """TINY plus a run that fails at runtime: it asks for CUDA (torch sees none on the fake-GPU
    node). It asks SLURM for no GPU, so its retries do not queue behind the one fake GPU."""
    cfg = copy.deepcopy(TINY)
    runs = cfg["studies"][STUDY]["runs"]
    base = next(r for r in runs.values() if "init_from" not in r and r["input"] != "silhouette")
    runs[BROKEN] = {**copy.deepcopy(base), "device": "cuda", "seeds": [0], "resources": {"gpu": 0}}
    return cfg


def run_cfg(config: dict, run: str) -> dict:
    return mw.run_cfg(full_config(config), STUDY, run)


def run_seeds(config: dict) -> list[tuple[str, int]]:
    return mw.run_seeds(full_config(config), STUDY)


def slurm_snakemake(workdir: Path, env: dict, timeout: int, *args: str) -> SimpleNamespace:
    """`snakemake --profile slurm` in ``workdir`` under `timeout -k`; stdout+stderr together."""
    cmd = ["timeout", "-k", "10", str(timeout), SNAKEMAKE, "--configfile", "config/tiny.yaml",
           "--profile", "slurm", "--slurm-init-seconds-before-status-checks", "2", "--keep-going", *args]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    seconds = time.monotonic() - t0
    if proc.returncode in (124, 137):
        pytest.fail(f"snakemake --profile slurm ran past {timeout} s (executor hang?):\n"
                    f"{' '.join(cmd)}\n{proc.stdout[-6000:]}", pytrace=False)
    submitted = {m.group(2): Path(m.group(3)) for m in re.finditer(
        r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: ([^)]+)\)", proc.stdout)}
    uuid = re.search(r"SLURM run ID: ([0-9a-f-]+)", proc.stdout)
    return SimpleNamespace(cmd=cmd, rc=proc.returncode, out=proc.stdout, seconds=seconds,
                           submitted=submitted, run_uuid=uuid.group(1) if uuid else None)


def sacct(*, job_ids=(), name: str | None = None, start: str | None = None) -> dict[str, dict]:
    """JobID -> {field: value} for allocations (``-X``), from slurmdbd."""
    cmd = ["sacct", "-X", "-n", "-P", "-o", ",".join(SACCT_FIELDS)]
    if job_ids:
        cmd += ["-j", ",".join(sorted(job_ids, key=int))]
    if name:
        cmd += ["--name", name]
    if start:
        cmd += ["-S", start]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    rows = {}
    for line in out.splitlines():
        if not line.strip():
            continue
        row = dict(zip(SACCT_FIELDS, line.split("|", len(SACCT_FIELDS) - 1)))
        row["State"] = row["State"].split()[0]  # "CANCELLED by 0" -> "CANCELLED"
        rows[row["JobID"]] = row
    return rows


def sacct_lines(job_id: str) -> str:
    """sacct's own view of one job and its steps, for the report."""
    return subprocess.run(
        ["sacct", "-j", job_id, "-n", "-P", "-o", "JobID,JobName,State,ExitCode,Elapsed,AllocTRES,ReqTRES,Comment"],
        capture_output=True, text=True, timeout=60, check=True).stdout.strip()


def declared_localrules(workdir: Path) -> set[str]:
    """Rule names in every `localrules:` directive of the workflow (Snakefile and rules/**/*.smk),
    and of the rules with `localrule: True` (a rule named by an f-string, ``name: f"x_{_study}"``,
    as a pattern ``x_\\w+``)."""
    names: set[str] = set()
    for path in [workdir / "workflow" / "Snakefile", *sorted((workdir / "workflow" / "rules").rglob("*.smk"))]:
        text = path.read_text()
        for block in re.split(r"^\s*rule\b", text, flags=re.M)[1:]:
            if re.search(r"^\s*localrule:\s*True\b", block, re.M):
                named = re.search(r"^\s*name:\s*\n?\s*f?[\"']([^\"']+)[\"']", block, re.M)
                name = named.group(1) if named else re.match(r"\s*(\w+)", block).group(1)
                names.add(re.sub(r"\{[^}]*\}", r"\\w+", name))
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if not line.startswith("localrules:"):
                continue
            block = [line[len("localrules:"):]]
            for nxt in lines[i + 1:]:
                if not nxt.strip() or not nxt[0].isspace():
                    break
                block.append(nxt)
            names.update(re.findall(r"\w+", " ".join(block)))
    return names


def profile_retries(workdir: Path) -> int:
    text = (workdir / "slurm" / "config.v9+.yaml").read_text()
    m = re.search(r"^retries:\s*(\d+)", text, re.M)
    return int(m.group(1)) if m else 0


def mem_of(tres: str) -> int:
    m = re.search(r"(?:^|,)mem=(\d+)M", tres)
    return int(m.group(1)) if m else -1


def provenances(workdir: Path) -> dict[Path, dict]:
    return {p: json.loads(p.read_text()) for p in sorted((workdir / "results").rglob("*.provenance.json"))}


def run_dir(workdir: Path, run: str, seed: int) -> Path:
    return workdir / "results" / STUDY / "runs" / run / f"seed{seed}"


# ----------------------------------------------------------------- fixture ---

@pytest.fixture(scope="module")
def slurm_run(slurm_cluster, tmp_path_factory):
    """The tiny config (plus a broken run) through the SLURM profile, then the fixed config."""
    wd = make_workdir(tmp_path_factory.mktemp("slurm-wf"), broken_config())
    # `--profile slurm` is looked up in the working directory: the copied relative symlink
    assert (wd / "slurm").is_symlink(), "make_workdir did not copy the `slurm` profile symlink"
    assert (wd / "slurm").resolve() == (wd / "profiles" / "slurm").resolve()
    assert (wd / "slurm" / "config.v9+.yaml").is_file()

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SNAKEMAKE_"))}
    # partition and account through the profile's YTE templating (the variables sbatch reads)
    env.update(SBATCH_PARTITION=slurm_cluster.partition, SBATCH_ACCOUNT=slurm_cluster.account)
    since = (dt.datetime.now() - dt.timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%S")

    broken = slurm_snakemake(wd, env, TIMEOUT_BROKEN)
    after_broken = {
        "metrics": {(r, s): run_dir(wd, r, s).joinpath("metrics.json").exists() for r, s in run_seeds(TINY)},
        "broken_outputs": [name for name in ("checkpoint.pt", "train_summary.json", "metrics.json")
                           if run_dir(wd, BROKEN, 0).joinpath(name).exists()],
        "leaderboard": (wd / "results" / "leaderboard.md").exists(),
    }
    write_config(wd, TINY)  # the broken run removed
    fixed = slurm_snakemake(wd, env, TIMEOUT_FIXED)
    print(f"\n[slurm] run 1 (tiny + broken run, --keep-going): {broken.seconds:.1f} s, exit {broken.rc}, "
          f"{len(broken.submitted)} SLURM jobs")
    print(f"[slurm] run 2 (broken run removed): {fixed.seconds:.1f} s, exit {fixed.rc}, "
          f"{len(fixed.submitted)} SLURM jobs")
    return SimpleNamespace(workdir=wd, cluster=slurm_cluster, broken=broken, fixed=fixed,
                           after_broken=after_broken, since=since)


def _tail(proc) -> str:
    return f"{' '.join(proc.cmd)}\n(exit {proc.rc})\n{proc.out[-6000:]}"


# ------------------------------------------------------------------- tests ---

def test_broken_run_is_reported_with_its_slurm_log_and_the_others_finish(slurm_run):
    run1 = slurm_run.broken
    assert run1.rc != 0, "the run with a broken job must exit non-zero:\n" + _tail(run1)
    assert run1.run_uuid and run1.submitted, "no SLURM submissions seen:\n" + _tail(run1)
    # --keep-going: every other run finished; the broken one left no outputs
    missing = [k for k, ok in slurm_run.after_broken["metrics"].items() if not ok]
    assert not missing, f"runs not finished next to the broken one: {missing}\n" + _tail(run1)
    assert slurm_run.after_broken["broken_outputs"] == []
    assert not slurm_run.after_broken["leaderboard"]  # it needs the broken run's metrics

    jobs = sacct(job_ids=run1.submitted)
    assert set(jobs) == set(run1.submitted), f"sacct does not list every submitted job: {jobs}"
    broken_comment = f"rule_{STUDY}_train_wildcards_{BROKEN}_0"
    failed = {j: row for j, row in jobs.items() if row["State"] != "COMPLETED"}
    assert failed and all(row["Comment"] == broken_comment and row["State"] == "FAILED"
                          for row in failed.values()), f"unexpected job states: {failed}"
    # the profile's retries: one SLURM job per attempt, memory scaled by the attempt
    attempts = sorted(failed, key=int)
    assert len(attempts) == profile_retries(slurm_run.workdir) + 1
    base_mem = run_cfg(broken_config(), BROKEN)["resources"]["mem_mb"]
    assert [mem_of(failed[j]["ReqTRES"]) for j in attempts] == [base_mem * (i + 1) for i in range(len(attempts))]
    assert all("gres/gpu" not in failed[j]["ReqTRES"] for j in attempts)  # the run's own gpu: 0

    # each failure is reported with the SLURM log of that attempt, which holds the error
    reported = re.findall(r"SLURM-job '(\d+)' failed", run1.out)
    assert sorted(set(reported), key=int) == attempts, _tail(run1)
    for job_id in attempts:
        log = run1.submitted[job_id]
        assert log.is_relative_to(slurm_run.workdir / ".snakemake" / "slurm_logs"), log
        assert re.search(rf"^\s*log: .*{re.escape(str(log))}", run1.out, re.M), \
            f"SLURM log {log} of failed job {job_id} not reported:\n" + _tail(run1)
        assert log.is_file(), f"reported SLURM log {log} does not exist"
        text = log.read_text()
        assert CUDA_ERROR in text, f"{log} lacks the error:\n{text[-3000:]}"
    print(f"[slurm] failed job {attempts[-1]} reported with its log {run1.submitted[attempts[-1]]}")


def test_the_fixed_config_completes(slurm_run):
    run2 = slurm_run.fixed
    assert run2.rc == 0, _tail(run2)
    res = slurm_run.workdir / "results"
    board = (res / "leaderboard.md").read_text()
    for run in TINY["studies"][STUDY]["runs"]:
        assert f"`{run}`" in board
    assert BROKEN not in board
    assert (res / "audit" / f"{STUDY}.md").is_file()
    # nothing that had finished under SLURM was trained or evaluated again
    redone = [row["Comment"] for row in sacct(job_ids=run2.submitted).values()
              if row["Comment"].startswith((f"rule_{STUDY}_train", f"rule_{STUDY}_evaluate"))] if run2.submitted else []
    assert not redone, redone
    # and Snakemake left no job of its runs behind in the queue
    for uuid in {slurm_run.broken.run_uuid, run2.run_uuid} - {None}:
        queued = subprocess.run(["squeue", "-h", "--name", uuid, "-t", "PENDING,RUNNING", "-o", "%i %T"],
                                capture_output=True, text=True, timeout=60, check=True).stdout.strip()
        assert not queued, queued


def test_training_and_evaluation_went_through_sbatch_with_their_gpu_request(slurm_run):
    wd, cluster = slurm_run.workdir, slurm_run.cluster
    submitted = {**slurm_run.broken.submitted, **slurm_run.fixed.submitted}
    run_uuids = {slurm_run.broken.run_uuid, slurm_run.fixed.run_uuid} - {None}
    ids = {}
    assert any(run_cfg(TINY, run)["resources"].get("gpu", 0) for run, _ in run_seeds(TINY)), \
        "the tiny config has no GPU run: nothing here checks GPU requests"
    for run, seed in run_seeds(TINY):
        gpus = run_cfg(TINY, run)["resources"].get("gpu", 0)
        for rule in (f"{STUDY}_train", f"{STUDY}_evaluate"):
            prov = json.loads((run_dir(wd, run, seed) / f"{rule}.provenance.json").read_text())
            slurm = prov["slurm"]
            assert slurm and slurm.get("job_id"), f"{rule} {run}/{seed} did not run under SLURM: {slurm}"
            assert slurm["job_id"] in submitted, f"job {slurm['job_id']} was not submitted by this run"
            assert slurm["partition"] == cluster.partition and slurm["node"] == cluster.hostname, slurm
            # the fake GPU: SLURM set CUDA_VISIBLE_DEVICES, torch found no CUDA, the job fell back
            assert prov["device"]["used"] == "cpu", prov["device"]
            if gpus:
                assert prov["device"]["cuda_visible_devices"] not in (None, ""), prov["device"]
            ids[slurm["job_id"]] = (rule, run, seed)
    assert len(ids) == 2 * len(run_seeds(TINY)), "two jobs share a SLURM job id"

    jobs = sacct(job_ids=ids)
    for job_id, (rule, run, seed) in ids.items():
        row = jobs.get(job_id)
        assert row, f"sacct does not know job {job_id} ({rule} {run}/{seed})"
        assert row["State"] == "COMPLETED", row
        assert row["JobName"] in run_uuids, row  # the plugin names jobs after the SLURM run id
        assert row["Comment"] == f"rule_{rule}_wildcards_{run}_{seed}", row
        assert row["Account"] == cluster.account and row["Partition"] == cluster.partition, row
        gpus = run_cfg(TINY, run)["resources"].get("gpu", 0)
        if gpus:  # sbatch --gpus=N: requested and allocated as gres/gpu=N
            for field in ("ReqTRES", "AllocTRES"):
                assert f"gres/gpu={gpus}" in row[field].split(","), (field, row)
    # sacct's list of this run's jobs agrees with what Snakemake submitted
    by_name = {}
    for uuid in run_uuids:
        by_name.update(sacct(name=uuid, start=slurm_run.since))
    assert set(by_name) == set(submitted)

    train_id = next(j for j, (rule, _, _) in ids.items() if rule == f"{STUDY}_train")
    print(f"[slurm] sacct for training job {train_id} ({ids[train_id][1]}):\n{sacct_lines(train_id)}")
    secs = {}
    for row in by_name.values():
        rule = re.sub(r"_wildcards_.*", "", row["Comment"]).removeprefix("rule_")
        h, m, s = (int(x) for x in row["Elapsed"].split(":")[-3:])
        secs.setdefault(rule, []).append(h * 3600 + m * 60 + s)
    print("[slurm] SLURM jobs per rule (count, total elapsed s): "
          + ", ".join(f"{r} {len(v)}/{sum(v)}" for r, v in sorted(secs.items())))


def test_light_rules_ran_on_the_submit_host(slurm_run):
    wd = slurm_run.workdir
    local = declared_localrules(wd)
    assert {"leaderboard", "study_summary"} <= local
    submitted = {**slurm_run.broken.submitted, **slurm_run.fixed.submitted}
    seen = set()
    for path, prov in provenances(wd).items():
        rule = prov["rule"]
        seen.add(rule)
        if any(re.fullmatch(name, rule) for name in local):
            assert prov["slurm"] is None, f"local rule {rule} ran under SLURM: {path}"
        else:
            assert prov["slurm"] and prov["slurm"]["job_id"] in submitted, f"{rule} not via sbatch: {path}"
    assert {"leaderboard", "study_summary"} <= seen


def test_equal_work_gives_byte_identical_outputs(slurm_run, tiny_local_results):
    """The SLURM run and the local run of the same config are two whole runs in two folders:
    every output either recorded has the same bytes (the leaderboard's compute line aside,
    which states how each run was computed)."""
    a, b = recorded_outputs(tiny_local_results.workdir), recorded_outputs(slurm_run.workdir)
    assert set(a) == set(b) and len(a) > 30
    differ = sorted(p for p in a if a[p] != b[p] and not p.endswith("leaderboard.md"))
    assert not differ, f"outputs whose bytes differ between two runs of the same config: {differ}"
    strip = lambda p: re.sub(r"Compute behind these rows:.*", "", (p / "results/leaderboard.md").read_text())
    assert strip(tiny_local_results.workdir) == strip(slurm_run.workdir)
    assert any(p.endswith("checkpoint.pt") for p in a)


def test_results_equal_the_local_run(slurm_run, tiny_local_results):
    for run, seed in run_seeds(TINY):
        on_slurm = json.loads((run_dir(slurm_run.workdir, run, seed) / "metrics.json").read_text())
        local = json.loads((run_dir(tiny_local_results.workdir, run, seed) / "metrics.json").read_text())
        assert on_slurm["metrics"] == local["metrics"], f"{run}/seed{seed}: SLURM and local metrics differ"
        assert on_slurm["selection"] == local["selection"], f"{run}/seed{seed}"
        preds = [run_dir(w, run, seed).joinpath("predictions.csv").read_text()
                 for w in (slurm_run.workdir, tiny_local_results.workdir)]
        assert preds[0] == preds[1], f"{run}/seed{seed}: predictions differ"
    print(f"[slurm] metrics of {len(run_seeds(TINY))} runs equal the local run "
          f"(local run took {tiny_local_results.seconds:.1f} s)")


def test_efficiency_reports_under_results_logs_are_linked_from_the_leaderboard(slurm_run):
    """The profile turns on `--slurm-efficiency-report` with its path under results/logs/: one
    report per snakemake invocation, written when it ends (after the leaderboard), named after
    the SLURM run ID; the leaderboard's compute line links the folder and names the file."""
    logs = slurm_run.workdir / "results" / "logs"
    assert slurm_run.broken.submitted
    for run in (slurm_run.broken, slurm_run.fixed):
        if not run.submitted:  # nothing went to SLURM: sacct knows no job of it, no report
            continue
        report = logs / f"efficiency_report_{run.run_uuid}.csv"
        assert report.is_file(), f"no efficiency report {report}:\n" + _tail(run)
        text = report.read_text()
        assert "CPU Efficiency (%)" in text
        for job_id in run.submitted:  # one row per job step (the plugin drops .batch / .extern)
            assert re.search(rf"^\d+,{job_id}\.\d+,", text, re.M), (job_id, text[:2000])
        assert f"Efficiency report for workflow {run.run_uuid} saved to results/logs/{report.name}" in run.out
    board = (slurm_run.workdir / "results" / "leaderboard.md").read_text()
    line = next(line for line in board.splitlines() if line.startswith("Compute behind these rows:"))
    assert "[logs/](logs/)`efficiency_report_<SLURM run ID>.csv`" in line, line
