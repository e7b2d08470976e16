"""Synthetic Scoliosis1K: walking skeletons with planted trunk asymmetry, in the real layout.

Each subject walks towards the camera (view ``000_180``). A simple articulated body (COCO-17
joints) swings its legs and arms in a periodic gait; the vertical bob follows from keeping the
lower foot on the ground. Positive and neutral subjects carry a trunk asymmetry (shoulder height
difference, opposite hip height difference, lateral trunk lean), neutral weaker than positive;
negative subjects only a small natural one. The pose file gets keypoint jitter, dropped
keypoints and confidences; the silhouette is rendered from the clean skeleton of the same
frames (capsule limbs, ellipse torso, head disc), cropped to the person's height and centred
like the real preprocessing.

Same seed -> byte-identical files.
"""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from medrepro.errors import InputError
from medrepro.fsutil import atomic_path, sha256_file, write_json

LABELS = ("negative", "neutral", "positive")
VIEW = "000_180"
POSE_TREE = "Scoliosis1K-pose-pkl"
SIL_TREE = "Scoliosis1K-sil-pkl"
SUMMARY = "synthetic_scoliosis.json"
SPLIT_RATIOS = {"Scoliosis1K_112.json": 2, "Scoliosis1K_118.json": 8}  # negatives per positive
FRAME_W, FRAME_H = 320, 240  # camera image size (px) the pose coordinates live in
SIL_SIZE = 64
PICKLE_PROTOCOL = 4

# COCO-17 joint indices.
NOSE, L_EYE, R_EYE, L_EAR, R_EAR = 0, 1, 2, 3, 4
L_SH, R_SH, L_EL, R_EL, L_WR, R_WR = 5, 6, 7, 8, 9, 10
L_HIP, R_HIP, L_KN, R_KN, L_AN, R_AN = 11, 12, 13, 14, 15, 16


@dataclass(frozen=True)
class SyntheticScoliosisParams:
    """Knobs of the synthetic dataset; the defaults give 304 IDs in a few seconds."""

    n_positive: int = 72
    n_neutral: int = 72
    n_negative: int = 160
    frames_min: int = 40
    frames_max: int = 80
    seed: int = 0
    pose_noise_px: float = 1.5  # std of the gaussian jitter on x and y (image px)
    dropout_prob: float = 0.03  # share of keypoints set to (0, 0, 0)
    asym_neutral: float = 0.5  # trunk asymmetry strength of neutral subjects (positive = 1.0 scale)
    asym_positive: float = 1.0
    test_per_class: int = 32  # IDs of each class in TEST_SET (same TEST_SET in every split file)

    def __post_init__(self) -> None:
        def bad(field: str, expected: str) -> InputError:
            return InputError(None, field, f"got {getattr(self, field)!r}", expected)

        if self.test_per_class < 1:
            raise bad("test_per_class", "an integer >= 1")
        for field in ("n_positive", "n_neutral"):
            if getattr(self, field) < self.test_per_class + 1:
                raise bad(field, f"an integer >= test_per_class + 1 = {self.test_per_class + 1}")
        need_neg = self.test_per_class + max(SPLIT_RATIOS.values())
        if self.n_negative < need_neg:
            raise bad("n_negative", f"an integer >= test_per_class + {max(SPLIT_RATIOS.values())} = {need_neg}")
        if self.n_positive + self.n_neutral + self.n_negative > 100_000:
            raise bad("n_negative", "at most 100000 IDs in all (five-digit IDs)")
        if not 1 <= self.frames_min <= self.frames_max:
            raise bad("frames_min", "1 <= frames_min <= frames_max")
        if not 0 <= self.pose_noise_px:
            raise bad("pose_noise_px", "a number >= 0")
        if not 0 <= self.dropout_prob < 1:
            raise bad("dropout_prob", "a number in [0, 1)")
        if not 0 <= self.asym_neutral:
            raise bad("asym_neutral", "a number >= 0")
        if not 0 <= self.asym_positive:
            raise bad("asym_positive", "a number >= 0")


