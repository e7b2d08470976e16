"""Fracture readers: the spec layout (each bad row, image and mask named by file), FracAtlas's own
distribution on a small constructed copy (COCO polygons rasterized and checked against hand-drawn
masks), the spec-layout rewrite of FracAtlas, and the image manifest."""

from __future__ import annotations

import csv
import hashlib
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medrepro.errors import InputError
from medrepro.studies.fracture.data import (
    MANIFEST_SCHEMA,
    TABLE_COLUMNS,
    fracatlas_mask,
    load_image,
    load_mask,
    polygon_mask,
    prepare_fracatlas,
    read_fracatlas,
    read_manifest,
    read_spec_layout,
    write_manifest,
)

H, W = 8, 10  # every test image is 10 pixels wide and 8 high


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _gray(seed: int, shape: tuple[int, int] = (H, W)) -> np.ndarray:
    return np.random.default_rng(seed).integers(20, 230, size=shape, dtype=np.uint8)


def _spec(tmp_path: Path, rows: list[list[str]], header: tuple[str, ...] = ("image_id", "split"),
          fractured: tuple[str, ...] = ()) -> tuple[Path, Path, Path]:
    """A spec layout: CSV rows, an image per row and a mask per row (non-empty for the ids in
    ``fractured``); returns (csv, image dir, mask dir)."""
    image_dir, mask_dir = tmp_path / "images", tmp_path / "masks"
    image_dir.mkdir(exist_ok=True)
    mask_dir.mkdir(exist_ok=True)
    for k, row in enumerate(rows):
        Image.fromarray(_gray(k)).save(image_dir / f"{row[0]}.png")
        mask = np.zeros((H, W), np.uint8)
        if row[0] in fractured:
            mask[2:4, 3:7] = 255
        Image.fromarray(mask).save(mask_dir / f"{row[0]}.png")
    return _write_csv(tmp_path / "labels.csv", list(header), rows), image_dir, mask_dir


ROWS = [["a", "train"], ["b", "val"], ["c", "test"]]


def _raises(match: str):
    return pytest.raises(InputError, match=match)


# ---------------------------------------------------------------------------------------------
# Spec layout


def test_spec_layout_table(tmp_path):
    csv_path, image_dir, mask_dir = _spec(tmp_path, ROWS, fractured=("b",))
    # a {0, 1} mask is as good as a {0, 255} one
    Image.fromarray(np.pad(np.ones((2, 2), np.uint8), ((0, H - 2), (0, W - 2)))).save(mask_dir / "c.png")
    table = read_spec_layout(csv_path, image_dir, mask_dir)
    assert list(table.columns) == list(TABLE_COLUMNS)
    assert table["image_id"].tolist() == ["a", "b", "c"]
    assert table["split"].tolist() == ["train", "val", "test"]
    assert table["fractured"].tolist() == [False, True, True]
    assert table["height"].tolist() == [H] * 3 and table["width"].tolist() == [W] * 3
    assert table["path"].tolist() == [str(image_dir / f"{i}.png") for i in "abc"]
    assert table["mask_path"].tolist() == [str(mask_dir / f"{i}.png") for i in "abc"]


