"""Loes cohort readers: the lab's scan CSV, its NIfTI volumes, and a cohort manifest.

Real layout (the public Loes-scoring code of the lab):

- a CSV, one row per scan, columns ``anonymized_subject_id, anonymized_session_id, scan,
  loes-score, Gd-enhanced`` and optionally ``training`` / ``validation`` (0/1) that fix the split;
- one NIfTI volume per scan in an image folder, named by a pattern
  (default ``{subject}_{session}_space-MNI_brain_mprage_RAVEL.nii.gz``).

Every problem raises :class:`InputError` naming the file, the row as the user sees it in the file
(the header is line 1) and the column. NIfTI headers are checked (3D, no empty dimension, a
voxel budget) before any voxel data is read, so a header that claims a huge volume is refused
without allocating it.
"""

from __future__ import annotations

import gzip
import json
import math
import zlib
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from medrepro.csvrows import read_csv_rows
from medrepro.errors import InputError
from medrepro.fsutil import sha256_file, write_json

COLUMNS = ("anonymized_subject_id", "anonymized_session_id", "scan", "loes-score", "Gd-enhanced")
SPLIT_COLUMNS = ("training", "validation")
DEFAULT_PATTERN = "{subject}_{session}_space-MNI_brain_mprage_RAVEL.nii.gz"
MANIFEST_SCHEMA = "medrepro-loes-manifest-v1"
SCORE_MIN, SCORE_MAX = 0.0, 34.0
MAX_VOXELS = 512**3
COHORT_COLUMNS = ("subject", "session", "scan", "score", "gd", "training", "validation", "path", "unit_id")

# What nibabel and the gzip/zlib layers raise on a file that is not a readable NIfTI.
_READ_ERRORS = (OSError, EOFError, zlib.error, gzip.BadGzipFile, ValueError, nib.filebasedimages.ImageFileError,
                nib.spatialimages.HeaderDataError)


# ---------------------------------------------------------------------------------------------
# Volumes


