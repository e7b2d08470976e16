"""PAV, the Postural Asymmetry Vector of DRF: 8 left/right pairs x 3 asymmetry measures.

The DRF paper does not publish its equations; this follows a public re-implementation:

- per frame, keypoints are normalised to a height of 128 (the y-extent of the frame's observed
  keypoints) with the mid-hip (COCO 11, 12) at the origin; for each pair (left, right):
  ``|dy|`` (height difference), ``|x of the pair's midpoint|`` (distance from the midline
  through the mid-hip) and the tilt ``|atan2(dy, dx)|``, with ``dx = x_left - x_right`` and
  ``dy = y_left - y_right`` (image coordinates, y down);
- per sequence, for each pair and measure, the mean over frames after dropping values outside
  ``[Q1 - 1.5 IQR, Q3 + 1.5 IQR]`` (quartiles by numpy's default linear interpolation, NaN
  ignored); a pair never seen in any frame gives 0.0;
- min-max scaling with statistics fitted on the TRAIN ids only, clipped to [0, 1].

Tilt. The literal ``|atan2(dy, dx)|`` depends on which way the person faces: a level pair gives
0 when the left joint is on the image's right (facing the camera) and pi when it is on the
image's left (seen from behind). ``tilt="horizontal"`` uses ``atan2(|dy|, |dx|)``, the angle of
the pair's line from the horizontal in [0, pi/2], the same either way. The default stays the
re-implementation's ``"atan2"``; the choice is recorded in the stats file.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np

from medrepro.errors import InputError
from medrepro.fsutil import atomic_path, sha256_file, write_json
from medrepro.studies.scoliosis import data as scoliosis_data
from medrepro.studies.scoliosis.data import MIN_EXTENT_PX, as_pose, read_manifest

PAV_PAIRS: tuple[tuple[str, int, int], ...] = (
    ("eyes", 1, 2),
    ("ears", 3, 4),
    ("shoulders", 5, 6),
    ("elbows", 7, 8),
    ("wrists", 9, 10),
    ("hips", 11, 12),
    ("knees", 13, 14),
    ("ankles", 15, 16),
)
PAV_MEASURES: tuple[str, ...] = ("abs_dy", "abs_mid_x", "tilt")
PAV_HEIGHT = 128.0
IQR_FACTOR = 1.5
TILT_MODES = ("atan2", "horizontal")


def frame_measures(pose: np.ndarray, tilt: str = "atan2") -> np.ndarray:
    """(T, 8, 3) float64 per-frame measures; NaN where a pair end is missing or the frame
    cannot be normalised (a hip missing, or observed keypoints spanning <= 1 px vertically)."""
    if tilt not in TILT_MODES:
        raise InputError(None, "tilt", f"bad value {tilt!r}", " | ".join(TILT_MODES))
    p = as_pose(pose).astype(np.float64)
    valid = p[..., 2] > 0
    y = p[..., 1]
    extent = np.where(valid, y, -np.inf).max(axis=1) - np.where(valid, y, np.inf).min(axis=1)
    ok = valid[:, 11] & valid[:, 12] & (extent > MIN_EXTENT_PX)
    scale = np.where(ok, PAV_HEIGHT / np.where(ok, extent, 1.0), np.nan)
    hip = (p[:, 11, :2] + p[:, 12, :2]) / 2.0
    xy = (p[..., :2] - hip[:, None, :]) * scale[:, None, None]

    left = [l for _, l, _ in PAV_PAIRS]
    right = [r for _, _, r in PAV_PAIRS]
    dx = xy[:, left, 0] - xy[:, right, 0]
    dy = xy[:, left, 1] - xy[:, right, 1]
    mid_x = (xy[:, left, 0] + xy[:, right, 0]) / 2.0
    angle = np.arctan2(dy, dx) if tilt == "atan2" else np.arctan2(np.abs(dy), np.abs(dx))
    out = np.stack([np.abs(dy), np.abs(mid_x), np.abs(angle)], axis=-1)
    pair_ok = valid[:, left] & valid[:, right] & ok[:, None]
    out[~pair_ok] = np.nan
    return out


def robust_mean(values: np.ndarray) -> np.ndarray:
    """Mean over axis 0 after dropping values outside [Q1 - 1.5 IQR, Q3 + 1.5 IQR]; NaN are
    ignored and an all-NaN column gives 0.0."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return np.zeros(values.shape[1:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        q1, q3 = np.nanpercentile(values, [25.0, 75.0], axis=0)
    iqr = q3 - q1
    keep = (values >= q1 - IQR_FACTOR * iqr) & (values <= q3 + IQR_FACTOR * iqr)  # NaN -> False
    n = keep.sum(axis=0)
    total = np.where(keep, values, 0.0).sum(axis=0)
    return np.where(n > 0, total / np.maximum(n, 1), 0.0)


