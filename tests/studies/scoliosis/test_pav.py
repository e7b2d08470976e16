"""PAV (postural asymmetry vector): per-frame measures, robust mean, TRAIN-only min-max."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from medrepro.errors import InputError
from medrepro.studies.scoliosis.pav import (
    PAV_PAIRS,
    apply_minmax,
    build_pav,
    compute_pav,
    fit_minmax,
    frame_measures,
)

SHOULDERS, HIPS = 2, 5  # rows of the PAV


def standing(frames: int = 1) -> np.ndarray:
    """A symmetric person seen from behind: left joints on the image's left (x < 300).

    y spans 100..356 (256 px), so normalising to height 128 halves every distance."""
    pose = np.zeros((frames, 17, 3), np.float32)
    half_width = [0, 8, 8, 16, 16, 40, 40, 45, 45, 48, 48, 20, 20, 22, 22, 22, 22]
    ys = [100, 95, 95, 100, 100, 150, 150, 200, 200, 240, 240, 250, 250, 300, 300, 356, 356]
    ys[1] = ys[2] = 100  # keep the top at 100
    for j in range(17):
        side = -1 if j % 2 == 1 else 1  # odd = left in COCO
        pose[:, j] = (300 + side * half_width[j], ys[j], 0.9)
    return pose


def test_known_asymmetry_gives_expected_measures():
    pose = standing()
    pose[0, 5, 1] -= 10  # left shoulder 10 px higher
    pose[0, [5, 6], 0] += 6  # shoulders shifted 6 px to the right of the mid-hip
    m = frame_measures(pose)
    assert m.shape == (1, 8, 3)
    dy, mid_x, tilt = m[0, SHOULDERS]
    assert dy == pytest.approx(5.0)  # 10 px x 128 / 256
    assert mid_x == pytest.approx(3.0)
    # dx = x_left - x_right = -80 px (seen from behind), dy = -10 px: literal |atan2(dy, dx)|
    assert tilt == pytest.approx(abs(math.atan2(-10, -80)))
    horizontal = frame_measures(pose, tilt="horizontal")[0, SHOULDERS, 2]
    assert horizontal == pytest.approx(math.atan2(10, 80))
    # Symmetric pairs: zero height difference and zero midline offset.
    np.testing.assert_allclose(m[0, HIPS, :2], 0.0, atol=1e-9)
    np.testing.assert_allclose(frame_measures(pose, "horizontal")[0, HIPS, 2], 0.0, atol=1e-9)


def test_missing_ends_and_unnormalisable_frames_are_nan():
    pose = standing(3)
    pose[0, 9] = 0.0  # left wrist missing
    pose[1, 11] = 0.0  # a hip missing: the whole frame is NaN
    m = frame_measures(pose)
    assert np.isnan(m[0, 4]).all() and not np.isnan(np.delete(m[0], 4, axis=0)).any()
    assert np.isnan(m[1]).all()
    assert not np.isnan(m[2]).any()


def test_outlier_removal_drops_a_spike():
    pose = standing(21)
    pose[:, 5, 1] -= 10  # |dy| = 5 after normalisation in every frame ...
    pose[7, 5, 1] += 90  # ... but one frame has a spike (|dy| = 40; extent unchanged)
    m = frame_measures(pose)
    assert m[7, SHOULDERS, 0] == pytest.approx(40.0)
    assert np.nanmean(m[:, SHOULDERS, 0]) > 6.5  # a plain mean would be pulled up
    pav = compute_pav(pose)
    assert pav.shape == (8, 3)
    assert pav[SHOULDERS, 0] == pytest.approx(5.0)


def test_all_nan_pair_gives_zero():
    pose = standing(5)
    pose[:, 3] = 0.0  # left ear never seen
    pav = compute_pav(pose)
    assert (pav[1] == 0.0).all()
    assert (compute_pav(np.zeros((4, 17, 3))) == 0.0).all()
    assert (compute_pav(np.zeros((0, 17, 3))) == 0.0).all()


def _random_pavs(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {f"{i:05d}": rng.uniform(0, 10, (8, 3)) for i in range(n)}


def test_fit_uses_train_ids_only():
    pavs = _random_pavs(10)
    train = [f"{i:05d}" for i in range(6)]
    stats = fit_minmax(pavs, train)
    assert stats["n_train"] == 6 and len(stats["train_ids_sha256"]) == 64
    np.testing.assert_allclose(stats["min"], np.min([pavs[i] for i in train], axis=0))

    changed = dict(pavs)
    changed["00008"] = np.full((8, 3), 1e6)  # a test sequence
    assert fit_minmax(changed, train) == stats
    changed["00002"] = np.full((8, 3), 1e6)  # a training sequence
    assert fit_minmax(changed, train)["max"] != stats["max"]
    assert fit_minmax(pavs, list(reversed(train)) + train[:2]) == stats  # order and repeats
    with pytest.raises(InputError, match="train"):
        fit_minmax(pavs, ["00001", "99999"])
    with pytest.raises(InputError):
        fit_minmax(pavs, [])


def test_scaled_values_in_unit_interval():
    pavs = _random_pavs(20, seed=1)
    train = [f"{i:05d}" for i in range(10)]
    stats = fit_minmax(pavs, train)
    scaled = apply_minmax(np.stack(list(pavs.values())), stats)
    assert scaled.shape == (20, 8, 3)
    assert scaled.min() >= 0.0 and scaled.max() <= 1.0
    train_scaled = scaled[:10]
    np.testing.assert_allclose(train_scaled.min(axis=0), 0.0)
    np.testing.assert_allclose(train_scaled.max(axis=0), 1.0)
    flat = dict(stats, max=stats["min"])  # max == min -> 0
    assert (apply_minmax(pavs["00003"], flat) == 0.0).all()


def test_build_pav_end_to_end(tmp_path: Path, npy_pose_loader):
    rng = np.random.default_rng(3)
    (tmp_path / "poses").mkdir()
    seqs = []
    for i in range(6):
        pose = standing(12)
        pose[..., :2] += rng.normal(0, 3, pose[..., :2].shape).astype(np.float32)
        np.save(tmp_path / "poses" / f"{i:05d}.npy", pose)
        seqs.append({"id": f"{i:05d}", "label": "neutral", "frames": 12, "pose": f"{i:05d}.npy"})
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"pose_root": str(tmp_path / "poses"), "sequences": seqs}))
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["00000", "00001", "00002"], "val": ["00003"], "test": ["00004", "00005"]}))

    stats = build_pav(manifest, split, tmp_path / "out" / "pav.npz", tmp_path / "out" / "pav_stats.json")
    with np.load(tmp_path / "out" / "pav.npz") as z:
        assert list(z["ids"]) == [s["id"] for s in seqs]
        raw, scaled = z["raw"], z["scaled"]
    assert raw.shape == scaled.shape == (6, 8, 3)
    np.testing.assert_allclose(raw[4], compute_pav(np.load(tmp_path / "poses" / "00004.npy")))
    assert scaled.min() >= 0 and scaled.max() <= 1
    on_disk = json.loads((tmp_path / "out" / "pav_stats.json").read_text())
    assert on_disk == json.loads(json.dumps(stats))
    assert on_disk["n_train"] == 3 and on_disk["pairs"][2] == "shoulders" and on_disk["tilt"] == "atan2"
    np.testing.assert_allclose(on_disk["min"], raw[:3].min(axis=0))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["pav.npz", "pav_stats.json"]

    split.write_text(json.dumps({"train": ["00000", "nope"]}))
    with pytest.raises(InputError, match="split.json: train"):
        build_pav(manifest, split, tmp_path / "o2.npz", tmp_path / "o2.json")
    assert not (tmp_path / "o2.npz").exists()


def test_pairs_constant():
    assert PAV_PAIRS[0] == ("eyes", 1, 2) and PAV_PAIRS[-1] == ("ankles", 15, 16) and len(PAV_PAIRS) == 8
