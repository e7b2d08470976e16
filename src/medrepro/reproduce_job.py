"""Run one recorded job again, outside Snakemake: ``python -m medrepro.reproduce_job SPEC``.

``SPEC`` is a JSON file with the job's rule, script, named inputs and outputs, params,
wildcards, log and threads (from its provenance record). The script runs with a ``snakemake``
object carrying exactly those, as Snakemake's script directive would give it.
"""

from __future__ import annotations

import json
import runpy
import sys
from types import SimpleNamespace

from snakemake.iocontainers import InputFiles, Log, OutputFiles, Params, Wildcards


def snakemake_object(spec: dict) -> SimpleNamespace:
    return SimpleNamespace(
        rule=spec["rule"], input=InputFiles(fromdict=spec["input"]), output=OutputFiles(fromdict=spec["output"]),
        params=Params(fromdict=spec["params"]), wildcards=Wildcards(fromdict=spec["wildcards"]),
        log=Log(spec["log"]), threads=spec["threads"], resources=SimpleNamespace(), config={},
    )


def main(spec_path: str) -> None:
    spec = json.loads(open(spec_path).read())
    runpy.run_path(spec["script"], init_globals={"snakemake": snakemake_object(spec)}, run_name="__main__")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1])
