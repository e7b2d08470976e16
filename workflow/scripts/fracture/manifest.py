from pathlib import Path

from medrepro.smk import job
from medrepro.studies.fracture.data import build_manifest

with job(snakemake) as rec:
    rec.extra["layout"] = snakemake.params.data["layout"]
    build_manifest(dict(snakemake.params.data), Path(snakemake.output.manifest))
