from pathlib import Path

from medrepro.smk import job
from medrepro.studies.scoliosis.data import Limits, build_manifest

with job(snakemake):
    roots = snakemake.params.roots
    sil = roots.get("sil_root")
    build_manifest(
        Path(roots["pose_root"]),
        Path(sil) if sil else None,
        Path(snakemake.output.manifest),
        limits=Limits.from_dict(dict(snakemake.params.limits)),
    )
