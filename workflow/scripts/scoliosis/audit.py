from pathlib import Path

from medrepro.studies.scoliosis.audit import write_scoliosis_audit
from medrepro.smk import job

with job(snakemake):
    write_scoliosis_audit(
        metrics=[Path(p) for p in snakemake.input.metrics],
        summaries=[Path(p) for p in snakemake.input.summaries],
        splits=[Path(p) for p in snakemake.input.splits],
        pav_stats=[Path(p) for p in snakemake.input.pav_stats],
        resume=Path(snakemake.input.resume),
        claims=Path(snakemake.input.claims),
        study_config=dict(snakemake.params.study_config),
        descriptor=dict(snakemake.params.descriptor),
        summary_csv=Path(snakemake.input.summary_csv),
        bootstrap=dict(snakemake.params.bootstrap),
        out_md=Path(snakemake.output.md),
    )
