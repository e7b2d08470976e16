"""Fracture readers: two real layouts in, one table out, and the image manifest.

**Spec layout** (:func:`read_spec_layout`), the study's own: a CSV with one row per image and
columns ``image_id`` and ``split`` (``train`` / ``val`` / ``test``), optionally ``fractured``
(0/1, cross-checked against the mask) and any others (ignored); one grayscale radiograph per row
in an image folder and one binary mask per row in a mask folder (PNG, 0 = background, one
non-zero value = fracture; an image without a fracture has an empty mask), both named by a
pattern from the image id. Every image and every mask must have its row, and every row its image
and mask.

**FracAtlas** (:func:`read_fracatlas`, :func:`prepare_fracatlas`), the dataset's own
distribution (Abedeen et al., "FracAtlas: a dataset for fracture classification, localization and
segmentation of musculoskeletal radiographs", Scientific Data 10:521, 2023,
doi:10.1038/s41597-023-02432-4; figshare doi:10.6084/m9.figshare.22363012). Checked against the
dataset card (huggingface.co/datasets/yh0701/FracAtlas_dataset: one zip holding ``images/``,
``Annotations/``, ``Utilities/`` and ``dataset.csv``; ``images/`` holds ``Fractured/`` and
``Non_fractured/``; 4,083 JPEG images, 717 fractured), the authors' repository
(github.com/XLR8-07/FracAtlas, ``notebooks/Distribution/{train,valid,test}.csv``: the single
column ``image_id`` holding file names such as ``IMG0003733.jpg``) and public loaders of the
archive (which read ``Annotations/COCO JSON/COCO_fracture_masks.json``, match COCO
``images[].file_name`` to the split files' ``image_id``, read the polygons from
``annotations[].segmentation``, and read ``dataset.csv`` with the columns listed below). What
this module relies on, nothing else:

- ``dataset.csv``: columns ``image_id`` (the file name) and ``fractured`` (0/1); the other
  documented columns ``hand, leg, hip, shoulder, mixed, hardware, multiscan, fracture_count,
  frontal, lateral, oblique`` are carried through when present (integers);
- ``images/Fractured/<image_id>`` for ``fractured = 1`` and ``images/Non_fractured/<image_id>``
  for ``fractured = 0``;
- ``Annotations/COCO JSON/COCO_fracture_masks.json``: ``images`` (``id``, ``file_name``,
  ``width``, ``height``; the fractured images) and ``annotations`` (``image_id`` = a COCO image
  ``id``, ``segmentation`` = a list of polygons ``[x1, y1, x2, y2, ...]`` in pixels);
- ``Utilities/Fracture Split/train.csv``, ``valid.csv``, ``test.csv``: column ``image_id``. These
  official splits cover the fractured images only (574 / 82 / 61 images in dataset-ninja's
  summary of the release; one public loader expects 63 test images in figshare version 7).
  Non-fractured images get a split here: a seeded shuffle of their sorted ids cut in the same
  train / val / test proportions as the official fractured split, so both classes appear in
  every split at the same ratio. ``valid`` is called ``val`` in the table.

Polygons are rasterized with :func:`skimage.draw.polygon` (rows = y, columns = x, every pixel
whose centre lies inside or on the polygon), the union of an image's polygons; a polygon that
covers no pixel centre (a sliver) contributes its outline, so an annotated fracture never yields
an empty mask. :func:`prepare_fracatlas` writes the result in the spec layout (masks as PNG, a
``labels.csv``, and links to the original images), so the rest of the pipeline reads one layout.

Every problem raises :class:`InputError` naming the file, the row or field and what was expected.
Image sizes come from the file header (PIL opens lazily) and are checked against ``max_pixels``
before any pixel is decoded.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import struct
import warnings
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError
from skimage.draw import polygon as draw_polygon
from skimage.draw import polygon_perimeter

from medrepro.errors import InputError
from medrepro.csvrows import read_csv_rows
from medrepro.fsutil import new_temp_dir, replace_dir, sha256_file, write_json

SPLITS = ("train", "val", "test")
TABLE_COLUMNS = ("image_id", "split", "path", "mask_path", "fractured", "height", "width")
MANIFEST_SCHEMA = "medrepro-fracture-manifest-v1"
MANIFEST_KEYS = TABLE_COLUMNS + ("sha256", "mask_sha256")
MAX_PIXELS = 8192 * 8192
MAX_JSON_BYTES = 512 * 1024 * 1024

# FracAtlas distribution (see the module docstring).
FRACATLAS_CSV = "dataset.csv"
FRACATLAS_IMAGE_DIRS = {True: Path("images") / "Fractured", False: Path("images") / "Non_fractured"}
FRACATLAS_COCO = Path("Annotations") / "COCO JSON" / "COCO_fracture_masks.json"
FRACATLAS_SPLIT_DIR = Path("Utilities") / "Fracture Split"
FRACATLAS_SPLIT_FILES = {"train": "train.csv", "val": "valid.csv", "test": "test.csv"}
FRACATLAS_META = ("hand", "leg", "hip", "shoulder", "mixed", "hardware", "multiscan", "fracture_count",
                  "frontal", "lateral", "oblique")
PREPARED_SUMMARY = "fracatlas_prepared.json"
PREPARED_SCHEMA = "medrepro-fracatlas-prepared-v1"
PREPARED_CSV, PREPARED_IMAGES, PREPARED_MASKS = "labels.csv", "images", "masks"
MASK_PATTERN = "{image_id}.png"

# What PIL and its decoders raise on a file that is not a readable image.
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error, IndexError)
_IMAGE_EXPECTED = "a readable grayscale or RGB PNG / JPEG image"


# ---------------------------------------------------------------------------------------------
# Images and masks


@contextmanager
def _opened(path: Path, max_pixels: int, expected: str) -> Iterator[Image.Image]:
    """Open ``path`` lazily (header only) and check its size before anything is decoded."""
    if not path.is_file():
        raise InputError(path, "file", "not found", expected)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size is checked below
            img = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise InputError(path, "size", f"refused by PIL's decompression-bomb check ({exc})",
                         f"at most {max_pixels} pixels") from None
    except (UnidentifiedImageError, *_DECODE_ERRORS) as exc:
        raise InputError(path, "file", f"not a readable image ({type(exc).__name__}: {exc})", expected) from None
    try:
        width, height = img.size
        if width < 1 or height < 1 or width * height > max_pixels:
            raise InputError(path, "size", f"{width} x {height} pixels",
                             f"at least 1 x 1 and at most {max_pixels} pixels (width x height)")
        yield img
    finally:
        img.close()


def _decode(img: Image.Image, path: Path, expected: str) -> None:
    try:
        img.load()
    except _DECODE_ERRORS as exc:
        raise InputError(path, "file", f"pixel data not readable ({type(exc).__name__}: {exc})", expected) from None


def image_size(path: str | Path, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """``(height, width)`` of an image from its header, without decoding it."""
    path = Path(path)
    with _opened(path, max_pixels, _IMAGE_EXPECTED) as img:
        width, height = img.size
    return height, width


def load_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read a radiograph as a float32 (height, width) array in [0, 1].

    8-bit images (grayscale, or RGB / palette / CMYK converted with PIL's ``"L"`` luminance) are
    divided by 255; 16-bit grayscale (PIL modes ``I;16*``, and ``I`` with values in 0..65535) by
    65535. Floating-point images are refused: their range is unknown. The size is checked from
    the header before decoding; a truncated or corrupt file raises InputError.
    """
    path = Path(path)
    with _opened(path, max_pixels, _IMAGE_EXPECTED) as img:
        _decode(img, path, _IMAGE_EXPECTED)
        mode = img.mode
        if mode.startswith("I;16"):
            return np.asarray(img).astype(np.float32) / np.float32(65535)
        if mode == "I":
            data = np.asarray(img)
            lo, hi = int(data.min()), int(data.max())
            if lo < 0 or hi > 65535:
                raise InputError(path, "values", f"32-bit integer image with values {lo}..{hi}",
                                 "an 8-bit image, or a 16-bit one with values in 0..65535")
            return data.astype(np.float32) / np.float32(65535)
        if mode == "F":
            raise InputError(path, "mode", "a 32-bit floating-point image (range unknown)",
                             "an 8- or 16-bit grayscale or RGB image")
        gray = img if mode == "L" else img.convert("L")
        return np.asarray(gray).astype(np.float32) / np.float32(255)


