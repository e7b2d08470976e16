"""Subject-level splits of the loes cohort: all sessions of a subject are on one side.

Modes (``mode``):

- ``columns``: the CSV's own ``training`` / ``validation`` columns (the reference lab's way).
  The lab's ``validation`` scans are its held-out evaluation set: medrepro calls them ``test``.
  A row with neither flag is left out (and counted); a row with both is an error.
- ``random``: subjects shuffled with ``numpy.random.default_rng(seed)`` (seed 42), the first
  80 % (``held_out`` 0.2) train, the rest test.
- ``stratified``: subjects sorted by their mean score (ties by id), every 5th to test.

Checkpoint selection needs data the test set never sees: ``val_fraction`` of the TRAIN subjects
(shuffled with ``val_seed``) become the inner validation set; the others train.

A subject with scans on two sides fails the job with the subject and scan ids.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from medrepro.errors import InputError
from medrepro.fsutil import write_json

MODES = ("columns", "random", "stratified")
SIDES = ("train", "val", "test")


def _flag(value) -> int:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return 0
    return int(value)


def held_out_subjects(scans: list[dict], mode: str, seed: int = 42, held_out: float = 0.2,
                      every: int = 5, path: Path | None = None) -> tuple[dict[str, str], list[str]]:
    """{subject: "train" | "test"} and the unit ids left out (columns mode: neither flag)."""
    by_subject: dict[str, list[dict]] = defaultdict(list)
    for s in scans:
        by_subject[s["subject"]].append(s)
    subjects = sorted(by_subject)
    excluded: list[str] = []
    if mode == "columns":
        side_of: dict[str, str] = {}
        sides_seen: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        for s in scans:
            train, val = _flag(s.get("training")), _flag(s.get("validation"))
            if train and val:
                raise InputError(path, f"scan {s['unit_id']}", "training and validation are both 1",
                                 "at most one of the two flags set")
            if not (train or val):
                excluded.append(s["unit_id"])
                continue
            sides_seen[s["subject"]]["train" if train else "test"].append(s["unit_id"])
        both = {subj: dict(v) for subj, v in sides_seen.items() if len(v) > 1}
        if both:
            detail = "; ".join(f"{subj}: train {v['train']}, test {v['test']}" for subj, v in sorted(both.items()))
            raise InputError(path, "training/validation", f"subjects on both sides: {detail}",
                             "all sessions of a subject on one side")
        for subj, v in sides_seen.items():
            side_of[subj] = next(iter(v))
        return side_of, sorted(excluded)
    if mode == "random":
        order = np.random.default_rng(seed).permutation(len(subjects))
        n_test = int(round(held_out * len(subjects)))
        test = {subjects[i] for i in order[len(subjects) - n_test:]}
    elif mode == "stratified":
        means = {subj: float(np.mean([s["score"] for s in by_subject[subj]])) for subj in subjects}
        ordered = sorted(subjects, key=lambda subj: (means[subj], subj))
        test = {subj for i, subj in enumerate(ordered) if i % every == every - 1}
    else:
        raise InputError(path, "mode", f"got {mode!r}", f"one of {', '.join(MODES)}")
    return {subj: ("test" if subj in test else "train") for subj in subjects}, []


def check_disjoint(split: dict, scans_by_unit: dict[str, dict], path: Path | None = None) -> dict:
    """Every subject on exactly one side; returns the check's record for the audit."""
    sides: dict[str, set[str]] = defaultdict(set)
    for side in SIDES:
        for uid in split[side]:
            sides[scans_by_unit[uid]["subject"]].add(side)
    both = {subj: sorted(v) for subj, v in sides.items() if len(v) > 1}
    if both:
        detail = "; ".join(f"{subj} in {', '.join(v)}" for subj, v in sorted(both.items()))
        raise InputError(path, "split", f"subjects on more than one side: {detail}",
                         "all sessions of a subject on one side")
    n = {side: len({scans_by_unit[u]["subject"] for u in split[side]}) for side in SIDES}
    return {"disjoint": True, "n_subjects": n, "n_scans": {side: len(split[side]) for side in SIDES}}


def build_split(manifest_json: Path, out_json: Path, mode: str = "random", seed: int = 42, held_out: float = 0.2,
                every: int = 5, val_fraction: float = 0.15, val_seed: int = 0) -> dict:
    """Write the split (unit ids per side, subjects per side, the disjointness check)."""
    manifest = json.loads(Path(manifest_json).read_text())
    scans = manifest["scans"]
    by_unit = {s["unit_id"]: s for s in scans}
    side_of, excluded = held_out_subjects(scans, mode, seed, held_out, every, Path(manifest_json))
    train_subjects = sorted(subj for subj, side in side_of.items() if side == "train")
    order = np.random.default_rng(val_seed).permutation(len(train_subjects))
    n_val = max(1, int(round(val_fraction * len(train_subjects)))) if len(train_subjects) > 1 else 0
    val_subjects = {train_subjects[i] for i in order[:n_val]}
    for subj in val_subjects:
        side_of[subj] = "val"
    split = {side: sorted(u for u, s in by_unit.items() if side_of.get(s["subject"]) == side) for side in SIDES}
    for side in SIDES:
        if not split[side]:
            raise InputError(manifest_json, f"split.{side}", f"mode {mode!r} puts no scan on this side",
                             "at least one scan per side (more subjects, or another mode)")
    out = {"schema": "medrepro-loes-split-v1", "mode": mode,
           "params": {"seed": seed, "held_out": held_out, "every": every, "val_fraction": val_fraction,
                      "val_seed": val_seed},
           **split,
           "subjects": {side: sorted({by_unit[u]["subject"] for u in split[side]}) for side in SIDES},
           "excluded": excluded,
           "check": check_disjoint(split, by_unit, Path(out_json))}
    write_json(out_json, out)
    return out
