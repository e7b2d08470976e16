from medrepro.report.figures import write_study_figures
from medrepro.smk import job

with job(snakemake):
    write_study_figures(
        [dict(f) for f in snakemake.params.figures],
        metric=snakemake.params.descriptor["primary"],
    )
