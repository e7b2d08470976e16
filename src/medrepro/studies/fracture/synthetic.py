"""Synthetic fracture radiographs with planted cracks, written in the spec layout.

Each image is a square 8-bit radiograph of a limb: dark air, a soft-tissue band with a faint
low-frequency texture, and one or two long bones (a forearm / lower-leg pair in half of the
images) along a tilted axis. A bone is drawn as the X-ray projection of a tube: the path length
through its cortical wall and its medulla, so the cortex shows as bright edges around a darker
medullary canal, with rounded ends where the bone ends in view. A gentle linear intensity
gradient (the heel effect), signal-dependent (Poisson-like) Gaussian noise and rounding to 8 bits
follow; values stay within about 20..230.

A share ``fracture_fraction`` of the images has a fracture: one thin crack (1-2 px wide, a
slightly jagged polyline roughly across the bone's axis, through the whole bone or, in a third of
the cases, part of it) on one bone. On crack pixels the bone's contribution drops to 20-40 %, so
a crack is clearly darker than the bone around it. The mask is exactly the crack's pixels inside
that bone; other images have an empty mask.

Layout (see :mod:`medrepro.studies.fracture.data`): ``images/<image_id>.png``,
``masks/<image_id>.png`` (0 / 255), ``labels.csv`` (``image_id, split, fractured``) with a split
stratified by class so that train, val and test each hold both classes, and
``synthetic_fracture.json`` (the summary, which also marks the folder as generated). Same seed ->
byte-identical files; random streams are keyed by (purpose, image), so the class selection, the
split and each image are drawn independently.
"""

from __future__ import annotations

import csv
import io
import math
import shutil
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from medrepro.errors import InputError
from medrepro.fsutil import new_temp_dir, replace_dir, write_json
from medrepro.studies.fracture.data import (
    MASK_PATTERN,
    SPLITS,
    _check_target,
)

IMAGE_DIR, MASK_DIR, CSV_NAME = "images", "masks", "labels.csv"
IMAGE_PATTERN = "{image_id}.png"
SUMMARY = "synthetic_fracture.json"
SUMMARY_SCHEMA = "medrepro-synthetic-fracture-v1"

# Intensities on the 0..255 scale, before the gradient and the noise.
AIR = 22.0  # background
TISSUE = 50.0  # added by soft tissue at the limb's thickest point
BONE = 135.0  # added by bone at its brightest (the inner edge of the cortex)
MEDULLA_DENSITY = 0.25  # attenuation of the medulla relative to the cortex
CRACK_KEEP = (0.2, 0.4)  # share of the bone's contribution left on a crack pixel
MIN_CRACK_PIXELS = 6

_S_SELECT, _S_SPLIT, _S_IMAGE = range(3)


