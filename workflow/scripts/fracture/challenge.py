from pathlib import Path

from medrepro.smk import job
from medrepro.studies.fracture.section import write_challenge_section

with job(snakemake):
    write_challenge_section(
        metrics=[Path(p) for p in snakemake.input.metrics],
        external=[Path(p) for p in snakemake.input.external],
        results_dir=Path(snakemake.output.md).parent,
        reference=snakemake.params.reference,
        exclude=snakemake.params.exclude,
        bootstrap=dict(snakemake.params.bootstrap),
        out_md=Path(snakemake.output.md),
        out_csv=Path(snakemake.output.csv),
    )
