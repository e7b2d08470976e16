"""envs/medrepro.yaml (conda, for --sdm conda) must pin exactly what pyproject pins."""

import re
import tomllib

import yaml

from repo_paths import REPO


def _pins(reqs):
    out = {}
    for r in reqs:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", r.strip())
        assert m, f"not an exact pin: {r}"
        out[m.group(1).lower()] = m.group(2)
    return out


def test_conda_env_pins_agree_with_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((REPO / "envs/medrepro.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert _pins(pip) == _pins(project["dependencies"])
    py = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert project["requires-python"] == ">=" + py.split("=")[1]


# --- the container image and the workflow catalog (issue: full environment capture) --------

import os
import subprocess
import sys

PINS = REPO / "envs" / "pins.py"


def _pyproject():
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def test_pins_script_prints_exactly_the_pyproject_pins_and_the_named_extras():
    project = _pyproject()
    out = subprocess.run([sys.executable, str(PINS), str(REPO / "pyproject.toml"), "n4"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert _pins(out) == _pins(project["dependencies"] + project["optional-dependencies"]["n4"])
    bad = subprocess.run([sys.executable, str(PINS), str(REPO / "pyproject.toml"), "no_such_extra"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "no_such_extra" in bad.stderr


def test_container_recipes_install_the_pins_on_the_pinned_python():
    python = _pyproject()["requires-python"].removeprefix(">=")
    env = yaml.safe_load((REPO / "envs/medrepro.yaml").read_text())
    assert f"python={python}" in env["dependencies"]
    docker = (REPO / "envs" / "Dockerfile").read_text()
    apptainer = (REPO / "envs" / "medrepro.def").read_text()
    assert re.search(rf"^FROM python:{re.escape(python)}-slim-bookworm$", docker, re.M)
    assert re.search(rf"^From: python:{re.escape(python)}-slim-bookworm$", apptainer, re.M)
    for recipe in (docker, apptainer):
        # the requirements come from pyproject.toml through envs/pins.py, nothing hand-listed
        assert re.search(r"pins\.py /opt/medrepro/pyproject\.toml n4 > /opt/medrepro/requirements\.txt", recipe)
        assert "pip install --no-cache-dir -r /opt/medrepro/requirements.txt" in recipe
        assert not [ln for ln in recipe.splitlines() if "==" in ln and not ln.lstrip().startswith("#")]


def _dry_run(tmp_path, *args):
    from workflow_utils import SNAKEMAKE, make_workdir

    wd = make_workdir(tmp_path / "wd")
    fake = tmp_path / "bin"
    fake.mkdir()
    # Snakemake checks `apptainer --version` before it plans container jobs; CI has no apptainer
    (fake / "apptainer").write_text("#!/bin/sh\necho 'apptainer version 1.3.6'\n")
    (fake / "apptainer").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([SNAKEMAKE, "-n", "--configfile", "config/tiny.yaml", *args], cwd=wd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_config_container_puts_every_rule_in_the_image_under_sdm_apptainer(tmp_path):
    image = "docker://registry.example.org/medrepro-env:0.1.0"
    proc = _dry_run(tmp_path, "--sdm", "apptainer", "--config", f"container={image}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"image {image} will be pulled" in proc.stdout + proc.stderr
    plain = _dry_run(tmp_path / "plain", "--sdm", "apptainer")
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert "will be pulled" not in plain.stdout + plain.stderr


def test_config_container_must_be_a_non_empty_string(tmp_path):
    proc = _dry_run(tmp_path, "--config", "container=")
    assert proc.returncode != 0
    assert "container" in proc.stdout + proc.stderr


def test_workflow_catalog_file_claims_what_the_repository_has():
    catalog = yaml.safe_load((REPO / ".snakemake-workflow-catalog.yml").read_text())["usage"]
    deploy = catalog["software-stack-deployment"]
    assert set(deploy) == {"conda", "apptainer", "apptainer+conda"}
    assert deploy["conda"] and deploy["apptainer"]
    assert catalog["report"] is True
    assert any("report.zip" in t.read_text() for t in (REPO / "tests" / "workflow").glob("test_*.py"))
    # standardized usage: workflow/Snakefile, config/README.md, a schema the catalog renders
    assert (REPO / "workflow" / "Snakefile").is_file()
    assert (REPO / "config" / "README.md").is_file()
    assert (REPO / "workflow" / "schemas" / "config.schema.yaml").is_file()
    # `conda: true`: every rule names the environment file
    for smk in sorted((REPO / "workflow" / "rules").rglob("*.smk")):
        text = smk.read_text()
        rules = re.findall(r"^rule (\w+):", text, re.M)
        assert len(re.findall(r"^    conda:\n        (?:STUDY_)?CONDA_ENV$", text, re.M)) == len(rules), smk
