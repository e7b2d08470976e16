import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "workflow"))


# --- SLURM test cluster (tests/slurm/cluster.sh) ------------------------------
@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A single-node Slurm cluster (tests/slurm/cluster.sh) for this session.

    Yields an object with ``state_dir``, ``hostname``, ``partition``,
    ``cluster``, ``account`` and ``script``. Skips where the cluster cannot be
    had (not root, no apt / packages), except under CI (``$CI`` set), where
    that is a failure: CI must never skip the SLURM tests.
    """
    script = Path(__file__).resolve().parent / "slurm" / "cluster.sh"
    ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")

    def unavailable(reason):
        if ci:
            pytest.fail(
                f"SLURM test cluster unavailable under CI: {reason}", pytrace=False
            )
        pytest.skip(reason)

    if not sys.platform.startswith("linux") or shutil.which("bash") is None:
        unavailable("the SLURM test cluster needs Linux and bash")
    if os.geteuid() != 0:
        unavailable(
            "the SLURM test cluster needs root "
            "(it installs packages and writes /etc/slurm)"
        )

    state_dir = tmp_path_factory.mktemp("slurm-cluster")

    def run(action, timeout):
        return subprocess.run(
            ["bash", str(script), action, str(state_dir)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    try:
        try:
            # may apt-get install the packages first
            started = run("start", timeout=900)
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"cluster.sh start timed out:\n{exc.stderr or ''}", pytrace=False)
        if started.returncode in (77, 78):  # cannot install / installation failed
            lines = started.stderr.strip().splitlines()
            unavailable(lines[-1] if lines else "cluster.sh start: packages unavailable")
        if started.returncode != 0:
            pytest.fail(
                f"cluster.sh start failed (exit {started.returncode}):\n"
                f"{started.stdout}\n{started.stderr}",
                pytrace=False,
            )
        env = dict(
            line.split("=", 1)
            for line in (state_dir / "cluster.env").read_text().splitlines()
            if "=" in line
        )
        yield SimpleNamespace(
            state_dir=state_dir,
            hostname=env["SLURM_TEST_NODE"],
            partition=env["SLURM_TEST_PARTITION"],
            cluster=env["SLURM_TEST_CLUSTER"],
            account=env["SLURM_TEST_ACCOUNT"],
            script=script,
        )
    finally:
        try:
            stopped = run("stop", timeout=180)
        except subprocess.TimeoutExpired as exc:
            stopped = SimpleNamespace(returncode="timeout", stderr=exc.stderr or "")
        if stopped.returncode != 0:
            print(
                f"cluster.sh stop failed (exit {stopped.returncode}):\n{stopped.stderr}",
                file=sys.stderr,
            )
        else:
            # the MariaDB datadir is ~100 MB; keep the logs for post-mortems
            shutil.rmtree(state_dir / "mysql", ignore_errors=True)


# --- the tiny config run locally, once per test session ------------------------
@pytest.fixture(scope="session")
def tiny_local_results(tmp_path_factory, worker_id):
    """The TINY config (tests/workflow_utils.py) run locally, ``snakemake -c 2``, default target.

    Shared by the tests that need a finished local run: tests/test_workflow.py and the others in
    SHARED_RUN, and the reference results that tests/test_slurm_workflow.py compares the SLURM
    run against. It is run once per pytest session: under xdist the first worker to ask runs it,
    under a lock, in the folder the workers share; every worker then gets its own copy (47 MB,
    under a second), so one worker's restored edits never meet another worker's reads.
    Returns ``workdir``, ``proc`` (the CompletedProcess), ``seconds`` (of the run) and
    ``built_here`` (this worker ran it). Tests must not change its results (dry runs and
    restored edits only).
    """
    import fcntl
    import json

    from workflow_utils import make_workdir, snakemake

    shared = tmp_path_factory.getbasetemp()
    if worker_id != "master":  # popen-gwN/ -> the session's folder, shared by the workers
        shared = shared.parent
    build, done = shared / "tiny-local-build", shared / "tiny-local-build.json"
    built_here = False
    with open(shared / "tiny-local-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also on a failure
        if not done.exists():
            shutil.rmtree(build, ignore_errors=True)  # a failed earlier attempt of this session
            workdir = make_workdir(build)
            t0 = time.monotonic()
            proc = snakemake(workdir, "-c", "2", timeout=1200)
            done.write_text(json.dumps({"seconds": time.monotonic() - t0, "args": proc.args,
                                        "returncode": proc.returncode, "stdout": proc.stdout,
                                        "stderr": proc.stderr}))
            built_here = True
    record = json.loads(done.read_text())
    workdir = tmp_path_factory.mktemp("tiny-local") / "run"
    shutil.copytree(build, workdir, symlinks=True)
    proc = subprocess.CompletedProcess(record["args"], record["returncode"], record["stdout"], record["stderr"])
    print(f"\n[tiny_local_results] local run of the tiny config: {record['seconds']:.1f} s "
          f"({'run by this worker' if built_here else 'run by another worker, copied'})")
    return SimpleNamespace(workdir=workdir, proc=proc, seconds=record["seconds"], built_here=built_here)


# --- two workers (pytest-xdist, `-n 2` in pyproject) ------------------------------------------
#: Test files that share the session's tiny local run: one worker, so it is built once there.
SHARED_RUN = ("test_workflow.py", "test_integrity_workflow.py", "test_crate_workflow.py", "test_diff_workflow.py",
              "test_report_workflow.py")
#: Test files on the Slurm test cluster (one cluster per machine at a time): one worker. The tiny
#: local run that test_slurm_workflow.py compares the SLURM run with is the shared one (above).
ON_SLURM = ("test_slurm_cluster.py", "test_slurm_timelimit.py", "test_slurm_workflow.py")
#: test_study_contract.py writes a probe file into src/: one worker too.
ONE_WORKER = ({name: "shared-run" for name in SHARED_RUN} | {name: "slurm" for name in ON_SLURM}
              | {"test_study_contract.py": "contract"})


def pytest_xdist_make_scheduler(config, log):
    """Every other test is shared out one by one. (xdist's own `--dist loadgroup` does not
    group under this pytest: the scheduler below does the grouping by file name.) xdist hands
    out the largest groups first, so the tiny-run group and the Slurm group start at once, one on
    each worker."""
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            name = nodeid.split("::", 1)[0].rsplit("/", 1)[-1]
            return ONE_WORKER.get(name, nodeid)

    return GroupScheduling(config, log)