# ---------------------------------------------------------------------------------------------
# Skeleton


def _asymmetry_strength(label: str, params: SyntheticScoliosisParams, rng: np.random.Generator) -> float:
    if label == "negative":
        return abs(rng.normal(0.0, 0.12))  # small natural asymmetry
    scale = params.asym_positive if label == "positive" else params.asym_neutral
    return scale * max(0.25, rng.normal(1.0, 0.3))


def _walk(label: str, n_frames: int, params: SyntheticScoliosisParams, rng: np.random.Generator):
    """Clean skeleton of one subject: (T, 17, 2) image px, per-frame body height (px), limb build."""
    t = np.arange(n_frames, dtype=np.float64)
    # Body proportions in units of body height.
    thigh, shin = 0.245 * rng.normal(1, 0.04), 0.245 * rng.normal(1, 0.04)
    ankle_h, trunk = 0.04, 0.29 * rng.normal(1, 0.04)
    upper, fore = 0.17 * rng.normal(1, 0.04), 0.15 * rng.normal(1, 0.04)
    shw, hipw = 0.115 * rng.normal(1, 0.07), 0.085 * rng.normal(1, 0.07)
    build = rng.normal(1, 0.08)  # limb thickness factor for the silhouette

    # Gait: per-subject cycle length, phase and swing amplitudes.
    period = rng.uniform(25, 35)
    phi = 2 * np.pi * t / period + rng.uniform(0, 2 * np.pi)
    s, c = np.sin(phi), np.cos(phi)
    leg_amp, knee_amp = np.radians(rng.uniform(20, 30)), np.radians(rng.uniform(35, 55))
    arm_amp, elbow0 = np.radians(rng.uniform(15, 30)), np.radians(rng.uniform(10, 25))

    # Planted trunk asymmetry: shoulder height difference, opposite hip drop, lateral lean.
    strength = _asymmetry_strength(label, params, rng)
    side = rng.choice([-1.0, 1.0])
    lean_side = side if rng.random() < 0.7 else -side
    d_sh = side * strength * 0.045 + 0.008 * s  # + shoulders rocking with the gait
    d_hip = -side * strength * 0.02 * rng.uniform(0.5, 1.5) + 0.010 * s
    lean = np.radians(lean_side * strength * 5.0 + 0.8 * s)

    J = np.zeros((n_frames, 17, 2))  # body frame: x to the image right, y up, units of height
    hip_y = ankle_h + thigh + shin
    # The subject faces the camera: its left side is on the image right (x > 0).
    for hip, knee, ankle, sign, theta, flex in (
        (L_HIP, L_KN, L_AN, 1.0, leg_amp * s, knee_amp * np.maximum(0, c) ** 1.5),
        (R_HIP, R_KN, R_AN, -1.0, -leg_amp * s, knee_amp * np.maximum(0, -c) ** 1.5),
    ):
        J[:, hip] = np.stack([np.full(n_frames, sign * hipw), hip_y + sign * d_hip / 2], -1)
        J[:, knee, 0] = sign * hipw * 0.95
        J[:, knee, 1] = J[:, hip, 1] - thigh * np.cos(theta)
        J[:, ankle, 0] = sign * hipw * 0.85
        J[:, ankle, 1] = J[:, knee, 1] - shin * np.cos(theta - flex - np.radians(5))
    mid_hip_y = J[:, [L_HIP, R_HIP], 1].mean(1)

    # Upper body, built upright above the mid-hip, then leaned about it.
    up = np.zeros((n_frames, 17, 2))
    sh_y = mid_hip_y + trunk
    for shoulder, elbow, wrist, sign, alpha in (
        (L_SH, L_EL, L_WR, 1.0, -arm_amp * s),
        (R_SH, R_EL, R_WR, -1.0, arm_amp * s),
    ):
        up[:, shoulder] = np.stack([np.full(n_frames, sign * shw), sh_y + sign * d_sh / 2], -1)
        up[:, elbow, 0] = sign * (shw + 0.02)
        up[:, elbow, 1] = up[:, shoulder, 1] - upper * np.cos(alpha)
        up[:, wrist, 0] = sign * (shw + 0.03)
        up[:, wrist, 1] = up[:, elbow, 1] - fore * np.cos(alpha + elbow0 + 0.5 * np.abs(alpha))
    neck_y = up[:, [L_SH, R_SH], 1].mean(1)
    for joint, dx, dy in ((NOSE, 0, 0.10), (L_EYE, 0.017, 0.125), (R_EYE, -0.017, 0.125),
                          (L_EAR, 0.038, 0.115), (R_EAR, -0.038, 0.115)):
        up[:, joint] = np.stack([np.full(n_frames, dx), neck_y + dy], -1)
    upper_joints = [NOSE, L_EYE, R_EYE, L_EAR, R_EAR, L_SH, R_SH, L_EL, R_EL, L_WR, R_WR]
    rel = up[:, upper_joints] - np.stack([np.zeros(n_frames), mid_hip_y], -1)[:, None]
    cl, sl = np.cos(lean)[:, None], np.sin(lean)[:, None]
    J[:, upper_joints, 0] = cl * rel[..., 0] - sl * rel[..., 1]
    J[:, upper_joints, 1] = sl * rel[..., 0] + cl * rel[..., 1] + mid_hip_y[:, None]

    # Keep the lower foot on the ground (gives the vertical bob), sway sideways with the gait.
    J[..., 1] += (ankle_h - J[:, [L_AN, R_AN], 1].min(1))[:, None]
    J[..., 0] += 0.012 * s[:, None]

    # To image pixels: walking towards the camera the body grows a little over the sequence.
    height_px = rng.uniform(150, 190) * (1 + rng.uniform(0, 0.15) * t / max(n_frames - 1, 1))
    cx = FRAME_W / 2 + rng.uniform(-20, 20) + rng.uniform(-10, 10) * t / max(n_frames - 1, 1)
    ground = FRAME_H - rng.uniform(8, 16)
    xy = np.empty_like(J)
    xy[..., 0] = cx[:, None] + J[..., 0] * height_px[:, None]
    xy[..., 1] = ground - J[..., 1] * height_px[:, None]
    return xy, height_px, build


