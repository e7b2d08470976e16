"""Regenerate ``opengait_heatmaps.npz``: poses and the maps the RELEASED OpenGait pretreatment
makes of them (``datasets/pretreatment_heatmap.py`` with the Scoliosis1K config, commit
``OPENGAIT_COMMIT`` of ShiqiYu/OpenGait), for test_opengait_preset.py.

    git clone https://github.com/ShiqiYu/OpenGait /tmp/OpenGait   # then check out the commit
    pip install --target /tmp/og-deps opencv-python-headless==4.10.0.84 tqdm
    PYTHONPATH=/tmp/og-deps .venv/bin/python tests/studies/scoliosis/data/make_opengait_fixture.py /tmp/OpenGait

Each case is one pose sequence (``<case>__pose``, float32 or float64 as the released code got
it) with the released maps (``<case>__want``, uint8 (T, 2, 64, 64)) or, where the released
code fails, ``<case>__error`` (its exception) and the frames it fails on (``<case>__failing``).
The cases: one per rule the preset reproduces, hand-made so that the rule decides the result
(the test checks that switching that one key back changes the maps), plus poses from the
synthetic generator, random walks with dropped keypoints, random poses at the canvas border and
single frames.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[3]
sys.path[:0] = [str(REPO / "bench"), str(HERE.parent)]

from opengait_released import load_released  # noqa: E402
from test_skeleton_maps import random_walk_pose  # noqa: E402

from medrepro.studies.scoliosis.synthetic import SyntheticScoliosisParams, _noisy_pose, _walk  # noqa: E402


def walk(frames: int, seed: int) -> np.ndarray:
    return random_walk_pose(frames, np.random.default_rng(seed), drop=0.0).astype(np.float64)


def cases() -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    # missing: a dropped wrist at (0, 0) with confidence 0 is imputed but not drawn.
    p = walk(6, 1)
    p[2, 9] = 0.0
    p[4, 10] = 0.0
    out["rule_missing"] = p
    # window: int(mu - 3 sigma) puts one more row and column on the low side; with confident
    # top keypoints that row is grey level >= 1 and the crop starts one row higher.
    p = walk(4, 2)
    p[..., 2] = 0.9
    out["rule_window"] = p
    # short_limb: left eye and left ear 0.2 px apart on the canvas, the ear less confident:
    # the released code draws a point at the eye with the eye's confidence.
    p = walk(3, 3)
    p[:, 3, :2] = p[:, 1, :2] + 0.3
    p[:, 1, 2], p[:, 3, 2] = 0.95, 0.4
    out["rule_short_limb"] = p
    # quantize: low confidences, so that grey levels (floor of 256 v, the gray LUT) and the crop
    # on levels >= 1 decide the edges.
    p = walk(4, 4)
    p[..., 2] = np.linspace(0.05, 0.6, 17)[None, :]
    out["rule_quantize"] = p
    # crop_width: a short person (ankles at knee height): even crop heights below 127.
    p = walk(4, 5)
    p[:, 15:17, 1] = p[:, 13:15, 1]
    out["rule_crop_width"] = p
    # normalise_on: a wrist with confidence 0 far above the head sets the height.
    p = walk(4, 6)
    p[:, 9, 1] = p[:, :, 1].min(axis=1) - 120.0
    p[:, 9, 2] = 0.0
    out["rule_normalise_on"] = p
    # align: per-channel boxes: knees below eps, so the ankles are drawn as joints but no limb
    # reaches them and the limb channel's box ends higher.
    p = walk(4, 7)
    p[:, 13:15, 2] = 0.0005
    p[:, 15:17, 2] = 0.9
    out["rule_align"] = p

    # Synthetic subjects (float64, as the workflow writes them), with their dropout.
    sp = SyntheticScoliosisParams()
    for i, label in enumerate(("negative", "neutral", "positive")):
        rng = np.random.default_rng(100 + i)
        clean = _walk(label, 8, sp, rng)[0]
        out[f"synthetic_{label}"] = _noisy_pose(clean, sp, rng)

    rng = np.random.default_rng(7)
    for i in range(4):  # random walks with dropped keypoints, float32 and float64
        p = random_walk_pose(8, rng, drop=0.1)
        out[f"dropout_{i}"] = p.astype(np.float32 if i % 2 else np.float64)
    for i in range(4):  # random poses spread to the canvas border, odd confidences, x-only zeros
        t = 3
        p = np.zeros((t, 17, 3))
        p[..., 0] = rng.uniform(0, 300, (t, 17))
        p[..., 1] = rng.uniform(0, 500, (t, 17))
        p[..., 2] = rng.choice([0.0, 0.0005, 0.2, 0.5, 0.9, 1.0], (t, 17))
        p[rng.random((t, 17)) < 0.15, :2] = 0.0
        p[rng.random((t, 17)) < 0.05, 0] = 0.0
        out[f"border_{i}"] = p.astype(np.float32 if i % 2 else np.float64)
    # Single frames: one with a dropped keypoint (the imputer has no donor row: the released
    # code falls back to the unimputed pose and draws (0, 0) where confidence > 0).
    p = walk(1, 8)
    out["single_frame"] = p.copy()
    p[0, 7, :2] = 0.0
    out["single_frame_zero"] = p
    # A joint never observed in the sequence: no imputation at all.
    p = random_walk_pose(5, rng, drop=0.1).astype(np.float64)
    p[:, 3, :2] = 0.0
    out["never_observed"] = p
    # A person 0 px tall in frame 1: the released code divides by zero.
    p = walk(3, 9)
    p[1, :, 1] = p[1, 0, 1]
    out["zero_height"] = p
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    released = load_released(argv[0])
    arrays: dict[str, np.ndarray] = {}
    for name, pose in cases().items():
        arrays[f"{name}__pose"] = pose
        try:
            arrays[f"{name}__want"] = released(pose)
        except Exception as exc:  # the released code's own failure is part of the fixture
            arrays[f"{name}__error"] = np.array(f"{type(exc).__name__}: {exc}")
            failing = [i for i in range(len(pose)) if _fails(released, pose[i:i + 1])]
            arrays[f"{name}__failing"] = np.array(failing, dtype=int)
            rest = np.delete(pose, failing, axis=0)
            arrays[f"{name}__want_rest"] = released(rest)
    target = HERE / "opengait_heatmaps.npz"
    np.savez_compressed(target, **arrays)
    print(f"{target}: {len(arrays)} arrays, {target.stat().st_size} bytes")
    return 0


def _fails(released, pose: np.ndarray) -> bool:
    try:
        released(pose)
    except Exception:
        return True
    return False


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
