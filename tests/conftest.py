import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


# --- SLURM test cluster (tests/slurm/cluster.sh) ------------------------------
import os as _os  # noqa: E402
import shutil as _shutil  # noqa: E402
import subprocess as _subprocess  # noqa: E402
import sys as _sys  # noqa: E402
from pathlib import Path as _Path  # noqa: E402
from types import SimpleNamespace as _SimpleNamespace  # noqa: E402

import pytest as _pytest  # noqa: E402


@_pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A single-node Slurm cluster (tests/slurm/cluster.sh) for this session.

    Yields an object with ``state_dir``, ``hostname``, ``partition``,
    ``cluster``, ``account`` and ``script``. Skips where the cluster cannot be
    had (not root, no apt / packages), except under CI (``$CI`` set), where
    that is a failure: CI must never skip the SLURM tests.
    """
    script = _Path(__file__).resolve().parent / "slurm" / "cluster.sh"
    ci = _os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")

    def unavailable(reason):
        if ci:
            _pytest.fail(
                f"SLURM test cluster unavailable under CI: {reason}", pytrace=False
            )
        _pytest.skip(reason)

    if not _sys.platform.startswith("linux") or _shutil.which("bash") is None:
        unavailable("the SLURM test cluster needs Linux and bash")
    if _os.geteuid() != 0:
        unavailable(
            "the SLURM test cluster needs root "
            "(it installs packages and writes /etc/slurm)"
        )

    state_dir = tmp_path_factory.mktemp("slurm-cluster")

    def run(action, timeout):
        return _subprocess.run(
            ["bash", str(script), action, str(state_dir)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    try:
        try:
            # may apt-get install the packages first
            started = run("start", timeout=900)
        except _subprocess.TimeoutExpired as exc:
            _pytest.fail(f"cluster.sh start timed out:\n{exc.stderr or ''}", pytrace=False)
        if started.returncode in (77, 78):  # cannot install / installation failed
            lines = started.stderr.strip().splitlines()
            unavailable(lines[-1] if lines else "cluster.sh start: packages unavailable")
        if started.returncode != 0:
            _pytest.fail(
                f"cluster.sh start failed (exit {started.returncode}):\n"
                f"{started.stdout}\n{started.stderr}",
                pytrace=False,
            )
        env = dict(
            line.split("=", 1)
            for line in (state_dir / "cluster.env").read_text().splitlines()
            if "=" in line
        )
        yield _SimpleNamespace(
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
        except _subprocess.TimeoutExpired as exc:
            stopped = _SimpleNamespace(returncode="timeout", stderr=exc.stderr or "")
        if stopped.returncode != 0:
            print(
                f"cluster.sh stop failed (exit {stopped.returncode}):\n{stopped.stderr}",
                file=_sys.stderr,
            )
        else:
            # the MariaDB datadir is ~100 MB; keep the logs for post-mortems
            _shutil.rmtree(state_dir / "mysql", ignore_errors=True)
