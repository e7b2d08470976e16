"""Synthetic Loes cohort: brain-like T1 phantoms with planted ALD lesions, in the real layout.

Each subject has an ellipsoidal brain (outer CSF, a folded cortex, white matter, lateral
ventricles, thalami and basal ganglia) with a slight per-subject scaling and shift. Inside the
white matter sit seven regions that stand for the Loes scale's regions; each has a maximum number
of points and the maxima add up to 34. A scan's score is spread over the regions in the order of
the typical posterior pattern (splenium, parieto-occipital white matter, visual and auditory
pathways, internal capsule, then genu and frontal white matter; a fifth of the subjects follow
the frontal pattern instead), and each region's lesioned fraction equals its points over its
maximum. A lesion grows from the region's centre along a smooth subject-specific order, so the
lesions of one subject's later sessions contain the earlier ones. Lesions are T1-hypointense;
Gd-enhanced scans add a bright rim at the lesion's leading edge.

Scans differ in voxel spacing (one of ``spacings``, same voxel grid shape), in orientation on
disk (a share is stored as LPS, PIR, ...: data and affine both reoriented so world coordinates
are unchanged and ``nibabel.as_closest_canonical`` gives back the RAS array), and carry a smooth
multiplicative bias field and Gaussian noise inside the brain (background stays 0, as in the
skull-stripped real data).

Same seed -> byte-identical files. Random streams are keyed by (purpose, subject, session), so
changing ``non_ras_fraction`` changes only the orientation of the scans, not their content.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from scipy import ndimage

from medrepro.errors import InputError
from medrepro.fsutil import replace_dir, write_json
from medrepro.studies.loes.data import COLUMNS, DEFAULT_PATTERN, SPLIT_COLUMNS

CSV_NAME = "loes.csv"
IMAGE_DIR = "images"
SUMMARY = "synthetic_loes.json"
SUMMARY_SCHEMA = "medrepro-synthetic-loes-v1"

# T1-like intensities.
WM, GM, CSF, LESION, GD_RIM = 1.0, 0.65, 0.25, 0.45, 1.3
# Brain semi-axes as a share of the smallest field of view along each axis (shape x spacing).
BRAIN_FILL = 0.42
NON_RAS = ("LPS", "PIR", "LAS", "RPI", "ASL")
GZIP_LEVEL = 6

# Loes regions as ellipsoids (centre, semi-axes) in unit-brain coordinates
# x: left -> right, y: posterior -> anterior, z: inferior -> superior). Bilateral regions list
# the right side; the left one is its mirror. Points add up to 34.
Vec = tuple[float, float, float]
REGIONS: tuple[tuple[str, float, Vec, Vec, bool], ...] = (  # name, max points, centre, semi-axes, mirrored
    ("splenium", 3.0, (0.0, -0.42, 0.10), (0.24, 0.11, 0.11), False),
    ("parieto_occipital_wm", 8.0, (0.34, -0.50, 0.16), (0.26, 0.26, 0.30), True),
    ("visual_pathway", 4.0, (0.30, -0.28, -0.12), (0.10, 0.24, 0.10), True),
    ("auditory_pathway", 4.0, (0.46, -0.05, -0.18), (0.12, 0.12, 0.10), True),
    ("internal_capsule", 4.0, (0.22, 0.05, 0.02), (0.08, 0.22, 0.16), True),
    ("genu", 3.0, (0.0, 0.42, 0.10), (0.24, 0.11, 0.11), False),
    ("frontal_wm", 8.0, (0.34, 0.50, 0.16), (0.26, 0.26, 0.30), True),
)
POSTERIOR_ORDER = tuple(range(len(REGIONS)))
FRONTAL_ORDER = (5, 6, 4, 0, 1, 2, 3)
FRONTAL_SHARE = 0.2
MAX_SCORE = sum(r[1] for r in REGIONS)
assert MAX_SCORE == 34.0

# Deep structures, (centre, semi-axes), mirrored in x.
VENTRICLE = ((0.13, 0.0, 0.14), (0.09, 0.36, 0.10))
THALAMUS = ((0.11, -0.12, -0.04), (0.10, 0.13, 0.10))
PUTAMEN = ((0.32, 0.16, 0.0), (0.07, 0.18, 0.12))

# Random streams, one per purpose (see _rng).
_S_SESSIONS, _S_SCORES, _S_ANATOMY, _S_SPLIT, _S_SCAN, _S_NOISE, _S_ORIENT, _S_GD = range(8)


@dataclass(frozen=True)
class SyntheticLoesParams:
    """Knobs of the synthetic cohort; the defaults give ~120 scans in a few seconds."""

    seed: int = 0
    n_subjects: int = 60
    sessions_min: int = 1
    sessions_max: int = 3
    shape: tuple[int, int, int] = (40, 48, 40)  # voxels of every scan
    spacings: tuple[tuple[float, float, float], ...] = ((4.0, 4.0, 4.0), (3.5, 3.5, 4.5), (4.5, 4.0, 3.5))
    non_ras_fraction: float = 0.3  # share of scans stored in another orientation
    bias_strength: float = 0.3  # bias field in [1 - s, 1 + s]
    noise: float = 0.03  # std of the Gaussian noise inside the brain
    split_columns: bool = True  # write training / validation columns, ~80/20 by subject
    gd_fraction: float = 0.2  # share of Gd-enhanced scans

    def __post_init__(self) -> None:
        def bad(field: str, expected: str) -> InputError:
            return InputError(None, field, f"got {getattr(self, field)!r}", expected)

        for field in ("seed", "n_subjects", "sessions_min", "sessions_max"):
            if not isinstance(getattr(self, field), int) or isinstance(getattr(self, field), bool):
                raise bad(field, "an integer")
        if self.seed < 0:
            raise bad("seed", "an integer >= 0")
        if not 1 <= self.n_subjects <= 999:
            raise bad("n_subjects", "an integer in [1, 999] (ids sub-001 .. sub-999)")
        if not 1 <= self.sessions_min <= self.sessions_max <= 99:
            raise bad("sessions_max", "1 <= sessions_min <= sessions_max <= 99")
        if len(self.shape) != 3 or not all(isinstance(n, int) and 8 <= n <= 256 for n in self.shape):
            raise bad("shape", "three integers in [8, 256]")
        if not self.spacings or not all(
            len(s) == 3 and all(isinstance(v, (int, float)) and math.isfinite(v) and 0.1 <= v <= 20 for v in s)
            for s in self.spacings
        ):
            raise bad("spacings", "a non-empty list of (x, y, z) voxel sizes in mm, each in [0.1, 20]")
        for field in ("non_ras_fraction", "gd_fraction"):
            if not 0.0 <= getattr(self, field) <= 1.0:
                raise bad(field, "a number in [0, 1]")
        if not 0.0 <= self.bias_strength < 0.9:
            raise bad("bias_strength", "a number in [0, 0.9)")
        if not 0.0 <= self.noise <= 1.0:
            raise bad("noise", "a number in [0, 1]")
        if not isinstance(self.split_columns, bool):
            raise bad("split_columns", "true or false")

    @classmethod
    def from_dict(cls, d: dict | None, source: str = "config") -> "SyntheticLoesParams":
        """Build from a config mapping (lists for ``shape`` and ``spacings`` are fine); an unknown
        key or a bad value raises InputError naming ``source``."""
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        for key in d:
            if key not in known:
                raise InputError(source, str(key), "unknown key", f"one of {sorted(known)}")
        try:
            if "shape" in d:
                d["shape"] = tuple(d["shape"])
            if "spacings" in d:
                d["spacings"] = tuple(tuple(float(v) for v in s) for s in d["spacings"])
            return cls(**d)
        except TypeError as exc:
            raise InputError(source, "synthetic", f"bad value ({exc})", "values of the documented types") from None
        except InputError as exc:
            raise InputError(source, exc.field, exc.problem, exc.expected) from None


def _rng(params: SyntheticLoesParams, purpose: int, *key: int) -> np.random.Generator:
    """An independent stream for (purpose, subject, session, ...)."""
    return np.random.default_rng(np.random.SeedSequence(params.seed, spawn_key=(purpose, *key)))


# ---------------------------------------------------------------------------------------------
# Cohort design: sessions, scores, split


def _subject_scores(params: SyntheticLoesParams, subject: int) -> list[float]:
    """Non-decreasing half-point scores of one subject's sessions, skewed towards low values."""
    rng = _rng(params, _S_SESSIONS, subject)
    n_sessions = int(rng.integers(params.sessions_min, params.sessions_max + 1))
    rng = _rng(params, _S_SCORES, subject)
    kind = rng.random()  # no lesion yet / early disease / advanced disease at the first scan
    base = 0.0 if kind < 0.3 else rng.exponential(4.0) if kind < 0.85 else rng.uniform(10.0, 30.0)
    scores, current = [], base
    for _ in range(n_sessions):
        scores.append(min(MAX_SCORE, round(current * 2) / 2))
        current += 0.0 if rng.random() < 0.4 else rng.exponential(3.0)
    return scores


