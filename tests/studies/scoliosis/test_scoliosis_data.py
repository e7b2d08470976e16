"""Scoliosis1K readers: safe unpickling, tree scan, arrays, split files, manifest, split record."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from medrepro.errors import InputError
from medrepro.fsutil import sha256_file
from medrepro.safe_pickle import load_array
from medrepro.studies.scoliosis.data import (
    DEFAULT_CLASS_MAP,
    LABELS,
    SplitLeakageError,
    build_manifest,
    build_split,
    carve_validation,
    check_disjoint,
    load_pose,
    load_silhouette,
    read_split,
    scan_tree,
)
from medrepro.studies.scoliosis.synthetic import SyntheticScoliosisParams, generate_scoliosis1k

PARAMS = SyntheticScoliosisParams(n_positive=6, n_neutral=6, n_negative=14, frames_min=6, frames_max=9,
                                  test_per_class=2, seed=3)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sco") / "data"
    generate_scoliosis1k(root, PARAMS)
    return root


@pytest.fixture
def trees(data, tmp_path) -> tuple[Path, Path]:
    """A private copy of both trees that a test may break."""
    pose, sil = tmp_path / "pose", tmp_path / "sil"
    shutil.copytree(data / "Scoliosis1K-pose-pkl", pose)
    shutil.copytree(data / "Scoliosis1K-sil-pkl", sil)
    return pose, sil


def _dump(path: Path, obj, protocol: int = 4) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


def _seq(root: Path, sid: str, label: str, obj) -> Path:
    return _dump(root / sid / label / "000_180" / "000_180.pkl", obj)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------------------------------------
# safe_pickle


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_rejected(tmp_path):
    marker = tmp_path / "pwned"
    path = _dump(tmp_path / "evil.pkl", _Evil(marker))
    with pytest.raises(InputError) as err:
        load_array(path)
    assert "evil.pkl" in str(err.value) and "system" in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize("obj, what", [({"a": 1}, "dict"), ([1, 2], "list"), (np.array([1, None]), "dtype object"),
                                       (np.float64(2.0), "float64")])
def test_non_array_pickles_rejected(tmp_path, obj, what):
    with pytest.raises(InputError, match="x.pkl") as err:
        load_array(_dump(tmp_path / "x.pkl", obj))
    assert what in str(err.value)


def test_corrupt_and_missing_pickle(tmp_path):
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps(np.zeros(3))[:-4])
    with pytest.raises(InputError, match="bad.pkl.*cannot unpickle"):
        load_array(path)
    with pytest.raises(InputError, match="nope.pkl"):
        load_array(tmp_path / "nope.pkl")


@pytest.mark.parametrize("protocol", range(0, pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("array", [np.random.default_rng(0).random((3, 17, 3)), np.arange(2 * 64 * 64, dtype=np.uint8).reshape(2, 64, 64),
                                   np.arange(6, dtype=np.int64), np.ones((2, 3), np.float32).T, np.array([True, False])])
def test_arrays_round_trip(tmp_path, protocol, array):
    out = load_array(_dump(tmp_path / "a.pkl", array, protocol))
    assert out.dtype == array.dtype and np.array_equal(out, array)


# ---------------------------------------------------------------------------------------------
# scan_tree, load_pose, load_silhouette


def test_scan_and_load_generated(data):
    n = PARAMS.n_positive + PARAMS.n_neutral + PARAMS.n_negative
    poses, sils = scan_tree(data / "Scoliosis1K-pose-pkl"), scan_tree(data / "Scoliosis1K-sil-pkl")
    assert sorted(poses) == sorted(sils) == [f"{i:05d}" for i in range(n)]
    assert {label for label, _ in poses.values()} == set(LABELS)
    for sid, (label, path) in poses.items():
        assert path.parts[-3:] == (label, "000_180", "000_180.pkl") and sils[sid][0] == label
        pose, sil = load_pose(path), load_silhouette(sils[sid][1])
        assert pose.dtype == np.float64 and pose.shape[1:] == (17, 3)  # kept as written
        assert sil.dtype == np.uint8 and sil.shape == (len(pose), 64, 64)


def test_scan_accepts_capitalised_label(tmp_path):
    _seq(tmp_path, "00003", "Positive", np.zeros((2, 17, 3)))
    (tmp_path / ".DS_Store").write_text("")
    ((label, path),) = scan_tree(tmp_path).values()
    assert label == "positive" and path.parent.parent.name == "Positive"


@pytest.mark.parametrize("make, fragment", [
    (lambda r: _seq(r, "00001", "sick", np.zeros((2, 17, 3))), "sick"),
    (lambda r: _seq(r, "123", "positive", np.zeros((2, 17, 3))), "123"),
    (lambda r: (r / "00001" / "neutral" / "000_180").mkdir(parents=True), "000_180.pkl"),
    (lambda r: (_seq(r, "00001", "neutral", np.zeros((2, 17, 3))), _seq(r, "00001", "positive", np.zeros((2, 17, 3)))),
     "00001"),
    (lambda r: (r / "00001").mkdir(), "00001"),
])
def test_scan_tree_errors(tmp_path, make, fragment):
    root = tmp_path / "tree"
    root.mkdir()
    _seq(root, "00000", "negative", np.zeros((2, 17, 3)))
    make(root)
    with pytest.raises(InputError) as err:
        scan_tree(root)
    assert str(root) in str(err.value) and fragment in str(err.value)


def test_scan_tree_missing_or_empty(tmp_path):
    with pytest.raises(InputError, match="missing"):
        scan_tree(tmp_path / "missing")
    with pytest.raises(InputError, match="no ID folders"):
        scan_tree(tmp_path)


@pytest.mark.parametrize("array, problem", [
    (np.zeros((5, 17, 2)), "shape"),
    (np.zeros((5, 3, 17)), "shape"),
    (np.zeros((0, 17, 3)), "empty"),
    (np.full((4, 17, 3), np.nan), "non-finite"),
    (np.array([[[np.inf, 0, 0]] * 17]), "non-finite"),
    (np.full((2, 17, 3), 1e300), "non-finite"),
])
def test_load_pose_bad(tmp_path, array, problem):
    path = _dump(tmp_path / "p.pkl", array)
    with pytest.raises(InputError) as err:
        load_pose(path)
    msg = str(err.value)
    assert "p.pkl" in msg and "pose" in msg and problem in msg and "(T, 17, 3)" in msg


@pytest.mark.parametrize("array, problem", [
    (np.zeros((5, 64, 44), np.uint8), "shape"),
    (np.zeros((0, 64, 64), np.uint8), "empty"),
    (np.full((1, 64, 64), np.nan), "non-finite"),
    (np.full((1, 64, 64), 300.0), "outside"),
    (np.full((1, 64, 64), 0.5), "outside"),
])
def test_load_silhouette_bad(tmp_path, array, problem):
    path = _dump(tmp_path / "s.pkl", array)
    with pytest.raises(InputError) as err:
        load_silhouette(path)
    msg = str(err.value)
    assert "s.pkl" in msg and "silhouette" in msg and problem in msg


def test_load_silhouette_casts_integral_values(tmp_path):
    out = load_silhouette(_dump(tmp_path / "s.pkl", np.full((2, 64, 64), 255.0)))
    assert out.dtype == np.uint8 and (out == 255).all()


# ---------------------------------------------------------------------------------------------
# Split files


def _split_file(tmp_path: Path, obj, name: str = "split.json") -> Path:
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


def test_read_split_generated(data):
    split = read_split(data / "Scoliosis1K_112.json")
    assert sorted(split) == ["test", "train"] and len(split["test"]) == 6


@pytest.mark.parametrize("obj, fragment", [
    ('{"TRAIN_SET": [', "not valid JSON"),
    ([], "top level"),
    ({"TRAIN_SET": ["00001"]}, "TEST_SET"),
    ({"TRAIN_SET": "00001", "TEST_SET": []}, "TRAIN_SET"),
    ({"TRAIN_SET": [1], "TEST_SET": []}, "TRAIN_SET"),
    ({"TRAIN_SET": ["1"], "TEST_SET": []}, "TRAIN_SET"),
    ({"TRAIN_SET": ["00001"], "TEST_SET": ["00002", "00002"]}, "duplicate"),
    ({"TRAIN_SET": ["00001", "00003"], "TEST_SET": ["00003"]}, "00003"),
])
def test_read_split_errors(tmp_path, obj, fragment):
    path = _split_file(tmp_path, obj)
    with pytest.raises(InputError) as err:
        read_split(path)
    assert "split.json" in str(err.value) and fragment in str(err.value)


def test_check_disjoint_names_pairs_and_ids():
    check_disjoint({"train": ["00001"], "val": ["00002"], "test": ["00003"]}, "s.json")
    with pytest.raises(SplitLeakageError) as err:
        check_disjoint({"train": ["00001", "00002"], "val": ["00002"], "test": ["00001"]}, "s.json")
    assert isinstance(err.value, InputError)
    assert err.value.overlaps == {"train/val": ["00002"], "train/test": ["00001"]}
    assert "s.json" in str(err.value) and "train/val" in str(err.value)


def test_carve_validation_stratified_and_seeded():
    labels = {f"{i:05d}": LABELS[0] if i < 40 else LABELS[1] if i < 50 else LABELS[2] for i in range(53)}
    ids = sorted(labels)
    train, val = carve_validation(ids, labels, 0.2, seed=1)
    assert train == sorted(train) and val == sorted(val) and sorted(train + val) == ids and not set(train) & set(val)
    count = {lab: sum(labels[i] == lab for i in val) for lab in LABELS}
    assert count == {"negative": 8, "neutral": 2, "positive": 1}  # 3 positives -> at least one
    assert carve_validation(ids, labels, 0.2, seed=1) == (train, val)
    assert carve_validation(ids, labels, 0.2, seed=2) != (train, val)
    assert carve_validation(ids, labels, 0.0, seed=1) == (ids, [])
    with pytest.raises(InputError, match="val_fraction"):
        carve_validation(ids, labels, 1.0, seed=1)


# ---------------------------------------------------------------------------------------------
# Manifest and split record


def test_build_manifest(trees, tmp_path):
    pose, sil = trees
    out = tmp_path / "out" / "manifest.json"
    manifest = build_manifest(pose, sil, out)
    assert json.loads(out.read_text()) == manifest
    assert manifest["schema"] == "medrepro-scoliosis-manifest-v1"
    seqs = manifest["sequences"]
    assert [s["id"] for s in seqs] == sorted(scan_tree(pose))
    for s in seqs:
        assert s["frames"] == len(load_pose(pose / s["pose"])) == len(load_silhouette(sil / s["sil"]))
        assert s["pose_sha256"] == sha256_file(pose / s["pose"]) and s["sil_sha256"] == sha256_file(sil / s["sil"])
    pose_only = build_manifest(pose, None, tmp_path / "pose_only.json")
    assert pose_only["sil_root"] is None and all(s["sil"] is None for s in pose_only["sequences"])


def _break_first_pose(pose: Path, array) -> Path:
    label, path = scan_tree(pose)["00000"]
    return _dump(path, array)


@pytest.mark.parametrize("breakage, fragment", [
    (lambda pose, sil: shutil.rmtree(sil / "00004"), "00004"),
    (lambda pose, sil: _break_first_pose(pose, np.zeros((0, 17, 3))), "000_180.pkl"),
    (lambda pose, sil: _break_first_pose(pose, np.full((3, 17, 3), np.nan)), "000_180.pkl"),
    (lambda pose, sil: _break_first_pose(pose, {"not": "an array"}), "000_180.pkl"),
    (lambda pose, sil: (sil / "00002").rename(sil / "00002x"), "00002x"),
])
def test_build_manifest_errors_leave_no_output(trees, tmp_path, breakage, fragment):
    pose, sil = trees
    breakage(pose, sil)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(InputError, match=fragment):
        build_manifest(pose, sil, out_dir / "manifest.json")
    assert _leftovers(out_dir) == []


def test_build_manifest_label_mismatch(trees, tmp_path):
    pose, sil = trees
    label, _ = scan_tree(sil)["00001"]
    other = next(lab for lab in LABELS if lab != label)
    (sil / "00001" / label).rename(sil / "00001" / other)
    with pytest.raises(InputError, match="00001"):
        build_manifest(pose, sil, tmp_path / "m.json")
    assert not (tmp_path / "m.json").exists()


@pytest.fixture
def manifest(data, tmp_path) -> Path:
    out = tmp_path / "manifest.json"
    build_manifest(data / "Scoliosis1K-pose-pkl", data / "Scoliosis1K-sil-pkl", out)
    return out


def test_build_split(data, manifest, tmp_path):
    class_map = {"positive": 0, "neutral": 1, "negative": 2}
    out = tmp_path / "split.json"
    record = build_split(manifest, data / "Scoliosis1K_112.json", out, 0.25, 0, class_map)
    assert json.loads(out.read_text()) == record
    assert record["schema"] == "medrepro-scoliosis-split-v1"
    assert record["class_map"] == class_map
    assert record["split_sha256"] == sha256_file(data / "Scoliosis1K_112.json")
    source = read_split(data / "Scoliosis1K_112.json")
    assert sorted(record["train"] + record["val"]) == sorted(source["train"])
    assert record["test"] == sorted(source["test"])
    assert record["counts"]["test"] == dict.fromkeys(LABELS, 2)
    train_counts = {lab: record["counts"]["train"][lab] + record["counts"]["val"][lab] for lab in LABELS}
    assert train_counts["negative"] == 2 * train_counts["positive"] == 2 * train_counts["neutral"]
    assert all(n >= 1 for n in record["counts"]["val"].values())
    assert set(record["labels"]) == set(record["train"] + record["val"] + record["test"])
    again = build_split(manifest, data / "Scoliosis1K_112.json", tmp_path / "again.json", 0.25, 0, DEFAULT_CLASS_MAP)
    assert again["val"] == record["val"] and again["class_map"] == DEFAULT_CLASS_MAP


def test_build_split_unknown_ids_leave_no_output(data, manifest, tmp_path):
    split = _split_file(tmp_path, {"TRAIN_SET": ["00000", "00001", "99999"], "TEST_SET": ["00002"]}, "bad_split.json")
    out = tmp_path / "out" / "split.json"
    with pytest.raises(InputError) as err:
        build_split(manifest, split, out, 0.2, 0, DEFAULT_CLASS_MAP)
    assert "bad_split.json" in str(err.value) and "99999" in str(err.value) and "TRAIN_SET" in str(err.value)
    assert not out.exists() and not list(tmp_path.rglob(".split.json*"))


@pytest.mark.parametrize("split_obj, fragment", [
    ({"TRAIN_SET": ["00000", "00001"], "TEST_SET": ["00001"]}, "train/test"),
    ({"TRAIN_SET": ["00000"]}, "TEST_SET"),
    ("not json", "JSON"),
])
def test_build_split_bad_split_file(manifest, tmp_path, split_obj, fragment):
    split = _split_file(tmp_path, split_obj, "broken.json")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(InputError, match=fragment) as err:
        build_split(manifest, split, out_dir / "split.json", 0.2, 0, DEFAULT_CLASS_MAP)
    assert "broken.json" in str(err.value)
    assert _leftovers(out_dir) == []


@pytest.mark.parametrize("class_map", [{"negative": 0, "neutral": 1}, {"negative": 0, "neutral": 0, "positive": 1},
                                       {"negative": 0, "neutral": 1, "positive": 3}])
def test_build_split_bad_class_map(data, manifest, tmp_path, class_map):
    with pytest.raises(InputError, match="class_map"):
        build_split(manifest, data / "Scoliosis1K_112.json", tmp_path / "s.json", 0.2, 0, class_map)
    assert not (tmp_path / "s.json").exists()


def test_build_split_rejects_non_manifest(data, tmp_path):
    fake = _split_file(tmp_path, {"schema": "other"}, "fake_manifest.json")
    with pytest.raises(InputError, match="fake_manifest.json"):
        build_split(fake, data / "Scoliosis1K_112.json", tmp_path / "s.json", 0.2, 0, DEFAULT_CLASS_MAP)
