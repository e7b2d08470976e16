"""Synthetic Scoliosis1K generator: layout, determinism, split ratios, planted signal."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from medrepro.errors import InputError
from medrepro.studies.scoliosis.synthetic import (
    LABELS,
    SyntheticScoliosisParams,
    _make_splits,
    generate_scoliosis1k,
)

SMALL = SyntheticScoliosisParams(n_positive=12, n_neutral=12, n_negative=24, frames_min=20, frames_max=30,
                                 test_per_class=3, seed=7)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("sco") / "data"
    return root, generate_scoliosis1k(root, SMALL)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _load(path: Path) -> np.ndarray:
    with open(path, "rb") as f:
        return pickle.load(f)


def test_layout_and_arrays(dataset):
    root, summary = dataset
    assert sorted(p.name for p in root.iterdir()) == [
        "Scoliosis1K-pose-pkl", "Scoliosis1K-sil-pkl", "Scoliosis1K_112.json", "Scoliosis1K_118.json",
        "synthetic_scoliosis.json"]
    n = SMALL.n_positive + SMALL.n_neutral + SMALL.n_negative
    pose_ids = sorted(p.name for p in (root / "Scoliosis1K-pose-pkl").iterdir())
    assert pose_ids == [f"{i:05d}" for i in range(n)]
    assert summary["ids"] == n and summary["classes"] == {"negative": 24, "neutral": 12, "positive": 12}
    labels = {}
    for sid in pose_ids:
        (label_dir,) = list((root / "Scoliosis1K-pose-pkl" / sid).iterdir())
        labels[sid] = label_dir.name
        rel = Path(sid, label_dir.name, "000_180", "000_180.pkl")
        pose = _load(root / "Scoliosis1K-pose-pkl" / rel)
        sil = _load(root / "Scoliosis1K-sil-pkl" / rel)
        assert pose.dtype == np.float64 and pose.shape[1:] == (17, 3)
        assert SMALL.frames_min <= len(pose) <= SMALL.frames_max
        assert sil.dtype == np.uint8 and sil.shape == (len(pose), 64, 64)
        assert set(np.unique(sil)) <= {0, 255}
        missing = pose[..., 2] == 0
        assert (pose[missing] == 0).all()
        conf = pose[..., 2][~missing]
        assert conf.min() > 0.3 and conf.max() <= 1.0
        xy = pose[..., :2][~missing]
        assert xy[:, 0].min() > 0 and xy[:, 0].max() < 320 and xy[:, 1].min() > 0 and xy[:, 1].max() < 240
        # Person cropped to full height and centred: first and last row used, mass around column 32.
        rows = (sil > 0).any(2)
        assert rows[:, 0].all() and rows[:, -1].all()
        centre = (sil.sum(1) * np.arange(64)).sum(1) / sil.sum((1, 2))
        assert np.abs(centre - 32).max() < 4
    assert set(labels.values()) == set(LABELS)


def test_dropout_and_noise_present(dataset):
    root, _ = dataset
    poses = [_load(p) for p in sorted((root / "Scoliosis1K-pose-pkl").rglob("*.pkl"))]
    missing = np.concatenate([(p[..., 2] == 0).ravel() for p in poses])
    assert 0.005 < missing.mean() < 0.1  # dropout_prob 0.03


def test_deterministic_per_seed(dataset, tmp_path):
    root, _ = dataset
    generate_scoliosis1k(tmp_path / "again", SMALL)
    assert _files(tmp_path / "again") == _files(root)
    other = SyntheticScoliosisParams(**{**SMALL.__dict__, "seed": 8})
    generate_scoliosis1k(tmp_path / "other", other)
    assert _files(tmp_path / "other") != _files(root)


def test_split_files_exact_ratios(dataset):
    root, _ = dataset
    labels = {p.parts[-4]: p.parts[-3] for p in (root / "Scoliosis1K-pose-pkl").rglob("*.pkl")}
    tests = []
    for name, ratio in (("Scoliosis1K_112.json", 2), ("Scoliosis1K_118.json", 8)):
        split = json.loads((root / name).read_text())
        assert sorted(split) == ["TEST_SET", "TRAIN_SET"]
        train, test = split["TRAIN_SET"], split["TEST_SET"]
        assert not set(train) & set(test) and len(set(train)) == len(train)
        count = {lab: sum(labels[i] == lab for i in train) for lab in LABELS}
        assert count["positive"] == count["neutral"] >= 1
        assert count["negative"] == ratio * count["positive"]
        assert {lab: sum(labels[i] == lab for i in test) for lab in LABELS} == dict.fromkeys(LABELS, 3)
        tests.append(test)
    assert tests[0] == tests[1]


def test_default_pool_supports_both_splits():
    params = SyntheticScoliosisParams()
    rng = np.random.default_rng(0)
    labels = ["positive"] * params.n_positive + ["neutral"] * params.n_neutral + ["negative"] * params.n_negative
    splits = _make_splits(labels, params, rng)
    per_class = lambda ids: {lab: sum(labels[int(i)] == lab for i in ids) for lab in LABELS}  # noqa: E731
    assert 30 <= params.test_per_class <= 40
    assert per_class(splits["Scoliosis1K_112.json"]["TEST_SET"]) == dict.fromkeys(LABELS, params.test_per_class)
    train118 = per_class(splits["Scoliosis1K_118.json"]["TRAIN_SET"])
    assert train118["positive"] >= 8 and train118["negative"] == 8 * train118["positive"]
    assert len(labels) <= 400


def _shoulder_asymmetry(pose: np.ndarray) -> float:
    ok = (pose[:, 5, 2] > 0) & (pose[:, 6, 2] > 0)
    visible_y = np.where(pose[..., 2] > 0, pose[..., 1], np.nan)
    height = np.nanmax(visible_y, 1) - np.nanmin(visible_y, 1)
    return float(np.mean(np.abs(pose[ok, 5, 1] - pose[ok, 6, 1]) / height[ok]))


def test_planted_asymmetry_signal(dataset):
    root, _ = dataset
    by_label = {lab: [] for lab in LABELS}
    for p in (root / "Scoliosis1K-pose-pkl").rglob("*.pkl"):
        by_label[p.parts[-3]].append(_shoulder_asymmetry(_load(p)))
    mean = {lab: np.mean(v) for lab, v in by_label.items()}
    assert mean["positive"] > mean["neutral"] > mean["negative"]
    assert mean["positive"] > 2 * mean["negative"]


def test_refuses_to_overwrite_foreign_data(tmp_path):
    (tmp_path / "Scoliosis1K-pose-pkl").mkdir()
    with pytest.raises(InputError, match="not made by this generator"):
        generate_scoliosis1k(tmp_path, SMALL)
    assert not any(p.name.startswith(".synthetic") for p in tmp_path.iterdir())


def test_regenerates_over_own_output(tmp_path):
    tiny = SyntheticScoliosisParams(n_positive=3, n_neutral=3, n_negative=10, frames_min=5, frames_max=6,
                                    test_per_class=1)
    generate_scoliosis1k(tmp_path, tiny)
    first = _files(tmp_path)
    bigger = SyntheticScoliosisParams(**{**tiny.__dict__, "n_negative": 11})
    generate_scoliosis1k(tmp_path, bigger)
    ids = [p.name for p in (tmp_path / "Scoliosis1K-pose-pkl").iterdir()]
    assert len(ids) == 17
    generate_scoliosis1k(tmp_path, tiny)
    assert _files(tmp_path) == first
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("field, value", [("n_positive", 3), ("n_negative", 10), ("frames_min", 0),
                                          ("dropout_prob", 1.0), ("test_per_class", 0), ("asym_positive", -1.0)])
def test_bad_params(field, value):
    with pytest.raises(InputError, match=field):
        SyntheticScoliosisParams(**{**SMALL.__dict__, "test_per_class": 3, field: value})
