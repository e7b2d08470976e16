"""Subject-level splits: every mode keeps a subject's sessions together, the modes do what the
reference lab's code does, and a subject on two sides is refused with the ids."""

import json

import numpy as np
import pytest

from medrepro.errors import InputError
from medrepro.studies.loes.split import build_split, check_disjoint, held_out_subjects


def _scans(n_subjects=20, sessions=2, flags=None):
    scans = []
    for i in range(n_subjects):
        for j in range(sessions):
            s = {"unit_id": f"sub-{i:03d}/ses-{j:02d}/x", "subject": f"sub-{i:03d}", "session": f"ses-{j:02d}",
                 "score": float(i % 7) + j}
            if flags is not None:
                s["training"], s["validation"] = flags(i, j)
            scans.append(s)
    return scans


def _manifest(tmp_path, scans):
    p = tmp_path / "manifest.json"
    p.write_text(json.dumps({"scans": scans}))
    return p


@pytest.mark.parametrize("mode", ["random", "stratified", "columns"])
def test_every_mode_keeps_subjects_on_one_side(tmp_path, mode):
    scans = _scans(flags=lambda i, j: (int(i % 5 != 0), int(i % 5 == 0)))
    out = build_split(_manifest(tmp_path, scans), tmp_path / "split.json", mode=mode)
    subjects = {side: set(out["subjects"][side]) for side in ("train", "val", "test")}
    assert not (subjects["train"] & subjects["test"]) and not (subjects["train"] & subjects["val"])
    assert not (subjects["val"] & subjects["test"])
    assert sum(len(out[s]) for s in ("train", "val", "test")) == len(scans)
    assert out["check"]["disjoint"] is True
    assert json.loads((tmp_path / "split.json").read_text())["train"] == out["train"]


def test_random_mode_is_seed_42_80_20_by_subject():
    scans = _scans(n_subjects=50)
    side, _ = held_out_subjects(scans, "random", seed=42, held_out=0.2)
    subjects = sorted({s["subject"] for s in scans})
    order = np.random.default_rng(42).permutation(50)
    assert {subjects[i] for i in order[40:]} == {s for s, v in side.items() if v == "test"}
    assert sum(v == "test" for v in side.values()) == 10


def test_stratified_mode_sends_every_fifth_subject_by_mean_score_to_test():
    scans = [{"unit_id": f"s{i}/a/x", "subject": f"s{i}", "score": float(score)}
             for i, score in enumerate([9, 1, 5, 3, 7, 2, 8, 4, 6, 0])]
    side, _ = held_out_subjects(scans, "stratified", every=5)
    # sorted by mean score: s9(0) s1(1) s5(2) s3(3) s7(4) s2(5) s8(6) s4(7) s6(8) s0(9); 5th and 10th
    assert sorted(s for s, v in side.items() if v == "test") == ["s0", "s7"]


def test_columns_mode_uses_the_csv_flags_and_counts_rows_without_one(tmp_path):
    scans = _scans(n_subjects=10, flags=lambda i, j: (int(i < 7), int(i >= 8)))
    out = build_split(_manifest(tmp_path, scans), tmp_path / "s.json", mode="columns")
    assert set(out["subjects"]["test"]) == {"sub-008", "sub-009"}
    assert len(out["excluded"]) == 2  # sub-007's two sessions have neither flag


def test_a_subject_on_both_sides_fails_with_the_ids(tmp_path):
    scans = _scans(n_subjects=6, flags=lambda i, j: (1, 0) if not (i == 3 and j == 1) else (0, 1))
    with pytest.raises(InputError, match=r"sub-003: train \['sub-003/ses-00/x'\], test \['sub-003/ses-01/x'\]"):
        build_split(_manifest(tmp_path, scans), tmp_path / "s.json", mode="columns")
    assert not (tmp_path / "s.json").exists()
    with pytest.raises(InputError, match="both 1"):
        held_out_subjects(_scans(n_subjects=2, flags=lambda i, j: (1, 1)), "columns")


def test_the_disjointness_check_catches_a_hand_made_leak():
    scans = {s["unit_id"]: s for s in _scans(n_subjects=3)}
    leak = {"train": ["sub-000/ses-00/x", "sub-001/ses-00/x"], "val": ["sub-002/ses-00/x"],
            "test": ["sub-000/ses-01/x"]}
    with pytest.raises(InputError, match="sub-000 in test, train"):
        check_disjoint(leak, scans)
