"""The ``opengait`` skeleton-map preset against the released OpenGait heatmap pretreatment.

Expected maps come from the released code (ShiqiYu/OpenGait ``datasets/pretreatment_heatmap.py``
with ``configs/skeletongait/pretreatment_heatmap.yaml`` at ``OPENGAIT_COMMIT``), stored in
``data/opengait_heatmaps.npz`` by ``data/make_opengait_fixture.py``; a few rules are also checked
on hand-placed keypoints whose canvas positions are worked out below.
"""

from __future__ import annotations

import pickle
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from medrepro.errors import InputError
from medrepro.studies.scoliosis.data import as_pose, load_pose
from medrepro.studies.scoliosis.skeleton_maps import SkeletonMapParams, rasterize_sequence, render_canvas
from medrepro.studies.scoliosis.skeleton_maps.params import MEANINGS, PRESETS
from medrepro.studies.scoliosis.skeleton_maps.render import GRAY_LEVELS, _grey_levels

FIXTURE = Path(__file__).parent / "data" / "opengait_heatmaps.npz"
OPENGAIT = SkeletonMapParams.of_preset("opengait")

with np.load(FIXTURE) as _z:
    DATA = {k: _z[k] for k in _z.files}
CASES = sorted({k.split("__")[0] for k in DATA if k.endswith("__want")})
# A case for each key and the key whose OpenGait value decides it (the extra low-side window
# row moves the maps by at most 1 level on the hand-made rule_window frames; it moves the
# crop of a synthetic subject's frames).
RULE_KEYS = {
    "rule_missing": "missing",
    "synthetic_positive": "window",
    "rule_short_limb": "short_limb",
    "rule_quantize": "quantize",
    "rule_crop_width": "crop_width",
    "rule_normalise_on": "normalise_on",
    "rule_align": "align",
}


def _max_diff(a: np.ndarray, b: np.ndarray) -> int:
    assert a.shape == b.shape
    return int(np.abs(a.astype(int) - b.astype(int)).max())


@pytest.mark.parametrize("case", CASES)
def test_maps_match_released_pretreatment(case):
    pose, want = DATA[f"{case}__pose"], DATA[f"{case}__want"]
    got = rasterize_sequence(pose, OPENGAIT)
    assert got.dtype == np.uint8 and got.shape == want.shape
    assert _max_diff(got, want) <= 1, case


@pytest.mark.parametrize("case", sorted(RULE_KEYS))
def test_each_rule_case_depends_on_its_key(case):
    """Switching the one key back to medrepro's value moves the maps by more than 1 level:
    the case exercises the rule and the key is what reproduces it."""
    key = RULE_KEYS[case]
    medrepro_value = getattr(SkeletonMapParams(), key)
    assert medrepro_value != getattr(OPENGAIT, key)
    other = SkeletonMapParams.of_preset("opengait", **{key: medrepro_value})
    pose, want = DATA[f"{case}__pose"], DATA[f"{case}__want"]
    assert _max_diff(rasterize_sequence(pose, other), want) > 1, key


def test_medrepro_preset_differs_from_released():
    pose, want = DATA["synthetic_positive__pose"], DATA["synthetic_positive__want"]
    assert _max_diff(rasterize_sequence(pose, SkeletonMapParams()), want) > 1


def test_person_zero_px_tall_is_an_empty_frame_and_counted():
    """The released code fails on the sequence (division by zero); medrepro renders the frame
    empty, counts it, and the other frames are the released code's."""
    pose = DATA["zero_height__pose"]
    assert "infinity" in str(DATA["zero_height__error"]) or "NaN" in str(DATA["zero_height__error"])
    failing = list(DATA["zero_height__failing"])
    assert failing == [1]
    stats: dict = {}
    got = rasterize_sequence(pose, OPENGAIT, stats)
    assert stats["zero_height_frames"] == 1
    assert not got[1].any()
    assert _max_diff(np.delete(got, failing, axis=0), DATA["zero_height__want_rest"]) <= 1


def _pose_on_canvas(points: dict[int, tuple[float, float, float]]) -> np.ndarray:
    """One frame whose canvas coordinates are the given ones: hips at (100, 200) put the mid-hip
    on canvas (64, 64), and a confidence-0 ankle 61.5 px below plus the highest given point
    make the y-extent 85 px, so the scale is 1 (canvas = raw - hip + 64)."""
    pose = np.zeros((1, 17, 3))
    pose[0, :, :2] = (100.0, 200.0)
    pose[0, :, 2] = 0.0
    for j, (x, y, c) in points.items():
        pose[0, j] = (x - 64 + 100, y - 64 + 200, c)
    top = min(y for _, y, _ in points.values())
    pose[0, 15, :2] = (100.0, top + 85 - 64 + 200)
    return pose


