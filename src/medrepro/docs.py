"""Keep README's rule graph in step with the workflow (`make readme-dag` rewrites it; a test
fails when it is stale)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

START, END = "<!-- rulegraph:start -->", "<!-- rulegraph:end -->"


def rulegraph(workdir: Path, snakemake: str = "snakemake") -> str:
    """`snakemake --rulegraph mermaid-js` of the workflow in ``workdir``."""
    out = subprocess.run([snakemake, "--rulegraph", "mermaid-js"], cwd=workdir, capture_output=True, text=True,
                         check=True).stdout
    return out[out.index("---"):].strip()


def edges(mermaid: str) -> set[tuple[str, str]]:
    """(from rule, to rule) pairs of a mermaid flowchart, independent of node ids and styles."""
    names = dict(re.findall(r"^\s*(id\d+)\[(\w+)\]", mermaid, re.M))
    return {(names[a], names[b]) for a, b in re.findall(r"^\s*(id\d+) --> (id\d+)", mermaid, re.M)}


def readme_graph(readme: Path) -> str:
    text = readme.read_text()
    block = text[text.index(START) + len(START):text.index(END)]
    return block.strip().removeprefix("```mermaid").removesuffix("```").strip()


def splice(readme: Path, mermaid: str) -> None:
    text = readme.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n```mermaid\n{mermaid}\n```\n{END}{tail}")


if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    splice(root / "README.md", rulegraph(root, str(Path(sys.executable).parent / "snakemake")))
