"""MRI normalization of the loes study (the pipeline's "MRI normalization" preprocessing rule).

Every scan goes through the same steps, each a key of :class:`NormParams` and recorded next to
the output:

1. read with nibabel (header shape checked before any data is read), affine kept;
2. :func:`to_canonical`: reorient to the closest canonical (RAS) orientation;
3. :func:`resample` (``spacing``): trilinear resampling to a target voxel spacing;
4. :func:`crop_or_pad` (``shape``): crop / zero-pad to a fixed shape centred on the bounding box
   of the foreground;
5. :func:`n4_correct` (``n4``): SimpleITK N4 bias-field correction with an Otsu mask;
6. intensity normalization (``intensity``): :func:`zscore` over the whole volume (what the
   reference lab does) or over the foreground, Nyul histogram standardization
   (:func:`fit_nyul` on TRAIN scans only, :func:`apply_nyul`), or none.

Every spatial step returns a new image whose affine maps each voxel to the world position it
had before: a point of the head keeps its world (scanner / MNI) coordinates.

The whole-variant functions the rule calls are :func:`fit_nyul_landmarks` (TRAIN scans in,
landmarks JSON out) and :func:`normalize_variant` (every scan of the manifest in, a folder of
float32 NIfTI volumes plus ``index.json`` and a before/after figure out).

Nyul and TorchIO (``torchio.transforms.HistogramStandardization``, torchio 1.2.1): with the same
percentiles and masks the two compute the same landmarks and the same mapping (the tests check
it). The differences are by design:

- TorchIO always trains on the 13 percentiles {1, 10, 20, 25, 30, ..., 70, 75, 80, 90, 99} and
  applies only 11 of them (it drops 25 and 75); here one list, ``percentiles``, is used for both.
  TorchIO also ignores a non-default ``cutoff`` when applying; here the list is the same at fit
  and apply time by construction.
- TorchIO replaces the slope of an image whose p1 equals its p99 by a huge finite number
  (``np.nan_to_num(inf)``); here that image is an InputError naming it.
- TorchIO holds a segment flat when its two percentiles are closer than 1e-5; here
  ``np.interp`` interpolates it (the two agree when the percentiles are equal and differ only
  for the voxels inside a segment narrower than 1e-5 intensity units).
- The output range ``nyul_range`` is a parameter (TorchIO fixes it to [0, 100]).
"""

from __future__ import annotations

import gzip
import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

import nibabel as nib
import numpy as np

from medrepro.errors import InputError
from medrepro.studies.loes.data import load_volume as load_nifti
from medrepro.studies.loes.data import orientation
from medrepro.fsutil import atomic_path, replace_dir, sha256_file, write_json

PREP_SCHEMA = "medrepro-loes-prep-v1"
NYUL_SCHEMA = "medrepro-loes-nyul-v1"
N4_INSTALL = "true needs SimpleITK: pip install 'medrepro[n4]'"

INTENSITIES = ("zscore", "nyul", "none")
ZSCORE_ON = ("volume", "foreground")
FOREGROUNDS = ("otsu", "nonzero", "all")

# Keys whose values change the images the Nyul landmarks are fitted on (checked when applying).
_NYUL_FIT_KEYS = ("spacing", "shape", "n4", "foreground", "percentiles", "nyul_range")

# One line per key: what it decides (documentation and the audit note's preprocessing table).
MEANING: dict[str, str] = {
    "spacing": "resample to this voxel spacing in mm (trilinear, field-of-view centre kept); null keeps it",
    "shape": "crop / zero-pad to this shape in voxels around the foreground bounding box; null keeps it",
    "n4": "N4 bias-field correction (SimpleITK, Otsu mask) before intensity normalization",
    "intensity": "intensity normalization: zscore | nyul (histogram standardization, landmarks from TRAIN only) | none",
    "zscore_on": "zscore statistics over the whole volume (the reference lab) or over the foreground mask",
    "foreground": "foreground mask: otsu (voxels above an Otsu threshold) | nonzero | all (every voxel)",
    "percentiles": "Nyul landmark percentiles; the first and last span nyul_range",
    "nyul_range": "Nyul output range of the first..last percentile (TorchIO: 0..100)",
}


class MissingExtra(InputError):
    """A step was asked for whose optional dependency is not installed (``n4`` without SimpleITK).

    An InputError so the command line reports it as a configuration problem, with the install
    command, instead of a traceback."""


