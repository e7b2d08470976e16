from medrepro.train.run import train_run
from medrepro.smk import job

seed = int(snakemake.wildcards.seed)
with job(snakemake, seeds={"train": seed}) as rec:
    summary = train_run(snakemake.params.run, seed, snakemake.input, snakemake.output, run_name=snakemake.wildcards.run)
    rec.set_device(summary["device"])
