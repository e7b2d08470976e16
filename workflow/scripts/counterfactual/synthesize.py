from pathlib import Path

from medrepro.studies.counterfactual.pipeline import synthesize
from medrepro.smk import job

with job(snakemake) as rec:
    synthetic = dict(snakemake.params.synthetic)
    rec.seeds = {"synthetic": int(synthetic.get("seed", 0))}
    synthesize(
        bundle_dir=Path(snakemake.output.bundle),
        submissions_dir=Path(snakemake.output.truth).parent,
        synthetic=synthetic,
        models={k: dict(v) for k, v in snakemake.params.models.items()},
        scope=snakemake.params.scope,
    )