def _distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values; a histogram for small unsigned types (fast on large masks)."""
    if values.dtype.kind == "u" and values.dtype.itemsize <= 2:
        return np.flatnonzero(np.bincount(values.ravel()))
    return np.unique(values)


def load_mask(path: str | Path, shape: tuple[int, int], max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read a binary mask as a bool (height, width) array; ``shape`` is its image's (height, width).

    The mask must have its image's size and hold at most two values, 0 and either 255 or 1
    (PIL modes ``1``, ``L``, ``P`` (palette indices), ``I``, ``I;16*``, or RGB with equal channels).
    Anything else (anti-aliased edges, label maps with several classes) raises InputError, since
    thresholding it would guess.
    """
    path = Path(path)
    expected_mask = "a binary PNG mask (values 0 and 255, or 0 and 1)"
    height, width = (int(n) for n in tuple(shape)[:2])
    with _opened(path, max_pixels, expected_mask) as img:
        if img.size != (width, height):
            raise InputError(path, "size", f"mask is {img.size[0]} x {img.size[1]} pixels",
                             f"{width} x {height} pixels (width x height), the size of its image")
        _decode(img, path, expected_mask)
        mode = img.mode
        if mode == "1":
            return np.asarray(img, dtype=bool).copy()
        if mode in ("L", "P", "I") or mode.startswith("I;16"):
            data = np.asarray(img)
        elif mode == "RGB":
            rgb = np.asarray(img)
            if not ((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 0] == rgb[..., 2]).all()):
                raise InputError(path, "mode", "an RGB mask whose channels differ", expected_mask)
            data = rgb[..., 0]
        else:
            raise InputError(path, "mode", f"PIL mode {mode}", "a single-channel mask (PIL mode 1, L, P, I or I;16)")
    values = _distinct(data)
    if not (set(values.tolist()) <= {0, 255} or set(values.tolist()) <= {0, 1}):
        shown = ", ".join(str(v) for v in values[:8].tolist()) + (", ..." if len(values) > 8 else "")
        raise InputError(path, "values", f"{len(values)} distinct values ({shown})",
                         "a binary mask: values 0 and 255, or 0 and 1 (0 = background)")
    return data != 0