def _noisy_pose(xy: np.ndarray, params: SyntheticScoliosisParams, rng: np.random.Generator) -> np.ndarray:
    """(T, 17, 3) float64 x, y, confidence with jitter and dropped (all-zero) keypoints."""
    n_frames = xy.shape[0]
    pose = np.empty((n_frames, 17, 3))
    pose[..., :2] = xy + rng.normal(0.0, params.pose_noise_px, xy.shape)
    pose[..., 2] = 1.0 - 0.65 * rng.beta(2.0, 5.0, (n_frames, 17))  # in (0.35, 1)
    pose[rng.random((n_frames, 17)) < params.dropout_prob] = 0.0
    return pose


# ---------------------------------------------------------------------------------------------
# Silhouette

_ROW_Y = np.arange(SIL_SIZE) + 0.5  # canvas y of the pixel-row centres


def _ellipse_rows(c: np.ndarray, u: np.ndarray, a: np.ndarray, b: np.ndarray):
    """Per (frame, row) x-interval of the ellipse with centre c, axis u, semi-axes a (along u), b.

    c, u: (T, 2); a, b: (T,). Returns lo, hi of shape (T, 64); rows it misses get lo > hi.
    """
    v = np.stack([-u[:, 1], u[:, 0]], -1)
    ia, ib = 1 / a**2, 1 / b**2
    y = _ROW_Y[None] - c[:, 1:2]
    qa = (u[:, 0] ** 2 * ia + v[:, 0] ** 2 * ib)[:, None]
    qb = 2 * y * (u[:, 0] * u[:, 1] * ia + v[:, 0] * v[:, 1] * ib)[:, None]
    qc = y**2 * (u[:, 1] ** 2 * ia + v[:, 1] ** 2 * ib)[:, None] - 1
    disc = qb**2 - 4 * qa * qc
    root = np.sqrt(np.maximum(disc, 0))
    lo = np.where(disc >= 0, (-qb - root) / (2 * qa), np.inf) + c[:, 0:1]
    hi = np.where(disc >= 0, (-qb + root) / (2 * qa), -np.inf) + c[:, 0:1]
    return lo, hi


