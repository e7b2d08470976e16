from pathlib import Path

from medrepro.studies.counterfactual.audit import write_counterfactual_audit
from medrepro.smk import job

with job(snakemake):
    write_counterfactual_audit(
        checks=Path(snakemake.input.checks),
        qc_summary=Path(snakemake.input.qc_summary),
        scores=[Path(p) for p in snakemake.input.scores],
        metrics=[Path(p) for p in snakemake.input.metrics],
        summary_csv=Path(snakemake.input.summary_csv),
        truth=Path(snakemake.input.truth) if snakemake.input.get("truth") else None,
        claims=Path(snakemake.input.claims),
        study_config=dict(snakemake.params.study_config),
        descriptor=dict(snakemake.params.descriptor),
        lpips=snakemake.params.lpips,
        out_md=Path(snakemake.output.md),
    )