def polygon_mask(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    """The union of COCO polygons (each ``[x1, y1, x2, y2, ...]`` in pixels) as a bool mask.

    Filled with :func:`skimage.draw.polygon` (rows = y, columns = x); a polygon that covers no
    pixel centre contributes its outline (:func:`skimage.draw.polygon_perimeter`)."""
    mask = np.zeros((height, width), dtype=bool)
    for flat in polygons:
        xy = np.asarray(flat, dtype=np.float64).reshape(-1, 2)
        rr, cc = draw_polygon(xy[:, 1], xy[:, 0], shape=(height, width))
        if len(rr) == 0:
            rr, cc = polygon_perimeter(np.round(xy[:, 1]), np.round(xy[:, 0]), shape=(height, width), clip=True)
        mask[rr, cc] = True
    return mask


def fracatlas_mask(row: Any) -> np.ndarray:
    """The mask of one row of :func:`read_fracatlas` (a pandas row or a mapping)."""
    return polygon_mask(list(row["polygons"]), int(row["height"]), int(row["width"]))


# ---------------------------------------------------------------------------------------------
# CSV helpers


def _ident(value: str, csv_path: Path, line: int, column: str = "image_id") -> str:
    if not value or value in (".", "..") or "/" in value or "\\" in value or value.startswith("."):
        raise InputError(csv_path, f"row {line}: {column}", f"{value!r} is not a usable id",
                         "a non-empty id without '/' or '\\' that does not start with '.'")
    return value


def _flag(value: str, csv_path: Path, line: int, column: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "true"):
        return True
    if v in ("0", "false"):
        return False
    raise InputError(csv_path, f"row {line}: {column}", f"{value!r} is not 0 or 1", "0 or 1 (or true / false)")


def _split(value: str, csv_path: Path, line: int) -> str:
    if value not in SPLITS:
        raise InputError(csv_path, f"row {line}: split", f"{value!r} is not a split", f"one of {', '.join(SPLITS)}")
    return value


def _check_pattern(pattern: str, name: str) -> tuple[str, str]:
    """A name pattern with exactly one ``{image_id}`` and no other braces; returns (prefix, suffix)."""
    if pattern.count("{image_id}") != 1 or pattern.replace("{image_id}", "").count("{") \
            or pattern.replace("{image_id}", "").count("}") or pattern.startswith("/") or ".." in Path(pattern).parts:
        raise InputError(None, name, f"{pattern!r}",
                         "a relative file name pattern holding {image_id} once and no other braces")
    prefix, suffix = pattern.split("{image_id}")
    return prefix, suffix


def _files_like(folder: Path, pattern: str) -> dict[Path, str]:
    """Files under ``folder`` whose relative path matches ``pattern``: path -> the image id."""
    prefix, suffix = pattern.split("{image_id}")
    regex = re.compile(re.escape(prefix) + r"([^/\\]+)" + re.escape(suffix))
    candidates = folder.rglob("*") if "/" in pattern else folder.iterdir()
    found = {}
    for p in candidates:
        rel = p.relative_to(folder).as_posix()
        if p.name.startswith(".") or not p.is_file():
            continue
        m = regex.fullmatch(rel)
        if m:
            found[p] = m.group(1)
    return found


# ---------------------------------------------------------------------------------------------
# Spec layout


def read_spec_layout(csv_path: str | Path, image_dir: str | Path, mask_dir: str | Path,
                     image_pattern: str = "{image_id}.png", mask_pattern: str = MASK_PATTERN,
                     check_images: bool = True, max_pixels: int = MAX_PIXELS) -> pd.DataFrame:
    """Read the spec layout into the study's table; every row, image and mask is validated.

    Returns one row per image in CSV order with columns ``image_id``, ``split`` (str), ``path``,
    ``mask_path`` (str: ``image_dir / image_pattern`` and ``mask_dir / mask_pattern`` with the id
    filled in), ``fractured`` (bool: the mask has a non-zero pixel), ``height``, ``width`` (int,
    pixels). Refused: a missing column, a bad or repeated image id, a split other than train /
    val / test, a row without its image or mask, an image or mask file that no row lists, an
    unreadable image, a mask of another size or with values other than {0, 255} / {0, 1}, and a
    ``fractured`` column that disagrees with the mask. With ``check_images`` every image is
    decoded (a truncated file is found here, not in training); without, only its header is read.
    """
    csv_path, image_dir, mask_dir = Path(csv_path), Path(image_dir), Path(mask_dir)
    _check_pattern(image_pattern, "image_pattern")
    _check_pattern(mask_pattern, "mask_pattern")
    for folder, name in ((image_dir, "image_dir"), (mask_dir, "mask_dir")):
        if not folder.is_dir():
            raise InputError(folder, name, "not a folder", f"the folder of the {name.split('_')[0]}s")
    header, body = read_csv_rows(csv_path, ("image_id", "split"), "one row per image (image_id, split)")
    if not body:
        raise InputError(csv_path, "row 2", "no images (the file has only a header)", "one row per image")
    col = {name: header.index(name) for name in header}

    rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for line, cells in body:
        image_id = _ident(cells[col["image_id"]], csv_path, line)
        if image_id in seen:
            raise InputError(csv_path, f"rows {seen[image_id]} and {line}: image_id",
                             f"image {image_id!r} listed twice", "each image once")
        seen[image_id] = line
        row = {"line": line, "image_id": image_id, "split": _split(cells[col["split"]], csv_path, line),
               "path": image_dir / image_pattern.format(image_id=image_id),
               "mask_path": mask_dir / mask_pattern.format(image_id=image_id),
               "flag": _flag(cells[col["fractured"]], csv_path, line, "fractured") if "fractured" in col else None}
        for key, folder, pattern in (("path", image_dir, image_pattern), ("mask_path", mask_dir, mask_pattern)):
            if not row[key].is_file():
                kind = "image" if key == "path" else "mask"
                raise InputError(csv_path, f"row {line}: {kind}", f"{row[key]} not found",
                                 f"the {kind} of image {image_id!r}, named {pattern!r}, in {folder}")
        rows.append(row)

    listed = {r["path"] for r in rows} | {r["mask_path"] for r in rows}
    for folder, pattern, kind in ((image_dir, image_pattern, "image"), (mask_dir, mask_pattern, "mask")):
        for path, image_id in sorted(_files_like(folder, pattern).items()):
            if path not in listed:
                raise InputError(path, "file", f"{kind} of image {image_id!r}, which {csv_path} does not list",
                                 f"a row for every {kind} in {folder} (or no such file)")

    records = []
    for r in rows:
        height, width = image_size(r["path"], max_pixels)
        if check_images:
            load_image(r["path"], max_pixels)
        fractured = bool(load_mask(r["mask_path"], (height, width), max_pixels).any())
        if r["flag"] is not None and r["flag"] != fractured:
            raise InputError(csv_path, f"row {r['line']}: fractured",
                             f"{int(r['flag'])}, but the mask {r['mask_path']} is {'non-empty' if fractured else 'empty'}",
                             "a fractured flag that agrees with the mask (or no fractured column)")
        records.append({"image_id": r["image_id"], "split": r["split"], "path": str(r["path"]),
                        "mask_path": str(r["mask_path"]), "fractured": fractured, "height": height, "width": width})
    return _table(records)


def _table(records: list[dict[str, Any]], extra: tuple[str, ...] = ()) -> pd.DataFrame:
    table = pd.DataFrame.from_records(records, columns=list(TABLE_COLUMNS) + list(extra))
    for c in ("image_id", "split", "path"):
        table[c] = table[c].astype(str)
    table["fractured"] = table["fractured"].astype(bool)
    for c in ("height", "width"):
        table[c] = table[c].astype(int)
    return table


# ---------------------------------------------------------------------------------------------
# FracAtlas


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise InputError(path, "file", "not found", what)
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise InputError(path, "file", f"{size} bytes", f"at most {MAX_JSON_BYTES} bytes of {what}")
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(path, "file", f"not valid JSON ({exc})", what) from None


def _int_field(obj: dict, key: str, path: Path, where: str, minimum: int | None = None) -> int:
    value = obj.get(key) if isinstance(obj, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
        raise InputError(path, f"{where}: {key}", f"got {value!r}",
                         "an integer" + (f" >= {minimum}" if minimum is not None else ""))
    return value


def _coco_polygons(coco_path: Path, by_name: dict[str, dict[str, Any]]) -> dict[str, list[list[float]]]:
    """Polygons per image file name from the COCO JSON, every field and vertex checked."""
    coco = _read_json(coco_path, "a COCO JSON with images and annotations")
    if not isinstance(coco, dict) or not isinstance(coco.get("images"), list) \
            or not isinstance(coco.get("annotations"), list):
        raise InputError(coco_path, "images / annotations", "missing, or not lists",
                         "a COCO object with lists 'images' and 'annotations'")
    names: dict[int, str] = {}
    for k, im in enumerate(coco["images"]):
        where = f"images[{k}]"
        coco_id = _int_field(im, "id", coco_path, where)
        name = im.get("file_name")
        if not isinstance(name, str) or name not in by_name:
            raise InputError(coco_path, f"{where}: file_name", f"{name!r} is not an image of dataset.csv",
                             "the file name of an image listed in dataset.csv")
        if coco_id in names:
            raise InputError(coco_path, f"{where}: id", f"id {coco_id} used twice", "a unique image id")
        width = _int_field(im, "width", coco_path, where, 1)
        height = _int_field(im, "height", coco_path, where, 1)
        row = by_name[name]
        if row["height"] is not None and (height, width) != (row["height"], row["width"]):
            raise InputError(coco_path, f"{where}: width / height",
                             f"{width} x {height} for {name}, whose file is {row['width']} x {row['height']} pixels",
                             "the image's own size (width x height)")
        names[coco_id] = name
    polygons: dict[str, list[list[float]]] = {}
    for k, ann in enumerate(coco["annotations"]):
        where = f"annotations[{k}]"
        coco_id = _int_field(ann, "image_id", coco_path, where)
        if coco_id not in names:
            raise InputError(coco_path, f"{where}: image_id", f"{coco_id} is not an id of 'images'", "an id of 'images'")
        name = names[coco_id]
        row = by_name[name]
        if not row["fractured"]:
            raise InputError(coco_path, f"{where}: image_id", f"a fracture polygon on {name}, "
                             "which dataset.csv marks as not fractured", "polygons on fractured images only")
        seg = ann.get("segmentation")
        if not isinstance(seg, list) or not seg:
            raise InputError(coco_path, f"{where}: segmentation", f"got {type(seg).__name__}"
                             + (" (RLE is not supported)" if isinstance(seg, dict) else ""),
                             "a non-empty list of polygons [x1, y1, x2, y2, ...]")
        for j, flat in enumerate(seg):
            field = f"{where} (image {name}): segmentation[{j}]"
            if not isinstance(flat, list) or len(flat) < 6 or len(flat) % 2 \
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in flat):
                raise InputError(coco_path, field, "not a polygon",
                                 "a list of at least 3 (x, y) vertices as finite numbers [x1, y1, x2, y2, ...]")
            if row["height"] is not None:
                xy = np.asarray(flat, dtype=np.float64).reshape(-1, 2)
                outside = (xy[:, 0] < 0) | (xy[:, 0] > row["width"]) | (xy[:, 1] < 0) | (xy[:, 1] > row["height"])
                if outside.any():
                    x, y = xy[int(np.argmax(outside))]
                    raise InputError(coco_path, field, f"vertex ({x:g}, {y:g}) lies outside the image",
                                     f"vertices in [0, {row['width']}] x [0, {row['height']}] (x, y)")
            polygons.setdefault(name, []).append([float(v) for v in flat])
    return polygons


def _fracatlas_splits(root: Path, fractured: set[str]) -> dict[str, str]:
    """The official split of each fractured image (file name -> train / val / test)."""
    split_of: dict[str, str] = {}
    for split, name in FRACATLAS_SPLIT_FILES.items():
        path = root / FRACATLAS_SPLIT_DIR / name
        header, body = read_csv_rows(path, ("image_id",), "one fractured image file name per row (image_id)")
        column = header.index("image_id")
        for line, cells in body:
            image = _ident(cells[column], path, line)
            if image not in fractured:
                raise InputError(path, f"row {line}: image_id", f"{image!r} is not a fractured image of dataset.csv",
                                 "the file name of a fractured image")
            if image in split_of:
                raise InputError(path, f"row {line}: image_id", f"{image!r} is also in the {split_of[image]} split",
                                 "each image in one split file only")
            split_of[image] = split
    missing = sorted(fractured - set(split_of))
    if missing:
        raise InputError(root / FRACATLAS_SPLIT_DIR, "image_id", f"{len(missing)} fractured image(s) in no split file, "
                         f"e.g. {missing[0]}", "every fractured image in train.csv, valid.csv or test.csv")
    return split_of


def _negative_splits(names: list[str], official: dict[str, str], seed: int) -> dict[str, str]:
    """Splits for the non-fractured images: a seeded shuffle cut in the official proportions."""
    counts = {s: sum(1 for v in official.values() if v == s) for s in SPLITS}
    total = sum(counts.values())
    order = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    n_val = round(len(names) * counts["val"] / total) if total else 0
    n_test = round(len(names) * counts["test"] / total) if total else 0
    split = {name: "val" for name in order[:n_val]}
    split.update({name: "test" for name in order[n_val:n_val + n_test]})
    split.update({name: "train" for name in order[n_val + n_test:]})
    return split


def read_fracatlas(root: str | Path, negative_seed: int = 0, check_images: bool = False,
                   skip_unreadable: bool = False, max_pixels: int = MAX_PIXELS) -> pd.DataFrame:
    """Read FracAtlas in its own distribution (see the module docstring for the files used).

    Returns one row per image in dataset.csv order: the columns of :func:`read_spec_layout` with
    ``image_id`` the file name's stem (``IMG0000019``), ``path`` the original JPEG and
    ``mask_path`` None (the mask is :func:`fracatlas_mask` of the row), then ``file_name``,
    ``source`` (path inside ``root``), ``polygons`` (the image's COCO polygons) and the metadata
    columns of dataset.csv that are present. Refused: a missing file or column, a repeated image,
    an image file that dataset.csv does not list (in either class folder) or a row without its
    file, COCO sizes that differ from the image file, a polygon on a non-fractured image, a
    fractured image without a polygon, a vertex outside the image, a split file naming another
    image. With ``check_images`` every image is decoded, not only its header; with
    ``skip_unreadable`` an image that cannot be read is left out instead (listed with its problem
    in ``table.attrs["skipped"]``).
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "root", "not a folder", "the FracAtlas folder (dataset.csv, images/, Annotations/)")
    csv_path = root / FRACATLAS_CSV
    header, body = read_csv_rows(csv_path, ("image_id", "fractured"), "one row per image (image_id, fractured, ...)")
    col = {name: header.index(name) for name in header}
    meta = [c for c in FRACATLAS_META if c in col]
    for folder in FRACATLAS_IMAGE_DIRS.values():
        if not (root / folder).is_dir():
            raise InputError(root / folder, "folder", "not found", f"the FracAtlas image folder {folder}")

    by_name: dict[str, dict[str, Any]] = {}
    stems: dict[str, str] = {}
    suffixes = set()
    for line, cells in body:
        name = _ident(cells[col["image_id"]], csv_path, line)
        if name in by_name:
            raise InputError(csv_path, f"rows {by_name[name]['line']} and {line}: image_id",
                             f"image {name!r} listed twice", "each image once")
        stem, suffix = os.path.splitext(name)
        if stem in stems:
            raise InputError(csv_path, f"row {line}: image_id", f"{name!r} has the same stem as {stems[stem]!r}",
                             "file names that differ before the extension")
        stems[stem] = name
        suffixes.add(suffix)
        fractured = _flag(cells[col["fractured"]], csv_path, line, "fractured")
        row: dict[str, Any] = {"line": line, "file_name": name, "image_id": stem, "fractured": fractured,
                               "source": (FRACATLAS_IMAGE_DIRS[fractured] / name).as_posix(),
                               "height": None, "width": None}
        for c in meta:
            try:
                row[c] = int(cells[col[c]])
            except ValueError:
                raise InputError(csv_path, f"row {line}: {c}", f"{cells[col[c]]!r} is not an integer",
                                 "an integer (0/1 flags, fracture_count >= 0)") from None
        path = root / row["source"]
        if not path.is_file():
            raise InputError(csv_path, f"row {line}: image", f"{path} not found",
                             f"the image in {root / FRACATLAS_IMAGE_DIRS[fractured]} (fractured = {int(fractured)})")
        row["path"] = path
        by_name[name] = row
    if not by_name:
        raise InputError(csv_path, "row 2", "no images (the file has only a header)", "one row per image")
    if len(suffixes) != 1:
        raise InputError(csv_path, "image_id", f"file extensions {sorted(suffixes)}", "one file extension for all images")

    for fractured, folder in FRACATLAS_IMAGE_DIRS.items():
        for path in sorted((root / folder).iterdir()):
            if path.is_file() and not path.name.startswith("."):
                row = by_name.get(path.name)
                if row is None or row["fractured"] != fractured:
                    listed = "is not listed" if row is None else f"lists it with fractured = {int(row['fractured'])}"
                    raise InputError(path, "file", f"image in {folder}, but {csv_path} {listed}",
                                     f"a row with fractured = {int(fractured)} for every image in {folder}")

    skipped = []
    for row in by_name.values():
        row["skipped"] = False
        try:
            row["height"], row["width"] = image_size(row["path"], max_pixels)
            if check_images:
                load_image(row["path"], max_pixels)
        except InputError as exc:
            if not skip_unreadable:
                raise
            row["height"] = row["width"] = None  # its polygons are read but not checked against a size
            row["skipped"] = True
            skipped.append({"image_id": row["image_id"], "path": str(row["path"]), "problem": str(exc)})

    polygons = _coco_polygons(root / FRACATLAS_COCO, by_name)
    for name, row in by_name.items():
        row["polygons"] = polygons.get(name, [])
        if row["fractured"] and not row["polygons"]:
            raise InputError(root / FRACATLAS_COCO, "annotations", f"no polygon for {name}, which dataset.csv "
                             "marks as fractured", "at least one polygon per fractured image")
    official = _fracatlas_splits(root, {n for n, r in by_name.items() if r["fractured"]})
    kept = {n: r for n, r in by_name.items() if not r["skipped"]}
    if not kept:
        raise InputError(root, "images", "no readable image", "at least one readable image")
    negatives = sorted(n for n, r in kept.items() if not r["fractured"])
    split_of = {**_negative_splits(negatives, official, negative_seed), **official}

    records = []
    for name, row in kept.items():
        records.append({"image_id": row["image_id"], "split": split_of[name], "path": str(row["path"]),
                        "mask_path": None, "fractured": row["fractured"], "height": row["height"],
                        "width": row["width"], "file_name": name, "source": row["source"],
                        "polygons": row["polygons"], **{c: row[c] for c in meta}})
    table = _table(records, ("file_name", "source", "polygons", *meta))
    table["mask_path"] = None
    table.attrs["skipped"] = skipped
    return table


def _write_png(path: Path, array: np.ndarray) -> None:
    Image.fromarray(array).save(path, format="PNG")


def _check_target(out_dir: Path, marker: str, writer: str) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(out_dir, "out_dir", "exists and is not a folder", "a folder path")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / marker).is_file():
        raise InputError(out_dir, "out_dir", f"holds files not written by {writer}",
                         f"an empty or missing folder, or one written by {writer} (with {marker})")


def prepare_fracatlas(root: str | Path, out_dir: str | Path, link: str = "symlink", negative_seed: int = 0,
                      check_images: bool = True, skip_unreadable: bool = False,
                      max_pixels: int = MAX_PIXELS) -> dict:
    """Write FracAtlas in the spec layout so the pipeline reads only that layout; return a summary.

    Writes ``out_dir/images/<image_id><ext>`` (a symbolic link to the original JPEG, or a copy
    with ``link="copy"``), ``out_dir/masks/<image_id>.png`` (uint8 0 / 255, the rasterized
    polygons; empty for non-fractured images), ``out_dir/labels.csv`` (``image_id, split,
    fractured, file_name, source`` and the dataset.csv metadata columns) and
    ``out_dir/fracatlas_prepared.json`` (the summary; its ``layout`` holds the arguments of
    :func:`read_spec_layout`, relative to ``out_dir``). Built in a temporary folder beside
    ``out_dir`` and renamed into place; an existing ``out_dir`` is replaced only if it is empty
    or was written by this function.
    """
    if link not in ("symlink", "copy"):
        raise InputError(None, "link", f"got {link!r}", "'symlink' or 'copy'")
    root, out_dir = Path(root), Path(out_dir)
    _check_target(out_dir, PREPARED_SUMMARY, "prepare_fracatlas")
    table = read_fracatlas(root, negative_seed, check_images, skip_unreadable, max_pixels)
    suffix = os.path.splitext(table["file_name"].iloc[0])[1]
    meta = [c for c in FRACATLAS_META if c in table.columns]
    tmp = new_temp_dir(out_dir)
    try:
        (tmp / PREPARED_IMAGES).mkdir()
        (tmp / PREPARED_MASKS).mkdir()
        n_pixels = []
        for row in table.to_dict("records"):
            target = tmp / PREPARED_IMAGES / f"{row['image_id']}{suffix}"
            if link == "symlink":
                os.symlink(os.path.abspath(row["path"]), target)
            else:
                shutil.copyfile(row["path"], target)
            mask = fracatlas_mask(row)
            if row["fractured"]:
                n_pixels.append(int(mask.sum()))
            _write_png(tmp / PREPARED_MASKS / MASK_PATTERN.format(image_id=row["image_id"]),
                       mask.astype(np.uint8) * np.uint8(255))
        columns = ["image_id", "split", "fractured", "file_name", "source", *meta]
        labels = table[columns].copy()
        labels["fractured"] = labels["fractured"].astype(int)
        labels.to_csv(tmp / PREPARED_CSV, index=False, lineterminator="\n")
        summary = {
            "schema": PREPARED_SCHEMA,
            "root": str(root.resolve()),
            "link": link,
            "negative_seed": negative_seed,
            "n_images": int(len(table)),
            "n_fractured": int(table["fractured"].sum()),
            "n_polygons": int(sum(len(p) for p in table["polygons"])),
            "splits": {s: {"n_images": int((table["split"] == s).sum()),
                           "n_fractured": int(((table["split"] == s) & table["fractured"]).sum())} for s in SPLITS},
            "mask_pixels": {"min": min(n_pixels, default=0), "median": float(np.median(n_pixels)) if n_pixels else 0.0,
                            "max": max(n_pixels, default=0)},
            "skipped": table.attrs["skipped"],
            "layout": {"csv": PREPARED_CSV, "image_dir": PREPARED_IMAGES, "mask_dir": PREPARED_MASKS,
                       "image_pattern": "{image_id}" + suffix, "mask_pattern": MASK_PATTERN},
        }
        write_json(tmp / PREPARED_SUMMARY, summary)
        replace_dir(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary


# ---------------------------------------------------------------------------------------------
# Manifest


def write_manifest(table: pd.DataFrame, out_json: str | Path, hash_files: bool = True) -> dict:
    """Write the image manifest (JSON, atomically) and return it.

    ``{"schema": "medrepro-fracture-manifest-v1", "n_images", "images": [...]}`` with one entry
    per image sorted by ``image_id``: the table's ``image_id, split, path, mask_path, fractured,
    height, width`` and the sha256 of the image and mask files (None when ``hash_files`` is
    false). Paths are written as the table holds them.
    """
    missing = [c for c in TABLE_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(None, "table", f"missing column(s) {', '.join(missing)}", f"columns {', '.join(TABLE_COLUMNS)}")
    if table["mask_path"].isna().any():
        raise InputError(None, "table: mask_path", "images without a mask file",
                         "a mask file per image (prepare FracAtlas with prepare_fracatlas first)")
    images = []
    for row in table.sort_values("image_id", kind="stable").to_dict("records"):
        images.append({
            "image_id": str(row["image_id"]), "split": str(row["split"]),
            "path": str(row["path"]), "mask_path": str(row["mask_path"]),
            "fractured": bool(row["fractured"]), "height": int(row["height"]), "width": int(row["width"]),
            "sha256": sha256_file(row["path"]) if hash_files else None,
            "mask_sha256": sha256_file(row["mask_path"]) if hash_files else None,
        })
    manifest = {"schema": MANIFEST_SCHEMA, "n_images": len(images), "images": images}
    write_json(out_json, manifest)
    return manifest


def read_manifest(path: str | Path) -> dict:
    """Read a manifest written by :func:`write_manifest`; refuse another schema or a bad entry."""
    path = Path(path)
    manifest = _read_json(path, "a fracture manifest JSON")
    if not isinstance(manifest, dict) or manifest.get("schema") != MANIFEST_SCHEMA:
        got = manifest.get("schema") if isinstance(manifest, dict) else type(manifest).__name__
        raise InputError(path, "schema", f"got {got!r}", repr(MANIFEST_SCHEMA))
    images = manifest.get("images")
    if not isinstance(images, list) or manifest.get("n_images") != len(images):
        raise InputError(path, "images", "missing, or not n_images entries", "a list of n_images image entries")
    seen = set()
    for k, entry in enumerate(images):
        if not isinstance(entry, dict) or any(key not in entry for key in MANIFEST_KEYS):
            raise InputError(path, f"images[{k}]", "missing keys", f"keys {', '.join(MANIFEST_KEYS)}")
        if entry["split"] not in SPLITS:
            raise InputError(path, f"images[{k}]: split", f"got {entry['split']!r}", f"one of {', '.join(SPLITS)}")
        if entry["image_id"] in seen:
            raise InputError(path, f"images[{k}]: image_id", f"{entry['image_id']!r} listed twice", "each image once")
        seen.add(entry["image_id"])
    return manifest


def build_manifest(data: dict, out_json: str | Path) -> dict:
    """The manifest of the study's configured data: the spec layout as it is (``layout: spec``:
    ``csv``, ``image_dir``, ``mask_dir``, optional ``image_pattern`` / ``mask_pattern``), or FracAtlas
    rewritten into the spec layout under ``masks_out`` first (``layout: fracatlas``: ``root``)."""
    if data.get("layout", "spec") == "fracatlas":
        out_dir = Path(data["masks_out"])
        summary = prepare_fracatlas(data["root"], out_dir)
        lay = summary["layout"]
        args = {"csv_path": out_dir / lay["csv"], "image_dir": out_dir / lay["image_dir"],
                "mask_dir": out_dir / lay["mask_dir"],
                **{k: lay[k] for k in ("image_pattern", "mask_pattern") if k in lay}}
    else:
        args = {"csv_path": data["csv"], "image_dir": data["image_dir"], "mask_dir": data["mask_dir"],
                **{k: data[k] for k in ("image_pattern", "mask_pattern") if data.get(k)}}
    return write_manifest(read_spec_layout(**args), out_json)