def _linear_rows(a: np.ndarray, c: np.ndarray, lo_b, hi_b):
    """x-interval where lo_b <= a * x + c <= hi_b (all arrays broadcast); empty gives lo > hi."""
    flat = np.abs(a) < 1e-9
    a = np.where(flat, 1.0, a)
    x1, x2 = (lo_b - c) / a, (hi_b - c) / a
    inside = (lo_b <= c) & (c <= hi_b)
    lo = np.where(flat, np.where(inside, -np.inf, np.inf), np.minimum(x1, x2))
    hi = np.where(flat, np.where(inside, np.inf, -np.inf), np.maximum(x1, x2))
    return lo, hi


def _capsule_rows(p: np.ndarray, q: np.ndarray, r: np.ndarray):
    """Per row x-interval of capsules (segment p-q thickened by r); p, q: (..., 2), r: (...).

    A capsule is the union of its two end discs and the band around the segment; it is convex,
    so the union of the three intervals on a row is their hull.
    """
    d = q - p
    px, py, dx, dy = p[..., 0, None], p[..., 1, None], d[..., 0, None], d[..., 1, None]
    r = r[..., None]
    los, his = [], []
    for cx, cy in ((px, py), (px + dx, py + dy)):
        h2 = r**2 - (_ROW_Y - cy) ** 2
        half = np.sqrt(np.maximum(h2, 0))
        los.append(np.where(h2 >= 0, cx - half, np.inf))
        his.append(np.where(h2 >= 0, cx + half, -np.inf))
    y = _ROW_Y - py
    length2 = dx**2 + dy**2
    rl = r * np.sqrt(length2)
    along = _linear_rows(dx, y * dy - px * dx, 0.0, length2)  # projection inside the segment
    across = _linear_rows(-dy, y * dx + px * dy, -rl, rl)  # within r of the line
    segment = length2 > 1e-12  # a disc (p == q) has no band
    los.append(np.where(segment, np.maximum(along[0], across[0]), np.inf))
    his.append(np.where(segment, np.minimum(along[1], across[1]), -np.inf))
    lo, hi = np.stack(los), np.stack(his)
    ok = lo <= hi
    return np.where(ok, lo, np.inf).min(0), np.where(ok, hi, -np.inf).max(0)