def load_volume(path: str | Path, max_voxels: int = MAX_VOXELS) -> nib.Nifti1Image:
    """Read one NIfTI volume eagerly as float32, after checking its header.

    The header must describe a 3D volume (a 4D one with a trailing size 1 is still 4D and is
    refused: the caller would otherwise silently drop a dimension), with no zero-size dimension,
    a numeric data type, at most ``max_voxels`` voxels, and a finite invertible affine. Only then
    is the data read (through nibabel's array proxy, scaling applied) and checked for NaN / inf.
    Returns a new :class:`nibabel.Nifti1Image` holding the float32 array, the file's affine and
    a copy of its header.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file", "not found", "a NIfTI file (.nii or .nii.gz)")
    try:
        img = nib.load(path)
        header = img.header
        shape = tuple(int(n) for n in header.get_data_shape())
        dtype = np.dtype(header.get_data_dtype())
    except _READ_ERRORS as exc:
        raise InputError(path, "file", f"not a readable NIfTI file ({type(exc).__name__}: {exc})",
                         "a NIfTI-1/2 file (.nii or .nii.gz)") from None
    if not isinstance(img, nib.Nifti1Image):  # Nifti2Image is a subclass
        raise InputError(path, "file", f"a {type(img).__name__}, not NIfTI", "a NIfTI-1/2 file (.nii or .nii.gz)")
    if len(shape) != 3:
        raise InputError(path, "header: dim", f"{len(shape)}D volume of shape {shape}", "a 3D volume")
    if min(shape) < 1:
        raise InputError(path, "header: dim", f"empty volume of shape {shape} (a zero-size dimension)",
                         "a 3D volume with every dimension >= 1")
    n_voxels = math.prod(shape)
    if n_voxels > max_voxels:
        raise InputError(path, "header: dim", f"shape {shape} holds {n_voxels} voxels",
                         f"at most {max_voxels} voxels")
    if dtype.kind not in "biuf":
        raise InputError(path, "header: datatype", f"data type {dtype}", "an integer or real data type")
    affine = img.affine
    if affine is None or not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise InputError(path, "header: affine", f"affine {None if affine is None else affine.tolist()}",
                         "a finite, invertible voxel-to-world affine")
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            data = np.asarray(img.dataobj, dtype=np.float32)
    except _READ_ERRORS as exc:
        raise InputError(path, "data", f"voxel data not readable ({type(exc).__name__}: {exc})",
                         f"{n_voxels} voxels of type {dtype} after the header") from None
    bad = ~np.isfinite(data)
    if bad.any():
        n_nan = int(np.isnan(data).sum())
        raise InputError(path, "data", f"{n_nan} NaN and {int(bad.sum()) - n_nan} infinite voxels",
                         "finite voxel values (float32)")
    out_header = header.copy()
    out_header.set_data_dtype(np.float32)
    return nib.Nifti1Image(data, affine, out_header)


def volume_array(img: nib.spatialimages.SpatialImage) -> np.ndarray:
    """The voxel array of ``img`` as float32 (no copy when it already is)."""
    return np.asarray(img.dataobj, dtype=np.float32)


def orientation(affine: np.ndarray) -> str:
    """Axis codes of an affine as one string, e.g. ``"RAS"`` or ``"LPS"``."""
    return "".join(nib.aff2axcodes(affine))


# ---------------------------------------------------------------------------------------------
# Cohort CSV


def _ident(value: str, csv_path: Path, line: int, column: str) -> str:
    if not value or value in (".", "..") or "/" in value or "\\" in value:
        raise InputError(csv_path, f"row {line}: {column}", f"{value!r} is not a usable id",
                         "a non-empty id without '/' or '\\'")
    return value


def _score(value: str, csv_path: Path, line: int) -> float:
    field = f"row {line}: loes-score"
    try:
        score = float(value)
    except ValueError:
        raise InputError(csv_path, field, f"{value!r} is not a number",
                         f"a number in [{SCORE_MIN:g}, {SCORE_MAX:g}] in steps of 0.5") from None
    if not math.isfinite(score) or not SCORE_MIN <= score <= SCORE_MAX:
        raise InputError(csv_path, field, f"{value!r} is outside [{SCORE_MIN:g}, {SCORE_MAX:g}]",
                         f"a Loes score in [{SCORE_MIN:g}, {SCORE_MAX:g}]")
    if score * 2 != round(score * 2):
        raise InputError(csv_path, field, f"{value!r} is not a multiple of 0.5",
                         "a Loes score in steps of 0.5 (half points)")
    return score


def _binary(value: str, csv_path: Path, line: int, column: str) -> int:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if number not in (0.0, 1.0):
        raise InputError(csv_path, f"row {line}: {column}", f"{value!r} is not 0 or 1", "0 or 1")
    return int(number)


def _read_rows(csv_path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (line number, cells) of each non-blank row, with the line the row starts on."""
    header, body = read_csv_rows(csv_path, COLUMNS, "one row per scan",
                                 f"columns {', '.join(COLUMNS)} (optionally {', '.join(SPLIT_COLUMNS)})")
    if not body:
        raise InputError(csv_path, "row 2", "no scans (the file has only a header)", "one row per scan")
    return header, body


