from pathlib import Path

from medrepro.smk import job
from medrepro.studies.fracture.synthetic import SyntheticFractureParams, synthesize

params = SyntheticFractureParams.from_dict(dict(snakemake.params.synthetic))
with job(snakemake, seeds={"synthetic": params.seed}) as rec:
    rec.extra["synthetic"] = synthesize(Path(snakemake.output.data), params)