@dataclass(frozen=True)
class SyntheticFractureParams:
    """Knobs of the synthetic set; the defaults give 160 images of 96 x 96 in about a second."""

    seed: int = 0
    n_images: int = 160
    size: int = 96  # pixels of the square images
    fracture_fraction: float = 0.3  # share of images with a fracture
    noise: float = 0.02  # noise SD as a share of 255 at mid-gray (scales with sqrt of intensity)
    val_fraction: float = 0.15
    test_fraction: float = 0.25

    def __post_init__(self) -> None:
        def bad(field: str, expected: str) -> InputError:
            return InputError(None, field, f"got {getattr(self, field)!r}", expected)

        for field in ("seed", "n_images", "size"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool):
                raise bad(field, "an integer")
        for field in ("fracture_fraction", "noise", "val_fraction", "test_fraction"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise bad(field, "a number")
        if self.seed < 0:
            raise bad("seed", "an integer >= 0")
        if not 6 <= self.n_images <= 99999:
            raise bad("n_images", "an integer in [6, 99999] (ids img00000 .. img99998)")
        if not 32 <= self.size <= 1024:
            raise bad("size", "an integer in [32, 1024]")
        if not 0.0 < self.fracture_fraction < 1.0:
            raise bad("fracture_fraction", "a number in (0, 1)")
        if not 0.0 <= self.noise <= 0.2:
            raise bad("noise", "a number in [0, 0.2]")
        for field in ("val_fraction", "test_fraction"):
            if not 0.0 < getattr(self, field) < 1.0:
                raise bad(field, "a number in (0, 1)")
        if self.val_fraction + self.test_fraction >= 1.0:
            raise bad("test_fraction", "val_fraction + test_fraction < 1")
        n_fractured = self.n_fractured
        for n, name in ((n_fractured, "fractured"), (self.n_images - n_fractured, "other")):
            if split_counts(n, self.val_fraction, self.test_fraction)["train"] < 1:
                raise InputError(None, "n_images", f"{n} {name} images with fracture_fraction "
                                 f"{self.fracture_fraction:g}", "enough images of each class for one per split")

    @property
    def n_fractured(self) -> int:
        return round(self.n_images * self.fracture_fraction)

    @classmethod
    def from_dict(cls, d: dict | None, source: str = "config") -> "SyntheticFractureParams":
        """Build from a config mapping; an unknown key or a bad value raises InputError naming
        ``source``."""
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        for key in d:
            if key not in known:
                raise InputError(source, str(key), "unknown key", f"one of {sorted(known)}")
        try:
            return cls(**d)
        except InputError as exc:
            raise InputError(source, exc.field, exc.problem, exc.expected) from None


def split_counts(n: int, val_fraction: float, test_fraction: float) -> dict[str, int]:
    """Images of one class per split: at least one in val and test, the rest in train."""
    n_val = max(1, round(n * val_fraction))
    n_test = max(1, round(n * test_fraction))
    return {"train": n - n_val - n_test, "val": n_val, "test": n_test}


def _rng(params: SyntheticFractureParams, purpose: int, *key: int) -> np.random.Generator:
    """An independent stream for (purpose, image, ...)."""
    return np.random.default_rng(np.random.SeedSequence(params.seed, spawn_key=(purpose, *key)))


def _design(params: SyntheticFractureParams) -> tuple[np.ndarray, list[str]]:
    """Which images are fractured, and the split of each, stratified by class."""
    n = params.n_images
    fractured = np.zeros(n, dtype=bool)
    fractured[_rng(params, _S_SELECT).permutation(n)[:params.n_fractured]] = True
    split = [""] * n
    for cls in (True, False):
        members = np.flatnonzero(fractured == cls)
        members = members[_rng(params, _S_SPLIT, int(cls)).permutation(len(members))]
        counts = split_counts(len(members), params.val_fraction, params.test_fraction)
        start = 0
        for s in ("val", "test", "train"):
            for i in members[start:start + counts[s]]:
                split[int(i)] = s
            start += counts[s]
    return fractured, split


# ---------------------------------------------------------------------------------------------
# Drawing


def _segment_distance(x: np.ndarray, y: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of each point (x, y) to the segment a-b (points as (x, y))."""
    ab = b - a
    t = ((x - a[0]) * ab[0] + (y - a[1]) * ab[1]) / max(float(ab @ ab), 1e-12)
    t = np.clip(t, 0.0, 1.0)
    return np.hypot(x - (a[0] + t * ab[0]), y - (a[1] + t * ab[1]))


def _tube(d: np.ndarray, radius: float, inner: float) -> np.ndarray:
    """Projected attenuation of a tube at distance d from its axis, 1 at the inner cortex edge."""
    outer_chord = 2.0 * np.sqrt(np.clip(radius**2 - d**2, 0.0, None))
    inner_chord = 2.0 * np.sqrt(np.clip(inner**2 - d**2, 0.0, None))
    peak = 2.0 * math.sqrt(radius**2 - inner**2)
    return (outer_chord - inner_chord + MEDULLA_DENSITY * inner_chord) / peak


def _unit(angle: float) -> np.ndarray:
    return np.array([math.sin(angle), math.cos(angle)])  # (x, y); angle 0 points down the image


def _crack(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, centre: np.ndarray, axis: np.ndarray,
           radius: float) -> np.ndarray:
    """Pixels of a thin jagged crack roughly across a bone's axis at ``centre``."""
    phi = math.radians(rng.uniform(-35.0, 35.0))
    normal = np.array([axis[1], -axis[0]])
    u = normal * math.cos(phi) + axis * math.sin(phi)  # crack direction
    w = np.array([u[1], -u[0]])  # across the crack
    half = radius / math.cos(phi) + 2.0
    s0, s1 = -half, half
    if rng.random() < 1 / 3:  # an incomplete fracture: from one cortex part of the way across
        s1 = half * rng.uniform(-0.3, 0.4)
        if rng.random() < 0.5:
            s0, s1 = -s1, half
    n = max(4, int(math.ceil((s1 - s0) / 1.5)) + 1)
    s = np.linspace(s0, s1, n)
    offset = np.clip(np.cumsum(rng.normal(0.0, 0.45, n)), -1.8, 1.8)
    points = centre[None, :] + s[:, None] * u[None, :] + offset[:, None] * w[None, :]
    half_width = rng.uniform(0.55, 0.95)
    dist = np.full(x.shape, np.inf)
    for a, b in zip(points[:-1], points[1:]):
        dist = np.minimum(dist, _segment_distance(x, y, a, b))
    return dist <= half_width


def _render(params: SyntheticFractureParams, index: int, fractured: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """One image (uint8), its mask (uint8 0 / 255) and the number of bones drawn."""
    rng = _rng(params, _S_IMAGE, index)
    size = params.size
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    centre = size / 2 + rng.uniform(-0.08, 0.08, 2) * size
    theta = math.radians(rng.uniform(-25.0, 25.0))
    axis = _unit(theta)
    normal = np.array([axis[1], -axis[0]])

    # Bones: (centre, axis, radius, inner radius, density, half length).
    r1 = rng.uniform(0.085, 0.12) * size
    bones = []
    if rng.random() < 0.5:
        r2 = r1 * rng.uniform(0.5, 0.75)
        sep = r1 + r2 + rng.uniform(0.02, 0.06) * size
        side = 1.0 if rng.random() < 0.5 else -1.0
        c1 = centre - side * normal * sep * r2 / (r1 + r2)
        c2 = centre + side * normal * sep * r1 / (r1 + r2) + axis * rng.uniform(-0.1, 0.1) * size
        bones.append((c1, axis, r1, r1 * (1 - rng.uniform(0.28, 0.4)), 1.0, rng.uniform(0.45, 0.7) * size))
        axis2 = _unit(theta + math.radians(rng.uniform(-4.0, 4.0)))
        bones.append((c2, axis2, r2, r2 * (1 - rng.uniform(0.3, 0.45)), rng.uniform(0.85, 1.0),
                      rng.uniform(0.45, 0.7) * size))
        reach = sep * max(r1, r2) / (r1 + r2) + max(r1, r2)
    else:
        bones.append((centre, axis, r1, r1 * (1 - rng.uniform(0.28, 0.4)), 1.0, rng.uniform(0.45, 0.7) * size))
        reach = r1
    tissue_radius = reach + rng.uniform(0.08, 0.16) * size

    # Soft tissue: an elliptic-cylinder profile across the limb, with a faint texture.
    d_tissue = _segment_distance(x, y, centre - axis * 3 * size, centre + axis * 3 * size)
    profile = np.sqrt(np.clip(1.0 - (d_tissue / tissue_radius) ** 2, 0.0, None))
    texture = ndimage.gaussian_filter(rng.normal(size=(size, size)), sigma=size / 16)
    texture /= max(float(texture.std()), 1e-12)
    image = AIR + TISSUE * profile * (1.0 + 0.06 * texture)

    # Bones, with a fine trabecular texture in the medulla.
    grain = ndimage.gaussian_filter(rng.normal(size=(size, size)), sigma=1.2)
    grain /= max(float(grain.std()), 1e-12)
    contributions, insides = [], []
    for c, a, radius, inner, density, half_length in bones:
        d = _segment_distance(x, y, c - a * half_length, c + a * half_length)
        medulla = np.clip(1.0 - d / inner, 0.0, 1.0)
        contributions.append(BONE * density * _tube(d, radius, inner) * (1.0 + 0.05 * grain * medulla))
        insides.append(d < radius)

    mask = np.zeros((size, size), dtype=bool)
    if fractured:
        k = 0 if len(bones) == 1 or rng.random() < 0.7 else 1
        c, a, radius, _, _, half_length = bones[k]
        for _ in range(20):
            along = rng.uniform(-0.5, 0.5) * min(half_length - radius, 0.35 * size)
            at = c + a * along
            crack = _crack(rng, x, y, at, a, radius) & insides[k]
            if crack.sum() >= MIN_CRACK_PIXELS:
                break
        if crack.sum() < MIN_CRACK_PIXELS:  # not reached with the parameter bounds above
            raise RuntimeError(f"image {index}: no crack of {MIN_CRACK_PIXELS} pixels could be placed")
        mask = crack
        keep = rng.uniform(*CRACK_KEEP)
        contributions[k] = np.where(mask, contributions[k] * keep, contributions[k])
    image = image + sum(contributions)

    # Heel-effect gradient, then Poisson-like noise and 8-bit rounding.
    gamma = rng.uniform(0.0, 2 * math.pi)
    ramp = ((x - size / 2) * math.cos(gamma) + (y - size / 2) * math.sin(gamma)) / (size / 2)
    image = image * (1.0 + rng.uniform(0.04, 0.1) * ramp)
    sd = params.noise * 255.0 * np.sqrt(np.clip(image, 1.0, None) / 128.0)
    image = image + sd * rng.normal(size=(size, size))
    pixels = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return pixels, mask.astype(np.uint8) * np.uint8(255), len(bones)


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# Writing


def synthesize(out_dir: str | Path, params: SyntheticFractureParams = SyntheticFractureParams()) -> dict:
    """Write a synthetic set in the spec layout (see the module docstring); return its summary.

    Everything is written into a temporary folder beside ``out_dir`` and renamed into place at
    the end, so a failure leaves ``out_dir`` as it was. An existing ``out_dir`` is replaced only
    if it is empty or was written by this function, so real data is never overwritten.
    """
    out_dir = Path(out_dir)
    _check_target(out_dir, SUMMARY, "synthesize")
    fractured, split = _design(params)
    tmp = new_temp_dir(out_dir)
    try:
        (tmp / IMAGE_DIR).mkdir()
        (tmp / MASK_DIR).mkdir()
        rows, mask_pixels, two_bones = [], [], 0
        for i in range(params.n_images):
            image_id = f"img{i:05d}"
            pixels, mask, n_bones = _render(params, i, bool(fractured[i]))
            (tmp / IMAGE_DIR / IMAGE_PATTERN.format(image_id=image_id)).write_bytes(_png(pixels))
            (tmp / MASK_DIR / MASK_PATTERN.format(image_id=image_id)).write_bytes(_png(mask))
            rows.append([image_id, split[i], str(int(fractured[i]))])
            two_bones += n_bones == 2
            if fractured[i]:
                mask_pixels.append(int((mask > 0).sum()))

        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["image_id", "split", "fractured"])
        writer.writerows(rows)
        (tmp / CSV_NAME).write_text(text.getvalue(), encoding="utf-8")

        summary: dict[str, Any] = {
            "schema": SUMMARY_SCHEMA,
            "params": asdict(params),
            "n_images": params.n_images,
            "n_fractured": int(fractured.sum()),
            "splits": {s: {"n_images": sum(1 for v in split if v == s),
                           "n_fractured": int(sum(1 for v, f in zip(split, fractured) if v == s and f))}
                       for s in SPLITS},
            "n_two_bones": int(two_bones),
            "mask_pixels": {"min": min(mask_pixels), "median": float(np.median(mask_pixels)),
                            "max": max(mask_pixels)},
            "layout": {"csv": CSV_NAME, "image_dir": IMAGE_DIR, "mask_dir": MASK_DIR,
                       "image_pattern": IMAGE_PATTERN, "mask_pattern": MASK_PATTERN},
        }
        write_json(tmp / SUMMARY, summary)
        replace_dir(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary
