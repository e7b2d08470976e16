from pathlib import Path

from medrepro.smk import job
from medrepro.studies.loes.data import read_cohort, write_manifest

paths = dict(snakemake.params.paths)
with job(snakemake):
    cohort = read_cohort(Path(paths["csv"]), Path(paths["image_dir"]), paths["pattern"])
    write_manifest(cohort, Path(snakemake.output.manifest))
