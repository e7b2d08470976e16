from pathlib import Path

from medrepro.smk import job
from medrepro.studies.fracture.audit import write_fracture_audit

with job(snakemake):
    write_fracture_audit(
        metrics=[Path(p) for p in snakemake.input.metrics],
        claims=Path(snakemake.input.claims),
        study_config=dict(snakemake.params.study_config),
        descriptor=dict(snakemake.params.descriptor),
        out_md=Path(snakemake.output.md),
    )
