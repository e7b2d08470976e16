"""Scoliosis1K readers: pkl trees, pose checks, split files, manifest and split records.

Layout (both trees): ``<root>/<ID>/<label>/000_180/000_180.pkl`` with five-digit IDs and label
folders negative / neutral / positive (any case, stored lowercase). Split files hold
``{"TRAIN_SET": [ids], "TEST_SET": [ids]}``. Every problem raises :class:`InputError` naming
the file and the field; every output is written atomically.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medrepro.errors import InputError, MismatchError
from medrepro.fsutil import sha256_bytes, sha256_file, write_json
from medrepro.safe_pickle import loads_array

LABELS = ("negative", "neutral", "positive")
DEFAULT_CLASS_MAP = {"negative": 0, "neutral": 1, "positive": 2}
VIEW = "000_180"
MANIFEST_SCHEMA = "medrepro-scoliosis-manifest-v1"
SPLIT_SCHEMA = "medrepro-scoliosis-split-v1"
SPLIT_KEYS = {"train": "TRAIN_SET", "test": "TEST_SET"}
_ID = re.compile(r"\d{5}")
_SIL_SHAPE = (64, 64)
# A pose frame whose keypoints (those drawn, for skeleton maps) span <= 1 image px vertically
# cannot be normalised: its skeleton maps are left empty, its PAV measures are NaN.
MIN_EXTENT_PX = 1.0


class SplitLeakageError(InputError):
    """The same ID sits in two splits. ``overlaps`` maps "a/b" to the shared IDs."""

    def __init__(self, source: str | Path, overlaps: dict[str, list[str]]):
        self.overlaps = overlaps
        parts = "; ".join(f"{pair} share {len(ids)} id(s): {_preview(ids)}" for pair, ids in overlaps.items())
        super().__init__(source, "splits", f"ids in more than one split: {parts}", "disjoint splits")


def _preview(ids: list[str], n: int = 20) -> str:
    return ", ".join(ids[:n]) + (f", ... ({len(ids) - n} more)" if len(ids) > n else "")


# ---------------------------------------------------------------------------------------------
# Trees and arrays


def scan_tree(root: Path) -> dict[str, tuple[str, Path]]:
    """Map each ID under ``root`` to (lowercase label, path of its ``000_180.pkl``).

    Hidden entries (names starting with ".") are skipped; other views than 000_180 are ignored.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "tree", "not a directory",
                         "a Scoliosis1K pkl tree <root>/<ID>/<label>/000_180/000_180.pkl")
    found: dict[str, tuple[str, Path]] = {}
    for id_dir in sorted(root.iterdir()):
        if id_dir.name.startswith("."):
            continue
        if not (id_dir.is_dir() and _ID.fullmatch(id_dir.name)):
            raise InputError(id_dir, "id", f"unexpected entry {id_dir.name!r}", "a folder named by a five-digit ID")
        label_dirs = [d for d in sorted(id_dir.iterdir()) if not d.name.startswith(".")]
        if not label_dirs:
            raise InputError(id_dir, "label", "no label folder", f"one of {', '.join(LABELS)}")
        if len(label_dirs) > 1:
            raise InputError(id_dir, "label", f"{len(label_dirs)} label folders {[d.name for d in label_dirs]}",
                             "exactly one label folder per ID")
        label_dir = label_dirs[0]
        label = label_dir.name.lower()
        if label not in LABELS:
            raise InputError(label_dir, "label", f"unknown label folder {label_dir.name!r}",
                             f"a folder named one of {', '.join(LABELS)} (any case)")
        if not label_dir.is_dir():
            raise InputError(label_dir, "label", "is a file", "a label folder")
        pkl = label_dir / VIEW / f"{VIEW}.pkl"
        if not pkl.is_file():
            raise InputError(pkl, "view", "file missing", f"{VIEW}/{VIEW}.pkl under {label_dir}")
        found[id_dir.name] = (label, pkl)
    if not found:
        raise InputError(root, "tree", "no ID folders", "at least one <ID>/<label>/000_180/000_180.pkl")
    return found


@dataclass(frozen=True)
class Limits:
    """Bounds on an untrusted sequence file: frames, and bytes an array may declare (checked
    before numpy allocates it)."""

    max_frames: int = 100_000
    max_bytes: int = 1 << 30

    @classmethod
    def from_dict(cls, d: dict | None) -> "Limits":
        return cls(**{k: int(v) for k, v in (d or {}).items()})


