"""Synthetic Loes cohort: the real layout, determinism, orientation and spacing variety, the score
distribution, the split columns and the planted lesion signal, each checked from the files."""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage, stats

from medrepro.errors import InputError
from medrepro.studies.loes import synthetic
from medrepro.studies.loes.data import COLUMNS, SPLIT_COLUMNS, read_cohort
from medrepro.studies.loes.synthetic import SyntheticLoesParams, synthesize

SMALL = SyntheticLoesParams(n_subjects=8, shape=(24, 28, 24))


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "loes.csv", newline="") as f:
        return list(csv.DictReader(f))


def _image(out: Path, row: dict[str, str]) -> nib.Nifti1Image:
    name = f"{row['anonymized_subject_id']}_{row['anonymized_session_id']}_space-MNI_brain_mprage_RAVEL.nii.gz"
    return nib.load(out / "images" / name)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("syn") / "small"
    synthesize(out, SMALL)
    return out


def test_real_layout(small):
    with open(small / "loes.csv", newline="") as f:
        header = next(csv.reader(f))
    assert header == list(COLUMNS) + list(SPLIT_COLUMNS)
    rows = _rows(small)
    assert {r["anonymized_subject_id"] for r in rows} == {f"sub-{i:03d}" for i in range(1, 9)}
    for r in rows:
        assert r["scan"] == f"{r['anonymized_subject_id']}_{r['anonymized_session_id']}"
        img = _image(small, r)
        assert img.shape == (24, 28, 24) or sorted(img.shape) == sorted((24, 28, 24))
        assert img.get_data_dtype() == np.float32
        data = np.asarray(img.dataobj)
        assert data[0, 0, 0] == 0 and np.isfinite(data).all() and (data > 0).mean() > 0.1
    assert len(read_cohort(small / "loes.csv", small / "images")) == len(rows)


def test_sessions_and_progression(small):
    by_subject = defaultdict(list)
    for r in _rows(small):
        by_subject[r["anonymized_subject_id"]].append((r["anonymized_session_id"], float(r["loes-score"])))
    for sessions in by_subject.values():
        sessions.sort()
        assert 1 <= len(sessions) <= 3
        assert [s for s, _ in sessions] == [f"ses-{i:02d}" for i in range(1, len(sessions) + 1)]
        scores = [v for _, v in sessions]
        assert scores == sorted(scores)  # disease progression: never decreasing


def test_deterministic_bytes(tmp_path, small):
    again = synthesize(tmp_path / "again", SMALL)
    assert _files(tmp_path / "again") == _files(small)
    assert again["n_scans"] == len(_rows(small))
    synthesize(tmp_path / "other", replace(SMALL, seed=1))
    assert _files(tmp_path / "other") != _files(small)


def test_non_ras_scans_match_ras_in_world_coordinates(tmp_path):
    params = replace(SMALL, n_subjects=6, non_ras_fraction=0.6)
    synthesize(tmp_path / "mixed", params)
    synthesize(tmp_path / "ras", replace(params, non_ras_fraction=0.0))
    n_non_ras = 0
    rng = np.random.default_rng(0)
    for row in _rows(tmp_path / "mixed"):
        stored, ras = _image(tmp_path / "mixed", row), _image(tmp_path / "ras", row)
        assert nib.aff2axcodes(ras.affine) == ("R", "A", "S")
        if nib.aff2axcodes(stored.affine) == ("R", "A", "S"):
            continue
        n_non_ras += 1
        a, b = np.asarray(stored.dataobj), np.asarray(ras.dataobj)
        assert a.shape != b.shape or not np.array_equal(a, b)  # really stored differently
        canon = nib.as_closest_canonical(stored)
        np.testing.assert_array_equal(np.asarray(canon.dataobj), b)
        np.testing.assert_allclose(canon.affine, ras.affine, atol=1e-4)
        # Independently of nibabel's reorientation: voxels at the same world point hold the same value.
        ijk = np.stack([rng.integers(0, n, 200) for n in a.shape])
        world = stored.affine[:3, :3] @ ijk + stored.affine[:3, 3:]
        inv = np.linalg.inv(ras.affine)
        ijk_ras = np.rint(inv[:3, :3] @ world + inv[:3, 3:]).astype(int)
        np.testing.assert_array_equal(a[tuple(ijk)], b[tuple(ijk_ras)])
    assert n_non_ras >= 3


def test_spacing_varies_and_is_physical(small):
    zooms, volumes = set(), defaultdict(list)
    for r in _rows(small):
        img = nib.as_closest_canonical(_image(small, r))
        z = tuple(float(v) for v in img.header.get_zooms())
        zooms.add(z)
        brain = np.asarray(img.dataobj) != 0
        volumes[r["anonymized_subject_id"]].append(brain.sum() * np.prod(z))
    assert len(zooms) >= 2
    for v in volumes.values():  # the same brain in mm^3 whatever the voxel size
        assert max(v) / min(v) < 1.15


