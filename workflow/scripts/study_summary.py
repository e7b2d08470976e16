from pathlib import Path

from medrepro.report.summary import write_study_summary
from medrepro.smk import job

with job(snakemake):
    write_study_summary(
        [Path(p) for p in snakemake.input.metrics],
        dict(snakemake.params.descriptor),
        Path(snakemake.output.csv),
        Path(snakemake.output.png),
        schema=Path(snakemake.input.schema),
    )
