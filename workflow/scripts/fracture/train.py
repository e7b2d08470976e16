from medrepro.smk import job
from medrepro.studies.fracture.run import train_run

seed = int(snakemake.wildcards.seed)
with job(snakemake, seeds={"train": seed}) as rec:
    summary = train_run(
        snakemake.params.run,
        seed,
        snakemake.input,
        snakemake.output,
        run_name=snakemake.wildcards.run,
        descriptor=dict(snakemake.params.descriptor),
        code_sha256=snakemake.params.code["sha256"],
    )
    rec.set_device(summary["device"])
    rec.extra.update(timing=summary["timing"], resume=summary["resume"])