def test_scores_skewed_low_with_half_points(tmp_path):
    # Scores do not depend on the image grid: a tiny grid gives a large cohort quickly.
    synthesize(tmp_path / "many", SyntheticLoesParams(n_subjects=150, shape=(8, 8, 8)))
    scores = np.array([float(r["loes-score"]) for r in _rows(tmp_path / "many")])
    assert scores.min() >= 0 and scores.max() <= 34
    assert np.all(scores * 2 == np.round(scores * 2))
    assert 0.1 < np.mean(scores % 1 == 0.5) < 0.6
    assert np.mean(scores <= 4) > 0.45 and np.mean(scores == 0) > 0.15
    assert np.median(scores) < np.mean(scores) and stats.skew(scores) > 1
    assert scores.max() >= 25


def test_split_columns_keep_subjects_together(tmp_path):
    synthesize(tmp_path / "many", SyntheticLoesParams(n_subjects=50, shape=(8, 8, 8)))
    sides = defaultdict(set)
    for r in _rows(tmp_path / "many"):
        assert int(r["training"]) + int(r["validation"]) == 1
        sides[r["anonymized_subject_id"]].add(r["validation"])
    assert all(len(s) == 1 for s in sides.values())
    assert sum(s == {"1"} for s in sides.values()) == 10  # a fifth of 50

    synthesize(tmp_path / "nosplit", SyntheticLoesParams(n_subjects=3, shape=(8, 8, 8), split_columns=False))
    with open(tmp_path / "nosplit" / "loes.csv", newline="") as f:
        assert next(csv.reader(f)) == list(COLUMNS)


def test_planted_lesions_follow_the_score(tmp_path):
    clean = SyntheticLoesParams(n_subjects=25, bias_strength=0.0, noise=0.0, gd_fraction=0.3)
    synthesize(tmp_path / "clean", clean)
    scores, counts, volumes = [], [], []
    for r in _rows(tmp_path / "clean"):
        img = _image(tmp_path / "clean", r)
        data = np.asarray(img.dataobj)
        lesion = int((data == np.float32(0.45)).sum())  # the lesion intensity, nothing else has it
        score = float(r["loes-score"])
        if score == 0:
            assert lesion == 0
        rim = int((data == np.float32(1.3)).sum())
        assert (rim > 0) == (r["Gd-enhanced"] == "1" and score > 0)
        scores.append(score)
        counts.append(lesion)
        volumes.append(lesion * np.prod(img.header.get_zooms()))
    assert stats.spearmanr(scores, counts).statistic > 0.95
    assert stats.spearmanr(scores, volumes).statistic > 0.95


def test_planted_signal_survives_bias_and_noise(tmp_path):
    synthesize(tmp_path / "noisy", SyntheticLoesParams(n_subjects=20))
    scores, dark = [], []
    for r in _rows(tmp_path / "noisy"):
        img = nib.as_closest_canonical(_image(tmp_path / "noisy", r))
        data = np.asarray(img.dataobj, dtype=np.float64)
        brain = data != 0
        # Divide out the smooth bias field with a normalised wide Gaussian, count dark deep voxels.
        local = ndimage.gaussian_filter(data, 3) / np.maximum(ndimage.gaussian_filter(brain * 1.0, 3), 1e-3)
        deep = ndimage.binary_erosion(brain, iterations=3)
        dark.append(((data < 0.75 * local) & deep).sum() * np.prod(img.header.get_zooms()))
        scores.append(float(r["loes-score"]))
    assert stats.spearmanr(scores, dark).statistic > 0.8


def test_failure_leaves_nothing(tmp_path, monkeypatch):
    calls = []
    real = synthetic._nifti_bytes

    def failing(*args):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return real(*args)

    monkeypatch.setattr(synthetic, "_nifti_bytes", failing)
    with pytest.raises(RuntimeError):
        synthesize(tmp_path / "out", replace(SMALL, n_subjects=3))
    assert list(tmp_path.iterdir()) == []


def test_replaces_its_own_output_only(tmp_path):
    out = tmp_path / "out"
    synthesize(out, replace(SMALL, n_subjects=3))
    (out / "images" / "stale.nii.gz").write_bytes(b"x")
    synthesize(out, replace(SMALL, n_subjects=2))
    assert not (out / "images" / "stale.nii.gz").exists()
    assert {r["anonymized_subject_id"] for r in _rows(out)} == {"sub-001", "sub-002"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]

    real = tmp_path / "real"
    real.mkdir()
    (real / "loes.csv").write_text("a real cohort\n")
    with pytest.raises(InputError, match="not written by this generator"):
        synthesize(real, SMALL)
    assert (real / "loes.csv").read_text() == "a real cohort\n"


def test_params_from_dict():
    p = SyntheticLoesParams.from_dict({"n_subjects": 5, "shape": [16, 16, 16], "spacings": [[4, 4, 4]]})
    assert p.shape == (16, 16, 16) and p.spacings == ((4.0, 4.0, 4.0),) and p.n_subjects == 5
    with pytest.raises(InputError, match="unknown key"):
        SyntheticLoesParams.from_dict({"subjects": 5})
    with pytest.raises(InputError, match="non_ras_fraction"):
        SyntheticLoesParams.from_dict({"non_ras_fraction": 1.5})
    with pytest.raises(InputError, match="sessions_max"):
        SyntheticLoesParams(sessions_min=3, sessions_max=2)
