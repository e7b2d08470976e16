from pathlib import Path

from medrepro.studies.scoliosis.data import build_split
from medrepro.smk import job

with job(snakemake, seeds={"val": snakemake.params.val_seed}):
    build_split(
        Path(snakemake.input.manifest),
        Path(snakemake.params.split_file),
        Path(snakemake.output.split),
        val_fraction=snakemake.params.val_fraction,
        seed=snakemake.params.val_seed,
        class_map=dict(snakemake.params.class_map),
    )