def _validation_subjects(params: SyntheticLoesParams) -> set[int]:
    """About a fifth of the subjects, drawn once: every session of a subject on one side."""
    n_val = round(0.2 * params.n_subjects) if params.n_subjects >= 2 else 0
    order = _rng(params, _S_SPLIT).permutation(params.n_subjects)
    return {int(i) for i in order[:n_val]}


# ---------------------------------------------------------------------------------------------
# Phantom


@dataclass(frozen=True)
class _Anatomy:
    scale: np.ndarray  # (3,) per-axis brain scaling
    shift: np.ndarray  # (3,) mm
    gyri: np.ndarray  # (3,) phases of the cortical folding
    growth: np.ndarray  # (10,) coefficients of the lesion-growth order field
    frontal: bool  # follows the frontal pattern


def _anatomy(params: SyntheticLoesParams, subject: int) -> _Anatomy:
    rng = _rng(params, _S_ANATOMY, subject)
    return _Anatomy(
        scale=np.clip(rng.normal(1.0, 0.03, 3), 0.94, 1.06),
        shift=np.clip(rng.normal(0.0, 2.0, 3), -4.0, 4.0),
        gyri=rng.uniform(0, 2 * np.pi, 3),
        growth=rng.normal(0.0, 1.0, 10),
        frontal=bool(rng.random() < FRONTAL_SHARE),
    )