@dataclass(frozen=True)
class NormParams:
    """Every choice of the MRI normalization; recorded verbatim next to the outputs (``asdict``)."""

    spacing: tuple[float, float, float] | None = None
    shape: tuple[int, int, int] | None = None
    n4: bool = False
    intensity: str = "zscore"
    zscore_on: str = "volume"
    foreground: str = "otsu"
    percentiles: tuple[float, ...] = (1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 99)
    nyul_range: tuple[float, float] = (0.0, 100.0)

    meaning: ClassVar[dict[str, str]] = MEANING

    def __post_init__(self) -> None:
        # Lists from YAML / JSON become tuples (hashable, and asdict gives the same record).
        for f in fields(self):
            object.__setattr__(self, f.name, _check_param(f.name, getattr(self, f.name), None))

    @classmethod
    def from_dict(cls, d: dict | None, source: str | Path | None = "config") -> "NormParams":
        """Build from a config mapping; an unknown key or a bad value raises InputError naming it."""
        if d is None:
            d = {}
        if not isinstance(d, dict):
            raise InputError(source, "normalization", f"got {type(d).__name__}", "a mapping")
        known = [f.name for f in fields(cls)]
        values = {}
        for key, value in d.items():
            if key not in known:
                raise InputError(source, str(key), "unknown key", f"one of {known}")
            values[key] = _check_param(key, value, source)
        return cls(**values)

    def record(self) -> dict[str, Any]:
        """The parameters as plain JSON values (tuples as lists)."""
        return json.loads(json.dumps(asdict(self)))


def _check_param(name: str, value: Any, source: str | Path | None) -> Any:
    """Check one parameter; return it in canonical form (tuples of float / int)."""

    def bad(expected: str) -> InputError:
        return InputError(source, name, f"bad value {value!r}", expected)

    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    if name == "spacing":
        if value is None:
            return None
        if number(value):
            value = (value,) * 3
        if not (isinstance(value, (list, tuple)) and len(value) == 3 and all(number(v) and v > 0 for v in value)):
            raise bad("null, a positive number or three positive numbers (mm)")
        return tuple(float(v) for v in value)
    if name == "shape":
        if value is None:
            return None
        ok = isinstance(value, (list, tuple)) and len(value) == 3 and all(
            isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 1024 for v in value)
        if not ok:
            raise bad("null or three integers in 1..1024")
        return tuple(int(v) for v in value)
    if name == "n4":
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    choices = {"intensity": INTENSITIES, "zscore_on": ZSCORE_ON, "foreground": FOREGROUNDS}
    if name in choices:
        if value not in choices[name]:
            raise bad(" | ".join(choices[name]))
        return value
    if name == "percentiles":
        ok = (isinstance(value, (list, tuple)) and len(value) >= 2 and all(number(v) and 0 <= v <= 100 for v in value)
              and all(a < b for a, b in zip(value, value[1:])))
        if not ok:
            raise bad("at least two strictly increasing percentiles in 0..100")
        return tuple(float(v) for v in value)
    if name == "nyul_range":
        if not (isinstance(value, (list, tuple)) and len(value) == 2 and all(number(v) for v in value)
                and value[0] < value[1]):
            raise bad("two numbers [low, high] with low < high")
        return tuple(float(v) for v in value)
    raise InputError(source, name, "unknown key", f"one of {[f.name for f in fields(NormParams)]}")


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------

def _coord_code(img: Any) -> int:
    """The image's sform (else qform) code; 1 (scanner) when it has none."""
    header = getattr(img, "header", None)
    try:
        return int(header["sform_code"]) or int(header["qform_code"]) or 1
    except (TypeError, KeyError, ValueError):
        return 1


def _data(img: nib.Nifti1Image) -> np.ndarray:
    return np.asarray(img.dataobj, dtype=np.float32)


def _zooms(affine: np.ndarray) -> np.ndarray:
    return np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))


def _new_image(data: np.ndarray, affine: np.ndarray, code: int = 1) -> nib.Nifti1Image:
    """A float32 image whose sform and qform both hold ``affine`` with ``code`` (the constructor
    stores both; only the codes are set here)."""
    img = nib.Nifti1Image(np.asarray(data, dtype=np.float32), affine)
    img.header.set_sform(None, code=code)
    img.header.set_qform(None, code=code)
    img.header.set_xyzt_units("mm")
    return img


# --------------------------------------------------------------------------------------------
# Spatial steps
# --------------------------------------------------------------------------------------------

def to_canonical(img: nib.Nifti1Image) -> nib.Nifti1Image:
    """Reorient to the closest canonical (RAS+) orientation, as ``nibabel.as_closest_canonical``.

    Only axis flips and permutations: every voxel keeps its world coordinates."""
    data, affine = _canonical(_data(img), img.affine)
    return _new_image(data, affine, _coord_code(img))


