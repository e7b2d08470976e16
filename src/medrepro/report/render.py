"""Jinja2 rendering of the generated Markdown (templates live in workflow/templates)."""

from __future__ import annotations

from pathlib import Path

import jinja2

from medrepro.codehash import TEMPLATE_DIR as DEFAULT_TEMPLATES


def render(name: str, template_dir: Path | None = None, **context) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir or DEFAULT_TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return env.get_template(name).render(**context)


def fmt_ci(estimate: float, ci: tuple[float, float], digits: int = 3) -> str:
    return f"{estimate:.{digits}f} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"