def test_window_rule_by_hand():
    """A nose at canvas (64.5, 40.5), confidence 1: OpenGait's window is int(16.5) = 16 ..
    int(64.5) = 64, so row 16 (24.5 px above, 0.5 px beside column 64:
    exp(-(24.5^2 + 0.5^2) / 128) = 0.0092) is drawn; the symmetric window stops at row 17."""
    pose = _pose_on_canvas({0: (64.5, 40.5, 1.0)})
    joints = render_canvas(pose, OPENGAIT)[0, 1]
    assert joints[16, 64] == pytest.approx(np.exp(-(24.5**2 + 0.5**2) / 128), rel=1e-5)
    assert joints[65, 64] == 0 and joints[15, 64] == 0
    assert np.flatnonzero(joints[:, 64]).tolist() == list(range(16, 65))
    symmetric = render_canvas(pose, SkeletonMapParams.of_preset("opengait", window="symmetric"))[0, 1]
    assert np.flatnonzero(symmetric[:, 64]).tolist() == list(range(17, 65))


def test_short_limb_rule_by_hand():
    """Left eye (conf 0.9) and left ear (conf 0.4) 0.5 px apart: OpenGait draws the limb as a
    point at the eye with the eye's confidence; as a segment its peak is min(0.9, 0.4)."""
    pose = _pose_on_canvas({1: (60.0, 30.0, 0.9), 3: (60.5, 30.0, 0.4)})
    limbs = render_canvas(pose, OPENGAIT)[0, 0]
    assert limbs[30, 60] == pytest.approx(0.9, rel=1e-6)
    segment = render_canvas(pose, SkeletonMapParams.of_preset("opengait", short_limb="segment"))[0, 0]
    assert segment[30, 60] == pytest.approx(0.4, rel=1e-6)


def test_imputed_keypoint_not_drawn_but_moves_the_centre():
    """A right hip dropped to (0, 0) in one frame: imputed from the other frames (so the centre
    stays put) but with confidence 0 it is not drawn."""
    pose = _pose_on_canvas({0: (64.0, 20.0, 1.0), 11: (60.0, 64.0, 1.0), 12: (68.0, 64.0, 1.0)})
    pose = np.repeat(pose, 5, axis=0)
    pose[:, :, 0] += np.arange(5)[:, None] * 0.25  # the frames differ a little
    dropped = pose.copy()
    dropped[2, 12] = 0.0
    got = render_canvas(dropped, OPENGAIT)
    clean = render_canvas(pose, OPENGAIT)
    # frame 2 (centred on the mid-hip again): at the right hip only the left hip's Gaussian,
    # 8 px away; undropped, the right hip itself
    assert got[2, 1, 64, 68] == pytest.approx(np.exp(-8**2 / 128), rel=1e-4)
    assert clean[2, 1, 64, 68] == pytest.approx(1.0, rel=1e-4)
    assert got[2, 1, 20, 64] == pytest.approx(clean[2, 1, 20, 64], abs=0.02)
    # medrepro's rule draws the imputed hip
    med = render_canvas(dropped, SkeletonMapParams.of_preset("opengait", missing="confidence"))
    assert med[2, 1, 64, 68] > 0.99


def test_grey_levels_are_matplotlibs_gray_lut():
    """OpenGait's HeatmapToImage: (cm.gray(v)[..., :3] * 255).astype(uint8); level 33 -> 32."""
    from matplotlib import cm

    v = np.concatenate([np.arange(257) / 256.0, np.random.default_rng(0).random(2000)]).astype(np.float32)
    want = (cm.gray(v)[..., 0] * 255).astype(np.uint8)
    assert np.array_equal(_grey_levels(v.copy()), want.astype(np.float32))
    assert GRAY_LEVELS[33] == 32 and GRAY_LEVELS[255] == 255 and GRAY_LEVELS[1] == 1


def test_preset_resolution_and_record():
    p = SkeletonMapParams.from_dict({"preset": "opengait", "sigma": 6.0})
    assert p.preset == "opengait" and p.sigma == 6.0 and p.window == "truncated"
    assert asdict(p)["preset"] == "opengait"
    assert set(OPENGAIT.differs_from("medrepro")) == set(PRESETS["opengait"]) - {
        k for k, v in PRESETS["opengait"].items() if getattr(SkeletonMapParams(), k) == v}
    assert OPENGAIT.differs_from("opengait") == {}
    assert set(MEANINGS) == set(asdict(OPENGAIT))  # every key has its one-line meaning
    with pytest.raises(InputError, match=r"cfg: impute: linear with missing: zero_coordinate"):
        SkeletonMapParams.from_dict({"preset": "opengait", "impute": "linear"}, source="cfg")
    with pytest.raises(InputError, match=r"cfg: dtype: float32 with quantize: twice"):
        SkeletonMapParams.from_dict({"preset": "opengait", "dtype": "float32"}, source="cfg")
    with pytest.raises(InputError, match=r"preset: bad value 'openpose'"):
        SkeletonMapParams.from_dict({"preset": "openpose"})


def test_float64_poses_are_kept(tmp_path):
    """The released pose pkls are float64 and the released normalisation computes in them."""
    pose = DATA["synthetic_neutral__pose"]
    assert pose.dtype == np.float64
    path = tmp_path / "p.pkl"
    path.write_bytes(pickle.dumps(pose))
    assert load_pose(path).dtype == np.float64
    assert as_pose(pose, keep_float64=True).dtype == np.float64
    assert as_pose(pose).dtype == np.float32
    path.write_bytes(pickle.dumps(pose.astype(np.float32)))
    assert load_pose(path).dtype == np.float32