def _check_array(a: np.ndarray, path: Path, field: str, frame_shape: tuple[int, ...], expected: str,
                 limits: Limits = Limits()) -> None:
    if a.ndim != 1 + len(frame_shape) or a.shape[1:] != frame_shape:
        raise InputError(path, field, f"array of shape {a.shape}", expected)
    if a.shape[0] == 0:
        raise InputError(path, field, "empty sequence (0 frames)", expected)
    if a.shape[0] > limits.max_frames:
        raise InputError(path, field, f"{a.shape[0]} frames", f"at most {limits.max_frames} (data.limits.max_frames)")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise InputError(path, field, f"{int((~np.isfinite(a)).sum())} non-finite values (NaN/inf)", expected)


def _pose_from_bytes(data: bytes, path: Path, limits: Limits = Limits()) -> np.ndarray:
    # float64 is kept as read (the released pose pkls are float64 and OpenGait's pretreatment
    # computes in it); anything else becomes float32. Finiteness is checked in float32 either
    # way, so values too large for float32 count as non-finite.
    a = loads_array(data, path, limits.max_bytes)
    if a.ndim == 3 and a.shape[1:] == (17, 3):
        with np.errstate(over="ignore"):
            as32 = a.astype(np.float32)
        _check_array(as32, path, "pose", (17, 3), "(T, 17, 3) finite x, y, confidence with T > 0", limits)
        return a if a.dtype == np.float64 else as32
    _check_array(a, path, "pose", (17, 3), "(T, 17, 3) finite x, y, confidence with T > 0", limits)
    return a


def _silhouette_from_bytes(data: bytes, path: Path, limits: Limits = Limits()) -> np.ndarray:
    a = loads_array(data, path, limits.max_bytes)
    expected = "(T, 64, 64) uint8 values 0..255 with T > 0"
    _check_array(a, path, "silhouette", _SIL_SHAPE, expected, limits)
    if a.dtype != np.uint8:
        if ((a < 0) | (a > 255)).any() or (a != np.round(a)).any():
            raise InputError(path, "silhouette", f"dtype {a.dtype} with values outside the integers 0..255", expected)
        a = a.astype(np.uint8)
    return a


