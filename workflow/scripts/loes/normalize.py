from pathlib import Path

from medrepro.smk import job
from medrepro.studies.loes.normalize import NormParams, normalize_variant

landmarks = snakemake.input.get("landmarks")
with job(snakemake):
    normalize_variant(
        Path(snakemake.input.manifest),
        NormParams.from_dict(dict(snakemake.params.variant)),
        Path(snakemake.output.prep),
        Path(snakemake.output.png),
        landmarks_json=Path(landmarks) if landmarks else None,
    )