def test_spec_layout_patterns_and_shared_folder(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for k, image_id in enumerate("xy"):
        Image.fromarray(_gray(k)).save(folder / f"{image_id}.png")
        Image.fromarray(np.zeros((H, W), np.uint8)).save(folder / f"{image_id}_mask.png")
    csv_path = _write_csv(tmp_path / "l.csv", ["image_id", "split", "extra"], [["x", "train", "1"], ["y", "test", "2"]])
    table = read_spec_layout(csv_path, folder, folder, "{image_id}.png", "{image_id}_mask.png")
    assert table["mask_path"].tolist() == [str(folder / "x_mask.png"), str(folder / "y_mask.png")]


def test_fractured_column_checked_against_mask(tmp_path):
    rows = [["a", "train", "0"], ["b", "val", "0"], ["c", "test", "0"]]
    csv_path, image_dir, mask_dir = _spec(tmp_path, rows, ("image_id", "split", "fractured"), fractured=("b",))
    with _raises(r"labels.csv: row 3: fractured: 0, but the mask .*b.png is non-empty"):
        read_spec_layout(csv_path, image_dir, mask_dir)
    _write_csv(csv_path, ["image_id", "split", "fractured"], [["a", "train", "0"], ["b", "val", "1"], ["c", "test", "false"]])
    assert read_spec_layout(csv_path, image_dir, mask_dir)["fractured"].tolist() == [False, True, False]


def test_mask_size_differs_from_image(tmp_path):
    csv_path, image_dir, mask_dir = _spec(tmp_path, ROWS)
    Image.fromarray(np.zeros((H, W + 1), np.uint8)).save(mask_dir / "b.png")
    with _raises(r"masks/b.png: size: mask is 11 x 8 pixels \(expected 10 x 8 pixels"):
        read_spec_layout(csv_path, image_dir, mask_dir)


def test_mask_with_antialiased_greys(tmp_path):
    csv_path, image_dir, mask_dir = _spec(tmp_path, ROWS)
    grey = np.zeros((H, W), np.uint8)
    grey[2:4, 2:6] = 255
    grey[1, 2:6] = 128  # an anti-aliased edge
    Image.fromarray(grey).save(mask_dir / "c.png")
    with _raises(r"masks/c.png: values: 3 distinct values \(0, 128, 255\) \(expected a binary mask"):
        read_spec_layout(csv_path, image_dir, mask_dir)


def test_mask_mixing_one_and_255(tmp_path):
    path = tmp_path / "m.png"
    Image.fromarray(np.array([[0, 1], [255, 0]], np.uint8)).save(path)
    with _raises(r"m.png: values: 3 distinct values"):
        load_mask(path, (2, 2))


def test_mask_rgb(tmp_path):
    path = tmp_path / "m.png"
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0, 0] = 255
    Image.fromarray(rgb).save(path)  # a grey-valued RGB mask is accepted
    assert load_mask(path, (2, 3)).tolist() == [[True, False, False], [False, False, False]]
    rgb[1, 1] = (255, 0, 0)
    Image.fromarray(rgb).save(path)
    with _raises(r"m.png: mode: an RGB mask whose channels differ"):
        load_mask(path, (2, 3))


def test_unreadable_image(tmp_path):
    csv_path, image_dir, mask_dir = _spec(tmp_path, ROWS)
    (image_dir / "a.png").write_bytes(b"not an image at all")
    with _raises(r"images/a.png: file: not a readable image .*\(expected a readable grayscale or RGB"):
        read_spec_layout(csv_path, image_dir, mask_dir)


def test_truncated_image_found_when_decoding(tmp_path):
    csv_path, image_dir, mask_dir = _spec(tmp_path, ROWS)
    data = (image_dir / "b.png").read_bytes()
    (image_dir / "b.png").write_bytes(data[: len(data) - 30])  # header intact, pixel data cut
    with _raises(r"images/b.png: file: pixel data not readable"):
        read_spec_layout(csv_path, image_dir, mask_dir)
    with _raises(r"images/b.png: file: pixel data not readable"):
        load_image(image_dir / "b.png")
    table = read_spec_layout(csv_path, image_dir, mask_dir, check_images=False)  # header only
    assert table["height"].tolist() == [H] * 3


def test_image_file_without_csv_row(tmp_path):
    csv_path, image_dir, mask_dir = _spec(tmp_path, ROWS)
    Image.fromarray(_gray(9)).save(image_dir / "stray.png")
    (image_dir / ".hidden.png").write_bytes(b"ignored")  # hidden files are not images
    (image_dir / "notes.txt").write_text("not matching the pattern")
    with _raises(r"images/stray.png: file: image of image 'stray', which .*labels.csv does not list"):
        read_spec_layout(csv_path, image_dir, mask_dir)


def test_mask_file_without_csv_row(tmp_path):
    csv_path, image_dir, mask_dir = _spec(tmp_path, ROWS)
    Image.fromarray(np.zeros((H, W), np.uint8)).save(mask_dir / "stray.png")
    with _raises(r"masks/stray.png: file: mask of image 'stray'"):
        read_spec_layout(csv_path, image_dir, mask_dir)


def test_csv_row_without_image(tmp_path):
    csv_path, image_dir, mask_dir = _spec(tmp_path, ROWS)
    (image_dir / "c.png").unlink()
    with _raises(r"labels.csv: row 4: image: .*c.png not found"):
        read_spec_layout(csv_path, image_dir, mask_dir)


