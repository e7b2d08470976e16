from pathlib import Path

from medrepro.smk import job
from medrepro.studies.loes.synthetic import SyntheticLoesParams, synthesize

params = SyntheticLoesParams.from_dict(dict(snakemake.params.synthetic))
with job(snakemake, seeds={"synthetic": params.seed}) as rec:
    rec.extra["synthetic"] = synthesize(Path(snakemake.output.data), params)
