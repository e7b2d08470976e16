from pathlib import Path

from medrepro.report.leaderboard import write_leaderboard
from medrepro.smk import job

with job(snakemake):
    write_leaderboard(
        summaries=[Path(p) for p in snakemake.input.summaries],
        studies=list(snakemake.params.studies),
        descriptors={k: dict(v) for k, v in snakemake.params.descriptors.items()},
        bootstrap=dict(snakemake.params.bootstrap),
        title=snakemake.params.title,
        out_md=Path(snakemake.output.md),
        audits=[Path(p) for p in snakemake.input.audits],
        environment=Path(snakemake.input.environment),
        own_tables={k: Path(v) for k, v in snakemake.params.section_of.items()},
    )