def test_csv_row_without_mask(tmp_path):
    csv_path, image_dir, mask_dir = _spec(tmp_path, ROWS)
    (mask_dir / "a.png").unlink()
    with _raises(r"labels.csv: row 2: mask: .*a.png not found"):
        read_spec_layout(csv_path, image_dir, mask_dir)


def test_bad_split_value(tmp_path):
    csv_path, image_dir, mask_dir = _spec(tmp_path, [["a", "train"], ["b", "validation"], ["c", "test"]])
    with _raises(r"labels.csv: row 3: split: 'validation' is not a split \(expected one of train, val, test\)"):
        read_spec_layout(csv_path, image_dir, mask_dir)


def test_duplicate_image_id(tmp_path):
    csv_path, image_dir, mask_dir = _spec(tmp_path, [["a", "train"], ["b", "val"], ["a", "test"]])
    with _raises(r"labels.csv: rows 2 and 4: image_id: image 'a' listed twice"):
        read_spec_layout(csv_path, image_dir, mask_dir)


def test_bad_csv_header_and_ids(tmp_path):
    csv_path, image_dir, mask_dir = _spec(tmp_path, ROWS)
    _write_csv(csv_path, ["image_id", "fold"], [["a", "train"]])
    with _raises(r"labels.csv: row 1: header: missing column\(s\) split"):
        read_spec_layout(csv_path, image_dir, mask_dir)
    _write_csv(csv_path, ["image_id", "split"], [["../a", "train"]])
    with _raises(r"row 2: image_id: '../a' is not a usable id"):
        read_spec_layout(csv_path, image_dir, mask_dir)


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose IHDR claims width x height (8-bit gray) followed by a tiny IDAT."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
                     + chunk(b"IEND", b""))


def test_image_size_checked_before_decoding(tmp_path):
    path = tmp_path / "huge.png"
    _png_header_only(path, 100_000, 100_000)  # 10^10 pixels claimed in a few bytes
    with _raises(r"huge.png: size: "):
        load_image(path)
    _png_header_only(path, 9000, 8000)  # over 8192 x 8192 = 67,108,864 pixels
    with _raises(r"huge.png: size: 9000 x 8000 pixels \(expected at least 1 x 1 and at most 67108864 pixels"):
        load_image(path)
    small = tmp_path / "small.png"
    Image.fromarray(_gray(0)).save(small)
    with _raises(r"small.png: size: 10 x 8 pixels"):
        load_image(small, max_pixels=79)
    assert load_image(small, max_pixels=80).shape == (H, W)


