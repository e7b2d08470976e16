"""SLURM time limits, group jobs, the efficiency report and the run resources for sbatch.

On the real single-node test cluster (tests/slurm/README.md), one module fixture runs, side by
side:

1. **time limit**: one training run through `--profile slurm` whose first attempt's time limit
   expires mid-training. The profile's ``--signal=TERM@<lead>`` reaches the training process,
   which saves its resume state and fails; Snakemake's retry (runtime x 2) resumes from it.
   Beside it, the same run trains locally without interruption: both end with the same
   checkpoint bytes.
2. **group**: once the first attempt has been stopped, a second copy of the workflow runs one more
   small run with ``MEDREPRO_SLURM_GROUP_EVAL=1``: its training and evaluation go out as one
   sbatch job, with the run's `gres`, `constraint`, `qos`, `slurm_partition`, `slurm_extra` and
   `tasks_per_gpu` on the sbatch line.

Both SLURM invocations write the plugin's efficiency report under ``results/logs/``.

Timing (why it is done this way): slurmctld checks time limits and ``--signal`` every 30 s, and
each attempt spends some 15-30 s starting two Snakemake processes (the batch step's and the srun
step's) before training begins. A limit fixed at submission would have to fall inside a training
whose speed depends on what else the machine runs at that moment (the other test worker): when
the speed was measured under load and the training then ran alone, it finished before the
signal. So the first attempt is submitted with the run's ``runtime`` (10 min), and once its log
shows the first progress line (5 % of the steps) the test shortens that job's limit with
``scontrol update TimeLimit=``. Slurm keeps limits in whole minutes: the new limit is the first
whole minute at least ``MARGIN`` seconds after the job's elapsed time. With the profile's own lead
of 120 s, the signal time (limit - lead) has then already passed, so slurmctld sends the signal at
its next check, 0-30 s later, while about 95 % of the training (sized to about ``TRAIN_SECONDS``
at the speed measured just before) is left, and the job has at least ``MARGIN`` - 30 s to save
its state before the limit. The retry has 20 minutes.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from medrepro import workflow as mw
from workflow_utils import REPO, SNAKEMAKE, TINY, full_config, make_workdir, snakemake, write_config

STUDY = "scoliosis"
RUN = "timelimit"
GROUPED = "grouped"
TRAIN_SECONDS = 100  # the run's training time on this machine, uninterrupted (iterations from it)
RUNTIME = 10  # minutes: the run's runtime (the first attempt's limit until the test shortens it)
MARGIN = 60  # seconds: the shortened limit is the first whole minute at least this after the elapsed time
LEAD = 120  # seconds: the profile's --signal lead (more than MARGIN + 60: the signal is due at once)
TIMEOUT = 540
# the grouped run's SLURM resources, all passed through to sbatch (the test cluster has the
# feature `medrepro` on its node, the QOS `normal` and one fake GPU)
PASS_THROUGH = {"gres": "gpu:1", "tasks_per_gpu": 1, "constraint": "medrepro", "qos": "normal",
                "slurm_extra": "--open-mode=append"}


# ----------------------------------------------------------------- helpers ---

def base_config(iterations: int = 300) -> dict:
    """TINY with one run that trains long enough to meet its time limit (silhouettes: no
    preprocessing job)."""
    cfg = copy.deepcopy(TINY)
    sc = cfg["studies"][STUDY]
    base = {k: v for k, v in sc["runs"]["sconet_112"].items() if k != "resources"}
    # one resume state only: the one saved on the signal
    sc["runs"] = {RUN: {**base, "iterations": iterations, "eval_every": iterations,
                        "checkpoint_every": iterations, "resources": {"runtime": RUNTIME, "gpu": 0}}}
    sc["resume_check"] = {"run": RUN, "iterations": 6, "stop_at": 3}
    return cfg


def group_config(partition: str, iterations: int) -> dict:
    """The time-limit config and the small run of the group test."""
    cfg = base_config(iterations)
    runs = cfg["studies"][STUDY]["runs"]
    runs[GROUPED] = {**runs[RUN], "iterations": 8, "eval_every": 4, "checkpoint_every": 4,
                     "resources": {"runtime": 10, "gpu": 0, "slurm_partition": partition, **PASS_THROUGH}}
    return cfg


def seconds_per_step(workdir: Path, steps: int = 20) -> float:
    """This machine's time for one training step of the run now (a short training of it in a
    subprocess, in ``workdir`` after its data and split are made)."""
    code = f"""
