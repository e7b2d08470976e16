from pathlib import Path

from medrepro.provenance import write_environment
from medrepro.smk import job

with job(snakemake) as rec:
    env = write_environment(Path(snakemake.output.txt))
    rec.extra["environment_sha256"] = env["sha256"]