def test_load_image_gray_rgb_and_16_bit(tmp_path):
    gray = _gray(1)
    Image.fromarray(gray).save(tmp_path / "g.png")
    np.testing.assert_array_equal(load_image(tmp_path / "g.png"), gray.astype(np.float32) / np.float32(255))

    rgb = np.random.default_rng(2).integers(0, 256, size=(H, W, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    # ITU-R 601-2 luma, the conversion PIL documents for mode "L": L = R*299/1000 + G*587/1000 + B*114/1000
    r, g, b = (rgb[..., i].astype(np.int64) for i in range(3))
    luma = (r * 299 + g * 587 + b * 114) / 1000
    got = load_image(tmp_path / "c.png") * 255
    assert got.dtype == np.float32 and np.abs(got - luma).max() <= 1.0

    deep = np.array([[0, 1000, 65535]], np.uint16)
    Image.fromarray(deep).save(tmp_path / "d.png")
    np.testing.assert_allclose(load_image(tmp_path / "d.png"), deep / 65535.0, rtol=1e-6)

    Image.fromarray(rgb).save(tmp_path / "c.jpg", quality=95)
    img = load_image(tmp_path / "c.jpg")
    assert img.shape == (H, W) and 0.0 <= img.min() and img.max() <= 1.0


# ---------------------------------------------------------------------------------------------
# FracAtlas

META = ["hand", "leg", "hip", "shoulder", "mixed", "hardware", "multiscan", "fractured", "fracture_count",
        "frontal", "lateral", "oblique"]
FRACTURED = ["IMG0000001.jpg", "IMG0000002.jpg", "IMG0000003.jpg"]
NORMAL = [f"IMG00000{k:02d}.jpg" for k in range(10, 16)]
SQUARE = [2, 3, 6, 3, 6, 7, 2, 7]  # x, y of (2, 3), (6, 3), (6, 7), (2, 7)


def _fracatlas(tmp_path: Path) -> Path:
    """A FracAtlas-shaped folder: 3 fractured and 6 normal JPEGs (12 x 10, RGB), dataset.csv,
    the COCO JSON and the official split of the fractured images."""
    root = tmp_path / "FracAtlas"
    for folder in ("images/Fractured", "images/Non_fractured", "Annotations/COCO JSON", "Utilities/Fracture Split"):
        (root / folder).mkdir(parents=True)
    rows = []
    for k, name in enumerate(FRACTURED + NORMAL):
        fractured = name in FRACTURED
        rgb = np.repeat(_gray(k, (10, 12))[..., None], 3, axis=2)
        Image.fromarray(rgb).save(root / "images" / ("Fractured" if fractured else "Non_fractured") / name, quality=90)
        flags = {"hand": k % 2, "leg": 1 - k % 2, "fractured": int(fractured), "fracture_count": int(fractured) * (1 + k),
                 "frontal": 1}
        rows.append([name] + [str(flags.get(c, 0)) for c in META])
    _write_csv(root / "dataset.csv", ["image_id"] + META, rows)
    coco = {
        "images": [{"id": i + 1, "file_name": n, "width": 12, "height": 10} for i, n in enumerate(FRACTURED)],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [2, 3, 4, 4], "segmentation": [SQUARE]},
            {"id": 2, "image_id": 2, "category_id": 1, "iscrowd": 0, "bbox": [0, 0, 3, 3], "segmentation": [[0, 0, 3, 0, 3, 3, 0, 3]]},
            {"id": 3, "image_id": 2, "category_id": 1, "iscrowd": 0, "bbox": [8, 6, 4, 4], "segmentation": [[8, 6, 12, 6, 12, 10, 8, 10]]},
            {"id": 4, "image_id": 3, "category_id": 1, "iscrowd": 0, "bbox": [5, 5, 1, 1], "segmentation": [[5, 5, 6, 5, 6, 6, 5, 6]]},
        ],
        "categories": [{"id": 1, "name": "fractured"}],
    }
    (root / "Annotations/COCO JSON/COCO_fracture_masks.json").write_text(json.dumps(coco))
    for split, name in zip(("train", "valid", "test"), FRACTURED):
        _write_csv(root / "Utilities/Fracture Split" / f"{split}.csv", ["image_id"], [[name]])
    return root


def _coco(root: Path) -> tuple[Path, dict]:
    path = root / "Annotations/COCO JSON/COCO_fracture_masks.json"
    return path, json.loads(path.read_text())


def test_fracatlas_table(tmp_path):
    root = _fracatlas(tmp_path)
    table = read_fracatlas(root)
    assert list(table.columns)[:7] == list(TABLE_COLUMNS)
    assert table["image_id"].tolist() == [n[:-4] for n in FRACTURED + NORMAL]
    assert table["fractured"].tolist() == [True] * 3 + [False] * 6
    assert table["split"].tolist()[:3] == ["train", "val", "test"]  # the official split, 'valid' -> 'val'
    # the 6 normal images are cut in the official proportions (1 : 1 : 1)
    assert sorted(table["split"].tolist()[3:]) == ["test", "test", "train", "train", "val", "val"]
    assert (table["height"] == 10).all() and (table["width"] == 12).all()
    assert table["path"].tolist()[0] == str(root / "images/Fractured/IMG0000001.jpg")
    assert table["mask_path"].isna().all()
    assert table["fracture_count"].tolist() == [1, 2, 3, 0, 0, 0, 0, 0, 0]
    assert table["hand"].tolist() == [0, 1, 0, 1, 0, 1, 0, 1, 0]
    assert table.attrs["skipped"] == []
    again = read_fracatlas(root)
    assert again["split"].tolist() == table["split"].tolist()  # seeded


def test_fracatlas_square_polygon_rasterized(tmp_path):
    table = read_fracatlas(_fracatlas(tmp_path))
    # Hand-drawn: skimage.draw.polygon takes every pixel whose centre (row = y, column = x) lies
    # inside or on the polygon; the square with corners x = 2..6, y = 3..7 covers rows 3..7 and
    # columns 2..6, 5 x 5 pixels.
    expected = np.zeros((10, 12), bool)
    expected[3:8, 2:7] = True
    np.testing.assert_array_equal(fracatlas_mask(table.iloc[0]), expected)
    # Image 2: the union of two squares, one touching the top-left corner and one reaching the
    # right and bottom borders (x = 12, y = 10 are on the image's edge and allowed).
    expected = np.zeros((10, 12), bool)
    expected[0:4, 0:4] = True
    expected[6:10, 8:12] = True
    np.testing.assert_array_equal(fracatlas_mask(table.iloc[1]), expected)
    assert not fracatlas_mask(table.iloc[5]).any()


