"""Synthetic fracture radiographs: the spec layout, byte-identical output per seed, the share of
fractured images, a stratified split, masks on bone only, and the planted crack signal, each
checked from the written files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from medrepro.errors import InputError
from medrepro.studies.fracture import synthetic
from medrepro.studies.fracture.data import read_spec_layout
from medrepro.studies.fracture.synthetic import SyntheticFractureParams, synthesize

DEFAULT = SyntheticFractureParams()
CLEAN = SyntheticFractureParams(seed=3, n_images=60, noise=0.0, fracture_fraction=0.5)


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "labels.csv", newline="") as f:
        return list(csv.DictReader(f))


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _pair(out: Path, image_id: str) -> tuple[np.ndarray, np.ndarray]:
    image = np.asarray(Image.open(out / "images" / f"{image_id}.png"))
    mask = np.asarray(Image.open(out / "masks" / f"{image_id}.png"))
    return image, mask


@pytest.fixture(scope="module")
def default(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("syn") / "default"
    synthesize(out, DEFAULT)
    return out


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("syn") / "clean"
    synthesize(out, CLEAN)
    return out


def test_spec_layout(default):
    with open(default / "labels.csv", newline="") as f:
        assert next(csv.reader(f)) == ["image_id", "split", "fractured"]
    rows = _rows(default)
    assert [r["image_id"] for r in rows] == [f"img{i:05d}" for i in range(160)]
    table = read_spec_layout(default / "labels.csv", default / "images", default / "masks")
    assert table["fractured"].tolist() == [r["fractured"] == "1" for r in rows]  # masks agree with the CSV
    assert (table["height"] == 96).all() and (table["width"] == 96).all()
    image = Image.open(default / "images" / "img00000.png")
    assert image.mode == "L" and image.size == (96, 96)
    assert Image.open(default / "masks" / "img00000.png").mode == "L"


def test_deterministic_per_seed(default, tmp_path):
    again = tmp_path / "again"
    synthesize(again, DEFAULT)
    assert _files(again) == _files(default)
    other = tmp_path / "other"
    synthesize(other, SyntheticFractureParams(seed=1, n_images=20))
    assert _files(other)["images/img00000.png"] != _files(default)["images/img00000.png"]


def test_fraction_of_fractured_images(default):
    rows = _rows(default)
    n_fractured = sum(r["fractured"] == "1" for r in rows)
    assert n_fractured == round(160 * 0.3) == 48
    summary = json.loads((default / "synthetic_fracture.json").read_text())
    assert summary["n_images"] == 160 and summary["n_fractured"] == 48
    assert sum(s["n_fractured"] for s in summary["splits"].values()) == 48


def test_split_is_stratified(default):
    rows = _rows(default)
    for split, fraction in (("train", 0.6), ("val", 0.15), ("test", 0.25)):
        members = [r for r in rows if r["split"] == split]
        labels = {r["fractured"] for r in members}
        assert labels == {"0", "1"}, split
        assert abs(len(members) / 160 - fraction) < 0.02, split
        share = sum(r["fractured"] == "1" for r in members) / len(members)
        assert abs(share - 0.3) < 0.04, split  # the same class ratio in every split
    summary = json.loads((default / "synthetic_fracture.json").read_text())
    assert {s: v["n_images"] for s, v in summary["splits"].items()} == {
        s: sum(r["split"] == s for r in rows) for s in ("train", "val", "test")}


def test_masks_binary_and_only_on_fractured_images(default):
    for r in _rows(default):
        _, mask = _pair(default, r["image_id"])
        assert set(np.unique(mask).tolist()) <= {0, 255}
        n = int((mask > 0).sum())
        if r["fractured"] == "1":
            assert 6 <= n <= 200, r["image_id"]  # a thin crack across a bone, 1-2 px wide
        else:
            assert n == 0, r["image_id"]


def test_intensity_range(default):
    values = np.concatenate([_pair(default, r["image_id"])[0].ravel() for r in _rows(default)])
    lo, hi = np.percentile(values, [0.5, 99.5])
    assert 10 <= lo <= 35 and 190 <= hi <= 240  # a dark background and bright bone, within about 20..230
    assert values.min() >= 5 and values.max() <= 250


def test_masks_lie_on_bone(clean):
    # Noise-free images: soft tissue stays below 110, bone reaches well above it. Every mask
    # pixel must sit within 3 px of a bright (> 140) bone pixel outside the crack, and the crack
    # must not reach the far soft tissue or air.
    fractured = [r["image_id"] for r in _rows(clean) if r["fractured"] == "1"]
    assert len(fractured) == 30
    for image_id in fractured:
        image, mask = _pair(clean, image_id)
        mask = mask > 0
        bone = (image > 140) & ~mask
        distance = ndimage.distance_transform_edt(~bone)
        assert distance[mask].max() <= 3.0, image_id
        far = ndimage.distance_transform_edt(~(image > 140)) > 12
        assert image[far].max() < 110, image_id  # the threshold separates bone from tissue


def test_planted_signal(default):
    # The crack is clearly darker than the bone right around it: the ring of pixels within 2 px
    # of the crack (mostly bone, as the crack runs across a bone).
    gaps = []
    for r in _rows(default):
        if r["fractured"] != "1":
            continue
        image, mask = _pair(default, r["image_id"])
        mask = mask > 0
        ring = ndimage.binary_dilation(mask, iterations=2) & ~mask
        inside, around = float(image[mask].mean()), float(image[ring].mean())
        assert inside < around - 25, r["image_id"]
        gaps.append(around - inside)
    assert np.median(gaps) > 40


def test_params_validation():
    with pytest.raises(InputError, match=r"config: colour: unknown key"):
        SyntheticFractureParams.from_dict({"colour": 1})
    assert SyntheticFractureParams.from_dict({"seed": 4, "size": 64}) == SyntheticFractureParams(seed=4, size=64)
    with pytest.raises(InputError, match=r"synthetic.yaml: fracture_fraction: got 1.5"):
        SyntheticFractureParams.from_dict({"fracture_fraction": 1.5}, source="synthetic.yaml")
    with pytest.raises(InputError, match=r"test_fraction: .*val_fraction \+ test_fraction < 1"):
        SyntheticFractureParams(val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(InputError, match=r"n_images: 1 fractured images"):
        SyntheticFractureParams(n_images=10, fracture_fraction=0.1)
    with pytest.raises(InputError, match=r"size: got True"):
        SyntheticFractureParams(size=True)


def test_writes_atomically(tmp_path, monkeypatch):
    out = tmp_path / "syn"
    small = SyntheticFractureParams(n_images=12, size=48, fracture_fraction=0.5)
    synthesize(out, small)
    before = _files(out)
    real = synthetic._render

    def failing(params, index, fractured):
        if index == 7:
            raise RuntimeError("disk full")
        return real(params, index, fractured)

    monkeypatch.setattr(synthetic, "_render", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        synthesize(out, SyntheticFractureParams(n_images=12, size=48, fracture_fraction=0.5, seed=5))
    assert _files(out) == before  # the old set is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["syn"]  # no temporary folder left
    monkeypatch.setattr(synthetic, "_render", real)

    foreign = tmp_path / "real_data"
    foreign.mkdir()
    (foreign / "scan.png").write_bytes(b"x")
    with pytest.raises(InputError, match=r"real_data: out_dir: holds files not written by synthesize"):
        synthesize(foreign, small)
