"""README's copy of the rule graph must match `snakemake --rulegraph mermaid-js`."""

import sys
from pathlib import Path

from medrepro.docs import edges, readme_graph, rulegraph

from repo_paths import REPO


def test_readme_rulegraph_is_current():
    current = rulegraph(REPO, str(Path(sys.executable).parent / "snakemake"))
    documented = readme_graph(REPO / "README.md")
    assert edges(current), "no edges parsed from the rule graph"
    assert edges(documented) == edges(current), "README's rule graph is stale: run `make readme-dag`"


def test_edges_ignore_ids_and_styles():
    a = "flowchart TB\n\tid0[all]\n\tid1[train]\n\tstyle id0 fill:#fff\n\tid1 --> id0\n"
    b = "flowchart TB\n\tid5[train]\n\tid2[all]\n\tid5 --> id2\n"
    assert edges(a) == edges(b) == {("train", "all")}
