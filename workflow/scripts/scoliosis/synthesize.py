from pathlib import Path

from medrepro.smk import job
from medrepro.studies.scoliosis.synthetic import SyntheticScoliosisParams, generate_scoliosis1k

with job(snakemake) as rec:
    params = SyntheticScoliosisParams(**snakemake.params.synthetic)
    rec.seeds = {"synthetic": params.seed}
    generate_scoliosis1k(Path(snakemake.output.data), params)
