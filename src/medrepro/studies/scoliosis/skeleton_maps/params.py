"""Skeleton-map parameters: ``SkeletonMapParams`` (every choice of the rasterization, checked
on construction) and the COCO-17 limb / joint tables the representations draw from."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from medrepro.errors import InputError

# The 17 COCO-17 limb segments of PoseC3D's GeneratePoseTarget (also OpenGait's heatmap
# pretreatment): face (nose-eyes, eyes-ears), nose-shoulders, arms, shoulder-hip, legs, hip-hip.
COCO_LIMBS: tuple[tuple[int, int], ...] = (
    (0, 1), (0, 2), (1, 3), (2, 4),          # nose-l.eye, nose-r.eye, l.eye-l.ear, r.eye-r.ear
    (0, 5), (5, 7), (7, 9),                  # nose-l.shoulder, l.shoulder-l.elbow, l.elbow-l.wrist
    (0, 6), (6, 8), (8, 10),                 # nose-r.shoulder, r.shoulder-r.elbow, r.elbow-r.wrist
    (5, 11), (11, 13), (13, 15),             # l.shoulder-l.hip, l.hip-l.knee, l.knee-l.ankle
    (6, 12), (12, 14), (14, 16),             # r.shoulder-r.hip, r.hip-r.knee, r.knee-r.ankle
    (11, 12),                                # l.hip-r.hip
)

# Joints kept by each representation; a limb is drawn when both its ends are kept.
REPRESENTATION_JOINTS: dict[str, tuple[int, ...]] = {
    "full-body": tuple(range(17)),
    "head-lite": (0,) + tuple(range(5, 17)),
    "body-only": tuple(range(5, 17)),
}

_CHOICES = {
    "impute": ("knn", "linear", "none"),
    "align": ("shared", "per_channel"),
    "representation": tuple(REPRESENTATION_JOINTS),
    "dtype": ("uint8", "float32"),
}


@dataclass(frozen=True)
class SkeletonMapParams:
    """Every choice of the rasterization; recorded verbatim next to the maps (``asdict``)."""

    canvas: int = 128
    height_ratio: float = 1.5  # body y-extent = floor(canvas / height_ratio) (85 px on 128)
    sigma: float = 8.0  # px on the canvas
    joint_weight: float = 1.0  # multiplies the joint channel before quantization
    limb_weight: float = 1.0  # multiplies the limb channel before quantization
    use_score: bool = True  # Gaussian peak = keypoint confidence (else 1)
    eps: float = 1e-3  # Gaussian values below eps -> 0; window +-3 sigma
    impute: str = "knn"  # knn | linear | none
    knn_k: int = 4
    align: str = "shared"  # shared | per_channel
    representation: str = "full-body"  # full-body | head-lite | body-only
    out_size: int = 64
    dtype: str = "uint8"  # uint8 (x255, rounded) | float32 (x255, not rounded)

    def __post_init__(self) -> None:
        for f in fields(self):
            _check_param(f.name, getattr(self, f.name), None)

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> "SkeletonMapParams":
        """Build from a config mapping; an unknown key or a bad value raises InputError."""
        if not isinstance(d, dict):
            raise InputError(source, "skeleton_maps", f"got {type(d).__name__}", "a mapping")
        known = {f.name for f in fields(cls)}
        for key, value in d.items():
            if key not in known:
                raise InputError(source, str(key), "unknown key", f"one of {sorted(known)}")
            _check_param(key, value, source)
        return cls(**d)


def _check_param(name: str, value: Any, source: str | None) -> None:
    def bad(expected: str) -> InputError:
        return InputError(source, name, f"bad value {value!r}", expected)

    is_int = isinstance(value, int) and not isinstance(value, bool)
    is_num = (is_int or isinstance(value, float)) and math.isfinite(value)
    if name in ("canvas", "out_size"):
        if not (is_int and value >= 4):
            raise bad("an integer >= 4")
    elif name == "knn_k":
        if not (is_int and value >= 1):
            raise bad("an integer >= 1")
    elif name == "height_ratio":
        if not (is_num and value >= 1.0):
            raise bad("a number >= 1")
    elif name == "sigma":
        if not (is_num and value > 0):
            raise bad("a number > 0")
    elif name in ("joint_weight", "limb_weight"):
        if not (is_num and value >= 0):
            raise bad("a number >= 0")
    elif name == "eps":
        if not (is_num and 0 < value < 1):
            raise bad("a number in (0, 1)")
    elif name == "use_score":
        if not isinstance(value, bool):
            raise bad("true or false")
    elif name in _CHOICES:
        if value not in _CHOICES[name]:
            raise bad(" | ".join(_CHOICES[name]))