def test_polygon_without_pixel_centre_keeps_its_outline():
    # A 0.6 px square between pixel centres covers none of them; its outline, with the corners
    # rounded to (1, 1), (2, 1), (2, 2), (1, 2), keeps the fracture visible.
    mask = polygon_mask([[1.2, 1.2, 1.8, 1.2, 1.8, 1.8, 1.2, 1.8]], 4, 5)
    expected = np.zeros((4, 5), bool)
    expected[1:3, 1:3] = True
    np.testing.assert_array_equal(mask, expected)


def test_fracatlas_polygon_outside_image(tmp_path):
    root = _fracatlas(tmp_path)
    path, coco = _coco(root)
    coco["annotations"][0]["segmentation"] = [[2, 3, 12.5, 3, 6, 7]]
    path.write_text(json.dumps(coco))
    with _raises(r"COCO_fracture_masks.json: annotations\[0\] \(image IMG0000001.jpg\): segmentation\[0\]: "
                 r"vertex \(12.5, 3\) lies outside the image \(expected vertices in \[0, 12\] x \[0, 10\]"):
        read_fracatlas(root)
    coco["annotations"][0]["segmentation"] = [[2, -1, 6, 3, 6, 7]]
    path.write_text(json.dumps(coco))
    with _raises(r"vertex \(2, -1\) lies outside"):
        read_fracatlas(root)


def test_fracatlas_image_without_row_and_row_without_image(tmp_path):
    root = _fracatlas(tmp_path)
    Image.fromarray(_gray(0, (10, 12))).save(root / "images/Non_fractured/IMG0000099.jpg")
    with _raises(r"Non_fractured/IMG0000099.jpg: file: image in images/Non_fractured, but .*dataset.csv is not listed"):
        read_fracatlas(root)
    (root / "images/Non_fractured/IMG0000099.jpg").unlink()
    (root / "images/Non_fractured" / NORMAL[2]).rename(root / "images/Fractured" / NORMAL[2])  # in the wrong folder
    with _raises(r"dataset.csv: row 7: image: .*Non_fractured/IMG0000012.jpg not found"):
        read_fracatlas(root)


def test_fracatlas_polygon_and_label_disagree(tmp_path):
    root = _fracatlas(tmp_path)
    path, coco = _coco(root)
    coco["images"].append({"id": 9, "file_name": NORMAL[0], "width": 12, "height": 10})
    coco["annotations"].append({"id": 9, "image_id": 9, "segmentation": [SQUARE]})
    path.write_text(json.dumps(coco))
    with _raises(r"annotations\[4\]: image_id: a fracture polygon on IMG0000010.jpg, which dataset.csv marks as not"):
        read_fracatlas(root)
    _, coco = _coco(_fracatlas(tmp_path / "second"))
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] != 3]
    path = tmp_path / "second/FracAtlas/Annotations/COCO JSON/COCO_fracture_masks.json"
    path.write_text(json.dumps(coco))
    with _raises(r"annotations: no polygon for IMG0000003.jpg"):
        read_fracatlas(tmp_path / "second/FracAtlas")


def test_fracatlas_coco_size_and_split_files(tmp_path):
    root = _fracatlas(tmp_path)
    path, coco = _coco(root)
    coco["images"][1]["width"] = 13
    path.write_text(json.dumps(coco))
    with _raises(r"images\[1\]: width / height: 13 x 10 for IMG0000002.jpg, whose file is 12 x 10 pixels"):
        read_fracatlas(root)
    coco["images"][1]["width"] = 12
    path.write_text(json.dumps(coco))
    _write_csv(root / "Utilities/Fracture Split/test.csv", ["image_id"], [[FRACTURED[2]], [NORMAL[0]]])
    with _raises(r"test.csv: row 3: image_id: 'IMG0000010.jpg' is not a fractured image"):
        read_fracatlas(root)
    _write_csv(root / "Utilities/Fracture Split/test.csv", ["image_id"], [[FRACTURED[1]]])
    with _raises(r"test.csv: row 2: image_id: 'IMG0000002.jpg' is also in the val split"):
        read_fracatlas(root)


