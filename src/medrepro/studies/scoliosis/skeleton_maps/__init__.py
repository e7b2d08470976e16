"""Skeleton maps (ScoNet-MT-ske, DRF): COCO-17 pose sequences -> (T, 2, out, out) limb/joint maps.

``params``: ``SkeletonMapParams`` and the limb / joint tables; ``render``: one sequence
(imputation, normalisation, rendering, crop and area resize, quantization); ``build``: a whole
manifest. The pose check ``as_pose`` and the manifest reader ``read_manifest`` live in
:mod:`medrepro.studies.scoliosis.data` and are re-exported here.
"""

from medrepro.studies.scoliosis.data import MIN_EXTENT_PX, as_pose, read_manifest
from medrepro.studies.scoliosis.skeleton_maps.build import build_skeleton_maps
from medrepro.studies.scoliosis.skeleton_maps.params import (
    COCO_LIMBS,
    REPRESENTATION_JOINTS,
    SkeletonMapParams,
)
from medrepro.studies.scoliosis.skeleton_maps.render import (
    _kept_limbs,  # used by the tests as sm._kept_limbs
    area_weights,
    impute_missing,
    knn_impute,
    normalise_to_canvas,
    rasterize_sequence,
    render_canvas,
)

__all__ = [
    "COCO_LIMBS",
    "MIN_EXTENT_PX",
    "REPRESENTATION_JOINTS",
    "SkeletonMapParams",
    "area_weights",
    "as_pose",
    "build_skeleton_maps",
    "impute_missing",
    "knn_impute",
    "normalise_to_canvas",
    "rasterize_sequence",
    "read_manifest",
    "render_canvas",
]
