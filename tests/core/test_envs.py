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