def test_fracatlas_skip_unreadable(tmp_path):
    root = _fracatlas(tmp_path)
    (root / "images/Non_fractured" / NORMAL[1]).write_bytes(b"\xff\xd8 broken")
    with _raises(r"IMG0000011.jpg: file: not a readable image"):
        read_fracatlas(root)
    table = read_fracatlas(root, skip_unreadable=True)
    assert "IMG0000011" not in set(table["image_id"]) and len(table) == 8
    assert [s["image_id"] for s in table.attrs["skipped"]] == ["IMG0000011"]


def test_prepare_fracatlas_spec_layout(tmp_path):
    root = _fracatlas(tmp_path)
    out = tmp_path / "prepared"
    summary = prepare_fracatlas(root, out)
    assert summary["n_images"] == 9 and summary["n_fractured"] == 3 and summary["n_polygons"] == 4
    assert {s: v["n_fractured"] for s, v in summary["splits"].items()} == {"train": 1, "val": 1, "test": 1}
    lay = summary["layout"]
    table = read_spec_layout(out / lay["csv"], out / lay["image_dir"], out / lay["mask_dir"],
                             lay["image_pattern"], lay["mask_pattern"])
    source = read_fracatlas(root)
    assert table["image_id"].tolist() == source["image_id"].tolist()
    assert table["fractured"].tolist() == source["fractured"].tolist()
    assert table["split"].tolist() == source["split"].tolist()
    for row, src in zip(table.to_dict("records"), source.to_dict("records")):
        np.testing.assert_array_equal(load_mask(row["mask_path"], (row["height"], row["width"])), fracatlas_mask(src))
        assert Path(row["path"]).is_symlink() and Path(row["path"]).resolve() == Path(src["path"]).resolve()
    first = {p.name: p.read_bytes() for p in sorted((out / "masks").iterdir())} | {"csv": (out / "labels.csv").read_bytes()}
    prepare_fracatlas(root, out, link="copy")  # replaces its own output
    second = {p.name: p.read_bytes() for p in sorted((out / "masks").iterdir())} | {"csv": (out / "labels.csv").read_bytes()}
    assert first == second
    assert not (out / "images" / "IMG0000001.jpg").is_symlink()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("x")
    with _raises(r"foreign: out_dir: holds files not written by prepare_fracatlas"):
        prepare_fracatlas(root, foreign)


# ---------------------------------------------------------------------------------------------
# Manifest


def test_manifest_round_trip(tmp_path):
    csv_path, image_dir, mask_dir = _spec(tmp_path, [["c", "test"], ["a", "train"], ["b", "val"]], fractured=("a",))
    table = read_spec_layout(csv_path, image_dir, mask_dir)
    manifest = write_manifest(table, tmp_path / "out" / "manifest.json")
    assert read_manifest(tmp_path / "out" / "manifest.json") == manifest
    assert manifest["schema"] == MANIFEST_SCHEMA == "medrepro-fracture-manifest-v1"
    entries = manifest["images"]
    assert [e["image_id"] for e in entries] == ["a", "b", "c"]
    a = entries[0]
    assert a["fractured"] is True and (a["height"], a["width"], a["split"]) == (H, W, "train")
    assert a["sha256"] == hashlib.sha256((image_dir / "a.png").read_bytes()).hexdigest()
    assert a["mask_sha256"] == hashlib.sha256((mask_dir / "a.png").read_bytes()).hexdigest()
    assert set(a) == {"image_id", "split", "path", "mask_path", "fractured", "height", "width", "sha256", "mask_sha256"}


def test_manifest_refuses_bad_files(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"schema": "medrepro-other-manifest-v1", "n_images": 0, "images": []}))
    with _raises(r"m.json: schema: got 'medrepro-other-manifest-v1'"):
        read_manifest(path)
    path.write_text(json.dumps({"schema": MANIFEST_SCHEMA, "n_images": 1, "images": [{"image_id": "a"}]}))
    with _raises(r"m.json: images\[0\]: missing keys"):
        read_manifest(path)
    path.write_text("{not json")
    with _raises(r"m.json: file: not valid JSON"):
        read_manifest(path)
    table = read_fracatlas(_fracatlas(tmp_path))
    with _raises(r"table: mask_path: images without a mask file"):
        write_manifest(table, tmp_path / "x.json")
