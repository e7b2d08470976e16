from pathlib import Path

from medrepro.smk import job
from medrepro.studies.loes.audit import write_loes_audit

with job(snakemake):
    write_loes_audit(
        metrics=[Path(p) for p in snakemake.input.metrics],
        summaries=[Path(p) for p in snakemake.input.summaries],
        splits=[Path(p) for p in snakemake.input.splits],
        landmarks=[Path(p) for p in snakemake.input.landmarks],
        cards=[Path(p) for p in snakemake.input.cards],
        manifest=Path(snakemake.input.manifest),
        claims=Path(snakemake.input.claims),
        study_config=dict(snakemake.params.study_config),
        descriptor=dict(snakemake.params.descriptor),
        summary_csv=Path(snakemake.input.summary_csv),
        bootstrap=dict(snakemake.params.bootstrap),
        out_md=Path(snakemake.output.md),
    )
