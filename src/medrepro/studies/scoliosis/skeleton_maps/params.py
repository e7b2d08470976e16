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
    "preset": ("medrepro", "opengait"),
    "impute": ("knn", "linear", "none"),
    "missing": ("confidence", "zero_coordinate"),
    "normalise_on": ("drawn", "all"),
    "window": ("symmetric", "truncated"),
    "short_limb": ("segment", "point"),
    "quantize": ("once", "twice"),
    "crop_width": ("square", "odd"),
    "align": ("shared", "per_channel"),
    "representation": tuple(REPRESENTATION_JOINTS),
    "dtype": ("uint8", "float32"),
}

# OpenGait's heatmap pretreatment as its Scoliosis1K instructions run it: ShiqiYu/OpenGait
# datasets/pretreatment_heatmap.py with configs/skeletongait/pretreatment_heatmap.yaml, commit
# 0efafd4779f127fbce34f22aff301bd82e923da5 (sigma 8, canvas 128, KNN padding, per-channel
# alignment, 64 px output). Keys not named here keep the dataclass defaults.
OPENGAIT_COMMIT = "0efafd4779f127fbce34f22aff301bd82e923da5"
PRESETS: dict[str, dict[str, Any]] = {
    "medrepro": {},
    "opengait": {
        "missing": "zero_coordinate",
        "normalise_on": "all",
        "window": "truncated",
        "short_limb": "point",
        "quantize": "twice",
        "crop_width": "odd",
        "align": "per_channel",
        "representation": "full-body",
        "impute": "knn",
        "knn_k": 4,
    },
}

# One line per key: what it decides (the audit note's preprocessing table prints these).
MEANINGS: dict[str, str] = {
    "preset": "named starting point: medrepro (this project's fixes) or opengait (the released pretreatment)",
    "canvas": "canvas size in px before cropping",
    "height_ratio": "body y-extent = canvas // height_ratio px",
    "sigma": "Gaussian width (px on the canvas) for joints and limbs",
    "joint_weight": "multiplier of the joint channel",
    "limb_weight": "multiplier of the limb channel",
    "use_score": "Gaussian peak = keypoint confidence (else 1)",
    "eps": "symmetric window: values below eps set to 0; truncated: keypoints/limbs with peak below eps not drawn",
    "impute": "filling of missing keypoints across frames (knn | linear | none)",
    "knn_k": "neighbours for KNN imputation",
    "missing": "confidence: confidence 0 is missing, imputed keypoints drawn at the joint's mean confidence; "
               "zero_coordinate: a coordinate of exactly 0.0 is missing, confidences kept (imputed keypoints at "
               "confidence 0 move centring and height but are not drawn), no imputation at all when a coordinate "
               "is never observed in the sequence",
    "normalise_on": "drawn: centre and height from the drawn joints, a frame without both hips is empty; "
                    "all: mid-hip and y-extent of all 17 keypoints whatever their confidence",
    "window": "symmetric: |x - mu| <= 3 sigma; truncated: int(mu - 3 sigma) .. int(mu + 3 sigma), one extra "
              "low-side row and column",
    "short_limb": "a limb shorter than 1 px is drawn as its segment, or as a point at its start keypoint",
    "quantize": "once: x255 rounded at the end, crop where a value >= eps; twice: floor(256 v) grey levels "
                "(matplotlib gray LUT) before the crop, crop on levels >= 1, truncation after the resize",
    "crop_width": "square: crop columns as many as rows; odd: 2 * (h // 2) + 1 columns",
    "align": "crop box shared by both channels (fixes their misalignment) or one per channel",
    "representation": "joints drawn",
    "out_size": "output side after area resize",
    "dtype": "stored dtype (quantization)",
}


@dataclass(frozen=True)
class SkeletonMapParams:
    """Every choice of the rasterization; recorded verbatim next to the maps (``asdict``)."""

    preset: str = "medrepro"  # medrepro | opengait: which defaults the other keys started from
    canvas: int = 128
    height_ratio: float = 1.5  # body y-extent = floor(canvas / height_ratio) (85 px on 128)
    sigma: float = 8.0  # px on the canvas
    joint_weight: float = 1.0  # multiplies the joint channel before quantization
    limb_weight: float = 1.0  # multiplies the limb channel before quantization
    use_score: bool = True  # Gaussian peak = keypoint confidence (else 1)
    eps: float = 1e-3  # Gaussian values below eps -> 0; window +-3 sigma
    impute: str = "knn"  # knn | linear | none
    knn_k: int = 4
    missing: str = "confidence"  # confidence | zero_coordinate
    normalise_on: str = "drawn"  # drawn | all
    window: str = "symmetric"  # symmetric | truncated
    short_limb: str = "segment"  # segment | point
    quantize: str = "once"  # once | twice
    crop_width: str = "square"  # square | odd
    align: str = "shared"  # shared | per_channel
    representation: str = "full-body"  # full-body | head-lite | body-only
    out_size: int = 64
    dtype: str = "uint8"  # uint8 (x255, rounded) | float32 (x255, not rounded)

    def __post_init__(self) -> None:
        for f in fields(self):
            _check_param(f.name, getattr(self, f.name), None)
        _check_combination(self)

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> "SkeletonMapParams":
        """Build from a config mapping: the named ``preset``'s values (default ``medrepro``), then
        the mapping's own keys. An unknown key, a bad value or a combination the rasterizer does
        not support raises InputError."""
        if not isinstance(d, dict):
            raise InputError(source, "skeleton_maps", f"got {type(d).__name__}", "a mapping")
        known = {f.name for f in fields(cls)}
        for key, value in d.items():
            if key not in known:
                raise InputError(source, str(key), "unknown key", f"one of {sorted(known)}")
            _check_param(key, value, source)
        preset = d.get("preset", "medrepro")
        try:
            return cls(**{**PRESETS[preset], **d, "preset": preset})
        except InputError as exc:  # a combination check: say where it came from
            raise InputError(source, exc.field, exc.problem, exc.expected) from None

    @classmethod
    def of_preset(cls, preset: str, **overrides: Any) -> "SkeletonMapParams":
        """``from_dict({"preset": preset, **overrides})``."""
        return cls.from_dict({"preset": preset, **overrides}, source="SkeletonMapParams")

    def differs_from(self, preset: str) -> dict[str, Any]:
        """The keys whose value is not the named preset's (``preset`` itself excluded)."""
        base = SkeletonMapParams.of_preset(preset)
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name != "preset" and getattr(self, f.name) != getattr(base, f.name)}


def _check_combination(params: "SkeletonMapParams") -> None:
    """Combinations the rasterizer does not support."""
    if params.missing == "zero_coordinate" and params.impute == "linear":
        raise InputError(None, "impute", "linear with missing: zero_coordinate",
                         "knn or none (OpenGait pads zero coordinates by KNN)")
    if params.quantize == "twice" and params.dtype != "uint8":
        raise InputError(None, "dtype", f"{params.dtype} with quantize: twice", "uint8 (grey levels)")


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

