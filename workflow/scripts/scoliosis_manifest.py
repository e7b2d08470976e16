from pathlib import Path

from medrepro.io.scoliosis import build_manifest
from medrepro.smk import job

with job(snakemake):
    sil = snakemake.params.sil_root
    build_manifest(Path(snakemake.params.pose_root), Path(sil) if sil else None, Path(snakemake.output.manifest))
