from dataclasses import asdict
from pathlib import Path

from medrepro.studies.scoliosis.skeleton_maps import SkeletonMapParams, build_skeleton_maps
from medrepro.smk import job

with job(snakemake) as rec:
    params = SkeletonMapParams.from_dict(dict(snakemake.params.variant), source="config skeleton_maps")
    rec.extra["skeleton_maps"] = {"resolved_params": asdict(params)}
    index = build_skeleton_maps(Path(snakemake.input.manifest), Path(snakemake.output.maps), params, workers=snakemake.threads)
    rec.extra["skeleton_maps"]["zero_height_frames"] = index["zero_height_frames"]