def _monomials(u: np.ndarray) -> np.ndarray:
    """(10, N) monomials of degree <= 2 (without the constant) plus one cross term, of u (3, N)."""
    x, y, z = u
    return np.stack([x, y, z, x * y, x * z, y * z, x * x, y * y, z * z, x * y * z])


def _ellipsoid(u: np.ndarray, centre, semi) -> np.ndarray:
    """Normalised squared radius of the points u (3, N) in the ellipsoid (centre, semi-axes)."""
    return (((u[0] - centre[0]) / semi[0]) ** 2 + ((u[1] - centre[1]) / semi[1]) ** 2
            + ((u[2] - centre[2]) / semi[2]) ** 2)


def _bilateral(u: np.ndarray, centre, semi, mirrored: bool) -> np.ndarray:
    r2 = _ellipsoid(u, centre, semi)
    if mirrored:
        r2 = np.minimum(r2, _ellipsoid(u, (-centre[0], centre[1], centre[2]), semi))
    return r2


def _region_points(score: float, frontal: bool) -> np.ndarray:
    """Points of each region (REGIONS order): the score filled region by region in pattern order."""
    points = np.zeros(len(REGIONS))
    left = score
    for i in FRONTAL_ORDER if frontal else POSTERIOR_ORDER:
        points[i] = min(left, REGIONS[i][1])
        left -= points[i]
    return points


