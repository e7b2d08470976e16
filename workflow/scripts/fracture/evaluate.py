from medrepro.smk import job
from medrepro.studies.fracture.run import evaluate_run

seed = int(snakemake.wildcards.seed)
with job(snakemake, seeds={"train": seed, "bootstrap": snakemake.params.bootstrap["seed"]}) as rec:
    result = evaluate_run(
        snakemake.params.run,
        seed,
        snakemake.input,
        snakemake.output,
        run_name=snakemake.wildcards.run,
        bootstrap=dict(snakemake.params.bootstrap),
        data_kind=snakemake.params.data_kind,
        descriptor=dict(snakemake.params.descriptor),
        study="fracture",
    )
    rec.set_device(result["details"]["device"])
