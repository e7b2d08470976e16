from pathlib import Path

from medrepro.studies.scoliosis.data import build_manifest
from medrepro.smk import job

with job(snakemake):
    roots = snakemake.params.roots
    sil = roots.get("sil_root")
    build_manifest(Path(roots["pose_root"]), Path(sil) if sil else None, Path(snakemake.output.manifest))
