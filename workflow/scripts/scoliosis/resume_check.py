from medrepro.smk import job
from medrepro.studies.scoliosis.run import resume_check

with job(snakemake, seeds={"train": 0}):
    resume_check(
        dict(snakemake.params.run),
        dict(snakemake.params.check),
        snakemake.input,
        snakemake.output.result,
        descriptor=dict(snakemake.params.descriptor),
    )
