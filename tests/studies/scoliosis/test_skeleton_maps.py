"""Skeleton-map rasterization: the vectorized code against a slow, obviously-correct reference.

The reference below loops over frames, joints / limbs and pixels (``pixel_loops=True``) or, for
the benchmark, over frames and joints / limbs with numpy over the pixel grid
(``pixel_loops=False``). It shares only ``impute_missing`` and the constants with the library.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from medrepro.errors import InputError
from medrepro.studies.scoliosis import skeleton_maps as sm
from medrepro.studies.scoliosis.skeleton_maps import (
    COCO_LIMBS,
    REPRESENTATION_JOINTS,
    SkeletonMapParams,
    area_weights,
    impute_missing,
    normalise_to_canvas,
    rasterize_sequence,
    render_canvas,
)

# --------------------------------------------------------------------------------------------
# Plausible random poses
# --------------------------------------------------------------------------------------------

# A standing person seen from behind, COCO-17 order, in image pixels (about 250 px tall).
_TEMPLATE = np.array(
    [
        [0, -225], [-7, -232], [7, -232], [-15, -228], [15, -228],  # nose, eyes, ears
        [-32, -190], [32, -190], [-40, -140], [40, -140], [-44, -92], [44, -92],  # arms
        [-20, -100], [20, -100], [-22, -50], [22, -50], [-22, 0], [22, 0],  # hips, knees, ankles
    ],
    dtype=np.float64,
)


def random_walk_pose(frames: int, rng: np.random.Generator, drop: float = 0.05, empty: float = 0.0) -> np.ndarray:
    """(frames, 17, 3) float32: a walking person with swinging limbs, noise and dropouts."""
    phase = rng.uniform(0, 2 * np.pi) + np.arange(frames) * 2 * np.pi / rng.uniform(20, 40)
    swing = np.sin(phase)[:, None]
    pts = np.repeat(_TEMPLATE[None], frames, axis=0) * rng.uniform(0.8, 1.3)
    pts[:, [9, 10], 0] += np.array([-1, 1]) * 15 * swing  # wrists
    pts[:, [7, 8], 0] += np.array([-1, 1]) * 6 * swing  # elbows
    pts[:, [13, 14], 1] -= np.abs(np.c_[swing, -swing]) * 12  # knees lift in turn
    pts[:, [15, 16], 1] -= np.clip(np.c_[swing, -swing], 0, None) * 20
    pts[:, 5, 1] += rng.normal(0, 4)  # a shoulder asymmetry
    pts += rng.normal(0, 2.0, pts.shape)
    pts[..., 0] += rng.uniform(200, 440) + np.linspace(0, rng.uniform(-30, 30), frames)[:, None]
    pts[..., 1] += rng.uniform(380, 460)
    conf = rng.uniform(0.3, 1.0, (frames, 17))
    pose = np.concatenate([pts, conf[..., None]], axis=2).astype(np.float32)
    pose[rng.random((frames, 17)) < drop] = 0.0
    pose[rng.random(frames) < empty] = 0.0
    return pose


# --------------------------------------------------------------------------------------------
# Reference implementation
# --------------------------------------------------------------------------------------------


def _ref_joint(m, mx, my, peak, p, pixel_loops):
    r = 3 * p.sigma
    if pixel_loops:
        size = len(m)
        for y in range(max(0, math.floor(my - r)), min(size, math.ceil(my + r) + 1)):
            for x in range(max(0, math.floor(mx - r)), min(size, math.ceil(mx + r) + 1)):
                if abs(x - mx) <= r and abs(y - my) <= r:
                    v = peak * math.exp(-((x - mx) ** 2 + (y - my) ** 2) / (2 * p.sigma**2))
                    if v >= p.eps:
                        m[y, x] = max(m[y, x], v)
    else:
        yy, xx = np.mgrid[0 : len(m), 0 : len(m)].astype(np.float64)
        v = peak * np.exp(-((xx - mx) ** 2 + (yy - my) ** 2) / (2 * p.sigma**2))
        v[(np.abs(xx - mx) > r) | (np.abs(yy - my) > r) | (v < p.eps)] = 0
        np.maximum(m, v, out=m)


def _seg_d2(x, y, ax, ay, bx, by):
    """Squared distance from (x, y) to the segment a-b (projection clipped to the segment)."""
    l2 = (bx - ax) ** 2 + (by - ay) ** 2
    c = 0.0 if l2 == 0 else ((x - ax) * (bx - ax) + (y - ay) * (by - ay)) / l2
    c = np.clip(c, 0.0, 1.0)
    return (x - ax - c * (bx - ax)) ** 2 + (y - ay - c * (by - ay)) ** 2


def _ref_limb(m, a, b, peak, p, pixel_loops):
    (ax, ay), (bx, by) = a, b
    r = 3 * p.sigma
    x0, x1, y0, y1 = min(ax, bx) - r, max(ax, bx) + r, min(ay, by) - r, max(ay, by) + r
    if pixel_loops:
        size = len(m)
        for y in range(max(0, math.floor(y0)), min(size, math.ceil(y1) + 1)):
            for x in range(max(0, math.floor(x0)), min(size, math.ceil(x1) + 1)):
                if x0 <= x <= x1 and y0 <= y <= y1:
                    v = peak * math.exp(-_seg_d2(x, y, ax, ay, bx, by) / (2 * p.sigma**2))
                    if v >= p.eps:
                        m[y, x] = max(m[y, x], v)
    else:
        yy, xx = np.mgrid[0 : len(m), 0 : len(m)].astype(np.float64)
        v = peak * np.exp(-_seg_d2(xx, yy, ax, ay, bx, by) / (2 * p.sigma**2))
        v[(xx < x0) | (xx > x1) | (yy < y0) | (yy > y1) | (v < p.eps)] = 0
        np.maximum(m, v, out=m)


def _ref_area_resize(img, top, left, h, out):
    """Each output pixel = mean of the input square it covers (partial pixels by overlap)."""
    size = len(img)
    res = np.zeros((out, out))
    step = h / out
    for i in range(out):
        ylo, yhi = top + i * step, top + (i + 1) * step
        for j in range(out):
            xlo, xhi = left + j * step, left + (j + 1) * step
            total = 0.0
            for r in range(math.floor(ylo), math.ceil(yhi)):
                for c in range(math.floor(xlo), math.ceil(xhi)):
                    if 0 <= r < size and 0 <= c < size:
                        area = (min(yhi, r + 1) - max(ylo, r)) * (min(xhi, c + 1) - max(xlo, c))
                        total += area * img[r, c]
            res[i, j] = total / (step * step)
    return res


def reference_rasterize(pose, p: SkeletonMapParams, pixel_loops: bool = True) -> np.ndarray:
    pose = impute_missing(pose, p.impute, p.knn_k).astype(np.float64)
    kept = set(REPRESENTATION_JOINTS[p.representation])
    size, out = p.canvas, p.out_size
    result = np.zeros((len(pose), 2, out, out))
    for t in range(len(pose)):
        valid = [j for j in range(17) if pose[t, j, 2] > 0 and j in kept]
        if 11 not in valid or 12 not in valid:
            continue
        ys = [pose[t, j, 1] for j in valid]
        if max(ys) - min(ys) <= 1.0:
            continue
        scale = math.floor(size / p.height_ratio) / (max(ys) - min(ys))
        hx, hy = (pose[t, 11, 0] + pose[t, 12, 0]) / 2, (pose[t, 11, 1] + pose[t, 12, 1]) / 2
        pt = {j: ((pose[t, j, 0] - hx) * scale + size // 2, (pose[t, j, 1] - hy) * scale + size // 2) for j in valid}
        peak = {j: (pose[t, j, 2] if p.use_score else 1.0) for j in valid}
        limbs, joints = np.zeros((size, size)), np.zeros((size, size))
        for j in valid:
            _ref_joint(joints, pt[j][0], pt[j][1], peak[j], p, pixel_loops)
        for a, b in COCO_LIMBS:
            if a in pt and b in pt:
                _ref_limb(limbs, pt[a], pt[b], min(peak[a], peak[b]), p, pixel_loops)
        chans = [limbs * 255 * p.limb_weight, joints * 255 * p.joint_weight]
        rows = [[y for y in range(size) if (ch[y] > 0).any()] for ch in chans]
        if p.align == "shared":
            rows = [sorted(set(rows[0]) | set(rows[1]))] * 2
        for c in range(2):
            if rows[c]:
                h = rows[c][-1] - rows[c][0] + 1
                result[t, c] = _ref_area_resize(chans[c], rows[c][0], size // 2 - h // 2, h, out)
    result = np.clip(result, 0, 255)
    return np.rint(result).astype(np.uint8) if p.dtype == "uint8" else result.astype(np.float32)


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------

SMALL = dict(canvas=48, sigma=3.0, out_size=24)

COMBOS = [
    dict(),
    dict(use_score=False, representation="head-lite", align="per_channel", impute="none"),
    dict(representation="body-only", impute="linear", joint_weight=0.7, limb_weight=1.3),
    dict(representation="full-body", align="per_channel", impute="none", dtype="float32"),
    dict(use_score=False, representation="body-only", align="shared", impute="none"),
    dict(out_size=64, height_ratio=2.0, impute="none"),  # upsampling resize
    dict(joint_weight=0.0, limb_weight=2.0, impute="none"),  # zero weight: crop from limbs only
]


@pytest.mark.parametrize("combo", COMBOS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "default")
def test_vectorized_matches_pixel_loop_reference(combo):
    params = SkeletonMapParams(**{**SMALL, **combo})
    rng = np.random.default_rng(len(str(combo)))
    pose = random_walk_pose(6, rng, drop=0.15)
    pose[2] = 0.0  # an empty frame
    pose[4, 11] = 0.0  # a frame without a hip (stays missing unless imputed)
    got = rasterize_sequence(pose, params)
    want = reference_rasterize(pose, params, pixel_loops=True)
    assert got.shape == want.shape == (6, 2, params.out_size, params.out_size)
    assert got.dtype == np.dtype(params.dtype)
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    assert diff.max() <= (1 if params.dtype == "uint8" else 0.01), diff.max()
    assert got.max() > 100  # something was actually drawn


def test_vectorized_matches_grid_reference_default_params():
    params = SkeletonMapParams()
    pose = random_walk_pose(40, np.random.default_rng(7), drop=0.05, empty=0.05)
    got = rasterize_sequence(pose, params)
    want = reference_rasterize(pose, params, pixel_loops=False)
    assert got.shape == (40, 2, 64, 64) and got.dtype == np.uint8
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


def test_empty_and_unnormalisable_frames_are_zero():
    pose = random_walk_pose(5, np.random.default_rng(1), drop=0.0)
    pose[1] = 0.0
    pose[3, 12] = 0.0
    maps = rasterize_sequence(pose, SkeletonMapParams(impute="none"))
    assert maps[1].max() == 0 and maps[3].max() == 0
    assert maps[0].max() > 200 and maps[2].max() > 200
    assert rasterize_sequence(np.zeros((0, 17, 3)), SkeletonMapParams()).shape == (0, 2, 64, 64)


def test_float32_output_is_unrounded_uint8():
    pose = random_walk_pose(4, np.random.default_rng(2))
    f = rasterize_sequence(pose, SkeletonMapParams(dtype="float32"))
    u = rasterize_sequence(pose, SkeletonMapParams())
    assert f.dtype == np.float32 and f.max() <= 255.0
    assert np.array_equal(np.rint(f).astype(np.uint8), u)
    assert not np.array_equal(f, np.rint(f))


def test_body_only_has_no_energy_at_head_joints():
    # Head 45 px above the shoulders: more than 3 sigma away on the canvas for sigma 4.
    pose = np.zeros((1, 17, 3), np.float32)
    xs = [300, 295, 305, 290, 310, 280, 320, 275, 325, 272, 328, 290, 310, 290, 310, 290, 310]
    ys = [55, 52, 52, 55, 55, 100, 100, 140, 140, 180, 180, 200, 200, 250, 250, 300, 300]
    pose[0, :, 0], pose[0, :, 1], pose[0, :, 2] = xs, ys, 0.9
    for rep in ("body-only", "full-body"):
        params = SkeletonMapParams(sigma=4.0, representation=rep, impute="none")
        canvas = render_canvas(pose, params)
        xy, _ = normalise_to_canvas(pose, params)
        head = [(int(round(y)), int(round(x))) for x, y in xy[0, :5]]
        assert all(0 <= r < 128 and 0 <= c < 128 for r, c in head)
        energy = [canvas[0, :, r, c].max() for r, c in head]
        if rep == "body-only":
            assert max(energy) == 0.0
        else:
            assert min(energy) > 150
    # Body joints are drawn in both.
    shoulder = tuple(int(round(v)) for v in xy[0, 5, ::-1])
    assert canvas[0, 1][shoulder] > 200


def test_representation_filters_limbs():
    assert len(COCO_LIMBS) == 17
    assert sm._kept_limbs("body-only") == tuple(l for l in COCO_LIMBS if min(l) >= 5)
    assert (0, 5) in sm._kept_limbs("head-lite") and (0, 1) not in sm._kept_limbs("head-lite")


def test_area_weights_integer_factor_is_block_mean():
    img = np.random.default_rng(0).random((8, 8)).astype(np.float32)
    wy = area_weights(np.array(0), np.array(8), 8, 4)
    got = wy @ img @ wy.T
    want = img.reshape(4, 2, 4, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(got, want, rtol=1e-6)
    w = area_weights(np.array(3), np.array(5), 8, 3)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-6)


def test_linear_imputation_fills_dropped_joint():
    pose = random_walk_pose(9, np.random.default_rng(3), drop=0.0)
    pose[:, 9, 0] = np.arange(9) * 10 + 100
    pose[:, 9, 1] = 300
    pose[:, 9, 2] = np.linspace(0.5, 0.9, 9)
    pose[4, 9] = 0.0
    pose[:, 3] = 0.0  # never observed
    pose[6] = 0.0  # no person in this frame
    out = impute_missing(pose, "linear", 4)
    assert out[4, 9, 0] == pytest.approx(140.0) and out[4, 9, 1] == pytest.approx(300.0)
    observed_conf = pose[[0, 1, 2, 3, 5, 7, 8], 9, 2]
    assert out[4, 9, 2] == pytest.approx(observed_conf.mean(), rel=1e-6)
    assert (out[:, 3] == 0).all() and (out[6] == 0).all()
    np.testing.assert_array_equal(np.delete(out, 4, 0), np.delete(pose, 4, 0))


def test_knn_imputation_fills_dropped_joint_between_neighbours():
    rng = np.random.default_rng(4)
    pose = random_walk_pose(30, rng, drop=0.0)
    truth = pose[10, 9, :2].copy()
    pose[10, 9] = 0.0
    out = impute_missing(pose, "knn", 4)
    assert out[10, 9, 2] > 0
    assert np.abs(out[10, 9, :2] - truth).max() < 25  # close to where the wrist really was
    assert (out[:, :, 2] > 0).all()
    np.testing.assert_array_equal(np.delete(out, 10, 0), np.delete(pose, 10, 0))
    # With the dropped joint filled, the wrist is drawn in that frame.
    none = render_canvas(pose, SkeletonMapParams(impute="none"))
    knn = render_canvas(pose, SkeletonMapParams(impute="knn"))
    assert (knn[10, 1] > none[10, 1]).sum() > 50


@pytest.mark.parametrize("k", [1, 4, 7])
def test_knn_impute_equals_sklearn(k):
    from sklearn.impute import KNNImputer

    rng = np.random.default_rng(k)
    x = rng.normal(0, 50, (60, 34))
    x[rng.random(x.shape) < 0.2] = np.nan
    x[5] = x[6]  # a donor at distance 0
    x[10, :] = np.nan
    x[10, 0] = 1.0  # shares at most one coordinate with the others
    x[11, :] = np.nan
    x[11, 33] = 2.0
    x[:, 33] = np.nan
    x[[11, 12], 33] = [2.0, 3.0]  # a column with only two donors (< k for k > 2)
    x[12, :33] = np.nan  # rows 11 and 12 share nothing else: nan distances
    want = KNNImputer(n_neighbors=k, weights="distance").fit_transform(x)
    np.testing.assert_allclose(sm.knn_impute(x, k), want, rtol=1e-12, atol=1e-9)


def test_bad_params_raise_input_error():
    with pytest.raises(InputError, match="sigmaa"):
        SkeletonMapParams.from_dict({"sigmaa": 2.0}, source="cfg.yaml")
    with pytest.raises(InputError, match=r"cfg\.yaml: align"):
        SkeletonMapParams.from_dict({"align": "both"}, source="cfg.yaml")
    for bad in ({"sigma": 0}, {"canvas": 12.5}, {"use_score": 1}, {"impute": "mean"},
                {"representation": "head"}, {"dtype": "float64"}, {"eps": 2}, {"knn_k": 0}):
        with pytest.raises(InputError, match=next(iter(bad))):
            SkeletonMapParams.from_dict(bad)
    with pytest.raises(InputError):
        SkeletonMapParams(sigma=-1.0)
    assert SkeletonMapParams.from_dict({"sigma": 4, "representation": "body-only"}).sigma == 4
    with pytest.raises(InputError, match="pose"):
        rasterize_sequence(np.zeros((3, 18, 3)), SkeletonMapParams())


def _write_fake_dataset(tmp_path: Path, n: int) -> Path:
    rng = np.random.default_rng(5)
    (tmp_path / "poses").mkdir()
    seqs = []
    for i in range(n):
        np.save(tmp_path / "poses" / f"{i:05d}.npy", random_walk_pose(10 + i, rng))
        seqs.append({"id": f"{i:05d}", "label": "negative", "frames": 10 + i, "pose": f"{i:05d}.npy"})
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"pose_root": str(tmp_path / "poses"), "sequences": seqs}))
    return manifest


def test_build_skeleton_maps_writes_atomically(tmp_path, npy_pose_loader):
    manifest = _write_fake_dataset(tmp_path, 3)
    params = SkeletonMapParams(out_size=32)
    out = tmp_path / "maps"
    index = sm.build_skeleton_maps(manifest, out, params)
    assert sorted(p.name for p in out.iterdir()) == ["00000.npy", "00001.npy", "00002.npy", "index.json"]
    on_disk = json.loads((out / "index.json").read_text())
    assert on_disk == json.loads(json.dumps(index))
    assert on_disk["params"]["out_size"] == 32 and on_disk["sequences"]["00002"]["frames"] == 12
    maps = np.load(out / "00001.npy")
    assert maps.shape == (11, 2, 32, 32) and maps.dtype == np.uint8
    pose = np.load(tmp_path / "poses" / "00001.npy")
    np.testing.assert_array_equal(maps, rasterize_sequence(pose, params))

    # A failing rebuild leaves the previous output untouched and no temporary folder behind.
    (tmp_path / "poses" / "00002.npy").write_bytes(b"junk")
    with pytest.raises(Exception):
        sm.build_skeleton_maps(manifest, out, params)
    assert json.loads((out / "index.json").read_text()) == on_disk
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", "maps", "poses"]


def test_manifest_errors_name_the_field(tmp_path):
    m = tmp_path / "m.json"
    m.write_text(json.dumps({"pose_root": ".", "sequences": [{"id": "a", "pose": "a.pkl"}, {"id": "a", "pose": "b"}]}))
    with pytest.raises(InputError, match=r"sequences\[1\]\.id"):
        sm.read_manifest(m)
    m.write_text(json.dumps({"sequences": []}))
    with pytest.raises(InputError, match="pose_root"):
        sm.read_manifest(m)


def test_plot_skeleton_frames_writes_png(tmp_path):
    from medrepro.studies.scoliosis.figures import plot_skeleton_frames

    pose = random_walk_pose(10, np.random.default_rng(6))
    sil = np.zeros((8, 64, 44), np.uint8)
    sil[:, 10:50, 12:32] = 255
    shown = plot_skeleton_frames(pose, sil, SkeletonMapParams(out_size=32), tmp_path / "fig.png", n_frames=3, title="t")
    assert shown == [0, 4, 7]  # evenly spaced over the 8 frames both arrays have
    assert (tmp_path / "fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["fig.png"]


def test_build_skeleton_maps_in_worker_processes_gives_same_bytes(tmp_path, npy_pose_loader):
    manifest = _write_fake_dataset(tmp_path, 3)
    params = SkeletonMapParams(out_size=32, representation="body-only")
    one = sm.build_skeleton_maps(manifest, tmp_path / "a", params)
    two = sm.build_skeleton_maps(manifest, tmp_path / "b", params, workers=2)
    assert one == two