def compute_pav(pose: np.ndarray, tilt: str = "atan2") -> np.ndarray:
    """(8, 3) float64 PAV of one sequence (rows: ``PAV_PAIRS``, columns: ``PAV_MEASURES``)."""
    return robust_mean(frame_measures(pose, tilt))


def _ids_digest(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest()


def fit_minmax(pavs: dict[str, np.ndarray], train_ids: list[str]) -> dict:
    """Min-max statistics over the PAVs of ``train_ids`` only (other entries are never read).

    ``train_ids_sha256`` is the SHA-256 of the sorted, de-duplicated ids joined by newlines.
    """
    ids = sorted(set(train_ids))
    if not ids:
        raise InputError(None, "train", "no training ids", "at least one id")
    missing = [i for i in ids if i not in pavs]
    if missing:
        raise InputError(None, "train", f"{len(missing)} ids have no PAV (first: {missing[0]!r})",
                         "every training id among the sequences")
    stack = np.stack([np.asarray(pavs[i], dtype=np.float64) for i in ids])
    if stack.shape[1:] != (len(PAV_PAIRS), len(PAV_MEASURES)):
        raise InputError(None, "pav", f"shape {stack.shape[1:]}", "(8, 3) per sequence")
    return {
        "min": stack.min(axis=0).tolist(),
        "max": stack.max(axis=0).tolist(),
        "n_train": len(ids),
        "train_ids_sha256": _ids_digest(ids),
    }


def apply_minmax(pav: np.ndarray, stats: dict) -> np.ndarray:
    """(x - min) / (max - min) clipped to [0, 1]; 0 where max == min. Works on (..., 8, 3)."""
    lo = np.asarray(stats["min"], dtype=np.float64)
    hi = np.asarray(stats["max"], dtype=np.float64)
    span = hi - lo
    pav = np.asarray(pav, dtype=np.float64)
    scaled = np.where(span > 0, (pav - lo) / np.where(span > 0, span, 1.0), 0.0)
    return np.clip(scaled, 0.0, 1.0)


def _read_split(split_path: Path) -> dict:
    try:
        split = json.loads(Path(split_path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(split_path, "<file>", "does not exist", "a split JSON file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(split_path, "<json>", f"not valid JSON ({exc})", "a split JSON object") from None
    train = split.get("train") if isinstance(split, dict) else None
    if not isinstance(train, list) or not all(isinstance(i, str) for i in train):
        raise InputError(split_path, "train", f"got {train!r:.60}", "a list of sequence ids")
    return split


def build_pav(manifest_path: Path, split_path: Path, out_npz: Path, out_stats: Path, tilt: str = "atan2") -> dict:
    """Raw PAV of every manifest sequence; min-max stats from ``split["train"]`` only.

    Writes ``out_npz`` (``ids`` (N,) str, ``raw`` and ``scaled`` (N, 8, 3) float64, in manifest
    order) and ``out_stats`` (the ``fit_minmax`` result plus the pair / measure names, the tilt
    mode and the split file's hash). Both files are written to temporary names and renamed
    only once both are complete. Returns the stats.
    """
    root, seqs = read_manifest(manifest_path)
    split = _read_split(split_path)
    known = {e["id"] for e in seqs}
    unknown = [i for i in split["train"] if i not in known]
    if unknown:
        raise InputError(split_path, "train", f"{len(unknown)} ids not in the manifest (first: {unknown[0]!r})",
                         f"ids of {manifest_path}")

    ids = [e["id"] for e in seqs]
    raw = np.zeros((len(ids), len(PAV_PAIRS), len(PAV_MEASURES)))
    for n, entry in enumerate(seqs):
        path = root / entry["pose"]
        # load_pose is looked up in the data module at call time (tests replace it there); the
        # file must still have the bytes the manifest recorded.
        pose = scoliosis_data.load_pose(path, sha256=entry.get("pose_sha256"))
        raw[n] = compute_pav(as_pose(pose, path), tilt)
    stats = fit_minmax(dict(zip(ids, raw)), split["train"])
    stats.update(
        pairs=[name for name, _, _ in PAV_PAIRS],
        measures=list(PAV_MEASURES),
        tilt=tilt,
        height=PAV_HEIGHT,
        iqr_factor=IQR_FACTOR,
        split_file=str(split_path),
        split_sha256=sha256_file(split_path),
    )
    scaled = apply_minmax(raw, stats)

    out_npz, out_stats = Path(out_npz), Path(out_stats)
    with atomic_path(out_npz) as tmp_npz, atomic_path(out_stats) as tmp_stats:
        with open(tmp_npz, "wb") as f:
            np.savez(f, ids=np.array(ids, dtype=str), raw=raw, scaled=scaled)
        write_json(tmp_stats, stats)
    return stats
