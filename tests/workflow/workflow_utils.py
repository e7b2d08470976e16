"""A copy of the workflow in a temporary directory, with a tiny config, for workflow tests."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
COPY = ["workflow", "config", "src", "profiles", "slurm", "envs"]

# The tiny config (a minute-sized scoliosis study; counterfactual off), kept as a file so that
# `snakemake --lint --configfile .test/config_tiny/config.yaml` checks it too.
TINY_PATH = REPO / ".test" / "config_tiny" / "config.yaml"
TINY = yaml.safe_load(TINY_PATH.read_text())


def make_workdir(tmp: Path, config: dict | None = None) -> Path:
    """Copy the workflow into ``tmp`` and merge ``config`` (default TINY) over the default."""
    tmp.mkdir(parents=True, exist_ok=True)
    for name in COPY:
        src = REPO / name
        if src.is_symlink():
            (tmp / name).symlink_to(src.readlink())
        elif src.is_dir():
            shutil.copytree(src, tmp / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy(src, tmp / name)
    (tmp / "README.md").write_text("copy\n")
    write_config(tmp, TINY if config is None else config)
    return tmp


def merged(default: dict, override: dict) -> dict:
    """``override`` deep-merged over ``default``; a study's ``runs`` are replaced, not merged."""
    out = dict(default)
    for key, value in override.items():
        if key != "runs" and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def full_config(config: dict) -> dict:
    """The repo's default config with ``config`` merged over it (what the workflow sees)."""
    return merged(yaml.safe_load((REPO / "config" / "config.yaml").read_text()), config)


def write_config(workdir: Path, config: dict) -> Path:
    """Write the repo's default config with ``config`` merged over it (runs replaced) as the
    copy's config/config.yaml *and* config/tiny.yaml.

    Snakemake's ``--configfile`` merges over the Snakefile's default (dicts updated, never
    replaced), which would keep the default's runs; writing the default too avoids that.
    """
    text = yaml.safe_dump(full_config(config), sort_keys=False)
    (workdir / "config" / "config.yaml").write_text(text)
    path = workdir / "config" / "tiny.yaml"
    path.write_text(text)
    return path


def snakemake(workdir: Path, *args: str, timeout: int = 900, check: bool = True) -> subprocess.CompletedProcess:
    cmd = ["timeout", "-k", "10", str(timeout), SNAKEMAKE, "--configfile", "config/tiny.yaml", *args]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-5000:]}\n{proc.stderr[-5000:]}")
    return proc


def planned_jobs(workdir: Path, *args: str) -> dict[str, int]:
    """Rule -> count of the jobs `snakemake -n` would run."""
    out = snakemake(workdir, "-n", "--quiet", "rules", *args).stdout
    jobs = {}
    for m in re.finditer(r"^(\w+)\s+(\d+)$", out, re.M):
        if m.group(1) != "total":
            jobs[m.group(1)] = int(m.group(2))
    return jobs


def planned_wildcards(workdir: Path, *args: str) -> list[str]:
    """The output files of every planned job (from `snakemake -n`), to check which runs rerun."""
    out = snakemake(workdir, "-n", *args).stdout
    return re.findall(r"^\s+output: (.+)$", out, re.M)


def recorded_outputs(workdir: Path) -> dict[str, str]:
    """Every output recorded by a job of the run in ``workdir``: path -> sha256. The RO-Crate
    metadata is left out like the provenance records: it holds their times."""
    import json

    out = {}
    for prov in (workdir / "results").rglob("*.provenance.json"):
        for o in json.loads(prov.read_text())["outputs"]:
            if not o["path"].endswith("ro-crate-metadata.json"):
                out[o["path"]] = o["sha256"]
    return out