def _phantom(params: SyntheticLoesParams, anatomy: _Anatomy, score: float, gd: bool, spacing,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One scan in RAS voxel order: (float32 image, RAS affine).

    Tissue, lesions, bias and noise are computed on the brain's voxels only (a fifth of the grid).
    """
    shape = np.array(params.shape)
    spacing = np.asarray(spacing, dtype=np.float64)
    min_spacing = np.min(np.asarray(params.spacings, dtype=np.float64), axis=0)
    semi_mm = BRAIN_FILL * shape * min_spacing * anatomy.scale  # same brain size in mm in every scan

    origin = -spacing * (shape - 1) / 2
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = origin
    # Unit-brain coordinates of the voxel centres along each axis, then of the brain's voxels.
    axes = [(origin[a] + spacing[a] * np.arange(shape[a]) - anatomy.shift[a]) / semi_mm[a] for a in range(3)]
    r2_grid = axes[0][:, None, None] ** 2 + axes[1][None, :, None] ** 2 + axes[2][None, None, :] ** 2
    brain = np.flatnonzero(r2_grid <= 1.0)
    ijk = np.unravel_index(brain, params.shape)
    u = np.stack([axes[a][ijk[a]] for a in range(3)])  # (3, N)
    r = np.sqrt(r2_grid.ravel()[brain])

    x, y, z = u
    folds = np.sin(7 * x + anatomy.gyri[0]) * np.sin(6 * y + anatomy.gyri[1]) * np.sin(5 * z + anatomy.gyri[2])
    tissue = np.full(brain.size, CSF)
    tissue[r <= 0.94] = GM
    wm = r <= 0.80 + 0.06 * folds  # folded grey/white boundary
    tissue[wm] = WM
    for centre, semi in (THALAMUS, PUTAMEN):
        deep = _bilateral(u, centre, semi, True) <= 1
        tissue[deep & wm] = GM
        wm &= ~deep
    ventricles = _bilateral(u, *VENTRICLE, True) <= 1
    tissue[ventricles] = CSF
    wm &= ~ventricles

    # Lesions: each region's lesioned fraction follows its points; lesions grow from the region's
    # centre outwards along a subject-specific smooth order (so a later session contains the earlier).
    monomials = _monomials(u)
    points = _region_points(score, anatomy.frontal)
    order_field = 0.15 * (anatomy.growth @ monomials)
    lesion = np.zeros(brain.size, dtype=bool)
    taken = np.zeros(brain.size, dtype=bool)
    for (_, max_points, centre, semi, mirrored), pts in zip(REGIONS, points):
        r2 = _bilateral(u, centre, semi, mirrored)
        region = np.flatnonzero(wm & (r2 <= 1) & ~taken)
        taken[region] = True
        n_lesion = round(pts / max_points * region.size)
        if n_lesion:
            key = np.sqrt(r2[region]) + order_field[region]
            lesion[region[np.argsort(key, kind="stable")[:n_lesion]]] = True
    tissue[lesion] = LESION

    image = np.zeros(params.shape)
    image.ravel()[brain] = tissue
    if gd and lesion.any():
        lesion_grid = np.zeros(params.shape, dtype=bool)
        lesion_grid.ravel()[brain[lesion]] = True
        wm_grid = np.zeros(params.shape, dtype=bool)
        wm_grid.ravel()[brain[wm]] = True
        image[ndimage.binary_dilation(lesion_grid) & wm_grid & ~lesion_grid] = GD_RIM

    # Smooth multiplicative bias field in [1 - s, 1 + s] over the brain, then noise in the brain.
    values = image.ravel()[brain]
    field = rng.normal(0.0, 1.0, monomials.shape[0]) @ monomials
    peak = np.abs(field).max() if brain.size else 0.0
    if peak > 0:
        values *= 1.0 + params.bias_strength * field / peak
    values += rng.normal(0.0, params.noise, brain.size)
    image.ravel()[brain] = values
    return image.astype(np.float32), affine


def _nifti_bytes(image: np.ndarray, affine: np.ndarray, axcodes: str) -> bytes:
    """Gzipped NIfTI-1 bytes (mtime 0, so deterministic), stored in the orientation ``axcodes``."""
    img = nib.Nifti1Image(image, affine)
    if axcodes != "RAS":
        transform = nib.orientations.ornt_transform(nib.orientations.axcodes2ornt("RAS"),
                                                    nib.orientations.axcodes2ornt(tuple(axcodes)))
        img = img.as_reoriented(transform)
    header = img.header
    header.set_xyzt_units("mm")
    header.set_data_dtype(np.float32)
    img.set_sform(img.affine, code="aligned")
    img.set_qform(img.affine, code="aligned")
    header["descrip"] = b"medrepro synthetic loes"
    return gzip.compress(img.to_bytes(), compresslevel=GZIP_LEVEL, mtime=0)


# ---------------------------------------------------------------------------------------------
# Writing


def _check_target(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(out_dir, "out_dir", "exists and is not a folder", "a folder path")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / SUMMARY).is_file():
        raise InputError(out_dir, "out_dir", "holds files not written by this generator",
                         f"an empty or missing folder, or one written by synthesize (with {SUMMARY})")


def synthesize(out_dir: str | Path, params: SyntheticLoesParams = SyntheticLoesParams()) -> dict:
    """Write a synthetic cohort in the real layout; return its summary.

    Writes ``out_dir/loes.csv`` (COLUMNS, plus SPLIT_COLUMNS when ``params.split_columns``),
    ``out_dir/images/<DEFAULT_PATTERN>`` (gzipped float32 NIfTI-1) and ``out_dir/synthetic_loes.json``
    (the summary, which also marks the folder as generated). Everything is written into a
    temporary folder beside ``out_dir`` and renamed into place at the end, so a failure leaves
    ``out_dir`` as it was. An existing ``out_dir`` is replaced only if it is empty or was written
    by this function, so real data is never overwritten.
    """
    out_dir = Path(out_dir)
    _check_target(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    validation = _validation_subjects(params)

    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        (tmp / IMAGE_DIR).mkdir()
        rows, orientations, spacings, scores = [], Counter(), Counter(), []
        for s in range(params.n_subjects):
            subject = f"sub-{s + 1:03d}"
            anatomy = _anatomy(params, s)
            for t, score in enumerate(_subject_scores(params, s)):
                session = f"ses-{t + 1:02d}"
                gd = bool(_rng(params, _S_GD, s, t).random() < params.gd_fraction)
                pick = _rng(params, _S_SCAN, s, t)
                spacing = params.spacings[int(pick.integers(len(params.spacings)))]
                orient = _rng(params, _S_ORIENT, s, t)
                stored = "RAS"
                if orient.random() < params.non_ras_fraction:
                    stored = NON_RAS[int(orient.integers(len(NON_RAS)))]
                image, affine = _phantom(params, anatomy, score, gd, spacing, _rng(params, _S_NOISE, s, t))
                name = DEFAULT_PATTERN.format(subject=subject, session=session, scan=f"{subject}_{session}")
                (tmp / IMAGE_DIR / name).write_bytes(_nifti_bytes(image, affine, stored))
                row = [subject, session, f"{subject}_{session}", f"{score:g}", str(int(gd))]
                if params.split_columns:
                    val = int(s in validation)
                    row += [str(1 - val), str(val)]
                rows.append(row)
                orientations[stored] += 1
                spacings["x".join(f"{v:g}" for v in spacing)] += 1
                scores.append(score)

        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(list(COLUMNS) + (list(SPLIT_COLUMNS) if params.split_columns else []))
        writer.writerows(rows)
        (tmp / CSV_NAME).write_text(text.getvalue(), encoding="utf-8")

        summary: dict[str, Any] = {
            "schema": SUMMARY_SCHEMA,
            "params": asdict(params),
            "n_subjects": params.n_subjects,
            "n_scans": len(rows),
            "score_histogram": {f"{k:g}": v for k, v in sorted(Counter(scores).items())},
            "orientations": dict(sorted(orientations.items())),
            "spacings": dict(sorted(spacings.items())),
            "n_gd": sum(int(r[4]) for r in rows),
            "n_validation_subjects": len(validation) if params.split_columns else None,
            "regions": {name: pts for name, pts, *_ in REGIONS},
        }
        write_json(tmp / SUMMARY, summary)

        replace_dir(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary
