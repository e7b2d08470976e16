from pathlib import Path

from medrepro.smk import job
from medrepro.studies.loes.normalize import NormParams, fit_nyul_landmarks

with job(snakemake):
    fit_nyul_landmarks(
        Path(snakemake.input.manifest),
        Path(snakemake.input.split),
        NormParams.from_dict(dict(snakemake.params.variant)),
        Path(snakemake.output.landmarks),
    )
