from pathlib import Path

from medrepro.studies.scoliosis.pav import build_pav
from medrepro.smk import job

with job(snakemake):
    build_pav(Path(snakemake.input.manifest), Path(snakemake.input.split), Path(snakemake.output.pav), Path(snakemake.output.stats))
