import json
from pathlib import Path

from medrepro.studies.scoliosis.data import load_pose, load_silhouette
from medrepro.studies.scoliosis.skeleton_maps import SkeletonMapParams
from medrepro.studies.scoliosis.figures import plot_skeleton_frames
from medrepro.smk import job

with job(snakemake):
    manifest = json.loads(Path(snakemake.input.manifest).read_text())
    first = next(s for s in manifest["sequences"] if s["label"] == "positive")
    pose = load_pose(Path(manifest["pose_root"]) / first["pose"], sha256=first["pose_sha256"])
    sil = load_silhouette(Path(manifest["sil_root"]) / first["sil"], sha256=first["sil_sha256"])
    params = SkeletonMapParams.from_dict(dict(snakemake.params.variant), source="config skeleton_maps")
    title = f"sequence {first['id']} ({first['label']}), variant {snakemake.params.variant_name}"
    plot_skeleton_frames(pose, sil, params, Path(snakemake.output.png), title=title)