def _read(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InputError(path, "file", f"cannot read: {exc.strerror or exc}", "a readable .pkl file") from None


def _read_checked(path: Path, sha256: str | None) -> bytes:
    """The file's bytes; with ``sha256`` (the manifest's record) they must hash to it."""
    data = _read(path)
    if sha256 is not None and sha256_bytes(data) != sha256:
        raise MismatchError(path, "sha256", f"the bytes hash to {sha256_bytes(data)}, the manifest recorded {sha256}",
                            "the file the manifest was built from (rebuild the manifest if it changed on purpose)")
    return data


def load_pose(path: Path, sha256: str | None = None) -> np.ndarray:
    """Load a pose pkl as (T, 17, 3) x, y, confidence (missing keypoints are zeros): float64
    when stored so, float32 otherwise.
    With ``sha256`` the file must still have the bytes the manifest recorded."""
    return _pose_from_bytes(_read_checked(path, sha256), Path(path))


def load_silhouette(path: Path, sha256: str | None = None) -> np.ndarray:
    """Load a silhouette pkl as (T, 64, 64) uint8 (``sha256`` as for :func:`load_pose`)."""
    return _silhouette_from_bytes(_read_checked(path, sha256), Path(path))


def as_pose(pose: Any, source: str | Path | None = None, keep_float64: bool = False) -> np.ndarray:
    """Check a pose array is (T, 17, 3) and finite; return it as float32 (a copy), or as
    float64 when it is float64 and ``keep_float64`` is set."""
    arr = np.asarray(pose)
    if arr.ndim != 3 or arr.shape[1:] != (17, 3):
        raise InputError(source, "pose", f"shape {arr.shape}", "(T, 17, 3): COCO-17 x, y, confidence")
    if not np.issubdtype(arr.dtype, np.number):
        raise InputError(source, "pose", f"dtype {arr.dtype}", "a numeric array")
    keep = keep_float64 and arr.dtype == np.float64
    with np.errstate(over="ignore"):
        arr = arr.astype(np.float64 if keep else np.float32, copy=True)
    if not np.isfinite(arr).all():
        raise InputError(source, "pose", "contains NaN or inf", "finite values; missing = (0, 0, 0)")
    return arr


# ---------------------------------------------------------------------------------------------
# Splits


def _load_json(path: Path) -> object:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(path, "file", f"cannot read: {exc.strerror or exc}", "a readable JSON file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(path, "json", f"not valid JSON: {exc}", "a JSON object") from None


def read_split(path: Path) -> dict[str, list[str]]:
    """Read a Scoliosis1K split file into ``{"train": [...], "test": [...]}`` (file order kept)."""
    path = Path(path)
    obj = _load_json(path)
    if not isinstance(obj, dict):
        raise InputError(path, "json", f"top level is a {type(obj).__name__}",
                         'an object {"TRAIN_SET": [...], "TEST_SET": [...]}')
    out: dict[str, list[str]] = {}
    for name, key in SPLIT_KEYS.items():
        if key not in obj:
            raise InputError(path, key, "key missing", "a list of five-digit ID strings")
        ids = obj[key]
        if not isinstance(ids, list):
            raise InputError(path, key, f"is a {type(ids).__name__}", "a list of five-digit ID strings")
        bad = [i for i in ids if not (isinstance(i, str) and _ID.fullmatch(i))]
        if bad:
            raise InputError(path, key, f"invalid ids {_preview([repr(b) for b in bad])}",
                             'five-digit ID strings such as "00042"')
        dupes = sorted(i for i, n in Counter(ids).items() if n > 1)
        if dupes:
            raise InputError(path, key, f"duplicate ids {_preview(dupes)}", "each ID once")
        out[name] = list(ids)
    check_disjoint(out, str(path))
    return out


def check_disjoint(splits: dict[str, list[str]], source: str) -> None:
    """Raise :class:`SplitLeakageError` if any two splits share an ID."""
    names = list(splits)
    overlaps = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            shared = sorted(set(splits[a]) & set(splits[b]))
            if shared:
                overlaps[f"{a}/{b}"] = shared
    if overlaps:
        raise SplitLeakageError(source, overlaps)


def carve_validation(train_ids: list[str], labels: dict[str, str], fraction: float,
                     seed: int) -> tuple[list[str], list[str]]:
    """Split TRAIN into (train, val), stratified by class, by ID, seeded; both lists sorted.

    Each class gives round(fraction * n) IDs to val, at least one when it has two or more IDs
    (fraction > 0), and always keeps at least one in train.
    """
    if not (isinstance(fraction, (int, float)) and 0 <= fraction < 1):
        raise InputError(None, "val_fraction", f"got {fraction!r}", "a number in [0, 1)")
    missing = sorted(i for i in train_ids if i not in labels)
    if missing:
        raise InputError(None, "labels", f"no label for ids {_preview(missing)}", "a label for every train ID")
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in sorted({labels[i] for i in train_ids}):
        ids = sorted(i for i in train_ids if labels[i] == label)
        n_val = round(fraction * len(ids))
        if fraction > 0 and len(ids) >= 2:
            n_val = max(n_val, 1)
        n_val = min(n_val, len(ids) - 1)
        order = rng.permutation(len(ids))
        val += [ids[j] for j in order[:n_val]]
        train += [ids[j] for j in order[n_val:]]
    return sorted(train), sorted(val)


# ---------------------------------------------------------------------------------------------
# Manifest and split records


def build_manifest(pose_root: Path, sil_root: Path | None, out_path: Path, limits: Limits = Limits()) -> dict:
    """Scan, load and validate every sequence; write the manifest JSON atomically and return it.

    With ``sil_root`` both trees must hold the same IDs with the same labels. Roots are recorded
    as given; ``pose`` / ``sil`` are paths relative to them. Every file is bounded by ``limits``
    and its sha256 recorded; later readers check each file against that record.
    """
    pose_root = Path(pose_root)
    poses = scan_tree(pose_root)
    sils = None
    if sil_root is not None:
        sil_root = Path(sil_root)
        sils = scan_tree(sil_root)
        only_pose, only_sil = sorted(poses.keys() - sils.keys()), sorted(sils.keys() - poses.keys())
        if only_pose or only_sil:
            raise InputError(sil_root, "ids", f"trees differ: only in {pose_root}: [{_preview(only_pose)}]; "
                             f"only in {sil_root}: [{_preview(only_sil)}]", "the same IDs in both trees")
        differ = sorted(i for i in poses if poses[i][0] != sils[i][0])
        if differ:
            raise InputError(sil_root, "label", "labels differ from the pose tree for ids "
                             + _preview([f"{i} ({poses[i][0]} vs {sils[i][0]})" for i in differ]),
                             "the same label for an ID in both trees")
    sequences = []
    for sid in sorted(poses):
        label, pose_path = poses[sid]
        data = _read(pose_path)
        entry = {
            "id": sid,
            "label": label,
            "frames": int(_pose_from_bytes(data, pose_path, limits).shape[0]),
            "pose": pose_path.relative_to(pose_root).as_posix(),
            "pose_sha256": sha256_bytes(data),
            "sil": None,
            "sil_sha256": None,
            "sil_frames": None,
        }
        if sils is not None:
            sil_path = sils[sid][1]
            data = _read(sil_path)
            entry["sil_frames"] = int(_silhouette_from_bytes(data, sil_path, limits).shape[0])
            entry["sil"] = sil_path.relative_to(sil_root).as_posix()
            entry["sil_sha256"] = sha256_bytes(data)
        sequences.append(entry)
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "pose_root": str(pose_root),
        "sil_root": None if sil_root is None else str(sil_root),
        "sequences": sequences,
    }
    write_json(out_path, manifest)
    return manifest


_SAFE_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")


def read_manifest(manifest_path: str | Path) -> tuple[Path, list[dict]]:
    """Read a manifest ``{"pose_root": str, "sequences": [{"id", "pose", ...}]}``.

    Returns the pose root, as recorded (:func:`build_manifest` records roots as given, so a
    relative one is relative to the working directory), and the sequence entries.
    Ids must be unique and usable as file names.
    """
    manifest_path = Path(manifest_path)
    try:
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(manifest_path, "<file>", "does not exist", "a manifest JSON file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(manifest_path, "<json>", f"not valid JSON ({exc})", "a manifest JSON object") from None
    if not isinstance(data, dict):
        raise InputError(manifest_path, "<root>", f"got {type(data).__name__}", "a JSON object")
    root = data.get("pose_root")
    if not isinstance(root, str):
        raise InputError(manifest_path, "pose_root", f"got {root!r}", "a path string")
    seqs = data.get("sequences")
    if not isinstance(seqs, list):
        raise InputError(manifest_path, "sequences", f"got {type(seqs).__name__}", "a list of objects")
    seen: set[str] = set()
    for i, entry in enumerate(seqs):
        if not isinstance(entry, dict):
            raise InputError(manifest_path, f"sequences[{i}]", f"got {type(entry).__name__}", "an object")
        sid, pose = entry.get("id"), entry.get("pose")
        if not isinstance(sid, str) or not _SAFE_ID.match(sid):
            raise InputError(manifest_path, f"sequences[{i}].id", f"got {sid!r}", "a file-name-safe string")
        if sid in seen:
            raise InputError(manifest_path, f"sequences[{i}].id", f"duplicate id {sid!r}", "unique ids")
        seen.add(sid)
        if not isinstance(pose, str):
            raise InputError(manifest_path, f"sequences[{i}].pose", f"got {pose!r}", "a path relative to pose_root")
    return Path(root), seqs


def _read_manifest(path: Path) -> dict[str, str]:
    """ID -> label from a manifest written by :func:`build_manifest`."""
    obj = _load_json(path)
    if not isinstance(obj, dict) or obj.get("schema") != MANIFEST_SCHEMA:
        raise InputError(path, "schema", "not a scoliosis manifest", f'"schema": "{MANIFEST_SCHEMA}"')
    seqs = obj.get("sequences")
    if not isinstance(seqs, list) or not all(isinstance(s, dict) and "id" in s and "label" in s for s in seqs):
        raise InputError(path, "sequences", "missing or malformed", 'a list of {"id", "label", ...} objects')
    return {s["id"]: s["label"] for s in seqs}


def _check_class_map(class_map: dict[str, int]) -> dict[str, int]:
    expected = f"each of {', '.join(LABELS)} mapped to a distinct index 0..{len(LABELS) - 1}"
    if not isinstance(class_map, dict) or set(class_map) != set(LABELS):
        raise InputError(None, "class_map", f"got {class_map!r}", expected)
    values = list(class_map.values())
    integers = all(isinstance(v, int) and not isinstance(v, bool) for v in values)
    if not integers or sorted(values) != list(range(len(LABELS))):
        raise InputError(None, "class_map", f"got {class_map!r}", expected)
    return {label: class_map[label] for label in LABELS}


def build_split(manifest_path: Path, split_file: Path, out_path: Path, val_fraction: float, seed: int,
                class_map: dict[str, int] = DEFAULT_CLASS_MAP) -> dict:
    """Resolve a split file against the manifest, carve val from TRAIN, write the record atomically."""
    class_map = _check_class_map(class_map)
    labels_all = _read_manifest(Path(manifest_path))
    split = read_split(Path(split_file))
    for key, ids in split.items():
        unknown = sorted(i for i in ids if i not in labels_all)
        if unknown:
            raise InputError(split_file, SPLIT_KEYS[key], f"ids with no data in {manifest_path}: {_preview(unknown)}",
                             "every split ID present in the pose/silhouette trees")
    train, val = carve_validation(split["train"], labels_all, val_fraction, seed)
    splits = {"train": train, "val": val, "test": sorted(split["test"])}
    check_disjoint(splits, str(split_file))
    labels = {i: labels_all[i] for ids in splits.values() for i in ids}
    record = {
        "schema": SPLIT_SCHEMA,
        "split_file": str(split_file),
        "split_sha256": sha256_file(split_file),
        "manifest": str(manifest_path),
        "manifest_sha256": sha256_file(manifest_path),
        "val_fraction": val_fraction,
        "seed": seed,
        **splits,
        "labels": dict(sorted(labels.items())),
        "class_map": class_map,
        "counts": {name: {label: sum(labels[i] == label for i in ids) for label in LABELS}
                   for name, ids in splits.items()},
    }
    write_json(out_path, record)
    return record
