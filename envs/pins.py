"""Print the pinned requirements of pyproject.toml, one per line, for a container build.

    python envs/pins.py pyproject.toml [EXTRA ...] > requirements.txt

The main dependencies, then those of each optional extra named (e.g. ``n4``). Standard library
only, so it runs in a bare ``python:3.11`` image. envs/Dockerfile and envs/medrepro.def use it,
so the image holds exactly the pins of pyproject.toml (and of envs/medrepro.yaml, which
tests/core/test_envs.py keeps in step).
"""

import sys
import tomllib


def pins(pyproject: str, extras: list[str]) -> list[str]:
    with open(pyproject, "rb") as f:
        project = tomllib.load(f)["project"]
    out = list(project["dependencies"])
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        if extra not in optional:
            raise SystemExit(f"{pyproject}: no optional dependency group {extra!r}; known: {sorted(optional)}")
        out += optional[extra]
    return out


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit("usage: python envs/pins.py pyproject.toml [EXTRA ...]")
    print("\n".join(pins(sys.argv[1], sys.argv[2:])))
