from pathlib import Path

from medrepro.studies.counterfactual.pipeline import run_qc
from medrepro.smk import job

with job(snakemake):
    run_qc(
        bundle_root=Path(snakemake.params.bundle_root),
        pairs_csv=Path(snakemake.params.pairs_csv),
        checks_json=Path(snakemake.input.checks),
        out_table=Path(snakemake.output.table),
        out_summary=Path(snakemake.output.summary),
        out_png=Path(snakemake.output.png),
        lpips=snakemake.params.lpips,
        thresholds=dict(snakemake.params.thresholds),
        examples=int(snakemake.params.examples),
        workers=snakemake.threads,
        published=bool(snakemake.params.published),
        truth_csv=snakemake.params.truth_csv,
        sixteen_bit=snakemake.params.sixteen_bit,
    )
