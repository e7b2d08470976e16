from pathlib import Path

from medrepro.external import import_external
from medrepro.smk import job

with job(snakemake) as rec:
    m = import_external(
        snakemake.wildcards.study,
        snakemake.wildcards.name,
        Path(snakemake.input.source),
        snakemake.params.importer,
        Path(snakemake.output.metrics),
        Path(snakemake.output.units),
        bootstrap=dict(snakemake.params.bootstrap),
        descriptor=dict(snakemake.params.descriptor),
        data_kind=snakemake.params.entry["data"],
    )
    rec.extra["external"] = m["external"]
