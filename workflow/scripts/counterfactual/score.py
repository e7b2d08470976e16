from pathlib import Path

from medrepro.studies.counterfactual.pipeline import score_model
from medrepro.smk import job

with job(snakemake, seeds={"bootstrap": int(snakemake.params.seed)}):
    score_model(
        submission=Path(snakemake.input.submission),
        qc_table=Path(snakemake.input.qc_table),
        checks_json=Path(snakemake.input.checks),
        out_score=Path(snakemake.output.score),
        out_units=Path(snakemake.output.units),
        out_metrics=Path(snakemake.output.metrics),
        run=snakemake.wildcards.model,
        scope=snakemake.params.scope,
        allow_partial=bool(snakemake.params.allow_partial),
        iterations=int(snakemake.params.iterations),
        seed=int(snakemake.params.seed),
        data_kind=snakemake.params.data_kind,
        cluster_label=snakemake.params.cluster,
    )
