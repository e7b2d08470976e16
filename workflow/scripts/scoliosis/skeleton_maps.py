from pathlib import Path

from medrepro.studies.scoliosis.skeleton_maps import SkeletonMapParams, build_skeleton_maps
from medrepro.smk import job

with job(snakemake):
    params = SkeletonMapParams.from_dict(dict(snakemake.params.variant), source="config skeleton_maps")
    build_skeleton_maps(Path(snakemake.input.manifest), Path(snakemake.output.maps), params, workers=snakemake.threads)