import json, tempfile, yaml
from medrepro import workflow as mw
from medrepro.studies.{STUDY} import layout
from medrepro.studies.{STUDY}.run import train_run
config = yaml.safe_load(open("config/tiny.yaml"))
mw.register(layout.STUDY)
run = {{**mw.run_cfg(config, "{STUDY}", "{RUN}"), "iterations": {steps}, "eval_every": {steps}}}
out = tempfile.mkdtemp()
names = ("checkpoint", "log_jsonl", "summary")
summary = train_run(run, 0, layout.run_inputs(config, "{RUN}", 0), {{n: f"{{out}}/{{n}}" for n in names}},
                    run_name="{RUN}", descriptor=mw.descriptor(config, "{STUDY}"))
print(json.dumps(summary["timing"]))
"""
    proc = subprocess.run([str(Path(SNAKEMAKE).parent / "python"), "-c", code], cwd=workdir, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(workdir / "src")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])["seconds"] / steps


def run_dir(workdir: Path, run: str, seed: int = 0) -> Path:
    return workdir / "results" / STUDY / "runs" / run / f"seed{seed}"


def start_slurm(workdir: Path, env: dict, target: str) -> SimpleNamespace:
    """`snakemake --profile slurm <target>` in the background, its output to a file."""
    out = workdir / "slurm-snakemake.log"
    cmd = ["timeout", "-k", "10", str(TIMEOUT), SNAKEMAKE, "--configfile", "config/tiny.yaml",
           "--profile", "slurm", "--slurm-init-seconds-before-status-checks", "3", "--verbose", target]
    handle = out.open("w")
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=handle, stderr=subprocess.STDOUT, text=True)
    return SimpleNamespace(cmd=cmd, proc=proc, handle=handle, path=out, t0=time.monotonic())


def seconds_of(text: str) -> int:
    """Slurm's elapsed / limit format (``[D-]H:MM:SS``, ``M:SS``) in seconds."""
    days, _, clock = text.strip().rpartition("-")
    seconds = 0
    for part in clock.split(":"):
        seconds = seconds * 60 + int(part)
    return seconds + 86400 * int(days or 0)