def _render(xy: np.ndarray, height_px: np.ndarray, build: float) -> np.ndarray:
    """Rasterize clean skeletons (T, 17, 2) into cropped, centred (T, 64, 64) uint8 0/255."""
    n_frames = len(xy)
    mid = lambda i, j: (xy[:, i] + xy[:, j]) / 2  # noqa: E731
    h = height_px * build
    head_c = (xy[:, L_EAR] + xy[:, R_EAR] + xy[:, NOSE]) / 3
    head_c[:, 1] -= 0.01 * height_px  # a little above the ears (image y points down)
    capsules = [  # (p, q, radius): neck, shoulder and hip bars, arms, legs, head disc
        (mid(L_SH, R_SH), head_c, 0.03 * h),
        (xy[:, L_SH], xy[:, R_SH], 0.035 * h),
        (xy[:, L_HIP], xy[:, R_HIP], 0.045 * h),
        (xy[:, L_SH], xy[:, L_EL], 0.028 * h), (xy[:, R_SH], xy[:, R_EL], 0.028 * h),
        (xy[:, L_EL], xy[:, L_WR], 0.024 * h), (xy[:, R_EL], xy[:, R_WR], 0.024 * h),
        (xy[:, L_HIP], xy[:, L_KN], 0.045 * h), (xy[:, R_HIP], xy[:, R_KN], 0.045 * h),
        (xy[:, L_KN], xy[:, L_AN], 0.033 * h), (xy[:, R_KN], xy[:, R_AN], 0.033 * h),
        (head_c, head_c, 0.062 * height_px),
    ]
    sh_c, hip_c = mid(L_SH, R_SH), mid(L_HIP, R_HIP)
    torso_c, axis = (sh_c + hip_c) / 2, sh_c - hip_c
    torso_a = 0.55 * np.linalg.norm(axis, axis=-1)  # semi-axis along the trunk
    torso_b = 0.9 * np.abs(xy[:, L_SH, 0] - xy[:, R_SH, 0]) / 2 * build  # across
    torso_u = axis / np.linalg.norm(axis, axis=-1, keepdims=True)

    # Vertical extent of the figure -> crop to full height (aspect kept), centred on the hips.
    torso_h = np.hypot(torso_a * torso_u[:, 1], torso_b * torso_u[:, 0])
    top = np.min([np.minimum(p[:, 1], q[:, 1]) - r for p, q, r in capsules] + [torso_c[:, 1] - torso_h], 0)
    bottom = np.max([np.maximum(p[:, 1], q[:, 1]) + r for p, q, r in capsules] + [torso_c[:, 1] + torso_h], 0)
    k = SIL_SIZE / (bottom - top)
    origin = np.stack([hip_c[:, 0] - SIL_SIZE / 2 / k, top], -1)
    to_canvas = lambda pt: (pt - origin) * k[:, None]  # noqa: E731

    # Fill each shape's row intervals (pixel centres inside) through a difference array.
    p, q, r = (np.stack(x) for x in zip(*capsules))  # (C, T, 2), (C, T, 2), (C, T)
    lo, hi = _capsule_rows(to_canvas(p), to_canvas(q), r * k)
    intervals = [*zip(lo, hi), _ellipse_rows(to_canvas(torso_c), torso_u, torso_a * k, torso_b * k)]
    diff = np.zeros((n_frames, SIL_SIZE, SIL_SIZE + 1), dtype=np.int16)
    t_idx, r_idx = np.indices((n_frames, SIL_SIZE))
    for lo, hi in intervals:
        start = np.clip(np.ceil(lo - 0.5), 0, SIL_SIZE).astype(int)
        stop = np.clip(np.floor(hi - 0.5) + 1, 0, SIL_SIZE).astype(int)
        ok = (stop > start).astype(np.int16)
        diff[t_idx, r_idx, start] += ok
        diff[t_idx, r_idx, stop] -= ok
    mask = diff.cumsum(2, dtype=np.int16)[..., :SIL_SIZE] > 0

    # Like the real preprocessing: shift so the column holding half the mass is the centre.
    cols = mask.sum(1).cumsum(1)
    half = (cols < cols[:, -1:] / 2).sum(1)  # first column whose cumulative mass reaches half
    src = np.arange(SIL_SIZE)[None] - (SIL_SIZE // 2 - half)[:, None]  # (T, 64) source columns
    inside = (src >= 0) & (src < SIL_SIZE)
    out = np.take_along_axis(mask, np.clip(src, 0, SIL_SIZE - 1)[:, None, :], 2) & inside[:, None, :]
    return out.astype(np.uint8) * 255


# ---------------------------------------------------------------------------------------------
# Dataset


def _make_splits(labels: list[str], params: SyntheticScoliosisParams, rng: np.random.Generator) -> dict:
    """{file name: {"TRAIN_SET": ids, "TEST_SET": ids}}: one shared TEST_SET, exact train ratios."""
    pools = {}
    for label in LABELS:
        ids = [f"{i:05d}" for i, lab in enumerate(labels) if lab == label]
        pools[label] = [ids[j] for j in rng.permutation(len(ids))]
    test = sorted(i for label in LABELS for i in pools[label][: params.test_per_class])
    rest = {label: pools[label][params.test_per_class:] for label in LABELS}
    splits = {}
    for name, ratio in SPLIT_RATIOS.items():
        k = min(len(rest["positive"]), len(rest["neutral"]), len(rest["negative"]) // ratio)
        train = rest["positive"][:k] + rest["neutral"][:k] + rest["negative"][: ratio * k]
        splits[name] = {"TRAIN_SET": sorted(train), "TEST_SET": test}
    return splits


def _write_pickle(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(pickle.dumps(array, protocol=PICKLE_PROTOCOL))


def generate_scoliosis1k(root: Path, params: SyntheticScoliosisParams = SyntheticScoliosisParams()) -> dict:
    """Write both pkl trees, the 1:1:2 and 1:1:8 split files and a summary under ``root``.

    Everything is built in a temporary folder inside ``root`` and moved into place at the end.
    Existing outputs are replaced only if ``root`` holds this generator's summary file, so a real
    dataset is never overwritten. Returns the summary (also written to ``root/synthetic_scoliosis.json``).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    targets = [POSE_TREE, SIL_TREE, *SPLIT_RATIOS, SUMMARY]
    if any((root / n).exists() for n in targets) and not (root / SUMMARY).exists():
        raise InputError(root, "root", "holds Scoliosis1K data not made by this generator",
                         "an empty folder or one written by generate_scoliosis1k")

    seeds = np.random.SeedSequence(params.seed).spawn(2)
    n_total = params.n_positive + params.n_neutral + params.n_negative
    split_rng = np.random.default_rng(seeds[0])
    pool = ["positive"] * params.n_positive + ["neutral"] * params.n_neutral + ["negative"] * params.n_negative
    labels = [pool[j] for j in split_rng.permutation(n_total)]
    splits = _make_splits(labels, params, split_rng)

    tmp = Path(tempfile.mkdtemp(prefix=".synthetic-scoliosis-", dir=root))
    try:
        frames = []
        for i, (label, subject_seed) in enumerate(zip(labels, seeds[1].spawn(n_total))):
            rng = np.random.default_rng(subject_seed)
            n_frames = int(rng.integers(params.frames_min, params.frames_max + 1))
            xy, height_px, build = _walk(label, n_frames, params, rng)
            rel = Path(f"{i:05d}", label, VIEW, f"{VIEW}.pkl")
            _write_pickle(tmp / POSE_TREE / rel, _noisy_pose(xy, params, rng))
            _write_pickle(tmp / SIL_TREE / rel, _render(xy, height_px, build))
            frames.append(n_frames)
        for name, split in splits.items():
            write_json(tmp / name, split)
        count = lambda ids: {label: sum(labels[int(i)] == label for i in ids) for label in LABELS}  # noqa: E731
        summary = {
            "schema": "medrepro-synthetic-scoliosis-v1",
            "params": asdict(params),
            "ids": n_total,
            "classes": {label: labels.count(label) for label in LABELS},
            "frames": {"min": min(frames), "max": max(frames), "total": sum(frames)},
            "splits": {
                name: {"sha256": sha256_file(tmp / name), "train": count(split["TRAIN_SET"]),
                       "test": count(split["TEST_SET"])}
                for name, split in splits.items()
            },
        }
        write_json(tmp / SUMMARY, summary)
        trash = tmp / ".old"
        trash.mkdir()
        for name in targets:  # summary last: it marks a complete dataset
            if (root / name).exists():
                os.replace(root / name, trash / name)
            os.replace(tmp / name, root / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary
