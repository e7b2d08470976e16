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


# --- the tiny config run locally, once per session -----------------------------
@pytest.fixture(scope="session")
def tiny_local_results(tmp_path_factory):
    """The TINY config (tests/workflow_utils.py) run locally, ``snakemake -c 2``, default target.

    Shared by the tests that need a finished local run: tests/test_workflow.py and the
    reference results that tests/test_slurm_workflow.py compares the SLURM run against.
    Returns ``workdir``, ``proc`` (the CompletedProcess) and ``seconds``. Tests must not
    change its results (dry runs and restored edits only).
    """
    from workflow_utils import make_workdir, snakemake

    workdir = make_workdir(tmp_path_factory.mktemp("tiny-local"))
    t0 = time.monotonic()
    proc = snakemake(workdir, "-c", "2", timeout=1200)
    seconds = time.monotonic() - t0
    print(f"\n[tiny_local_results] local run of the tiny config: {seconds:.1f} s")
    return SimpleNamespace(workdir=workdir, proc=proc, seconds=seconds)


# --- two workers (pytest-xdist, `-n 2` in pyproject) ------------------------------------------
#: Test files that share the session's tiny local run: one worker, so it is built once there.
SHARED_RUN = ("test_workflow.py", "test_integrity_workflow.py", "test_crate_workflow.py", "test_diff_workflow.py",
              "test_report_workflow.py")
#: Test files on the Slurm test cluster (one cluster per machine at a time): one worker. That
#: worker makes its own tiny local run for test_slurm_workflow.py to compare the SLURM run with.
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