def _canonical(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``nibabel.as_closest_canonical`` on arrays (its own three calls: io_orientation,
    apply_orientation, inv_ornt_aff), so the pipeline builds no intermediate image."""
    ornt = nib.orientations.io_orientation(affine)
    if (ornt == [[0, 1], [1, 1], [2, 1]]).all():
        return data, np.asarray(affine, dtype=np.float64)
    out = np.ascontiguousarray(nib.orientations.apply_orientation(data, ornt))
    return out, np.asarray(affine, dtype=np.float64) @ nib.orientations.inv_ornt_aff(ornt, data.shape)


def resample(img: nib.Nifti1Image, spacing: Sequence[float]) -> nib.Nifti1Image:
    """Trilinear resampling to ``spacing`` (mm per voxel along each array axis).

    Convention (the one of TorchIO's ``Resample`` / SimpleITK): the axis directions are kept;
    the new shape is ``floor(shape * old_spacing / spacing)`` (at least 1), so the new grid never
    reaches beyond the old field of view when downsampling; the centre of the field of view (the
    midpoint of the first and last voxel centres) keeps its world position. Samples up to half a
    voxel outside the old voxel centres (upsampling only) take the edge value, as ITK's linear
    interpolator does. No anti-aliasing smoothing (TorchIO's default).

    The floor has a 1e-4 tolerance: NIfTI headers store spacings in float32, so 40 voxels of
    3.6 mm read as 40 x 3.5999999 mm; at 4 mm that is 36 voxels here, 35 in TorchIO (which
    floors without tolerance), and the two grids then differ by half a voxel."""
    data, affine = _resample(_data(img), img.affine, spacing)
    return _new_image(data, affine, _coord_code(img))


def _resample(data: np.ndarray, affine: np.ndarray, spacing: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    from scipy import ndimage

    new_spacing = np.asarray(spacing, dtype=np.float64)
    affine = np.asarray(affine, dtype=np.float64)
    shape = np.array(data.shape)
    zooms = _zooms(affine)
    new_shape = np.maximum(1, np.floor(shape * zooms / new_spacing + 1e-4)).astype(int)
    linear = affine[:3, :3] * (new_spacing / zooms)  # columns rescaled: same directions
    centre = affine[:3, :3] @ ((shape - 1) / 2) + affine[:3, 3]
    new_affine = np.eye(4)
    new_affine[:3, :3] = linear
    new_affine[:3, 3] = centre - linear @ ((new_shape - 1) / 2)
    # new voxel index -> old voxel index: diagonal (same directions) plus an offset.
    to_old = np.linalg.solve(affine, new_affine)
    matrix = to_old[:3, :3]
    if np.allclose(matrix, np.diag(np.diag(matrix)), atol=1e-9):
        matrix = np.diag(matrix)
    out = ndimage.affine_transform(data, matrix, offset=to_old[:3, 3], output_shape=tuple(new_shape),
                                   output=np.float32, order=1, mode="nearest", prefilter=False)
    return out, new_affine


def bounding_box(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounding box ``[lo, hi)`` (hi exclusive) of the true voxels of a non-empty 3D mask."""
    lo, hi = [], []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        idx = np.flatnonzero(mask.any(axis=others))
        lo.append(idx[0])
        hi.append(idx[-1] + 1)
    return np.array(lo), np.array(hi)


def crop_or_pad(img: nib.Nifti1Image, shape: Sequence[int], mask: np.ndarray | None,
                path: str | Path | None = None) -> nib.Nifti1Image:
    """Crop / zero-pad to ``shape``, centred on the bounding box of ``mask`` (the whole volume
    when ``mask`` is None).

    The window starts at ``lo + floor((hi - lo - shape) / 2)`` on each axis (``[lo, hi)`` the
    bounding box), which is where TorchIO's ``CropOrPad(mask_name=...)`` puts it; voxels outside
    the input are 0. The affine's translation moves to the window's first voxel, so world
    coordinates stay right. An empty mask raises InputError naming ``path``."""
    data, affine = _crop_or_pad(_data(img), img.affine, shape, mask, path)
    return _new_image(data, affine, _coord_code(img))


def _crop_or_pad(data: np.ndarray, affine: np.ndarray, shape: Sequence[int], mask: np.ndarray | None,
                 path: str | Path | None) -> tuple[np.ndarray, np.ndarray]:
    n = np.array(data.shape)
    target = np.array(shape, dtype=int)
    if mask is None:
        lo, hi = np.zeros(3, int), n
    else:
        if mask.shape != data.shape:
            raise InputError(path, "mask", f"shape {mask.shape}", f"the image shape {data.shape}")
        if not mask.any():
            raise InputError(path, "foreground", "empty foreground mask (constant volume?)",
                             "some voxels above the foreground threshold")
        lo, hi = bounding_box(mask)
    start = lo + (hi - lo - target) // 2
    src_lo, src_hi = np.maximum(start, 0), np.minimum(start + target, n)
    out = np.zeros(tuple(target), dtype=np.float32)
    if (src_hi > src_lo).all():
        dst = tuple(slice(a - s, b - s) for a, b, s in zip(src_lo, src_hi, start))
        src = tuple(slice(a, b) for a, b in zip(src_lo, src_hi))
        out[dst] = data[src]
    affine = np.array(affine, dtype=np.float64)
    affine[:3, 3] = affine[:3, :3] @ start + affine[:3, 3]
    return out, affine


def foreground_mask(data: np.ndarray, method: str = "otsu", path: str | Path | None = None) -> np.ndarray:
    """Foreground voxels: above an Otsu threshold (``skimage.filters.threshold_otsu``, 256 bins
    over all voxels), non-zero, or all. An empty result raises InputError naming ``path``."""
    if method == "all":
        return np.ones(data.shape, dtype=bool)
    if method == "nonzero":
        mask = data != 0
    elif method == "otsu":
        from skimage.filters import threshold_otsu

        flat = np.ravel(data)
        lo, hi = flat.min(), flat.max()
        mask = data > threshold_otsu(flat) if hi > lo else np.zeros(data.shape, dtype=bool)
    else:
        raise InputError(path, "foreground", f"bad value {method!r}", " | ".join(FOREGROUNDS))
    if not mask.any():
        raise InputError(path, "foreground", f"empty {method} foreground mask (constant volume?)",
                         "some foreground voxels")
    return mask


def _n4_shrink(shape: Sequence[int]) -> int:
    """Shrink factor of the N4 fit: at least 16 voxels left on the shortest axis, 1..4 (the fit
    is smooth, and its cost grows fast with the voxels: 40 x 48 x 40 is fitted at 20 x 24 x 20)."""
    return int(max(1, min(4, min(shape) // 16)))


def n4_correct(img: nib.Nifti1Image, mask: np.ndarray | None = None, *, shrink: int | None = None,
               iterations: Sequence[int] = (50, 50, 50), path: str | Path | None = None) -> nib.Nifti1Image:
    """N4 bias-field correction (SimpleITK ``N4BiasFieldCorrectionImageFilter``).

    The field is fitted on the image and ``mask`` (default: the Otsu foreground; voxels <= 0 are
    left out, N4 works on log intensities) shrunk by ``shrink`` (default :func:`_n4_shrink`),
    with fixed ``iterations`` per fitting level and one thread, so the result is deterministic;
    the full-resolution image is divided by the exponential of the fitted log field. Without
    SimpleITK raises :class:`MissingExtra` with the install command."""
    return _new_image(_n4(_data(img), img.affine, mask, shrink, iterations, path), img.affine, _coord_code(img))


def _n4(data: np.ndarray, affine: np.ndarray, mask: np.ndarray | None, shrink: int | None,
        iterations: Sequence[int], path: str | Path | None) -> np.ndarray:
    try:
        import SimpleITK as sitk
    except ImportError:
        raise MissingExtra(path, "n4", N4_INSTALL) from None
    if mask is None:
        mask = foreground_mask(data, "otsu", path)
    fit_mask = mask & (data > 0)
    if not fit_mask.any():
        raise InputError(path, "n4", "no positive voxel in the N4 mask", "positive foreground intensities")
    shrink = _n4_shrink(data.shape) if shrink is None else int(shrink)
    # SimpleITK arrays are indexed (z, y, x): the transpose makes SimpleITK's index = nibabel's.
    image = sitk.GetImageFromArray(np.ascontiguousarray(data.T, dtype=np.float32))
    image.SetSpacing([float(z) for z in _zooms(affine)])
    mask_image = sitk.GetImageFromArray(np.ascontiguousarray(fit_mask.T, dtype=np.uint8))
    mask_image.CopyInformation(image)
    small = sitk.Shrink(image, [shrink] * 3) if shrink > 1 else image
    small_mask = sitk.Shrink(mask_image, [shrink] * 3) if shrink > 1 else mask_image
    corrector = sitk.N4BiasFieldCorrectionImageFilter()
    corrector.SetNumberOfThreads(1)
    corrector.SetMaximumNumberOfIterations([int(i) for i in iterations])
    corrector.SetConvergenceThreshold(1e-3)
    corrector.Execute(small, small_mask)
    log_field = sitk.GetArrayFromImage(corrector.GetLogBiasFieldAsImage(image)).T
    return (data / np.exp(log_field).astype(np.float32)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Intensity steps
# --------------------------------------------------------------------------------------------

def zscore(data: np.ndarray, mask: np.ndarray | None = None, path: str | Path | None = None) -> np.ndarray:
    """``(data - mean) / std`` with mean and population std (ddof 0) over the whole volume
    (``mask`` None, the reference lab's way) or over ``mask``; float64 statistics, float32 out.

    TorchIO's ZNormalization divides by the sample std (ddof 1): a factor sqrt(n / (n - 1)),
    1 + 7e-6 on a 40 x 48 x 40 volume. A constant region (std 0, or below 1e-6 of |mean|, which
    is float32 rounding after resampling) raises InputError naming ``path``, never NaN."""
    values = data[mask] if mask is not None else np.ravel(data)
    region = "foreground" if mask is not None else "volume"
    if values.size == 0:
        raise InputError(path, "intensity", f"zscore over an empty {region}", "some voxels")
    mean = float(values.mean(dtype=np.float64))
    std = float(values.std(dtype=np.float64))
    if not math.isfinite(std) or std == 0 or std <= 1e-6 * abs(mean):
        raise InputError(path, "intensity", f"constant {region}: standard deviation {std:g} (mean {mean:g})",
                         "a volume whose intensities vary")
    return ((data - mean) / std).astype(np.float32)


def nyul_percentiles(data: np.ndarray, mask: np.ndarray | None, percentiles: Sequence[float]) -> np.ndarray:
    """The image's intensity percentiles (``np.percentile``, linear) over ``mask`` (or all voxels)."""
    values = data[mask] if mask is not None else np.ravel(data)
    return np.percentile(values.astype(np.float64), np.asarray(percentiles, dtype=np.float64))


def fit_nyul(arrays: Sequence[np.ndarray], masks: Sequence[np.ndarray | None] | None,
             percentiles: Sequence[float] = NormParams.percentiles,
             nyul_range: Sequence[float] = NormParams.nyul_range,
             paths: Sequence[str | Path | None] | None = None) -> np.ndarray:
    """Nyul landmarks: each image's percentiles mapped linearly so its first..last percentile
    span becomes ``nyul_range``, averaged over the images (call it with TRAIN images only).

    Equals TorchIO's ``HistogramStandardization.train`` at the same percentiles and masks. An
    image whose first and last percentile coincide raises InputError naming it."""
    if not arrays:
        raise InputError(None, "nyul", "no images to fit landmarks on", "at least one TRAIN image")
    masks = [None] * len(arrays) if masks is None else list(masks)
    paths = [None] * len(arrays) if paths is None else list(paths)
    table = [nyul_percentiles(d, m, percentiles) for d, m in zip(arrays, masks)]
    return landmarks_from_percentiles(table, nyul_range, paths, percentiles)


def landmarks_from_percentiles(table: Sequence[np.ndarray], nyul_range: Sequence[float] = NormParams.nyul_range,
                               paths: Sequence[str | Path | None] | None = None,
                               percentiles: Sequence[float] = NormParams.percentiles) -> np.ndarray:
    """The averaging half of :func:`fit_nyul`, on each image's percentile values (one row per
    image), so a whole cohort can be fitted without holding its volumes in memory."""
    paths = [None] * len(table) if paths is None else list(paths)
    low, high = (float(v) for v in nyul_range)
    mapped = []
    for p, path in zip(table, paths):
        if not p[-1] > p[0]:
            raise InputError(path, "nyul", f"percentiles {percentiles[0]:g} and {percentiles[-1]:g} are equal "
                             f"({p[0]:g})", "an image whose intensities vary in the mask")
        mapped.append(low + (high - low) * (p - p[0]) / (p[-1] - p[0]))
    return np.mean(mapped, axis=0)


def apply_nyul(data: np.ndarray, mask: np.ndarray | None, landmarks: Sequence[float],
               percentiles: Sequence[float] = NormParams.percentiles,
               path: str | Path | None = None) -> np.ndarray:
    """Piecewise-linear map of the image's own percentiles (over ``mask``) onto ``landmarks``,
    applied to every voxel (``np.interp``); float32 out.

    Beyond the first / last percentile the first / last segment is extended linearly, as
    TorchIO does (a zero-width end segment extends flat). An image whose first and last
    percentile coincide raises InputError naming ``path``."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    p = nyul_percentiles(data, mask, percentiles)
    if landmarks.shape != p.shape:
        raise InputError(path, "landmarks", f"{landmarks.size} values", f"one per percentile ({p.size})")
    if not p[-1] > p[0]:
        raise InputError(path, "nyul", f"percentiles {percentiles[0]:g} and {percentiles[-1]:g} are equal "
                         f"({p[0]:g})", "an image whose intensities vary in the mask")
    x = np.asarray(data, dtype=np.float64)
    out = np.interp(x, p, landmarks)

    def slope(i: int, j: int) -> float:
        return float((landmarks[j] - landmarks[i]) / (p[j] - p[i])) if p[j] > p[i] else 0.0

    below, above = x < p[0], x > p[-1]
    out[below] = landmarks[0] + slope(0, 1) * (x[below] - p[0])
    out[above] = landmarks[-1] + slope(-2, -1) * (x[above] - p[-1])
    return out.astype(np.float32)


# --------------------------------------------------------------------------------------------
# Whole scans and whole variants
# --------------------------------------------------------------------------------------------

Loader = Callable[[Path], nib.Nifti1Image]


def spatial_steps(img: nib.Nifti1Image, params: NormParams, path: str | Path | None = None) -> nib.Nifti1Image:
    """Canonical reorientation, then (as configured) resampling, crop/pad and N4."""
    data, affine = _spatial(_data(img), img.affine, params, path)
    return _new_image(data, affine, _coord_code(img))


def _spatial(data: np.ndarray, affine: np.ndarray, params: NormParams,
             path: str | Path | None) -> tuple[np.ndarray, np.ndarray]:
    """The spatial steps on arrays (the public step functions wrap the same helpers)."""
    data, affine = _canonical(data, affine)
    if params.spacing is not None:
        data, affine = _resample(data, affine, params.spacing)
    if params.shape is not None:
        data, affine = _crop_or_pad(data, affine, params.shape, foreground_mask(data, params.foreground, path), path)
    if params.n4:
        data = _n4(data, affine, foreground_mask(data, "otsu", path), None, (50, 50, 50), path)
    return data, affine


def normalize_image(img: nib.Nifti1Image, params: NormParams, landmarks: np.ndarray | None = None,
                    path: str | Path | None = None) -> nib.Nifti1Image:
    """One scan through every step; ``landmarks`` is required for ``intensity: nyul``."""
    data, affine = _spatial(_data(img), img.affine, params, path)
    if params.intensity == "zscore":
        mask = foreground_mask(data, params.foreground, path) if params.zscore_on == "foreground" else None
        data = zscore(data, mask, path)
    elif params.intensity == "nyul":
        if landmarks is None:
            raise InputError(path, "intensity", "nyul without landmarks", "landmarks fitted on the TRAIN scans")
        data = apply_nyul(data, foreground_mask(data, params.foreground, path), landmarks, params.percentiles, path)
    return _new_image(data, affine, _coord_code(img))


_UNSAFE = re.compile(r"[/\\\x00-\x1f]")


def read_manifest(manifest_json: str | Path) -> list[dict]:
    """The manifest's scans (``unit_id``, ``subject``, ``scan``, ``path``; paths resolved), checked:
    required fields, unique unit ids, scan names usable in a file name (no '/', '\\', control
    character or leading '.')."""
    manifest_json = Path(manifest_json)
    doc = _read_json(manifest_json)
    scans = doc.get("scans") if isinstance(doc, dict) else None
    if not isinstance(scans, list) or not scans:
        raise InputError(manifest_json, "scans", "missing or empty", "a non-empty list of scans")
    out, seen_units = [], set()
    for i, entry in enumerate(scans):
        where = f"scans[{i}]"
        if not isinstance(entry, dict):
            raise InputError(manifest_json, where, f"got {type(entry).__name__}", "an object")
        for key in ("unit_id", "subject", "scan", "path"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise InputError(manifest_json, f"{where}.{key}", "missing or not a string", "a non-empty string")
        if entry["unit_id"] in seen_units:
            raise InputError(manifest_json, f"{where}.unit_id", f"duplicate {entry['unit_id']!r}", "unique unit ids")
        if _UNSAFE.search(entry["scan"]) or entry["scan"].startswith("."):
            raise InputError(manifest_json, f"{where}.scan", f"{entry['scan']!r} is not usable in a file name",
                             "no '/', '\\', control character or leading '.'")
        seen_units.add(entry["unit_id"])
        out.append({**entry, "path": str(_resolve(entry["path"], manifest_json.parent))})
    return out


def output_names(scans: Sequence[dict]) -> dict[str, str]:
    """Output file of each unit: ``<scan>.nii.gz``; when two units share a scan name, every file
    is named from its unit id instead (``subject/session/scan`` with '/' as '__'), so the names
    stay unique and do not depend on the order of the manifest."""
    names = [s["scan"] for s in scans]
    if len(set(names)) == len(names):
        return {s["unit_id"]: f"{s['scan']}.nii.gz" for s in scans}
    by_unit = {s["unit_id"]: s["unit_id"].replace("/", "__") + ".nii.gz" for s in scans}
    if len(set(by_unit.values())) != len(by_unit):
        raise InputError(None, "scan", "scan names and unit ids both collide as file names",
                         "unique scan names or unit ids")
    return by_unit


def _resolve(path: str, base: Path) -> Path:
    """An absolute path as is; a relative one against the manifest's folder if it exists there,
    else against the working directory (where Snakemake runs)."""
    p = Path(path)
    if p.is_absolute():
        return p
    return base / p if (base / p).exists() else p


def _read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, "file", "not found", "a JSON file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(path, "json", f"not valid JSON ({exc})", "a JSON document") from None


def read_train_ids(split_json: str | Path, known: set[str]) -> list[str]:
    """Sorted TRAIN unit ids of a split file; each must be in the manifest and on no other side."""
    split_json = Path(split_json)
    split = _read_json(split_json)
    if not isinstance(split, dict) or not isinstance(split.get("train"), list) or not split["train"]:
        raise InputError(split_json, "train", "missing or empty", "a non-empty list of unit ids")
    train = split["train"]
    if not all(isinstance(u, str) for u in train):
        raise InputError(split_json, "train", "non-string entry", "unit id strings")
    if len(set(train)) != len(train):
        raise InputError(split_json, "train", "duplicate unit ids", "each unit once")
    others = {u for side in ("val", "test") for u in (split.get(side) or [])}
    both = sorted(set(train) & others)
    if both:
        raise InputError(split_json, "train", f"units also in val/test: {both[:5]}", "disjoint sides")
    missing = sorted(set(train) - known)
    if missing:
        raise InputError(split_json, "train", f"unit ids not in the manifest: {missing[:5]}", "manifest unit ids")
    return sorted(train)


def fit_nyul_landmarks(manifest_json: str | Path, split_json: str | Path, params: NormParams,
                       out_json: str | Path, loader: Loader | None = None, workers: int = 1) -> dict:
    """Fit Nyul landmarks on the TRAIN scans of ``split_json`` (after the spatial steps and on
    the ``foreground`` mask) and write them to ``out_json`` (atomically).

    Leakage rule: only ``split["train"]`` scans are read, so val / test scans cannot move the
    landmarks. Written: ``{"schema": "medrepro-loes-nyul-v1", "percentiles", "landmarks",
    "nyul_range", "fitted_on": sorted train unit ids, "n_images", "params"}``. ``workers``
    threads read and preprocess the scans (the result does not depend on it)."""
    loader = loader or load_nifti
    scans = {s["unit_id"]: s for s in read_manifest(manifest_json)}
    train = read_train_ids(split_json, set(scans))
    paths = [Path(scans[unit]["path"]) for unit in train]

    def percentiles_of(path: Path) -> np.ndarray:
        img = loader(path)
        data, _ = _spatial(_data(img), img.affine, params, path)
        return nyul_percentiles(data, foreground_mask(data, params.foreground, path), params.percentiles)

    table = _map(percentiles_of, paths, workers)
    landmarks = landmarks_from_percentiles(table, params.nyul_range, paths, params.percentiles)
    doc = {"schema": NYUL_SCHEMA, "percentiles": list(params.percentiles), "landmarks": landmarks.tolist(),
           "nyul_range": list(params.nyul_range), "fitted_on": train, "n_images": len(train),
           "params": params.record()}
    write_json(out_json, doc)
    return doc


def read_landmarks(landmarks_json: str | Path, params: NormParams) -> np.ndarray:
    """Landmarks of a :func:`fit_nyul_landmarks` file, checked against ``params`` (same
    percentiles, range and spatial steps as the variant being normalized)."""
    landmarks_json = Path(landmarks_json)
    doc = _read_json(landmarks_json)
    if not isinstance(doc, dict) or doc.get("schema") != NYUL_SCHEMA:
        raise InputError(landmarks_json, "schema", f"{doc.get('schema') if isinstance(doc, dict) else doc!r}",
                         NYUL_SCHEMA)
    fitted = doc.get("params") or {}
    mine = params.record()
    for key in _NYUL_FIT_KEYS:
        if fitted.get(key) != mine[key]:
            raise InputError(landmarks_json, f"params.{key}", f"fitted with {fitted.get(key)!r}",
                             f"{mine[key]!r} as in this variant")
    landmarks = np.asarray(doc.get("landmarks"), dtype=np.float64)
    if landmarks.shape != (len(params.percentiles),) or not np.isfinite(landmarks).all() or (
            np.diff(landmarks) < 0).any():
        raise InputError(landmarks_json, "landmarks", f"{doc.get('landmarks')!r}",
                         f"{len(params.percentiles)} finite non-decreasing values")
    return landmarks


def nifti_bytes(img: nib.Nifti1Image) -> bytes:
    """Deterministic .nii.gz bytes: the NIfTI bytes gzipped with mtime 0 (no timestamp, no name),
    at nibabel's default compression level 1 (fast; float data compresses little more at 9)."""
    return gzip.compress(img.to_bytes(), compresslevel=1, mtime=0)


def normalize_variant(manifest_json: str | Path, params: NormParams, out_dir: str | Path,
                      figure_png: str | Path | None, landmarks_json: str | Path | None = None,
                      loader: Loader | None = None, workers: int = 1) -> dict:
    """Every scan of the manifest through the steps of ``params``.

    Writes ``out_dir/<scan>.nii.gz`` (:func:`output_names`; float32, RAS affine, sform / qform codes set,
    deterministic gzip) and ``out_dir/index.json`` ``{"schema": "medrepro-loes-prep-v1",
    "params", "scans": {unit_id: {"file", "subject", "shape", "zooms", "orientation_in",
    "orientation_out", "mean", "std"}}, "landmarks_sha256" (nyul only), "n_scans"}``. The folder
    is built next to ``out_dir`` and renamed into place, so a failure leaves no partial output;
    the figure (:func:`write_figure`; none when ``figure_png`` is None) is written atomically
    after it. ``workers`` threads process the scans (the bytes written do not depend on it; the
    error raised is the one of the first failing scan in manifest order). Returns the index."""
    loader = loader or load_nifti
    out_dir = Path(out_dir)
    scans = read_manifest(manifest_json)
    landmarks = None
    index: dict[str, Any] = {"schema": PREP_SCHEMA, "params": params.record(), "n_scans": len(scans)}
    if params.intensity == "nyul":
        if landmarks_json is None:
            raise InputError(manifest_json, "intensity", "nyul without landmarks_json",
                             "the landmarks file fitted on the TRAIN scans")
        landmarks = read_landmarks(landmarks_json, params)
        index["landmarks_sha256"] = sha256_file(landmarks_json)
    examples = {s["unit_id"] for s in sorted(scans, key=lambda s: s["unit_id"])[:2]}
    names = output_names(scans)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))

    def one(s: dict) -> tuple[dict, tuple | None]:
        path = Path(s["path"])
        raw = loader(path)
        out = normalize_image(raw, params, landmarks, path)
        data = _data(out)
        name = names[s["unit_id"]]
        (tmp / name).write_bytes(nifti_bytes(out))
        entry = {
            "file": name, "subject": s["subject"], "shape": list(data.shape),
            "zooms": [round(float(z), 6) for z in _zooms(out.affine)],
            "orientation_in": orientation(raw.affine), "orientation_out": orientation(out.affine),
            "mean": float(data.mean(dtype=np.float64)), "std": float(data.std(dtype=np.float64)),
        }
        shown = None
        if figure_png is not None and s["unit_id"] in examples:
            shown = (s["unit_id"], to_canonical(raw), out)
        return entry, shown

    try:
        results = _map(one, scans, workers)
        entries = {s["unit_id"]: entry for s, (entry, _) in zip(scans, results)}
        shown = [example for _, example in results if example is not None]
        index["scans"] = entries
        write_json(tmp / "index.json", index)
        os.chmod(tmp, 0o777 & ~_umask())
        replace_dir(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    if figure_png is not None:
        write_figure(sorted(shown, key=lambda t: t[0]), params, figure_png)
    return index


def _map(fn: Callable, items: Sequence, workers: int) -> list:
    """``[fn(x) for x in items]``, on ``workers`` threads when more than one (order kept; the
    first failing item in order raises)."""
    if workers <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=int(workers)) as pool:
        return list(pool.map(fn, items))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# --------------------------------------------------------------------------------------------
# Figure
# --------------------------------------------------------------------------------------------

def describe(params: NormParams) -> str:
    """The variant's key values in one line (the figure's caption)."""
    parts = [f"spacing {'x'.join(f'{v:g}' for v in params.spacing)} mm" if params.spacing else "spacing as read",
             f"shape {'x'.join(map(str, params.shape))}" if params.shape else "shape as read",
             f"N4 {'on' if params.n4 else 'off'}"]
    if params.intensity == "zscore":
        parts.append(f"z-score over the {params.zscore_on}")
    elif params.intensity == "nyul":
        parts.append(f"Nyul to {params.nyul_range[0]:g}..{params.nyul_range[1]:g} at percentiles "
                     f"{','.join(f'{p:g}' for p in params.percentiles)}")
    else:
        parts.append("no intensity normalization")
    parts.append(f"foreground {params.foreground}")
    return "; ".join(parts)


def _slices(img: nib.Nifti1Image) -> list[tuple[str, np.ndarray, float]]:
    """Middle axial, coronal and sagittal slices of a RAS image (rows up = superior / anterior)
    with the aspect ratio of their voxels."""
    d = _data(img)
    zx, zy, zz = _zooms(img.affine)
    cx, cy, cz = (s // 2 for s in d.shape)
    return [("axial", d[:, :, cz].T, zy / zx), ("coronal", d[:, cy, :].T, zz / zx),
            ("sagittal", d[cx, :, :].T, zz / zy)]


def write_figure(examples: Sequence[tuple[str, nib.Nifti1Image, nib.Nifti1Image]], params: NormParams,
                 figure_png: str | Path) -> None:
    """Before (as read, canonical orientation only) / after views of one or two scans: middle
    axial, coronal and sagittal slices and foreground intensity histograms; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = max(1, 2 * len(examples))
    fig, axes = plt.subplots(rows, 4, figsize=(13, 3.0 * rows + 0.6), squeeze=False)
    for e, (unit, before, after) in enumerate(examples):
        for r, (label, img) in enumerate((("before", before), ("after", after))):
            row = axes[2 * e + r]
            for ax, (view, sl, aspect) in zip(row[:3], _slices(img)):
                ax.imshow(sl, cmap="gray", origin="lower", aspect=aspect, interpolation="nearest")
                ax.set_title(f"{unit} {label}: {view}", fontsize=8)
                ax.axis("off")
            d = _data(img)
            try:
                values = d[foreground_mask(d, params.foreground)]
            except InputError:
                values = d.ravel()
            row[3].hist(values, bins=64, histtype="stepfilled", color="tab:blue" if r == 0 else "tab:orange")
            row[3].set_title(f"{label}: {params.foreground} foreground histogram", fontsize=8)
            row[3].tick_params(labelsize=7)
    fig.suptitle("MRI normalization: " + describe(params), fontsize=9)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.04, top=1 - 0.5 / fig.get_figheight(), wspace=0.15,
                        hspace=0.3)
    with atomic_path(figure_png) as tmp:
        fig.savefig(tmp, format="png", dpi=80, metadata={"Software": None})
    plt.close(fig)


__all__ = [
    "MEANING", "MissingExtra", "NormParams", "apply_nyul", "bounding_box", "crop_or_pad", "describe", "fit_nyul",
    "fit_nyul_landmarks", "foreground_mask", "landmarks_from_percentiles", "load_nifti", "n4_correct",
    "nifti_bytes", "normalize_image", "normalize_variant", "nyul_percentiles", "orientation", "output_names",
    "read_landmarks", "read_manifest", "read_train_ids", "resample", "spatial_steps", "to_canonical",
    "write_figure", "zscore",
]