def read_cohort(csv_path: str | Path, image_dir: str | Path, pattern: str = DEFAULT_PATTERN,
                check_images: bool = True) -> pd.DataFrame:
    """Read the scan CSV and locate each scan's NIfTI volume; every row is validated.

    Returns one row per scan, in file order, with columns ``subject, session, scan`` (str),
    ``score`` (float), ``gd`` (int 0/1), ``training, validation`` (pandas Int64; NA when the CSV
    has no such column), ``path`` (str: ``image_dir / pattern``, the pattern formatted with
    ``subject``, ``session`` and ``scan``) and ``unit_id`` (``"subject/session/scan"``).

    Each volume must exist; with ``check_images`` each is also read with :func:`load_volume`
    (3D, non-empty, finite), which costs a full read of every volume.
    """
    csv_path, image_dir = Path(csv_path), Path(image_dir)
    header, body = _read_rows(csv_path)
    col = {name: header.index(name) for name in header}
    split_cols = [c for c in SPLIT_COLUMNS if c in col]
    records: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for line, cells in body:
        subject = _ident(cells[col["anonymized_subject_id"]], csv_path, line, "anonymized_subject_id")
        session = _ident(cells[col["anonymized_session_id"]], csv_path, line, "anonymized_session_id")
        scan = _ident(cells[col["scan"]], csv_path, line, "scan")
        unit_id = f"{subject}/{session}/{scan}"
        if unit_id in seen:
            raise InputError(csv_path, f"rows {seen[unit_id]} and {line}: scan",
                             f"scan {unit_id} (subject/session/scan) listed twice", "each scan once")
        seen[unit_id] = line
        record = {
            "subject": subject, "session": session, "scan": scan,
            "score": _score(cells[col["loes-score"]], csv_path, line),
            "gd": _binary(cells[col["Gd-enhanced"]], csv_path, line, "Gd-enhanced"),
        }
        for c in SPLIT_COLUMNS:
            record[c] = _binary(cells[col[c]], csv_path, line, c) if c in split_cols else pd.NA
        try:
            name = pattern.format(subject=subject, session=session, scan=scan)
        except (KeyError, IndexError, ValueError) as exc:
            raise InputError(csv_path, "pattern", f"{pattern!r} cannot be formatted ({exc!r})",
                             "a pattern using only {subject}, {session} and {scan}") from None
        path = image_dir / name
        if not path.is_file():
            raise InputError(csv_path, f"row {line}: image", f"{path} not found",
                             f"a NIfTI file {pattern} in {image_dir}")
        if check_images:
            try:
                load_volume(path)
            except InputError as exc:
                raise InputError(csv_path, f"row {line}: image {path}: {exc.field}", exc.problem,
                                 exc.expected) from None
        record["path"] = str(path)
        record["unit_id"] = unit_id
        records.append(record)
    cohort = pd.DataFrame.from_records(records, columns=list(COHORT_COLUMNS))
    for c in ("subject", "session", "scan", "path", "unit_id"):
        cohort[c] = cohort[c].astype(str)
    cohort["score"] = cohort["score"].astype(float)
    cohort["gd"] = cohort["gd"].astype(int)
    for c in SPLIT_COLUMNS:
        cohort[c] = cohort[c].astype("Int64")
    return cohort


# ---------------------------------------------------------------------------------------------
# Manifest


def _na_to_none(value: Any) -> int | None:
    return None if pd.isna(value) else int(value)


def write_manifest(cohort: pd.DataFrame, out_json: str | Path, hash_files: bool = True) -> dict:
    """Write the cohort's manifest (JSON, atomically) and return it.

    ``{"schema": "medrepro-loes-manifest-v1", "n_scans", "n_subjects", "scans": [...]}`` with one
    entry per scan, sorted by ``unit_id``: the CSV fields, the volume's path and sha256 (None
    when ``hash_files`` is false), and from its header (no voxel data read) the shape, voxel
    sizes (zooms) and orientation codes such as ``"RAS"``.
    """
    scans = []
    for row in cohort.sort_values("unit_id", kind="stable").itertuples(index=False):
        path = Path(row.path)
        try:
            img = nib.load(path)
            shape = [int(n) for n in img.header.get_data_shape()]
            zooms = [float(z) for z in img.header.get_zooms()[:3]]
            axcodes = orientation(img.affine)
        except _READ_ERRORS as exc:
            raise InputError(path, "header", f"not readable ({type(exc).__name__}: {exc})", "a NIfTI file") from None
        scans.append({
            "unit_id": row.unit_id, "subject": row.subject, "session": row.session, "scan": row.scan,
            "score": float(row.score), "gd": int(row.gd),
            "training": _na_to_none(row.training), "validation": _na_to_none(row.validation),
            "path": str(path), "sha256": sha256_file(path) if hash_files else None,
            "shape": shape, "zooms": zooms, "orientation": axcodes,
        })
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "n_scans": len(scans),
        "n_subjects": int(cohort["subject"].nunique()),
        "scans": scans,
    }
    write_json(out_json, manifest)
    return manifest


def read_manifest(path: str | Path) -> dict:
    """Read a manifest written by :func:`write_manifest`; refuse another schema or a bad shape."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, "file", "not found", "a loes manifest JSON") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(path, "file", f"not valid JSON ({exc})", "a loes manifest JSON") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != MANIFEST_SCHEMA:
        got = manifest.get("schema") if isinstance(manifest, dict) else type(manifest).__name__
        raise InputError(path, "schema", f"got {got!r}", repr(MANIFEST_SCHEMA))
    scans = manifest.get("scans")
    if not isinstance(scans, list) or manifest.get("n_scans") != len(scans):
        raise InputError(path, "scans", "missing, or not n_scans entries", "a list of n_scans scan entries")
    return manifest