def shorten_limit_once_training(job: SimpleNamespace, log_pattern: str) -> SimpleNamespace:
    """Wait for the first attempt's first progress line in its SLURM log, then set that job's
    time limit to the first whole minute MARGIN seconds or more after its elapsed time
    (``scontrol update``): the limit expires mid-training whatever this machine's speed is."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and job.proc.poll() is None:
        m = re.search(rf"Job \S+ has been submitted with SLURM jobid (\d+) \(log: ([^)]+)\)", job.path.read_text())
        if m and Path(m.group(2)).is_file() and re.search(log_pattern, Path(m.group(2)).read_text()):
            job_id = m.group(1)
            elapsed = seconds_of(subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%M"], capture_output=True,
                                                text=True, timeout=60, check=True).stdout)
            limit = -(-(elapsed + MARGIN) // 60) * 60
            subprocess.run(["scontrol", "update", f"JobId={job_id}", f"TimeLimit={limit // 60}"],
                           capture_output=True, text=True, timeout=60, check=True)
            return SimpleNamespace(job_id=job_id, elapsed=elapsed, limit=limit)
        time.sleep(0.5)
    pytest.fail(f"the first attempt showed no progress line before it ended:\n{job.path.read_text()[-6000:]}",
                pytrace=False)


def finish(job: SimpleNamespace) -> SimpleNamespace:
    rc = job.proc.wait()
    job.handle.close()
    job.seconds = time.monotonic() - job.t0
    job.rc = rc
    job.out = job.path.read_text()
    if rc in (124, 137):
        pytest.fail(f"snakemake ran past {TIMEOUT} s:\n{' '.join(job.cmd)}\n{job.out[-6000:]}", pytrace=False)
    job.submitted = dict(re.findall(r"Job \S+ has been submitted with SLURM jobid (\d+) \(log: ([^)]+)\)", job.out))
    job.sbatch = re.findall(r"^sbatch call: (sbatch .*)$", job.out, re.M)
    uuid = re.search(r"SLURM run ID: ([0-9a-f-]+)", job.out)
    job.run_uuid = uuid.group(1) if uuid else None
    return job


def sacct(job_ids, fields=("JobID", "State", "ExitCode", "Elapsed", "Timelimit", "Comment", "ReqTRES",
                           "Constraints", "QOS", "Partition")) -> dict[str, dict]:
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-j", ",".join(sorted(job_ids, key=int)),
                          "-o", ",".join(fields)], capture_output=True, text=True, timeout=60, check=True).stdout
    rows = {}
    for line in out.splitlines():
        if line.strip():
            row = dict(zip(fields, line.split("|")))
            row["State"] = row["State"].split()[0]
            rows[row["JobID"]] = row
    return rows


def weights(path: Path) -> dict:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _tail(job) -> str:
    return f"{' '.join(job.cmd)}\n(exit {job.rc})\n{job.out[-6000:]}"


# ----------------------------------------------------------------- fixture ---

@pytest.fixture(scope="module")
def timelimit_run(slurm_cluster, tmp_path_factory):
    t0 = time.monotonic()
    root = tmp_path_factory.mktemp("slurm-timelimit")
    wd = make_workdir(root / "slurm", base_config())
    profile = (wd / "profiles" / "slurm" / "config.v9+.yaml").read_text()
    assert f"--signal=TERM@{LEAD}" in profile, f"the profile no longer asks for --signal=TERM@{LEAD}"
    # data, manifest and split on this machine (light; the subject here is the training job)
    snakemake(wd, "-c", "2", f"results/{STUDY}/data/manifest.json", f"results/{STUDY}/splits/112.json",
              timeout=300)
    step = seconds_per_step(wd)
    iterations = max(200, min(1500, round(TRAIN_SECONDS / step)))
    write_config(wd, base_config(iterations))
    ref = root / "local"
    grouped = root / "grouped"
    for dest in (ref, grouped):
        shutil.copytree(wd, dest, symlinks=True)
    write_config(grouped, group_config(slurm_cluster.partition, iterations))

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SNAKEMAKE_", "MEDREPRO_"))}
    env.update(SBATCH_PARTITION=slurm_cluster.partition, SBATCH_ACCOUNT=slurm_cluster.account)
    checkpoint = f"results/{STUDY}/runs/{RUN}/seed0/checkpoint.pt"
    # the uninterrupted reference: the same run on this machine, at low priority beside the SLURM job
    local = subprocess.Popen(["nice", "-n", "19", "timeout", "-k", "10", str(TIMEOUT), SNAKEMAKE, "--configfile",
                              "config/tiny.yaml", "-c", "1", checkpoint], cwd=ref, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    limited = start_slurm(wd, env, checkpoint)
    shortened = shorten_limit_once_training(limited, rf"step \d+/{iterations} ")
    # the group run once the first attempt has been stopped (not to slow the start of its training)
    while not run_dir(wd, RUN).joinpath("resume.pt").exists() and limited.proc.poll() is None:
        time.sleep(1)
    group = start_slurm(grouped, {**env, "MEDREPRO_SLURM_GROUP_EVAL": "1"},
                        f"results/{STUDY}/runs/{GROUPED}/seed0/metrics.json")
    local_out = local.communicate()[0]
    assert local.returncode == 0, f"local reference training failed:\n{local_out[-5000:]}"
    limited, group = finish(limited), finish(group)
    print(f"\n[slurm-timelimit] {iterations} iterations ({step:.3f} s per step measured); "
          f"time-limit run: {limited.seconds:.1f} s, exit {limited.rc}, "
          f"{len(limited.submitted)} SLURM jobs; group run: {group.seconds:.1f} s, exit {group.rc}; "
          f"fixture: {time.monotonic() - t0:.1f} s")
    return SimpleNamespace(wd=wd, ref=ref, grouped=grouped, limited=limited, group=group,
                           cluster=slurm_cluster, iterations=iterations, shortened=shortened)


# ------------------------------------------------------------------- tests ---

@pytest.mark.slurm
def test_time_limit_mid_training_saves_state_and_the_retry_resumes(timelimit_run):
    run = timelimit_run.limited
    assert run.rc == 0, _tail(run)
    jobs = sacct(run.submitted)
    attempts = sorted(jobs, key=int)
    assert len(attempts) >= 2, f"the first attempt was not stopped by its time limit: {jobs}\n" + _tail(run)
    first, last = jobs[attempts[0]], jobs[attempts[-1]]
    # attempt 1: stopped by SLURM (the signal before the limit, or the limit itself), exit 143
    assert first["State"] in ("FAILED", "TIMEOUT", "CANCELLED"), first
    shortened = timelimit_run.shortened
    assert shortened.job_id == attempts[0]
    assert seconds_of(first["Timelimit"]) == shortened.limit, (first, shortened)  # the limit the test set
    assert run.sbatch and f" -t {RUNTIME} " in run.sbatch[0], run.sbatch  # submitted with the run's runtime
    assert last["State"] == "COMPLETED", last
    assert seconds_of(last["Timelimit"]) == RUNTIME * len(attempts) * 60, last  # runtime x attempt
    # the signal came from SLURM and reached the Python training process inside `srun snakemake`
    log1 = Path(run.submitted[attempts[0]]).read_text()
    assert re.search(r"STEP \d+\.0 ON \S+ CANCELLED AT", log1) or "DUE TO TIME LIMIT" in log1, log1[-4000:]
    m = re.search(r"SIGTERM received: state saved at step (\d+)", log1)
    assert m and 0 < int(m.group(1)) < timelimit_run.iterations, log1[-4000:]
    saved = int(m.group(1))
    assert "Will exit after finishing currently running jobs" in log1  # the job step's snakemake waited
    # ... and it was the --signal, before the limit: the job ended on its own, exit 143 inside
    h, mi, se = (int(x) for x in first["Elapsed"].split(":"))
    assert h * 3600 + mi * 60 + se < shortened.limit, first
    assert "returned non-zero exit status 143" in log1, log1[-4000:]
    assert all(f"--signal=TERM@{LEAD}" in call for call in run.sbatch), run.sbatch
    # the retry resumed from that state: the training job's provenance says so
    prov = json.loads(run_dir(timelimit_run.wd, RUN).joinpath(f"{STUDY}_train.provenance.json").read_text())
    resume = prov["extra"]["resume"]
    assert resume["resumed"] is True and resume["from_step"] > 0, resume
    if len(attempts) == 2:
        assert resume["from_step"] == saved, (resume, saved)
    assert prov["slurm"]["job_id"] == attempts[-1], prov["slurm"]
    summary = json.loads(run_dir(timelimit_run.wd, RUN).joinpath("train_summary.json").read_text())
    assert summary["resumed"] is True
    assert not run_dir(timelimit_run.wd, RUN).joinpath("resume.pt").exists()  # removed when done
    # ... and ended with the weights of the uninterrupted run
    a, b = run_dir(timelimit_run.wd, RUN) / "checkpoint.pt", run_dir(timelimit_run.ref, RUN) / "checkpoint.pt"
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys() and all(bool((wa[k] == wb[k]).all()) for k in wa)
    assert a.read_bytes() == b.read_bytes()
    local_summary = json.loads(run_dir(timelimit_run.ref, RUN).joinpath("train_summary.json").read_text())
    assert local_summary["selected_eval"] == summary["selected_eval"]
    print(f"[slurm-timelimit] attempt 1 (job {attempts[0]}, limit set to {first['Timelimit']} at "
          f"{shortened.elapsed} s elapsed; {first['State']} {first['ExitCode']}, "
          f"{first['Elapsed']}) saved at step {saved}/{timelimit_run.iterations}; {len(attempts)} attempts; "
          f"the retry resumed from step {resume['from_step']}; weights equal the local run's")


@pytest.mark.slurm
def test_training_and_evaluation_of_a_run_go_out_as_one_group_job(timelimit_run):
    run = timelimit_run.group
    assert run.rc == 0, _tail(run)
    assert len(run.submitted) == 1, f"expected one SLURM job for train + evaluate: {run.submitted}\n" + _tail(run)
    (job_id,) = run.submitted
    rd = run_dir(timelimit_run.grouped, GROUPED)
    for rule in (f"{STUDY}_train", f"{STUDY}_evaluate"):
        prov = json.loads(rd.joinpath(f"{rule}.provenance.json").read_text())
        assert prov["slurm"]["job_id"] == job_id, (rule, prov["slurm"])
    row = sacct([job_id])[job_id]
    assert row["State"] == "COMPLETED", row
    assert GROUPED in row["Comment"], row
    # the group's time limit covers both jobs: the run's 10 min plus the evaluation's 30
    assert row["Timelimit"] == "00:40:00", row
    # every pass-through resource reached sbatch, and SLURM honoured it
    (call,) = run.sbatch
    for option in ("--gres=gpu:1", "--ntasks-per-gpu=1", "-C medrepro", "--qos=normal",
                   f"-p {timelimit_run.cluster.partition}", f"--signal=TERM@{LEAD} --open-mode=append"):
        assert option in call, (option, call)
    assert "gres/gpu=1" in row["ReqTRES"].split(","), row
    assert row["Constraints"] == "medrepro" and row["QOS"] == "normal", row
    print(f"[slurm-timelimit] group job {job_id}: {row['Comment']}, {row['Elapsed']}, {row['ReqTRES']}")


@pytest.mark.slurm
def test_each_slurm_invocation_writes_its_efficiency_report_under_results_logs(timelimit_run):
    for wd, run in ((timelimit_run.wd, timelimit_run.limited), (timelimit_run.grouped, timelimit_run.group)):
        report = wd / "results" / "logs" / f"efficiency_report_{run.run_uuid}.csv"
        assert report.is_file(), f"no {report}:\n" + _tail(run)
        text = report.read_text()
        assert "CPU Efficiency (%)" in text and "Memory Usage (%)" in text
        for job_id in run.submitted:
            assert re.search(rf"^\d+,{job_id}\.\d+,", text, re.M), (job_id, text)


# ----------------------------------------------- run resources, no cluster ---

def _validate_run_resources(resources: dict):
    from snakemake.utils import validate

    block = copy.deepcopy(full_config(TINY)["studies"][STUDY])
    block["runs"]["sconet_112"]["resources"] = resources
    validate(block, str(REPO / "workflow" / "schemas" / "studies" / f"{STUDY}.schema.yaml"))


@pytest.mark.parametrize("resources, named", [
    ({"gress": "gpu:1"}, "gress"),
    ({"tasks_per_gpu": "two"}, "tasks_per_gpu"),
    ({"tasks_per_gpu": 0}, "tasks_per_gpu"),
    ({"gres": "'gpu:1'"}, "gres"),
    ({"qos": 3}, "qos"),
    ({"slurm_extra": "--gres=gpu:2"}, "slurm_extra"),
    ({"slurm_extra": "--time 10"}, "slurm_extra"),
    ({"slurm_partition": ""}, "slurm_partition"),
])
def test_the_schema_refuses_a_bad_run_resource_and_names_it(resources, named):
    with pytest.raises(Exception) as err:
        _validate_run_resources(resources)
    assert named in str(err.value), str(err.value)


def test_the_schema_accepts_the_plugins_keys():
    _validate_run_resources({"runtime": 5, "mem_mb": 1000, "gpu": 1, "gpu_model": "a100", "cpus_per_gpu": 2,
                             "slurm_partition": "gpu", **PASS_THROUGH})


def test_run_resources_reach_the_jobs_and_fall_back_to_the_profiles(tmp_path):
    """A dry run: each training / evaluation job carries its run's pass-through keys; a run that
    sets none gets the default resources' (here given like the profile gives them); a run's
    slurm_extra is added after the default's."""
    cfg = copy.deepcopy(TINY)
    runs = cfg["studies"][STUDY]["runs"]
    runs["sconet_112"]["resources"] = {"gpu": 1, "slurm_partition": "gpu", **PASS_THROUGH}
    wd = make_workdir(tmp_path, cfg)
    out = snakemake(wd, "-n", "-c", "1", f"results/{STUDY}/runs/sconet_112/seed0/metrics.json",
                    f"results/{STUDY}/runs/ske_112/seed0/metrics.json",
                    "--default-resources", "slurm_partition=debug", "slurm_extra='--signal=TERM@120'").stdout
    jobs = {}
    for m in re.finditer(r"^rule (\w+):\n(?:    .*\n)*?    wildcards: run=(\w+), seed=0\n    resources: (.*)$", out, re.M):
        jobs[(m.group(1), m.group(2))] = m.group(3)
    for rule in ("train", "evaluate"):
        own, other = jobs[(f"{STUDY}_{rule}", "sconet_112")], jobs[(f"{STUDY}_{rule}", "ske_112")]
        for item in ("gres=gpu:1", "tasks_per_gpu=1", "constraint=medrepro", "qos=normal", "slurm_partition=gpu",
                     "slurm_extra=--signal=TERM@120 --open-mode=append"):
            assert item in own, (rule, item, own)
        assert "slurm_partition=debug" in other and "slurm_extra=--signal=TERM@120," in other + ",", other
        assert not re.search(r"\b(gres|constraint|qos|tasks_per_gpu)=", other), other


def test_default_resource_reads_constants_only():
    from snakemake.resources import Resources

    # as Snakemake parses --default-resources (and the profile's default-resources)
    defaults = Resources.parse(["a='quoted'", "b=plain", "c=gpu:1", "d=attempt * 2", "e=5"], allow_expressions=True)
    wf = SimpleNamespace(resource_settings=SimpleNamespace(default_resources=defaults))
    got = {k: mw.default_resource(wf, k) for k in ("a", "b", "c", "d", "e", "missing")}
    assert got == {"a": "quoted", "b": "plain", "c": "gpu:1", "d": None, "e": 5, "missing": None}
    assert mw.default_resource(SimpleNamespace(), "a") is None
