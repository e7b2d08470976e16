from medrepro.smk import job
from medrepro.studies.loes.run import write_run_card

with job(snakemake, seeds={"bootstrap": snakemake.params.bootstrap["seed"]}):
    write_run_card(
        snakemake.params.run,
        snakemake.wildcards.run,
        snakemake.input,
        snakemake.output,
        bootstrap=dict(snakemake.params.bootstrap),
        data_kind=snakemake.params.data_kind,
    )
