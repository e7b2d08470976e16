"""Skeleton-map rasterization: COCO-17 pose sequences -> (T, 2, out, out) limb/joint maps.

This is the representation behind ScoNet-MT-ske and DRF (OpenGait's heatmap pretreatment, a
port of PoseC3D's ``GeneratePoseTarget``). The steps, per sequence:

1. ``impute_missing``: fill keypoints with confidence 0 across frames (knn / linear / none).
2. ``normalise_to_canvas``: per frame, centre on the mid-hip (COCO 11, 12), scale so that the
   y-extent of the drawn joints is ``floor(canvas / height_ratio)`` px (85 on 128, OpenGait's
   ``128 // 1.5``) and put the mid-hip on pixel ``(canvas // 2, canvas // 2)``. Pixel
   coordinates are pixel centres (pixel (r, c) is the point x = c, y = r).
3. Joint channel = max over joints of ``peak * exp(-d^2 / (2 sigma^2))``, limb channel = the
   same with ``d`` the distance to the limb segment and ``peak = min(peak_a, peak_b)``. A pixel
   only receives a Gaussian inside its window: ``|x - mu_x| <= 3 sigma`` and
   ``|y - mu_y| <= 3 sigma`` for a joint, the endpoints' bounding box grown by ``3 sigma`` for a
   limb. Gaussian values below ``eps`` are 0. (``render_canvas`` returns these canvases.)
4. Crop: rows from the first to the last row with a non-zero value (after the eps cut, before
   quantization), columns a square window of the same height ``h`` starting at
   ``canvas // 2 - h // 2`` (zero padding outside the canvas). ``align="shared"``: one box from
   the union of both channels; ``"per_channel"``: a box per channel (original OpenGait).
   A channel with weight 0 does not take part in the box.
5. Resize to ``out_size`` by exact area (box) interpolation: each output pixel is the mean of
   the input area it covers, partial pixels weighted by their overlap (what OpenCV's INTER_AREA
   does when shrinking, and, on a crop smaller than the output, what its INTER_AREA upscaling
   coefficients amount to; ``area_weights``).
6. Multiply by 255 and by ``limb_weight`` / ``joint_weight``, clip to [0, 255]; quantize once,
   at the end: uint8 = rounded, float32 = not rounded.

The ``opengait`` preset (``params.PRESETS``) switches the steps to the released OpenGait
pretreatment's, each by its own key: ``missing: zero_coordinate`` (``impute_zero_coordinates``),
``normalise_on: all`` (``normalise_all_joints``), ``window: truncated``, ``short_limb: point``,
``crop_width: odd`` and ``quantize: twice`` (grey levels through matplotlib's gray LUT before
the crop, ``GRAY_LEVELS``; truncation after the resize).

Vectorization: everything is done for a chunk of frames at once, in the negative-log domain
``-log(peak) + d^2 / (2 sigma^2)``, where "max over joints" is a running minimum and only one
``exp`` per pixel is needed. The x- and y-dependent terms of all joints / limbs are built for
the whole chunk by broadcasting; a joint's term is then an outer sum and a limb's needs an
outer sum and a rank-3 product, all batched matrix products with a tiny inner dimension. A loop
over the (at most 17) joints and 17 limbs lets each one work only on the union of its windows
over the chunk (3-4x fewer pixels than the whole canvas). Crop + resize gathers, for each
output row (then column), the K <= 3 input rows (columns) it overlaps and sums them with their
per-frame area weights (einsum). Nothing loops over pixels or frames.

The parameters are in ``params``, the whole-data-set build in ``build``; the pose check
``as_pose`` is in the study's ``data`` module.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

from medrepro.errors import InputError
from medrepro.studies.scoliosis.data import MIN_EXTENT_PX, as_pose
from medrepro.studies.scoliosis.skeleton_maps.params import (
    _CHOICES,
    COCO_LIMBS,
    REPRESENTATION_JOINTS,
    SkeletonMapParams,
)

_CHUNK = 32  # frames rendered at once: temporaries stay small enough to be reused by malloc


# --------------------------------------------------------------------------------------------
# Imputation
# --------------------------------------------------------------------------------------------


def impute_missing(pose: np.ndarray, method: str = "knn", k: int = 4) -> np.ndarray:
    """Fill missing keypoints (confidence 0) across the frames of one sequence.

    ``knn``: scikit-learn's ``KNNImputer(n_neighbors=k, weights="distance")`` algorithm
    (``knn_impute``) with frames as rows and the 34 x/y coordinates as columns (nan-Euclidean
    distance on the coordinates both frames have). ``linear``: per joint, linear interpolation
    over the frame index, holding the first / last observed value at the ends. ``none``:
    returned unchanged.

    Rules (the same for knn and linear):
    - only frames with at least one observed keypoint are filled; a frame with none (no person
      detected) stays empty rather than receiving an invented skeleton;
    - a joint never observed in the sequence stays missing;
    - an imputed keypoint gets, as confidence, the mean confidence of that joint over the
      frames where it was observed (so ``use_score`` draws it about as strongly as usual).
    """
    if method not in _CHOICES["impute"]:
        raise InputError(None, "impute", f"bad value {method!r}", " | ".join(_CHOICES["impute"]))
    out = as_pose(pose)
    if method == "none" or len(out) == 0:
        return out
    observed = out[..., 2] > 0  # (T, 17)
    frame_has = observed.any(axis=1)
    joint_seen = observed.any(axis=0)
    to_fill = ~observed & frame_has[:, None] & joint_seen[None, :]
    if not to_fill.any():
        return out

    rows = np.flatnonzero(frame_has)
    joints = np.flatnonzero(joint_seen)
    if method == "knn":
        sub = out[np.ix_(rows, joints)]  # (R, J, 3)
        xy = sub[..., :2].astype(np.float64)
        xy[~observed[np.ix_(rows, joints)]] = np.nan
        sub[..., :2] = knn_impute(xy.reshape(len(rows), -1), k).reshape(xy.shape).astype(np.float32)
        out[np.ix_(rows, joints)] = sub
    else:  # linear
        frames = np.arange(len(out), dtype=np.float64)
        for j in joints:  # 17 joints at most; each interpolation is vectorized over frames
            obs, fill = observed[:, j], to_fill[:, j]
            if not fill.any():
                continue
            for c in (0, 1):
                out[fill, j, c] = np.interp(frames[fill], frames[obs], out[obs, j, c])

    conf_sum = np.where(observed, out[..., 2], 0.0).sum(axis=0)
    mean_conf = (conf_sum / np.maximum(observed.sum(axis=0), 1)).astype(np.float32)
    out[..., 2] = np.where(to_fill, mean_conf[None, :], out[..., 2])
    return out


def impute_zero_coordinates(pose: np.ndarray, method: str = "knn", k: int = 4) -> np.ndarray:
    """OpenGait's keypoint padding (``PadKeypoints`` with ``pad_method: knn``): scikit-learn's
    ``KNNImputer(missing_values=0.0, n_neighbors=k, weights="distance")`` on the (T, 34) x / y
    coordinates, in the pose's own float dtype (float64, as the released pose pkls are, goes
    through :func:`knn_impute`, which gives the same numbers). A coordinate of exactly 0.0 is
    missing (x and y independently); confidences are kept as they are. As in the released code, when a
    coordinate column is 0 in every frame the imputer drops that column, the reshape back
    fails and the sequence is returned unimputed. ``none``: returned unchanged.
    """
    out = np.array(pose, copy=True)
    if method == "none" or len(out) == 0 or not (out[..., :2] == 0).any():
        return out
    if method != "knn":
        raise InputError(None, "impute", f"{method!r} with missing: zero_coordinate", "knn or none")
    t = len(out)
    coords = out[..., :2].reshape(t, 34)
    if (coords == 0).all(axis=0).any():  # a column never observed: the released fallback
        return out
    if coords.dtype == np.float64:  # knn_impute computes in float64: the same numbers, faster
        x = coords.copy()
        x[coords == 0] = np.nan
        filled = knn_impute(x, k)
    else:  # scikit-learn computes in the input's float32; so does the released code
        from sklearn.impute import KNNImputer

        filled = KNNImputer(missing_values=0.0, n_neighbors=k, weights="distance").fit_transform(coords)
    out[..., :2] = filled.reshape(t, 17, 2)
    return out


def knn_impute(x: np.ndarray, k: int) -> np.ndarray:
    """Fill the NaNs of ``x`` (rows = samples) like ``KNNImputer(n_neighbors=k, weights="distance")``.

    The same algorithm as scikit-learn's (tests check the results are equal), without its
    per-column overhead (~30x faster on a 300-frame sequence): nan-Euclidean distances from each
    row with a gap to every row; for each gap in column c, the k nearest rows that have column
    c, weighted by 1 / distance (a donor at distance 0 takes all the weight); a row with no
    computable distance to any donor gets the column mean. Every column needs one value.
    """
    from sklearn.metrics.pairwise import nan_euclidean_distances

    x = np.asarray(x, dtype=np.float64)
    missing = np.isnan(x)
    rows = np.flatnonzero(missing.any(axis=1))
    out = x.copy()
    if len(rows) == 0:
        return out
    dist = nan_euclidean_distances(x[rows], x)  # (rows with a gap, all rows)
    for c in np.flatnonzero(missing[rows].any(axis=0)):  # at most 34 columns
        receivers = np.flatnonzero(missing[rows, c])
        donors = np.flatnonzero(~missing[:, c])
        d = dist[np.ix_(receivers, donors)]
        no_dist = np.isnan(d).all(axis=1)
        out[rows[receivers[no_dist]], c] = x[donors, c].mean()
        receivers, d = receivers[~no_dist], d[~no_dist]
        if len(receivers) == 0:
            continue
        n = min(k, len(donors))
        nearest = np.argpartition(d, n - 1, axis=1)[:, :n]
        with np.errstate(divide="ignore"):
            w = 1.0 / np.take_along_axis(d, nearest, axis=1)
        at_zero = np.isinf(w)
        zero_rows = at_zero.any(axis=1)
        w[zero_rows] = at_zero[zero_rows]
        w[np.isnan(w)] = 0.0
        out[rows[receivers], c] = (w * x[donors, c][nearest]).sum(axis=1) / w.sum(axis=1)
    return out


# --------------------------------------------------------------------------------------------
# Normalisation and rendering on the canvas
# --------------------------------------------------------------------------------------------


def _kept_mask(representation: str) -> np.ndarray:
    mask = np.zeros(17, dtype=bool)
    mask[list(REPRESENTATION_JOINTS[representation])] = True
    return mask


def _kept_limbs(representation: str) -> tuple[tuple[int, int], ...]:
    kept = set(REPRESENTATION_JOINTS[representation])
    return tuple((a, b) for a, b in COCO_LIMBS if a in kept and b in kept)


def normalise_to_canvas(pose: np.ndarray, params: SkeletonMapParams) -> tuple[np.ndarray, np.ndarray]:
    """Map (already imputed) keypoints to canvas pixel coordinates.

    Returns ``xy`` (T, 17, 2) float64 canvas coordinates of all 17 keypoints (scale and centre
    come from the drawn joints: the representation's joints with confidence > 0) and ``peak``
    (T, 17) float64, the Gaussian peak of each keypoint: its confidence (or 1 without
    ``use_score``) for drawn joints, 0 for the rest. A frame without both hips, or whose drawn
    joints span <= ``MIN_EXTENT_PX`` vertically, cannot be normalised: all its peaks are 0.
    """
    p = np.asarray(pose, dtype=np.float64)
    valid = (p[..., 2] > 0) & _kept_mask(params.representation)[None, :]
    y = p[..., 1]
    extent = np.where(valid, y, -np.inf).max(axis=1) - np.where(valid, y, np.inf).min(axis=1)
    ok = valid[:, 11] & valid[:, 12] & (extent > MIN_EXTENT_PX)
    target = math.floor(params.canvas / params.height_ratio)
    scale = np.where(ok, target / np.where(ok, extent, 1.0), 0.0)
    hip = (p[:, 11, :2] + p[:, 12, :2]) / 2.0
    xy = (p[..., :2] - hip[:, None, :]) * scale[:, None, None] + params.canvas // 2
    peak = p[..., 2] if params.use_score else np.ones_like(p[..., 2])
    peak = np.where(valid & ok[:, None], peak, 0.0)
    return xy, peak


def normalise_all_joints(pose: np.ndarray, params: SkeletonMapParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OpenGait's ``CenterAndScaleNormalizer`` (COCO): centre on the mid-hip and scale so that
    the y-extent of all 17 keypoints, whatever their confidence, is ``canvas // height_ratio``
    px, then shift by ``canvas // 2``; computed in the pose's own float dtype and in the
    released order of operations, so window edges fall where the released code puts them.

    Returns ``xy`` (T, 17, 2) in the pose's dtype, ``peak`` (T, 17) (confidence or 1 for the
    representation's joints, 0 for the rest and for frames that cannot be normalised) and
    ``empty`` (T,) bool: frames whose keypoints all have the same y (a person 0 px tall). The
    released code divides by zero there and fails; medrepro renders those frames empty and
    counts them (``rasterize_sequence(..., stats=)``, the build's index).
    """
    p = np.asarray(pose)
    hip = (p[:, 11, :2] + p[:, 12, :2]) / 2.0
    xy = p[..., :2] - hip[:, None, :]
    extent = xy[..., 1].max(axis=1) - xy[..., 1].min(axis=1)
    empty = ~(extent > 0) | ~np.isfinite(extent)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        xy *= (params.canvas // params.height_ratio) / np.where(empty, 1, extent)[:, None, None]
    xy += params.canvas // 2
    empty |= ~np.isfinite(xy).all(axis=(1, 2))
    xy[empty] = 0
    peak = p[..., 2] if params.use_score else np.ones_like(p[..., 2])
    peak = np.where(_kept_mask(params.representation)[None, :] & ~empty[:, None], peak, 0).astype(p.dtype)
    return xy, peak, empty


# Stand-in for "no energy" inside the matrix operands: finite, so BLAS never sees inf (no
# inf - inf), and exp(-_FAR) == 0 in float32.
_FAR = 1e8


class _Arena:
    """Scratch arrays reused from chunk to chunk of a sequence.

    Fresh multi-megabyte temporaries in every chunk are returned to the OS and faulted in again
    by malloc; those page faults cost more than the arithmetic. ``get`` returns the first
    prod(shape) elements of a buffer kept under ``name`` (grown when too small).
    """

    def __init__(self) -> None:
        self._buffers: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: Any = np.float32) -> np.ndarray:
        size = math.prod(shape)
        buf = self._buffers.get(name)
        if buf is None or buf.size < size or buf.dtype != dtype:
            buf = self._buffers[name] = np.empty(max(size, 1), dtype=dtype)
        return buf[:size].reshape(shape)

    def operands(self, name: str, shape: tuple[int, ...], ones: int, axis: int) -> np.ndarray:
        """Matrix operands (T, N, C, K) (left, ``axis=3``) or (T, N, K, C) (right, ``axis=2``);
        entry ``ones`` along ``axis`` is set to 1."""
        arr = self.get(name, shape)
        arr[(slice(None),) * axis + (ones,)] = 1.0
        return arr


def _boxes(first: np.ndarray, last: np.ndarray, draw: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per column of (T, N) integer pixel windows [first, last]: the range [a, b) covering the
    windows of all drawn frames, clipped to the canvas (a >= b: nothing to draw)."""
    a = np.where(draw, first, size).min(axis=0, initial=size)
    b = np.where(draw, last, -1).max(axis=0, initial=-1) + 1
    return np.clip(a, 0, size).astype(int), np.clip(b, 0, size).astype(int)


def _in_window(grid: np.ndarray, lo: np.ndarray, hi: np.ndarray, arena: _Arena, name: str,
               truncated: bool = False):
    """Integer pixel bounds (T, N) of the windows [lo, hi] and the (T, N, C) mask of pixels
    outside them. Symmetric: the pixels inside [lo, hi] (ceil / floor, decided in the
    coordinates' dtype, so the test is exact); truncated (OpenGait): int(lo) .. int(hi)."""
    first, last = (np.trunc(lo), np.trunc(hi)) if truncated else (np.ceil(lo), np.floor(hi))
    out = arena.get(name, first.shape + (len(grid),), dtype=bool)
    np.less(grid, first[..., None].astype(np.float32), out=out)
    out |= grid > last[..., None].astype(np.float32)
    return first, last, out


def _render_chunk(xy: np.ndarray, peak: np.ndarray, params: SkeletonMapParams, arena: _Arena) -> np.ndarray:
    """Negative-log maps (T, 2, C, C) float32 for a chunk of T frames.

    Channel 0 (limbs) and 1 (joints) hold the minimum over limbs (joints) of
    ``-log(peak) + d^2 / (2 sigma^2)``; values >= _FAR mean no energy.

    The separable terms are built for all frames and joints (limbs) at once; each joint (limb)
    then works on the union of its windows over the chunk. Outer sums and the rank-3 product
    are batched matrix products with K = 2 or 3 (numpy's broadcasting of an outer sum runs one
    short inner loop per row and is about 3x slower).
    """
    n, size = len(xy), params.canvas
    radius = 3.0 * params.sigma
    k = 1.0 / (params.sigma * math.sqrt(2.0))  # d^2 / (2 sigma^2) == (d * k)^2
    grid = np.arange(size, dtype=np.float32)
    truncated = params.window == "truncated"
    acc = arena.get("acc", (n, 2, size, size))
    acc.fill(np.inf)
    with np.errstate(divide="ignore"):
        neglog = np.minimum(-np.log(peak), _FAR)  # (T, 17); _FAR where nothing is drawn

    # Joint channel: -log(peak) + (dx k)^2 + (dy k)^2 = qy[y] * 1 + 1 * qx[x].
    joints = np.flatnonzero(_kept_mask(params.representation))
    nj = len(joints)
    mx, my, nl = xy[:, joints, 0], xy[:, joints, 1], neglog[:, joints]  # (T, J)
    a_op = arena.operands("joint_a", (n, nj, size, 2), ones=1, axis=3)  # columns: qy, 1
    b_op = arena.operands("joint_b", (n, nj, 2, size), ones=0, axis=2)  # rows: 1, qx
    fx, lx, out_x = _in_window(grid, mx - radius, mx + radius, arena, "jx", truncated)
    fy, ly, out_y = _in_window(grid, my - radius, my + radius, arena, "jy", truncated)
    for centre, row, outside in ((mx, b_op[:, :, 1], out_x), (my, a_op[..., 0], out_y)):
        np.subtract(grid, centre.astype(np.float32)[..., None], out=row)
        row *= np.float32(k)
        np.square(row, out=row)
        np.copyto(row, _FAR, where=outside)
    a_op[..., 0] += nl.astype(np.float32)[..., None]
    draw = nl < _FAR
    x0, x1 = _boxes(fx, lx, draw, size)
    y0, y1 = _boxes(fy, ly, draw, size)
    for i in np.flatnonzero((x0 < x1) & (y0 < y1)):
        ys, xs = slice(y0[i], y1[i]), slice(x0[i], x1[i])
        q = arena.get("q", (n, y1[i] - y0[i], x1[i] - x0[i]))
        np.matmul(a_op[:, i, ys], b_op[:, i, :, xs], out=q)
        view = acc[:, 1, ys, xs]
        np.minimum(view, q, out=view)

    # Limb channel. With t the coordinate along the segment (0 at its midpoint, |t| <= L/2 on
    # it) and s the one across, the squared distance to the segment is s^2 + e^2 with
    # e = t - clip(t, -L/2, L/2). t = ty[y] + tx[x] is an outer sum (the window is put into
    # it: outside, t = 1e4 and e^2 >= _FAR); s^2 - log(peak) = (sy^2 - log peak) + 2 sy sx + sx^2
    # is a rank-3 product.
    limbs = np.array(_kept_limbs(params.representation), dtype=int).reshape(-1, 2)
    nlimb = len(limbs)
    pa, pb = xy[:, limbs[:, 0]], xy[:, limbs[:, 1]]  # (T, L, 2)
    nl = np.maximum(neglog[:, limbs[:, 0]], neglog[:, limbs[:, 1]])  # -log(min(peak_a, peak_b))
    if params.short_limb == "point":  # OpenGait: a limb under 1 px is its start keypoint's Gaussian
        short = (pa[..., 0] - pb[..., 0]) ** 2 + (pa[..., 1] - pb[..., 1]) ** 2 < 1
        pb = np.where(short[..., None], pa, pb)
        nl = np.where(short & (nl < _FAR), neglog[:, limbs[:, 0]], nl)
    lo, hi = np.minimum(pa, pb) - radius, np.maximum(pa, pb) + radius  # windows (T, L, 2)
    vec = pb - pa
    length = np.hypot(vec[..., 0], vec[..., 1])
    degenerate = length < 1e-9  # a point: any direction will do
    safe = np.where(degenerate, 1.0, length)
    ux = (np.where(degenerate, 1.0, vec[..., 0] / safe) * k).astype(np.float32)[..., None]
    uy = (np.where(degenerate, 0.0, vec[..., 1] / safe) * k).astype(np.float32)[..., None]
    mid = ((pa + pb) / 2.0).astype(np.float32)
    at_op = arena.operands("limb_at", (n, nlimb, size, 2), ones=1, axis=3)  # columns: ty, 1
    bt_op = arena.operands("limb_bt", (n, nlimb, 2, size), ones=0, axis=2)  # rows: 1, tx
    as_op = arena.operands("limb_as", (n, nlimb, size, 3), ones=2, axis=3)  # sy^2 - log p, 2 sy, 1
    bs_op = arena.operands("limb_bs", (n, nlimb, 3, size), ones=0, axis=2)  # rows: 1, sx, sx^2
    fx, lx, out_x = _in_window(grid, lo[..., 0], hi[..., 0], arena, "lx", truncated)
    fy, ly, out_y = _in_window(grid, lo[..., 1], hi[..., 1], arena, "ly", truncated)
    d = arena.get("d", (n, nlimb, size))
    np.subtract(grid, mid[..., 0, None], out=d)  # x - mid_x
    np.multiply(d, ux, out=bt_op[:, :, 1])
    np.copyto(bt_op[:, :, 1], 1e4, where=out_x)
    np.multiply(d, -uy, out=bs_op[:, :, 1])
    np.square(bs_op[:, :, 1], out=bs_op[:, :, 2])
    np.subtract(grid, mid[..., 1, None], out=d)  # y - mid_y
    np.multiply(d, uy, out=at_op[..., 0])
    np.copyto(at_op[..., 0], 1e4, where=out_y)
    np.multiply(d, ux, out=d)  # sy
    np.multiply(d, 2.0, out=as_op[..., 1])
    np.square(d, out=as_op[..., 0])
    as_op[..., 0] += nl.astype(np.float32)[..., None]
    half = (length * k / 2.0).astype(np.float32)[..., None, None]  # (T, L, 1, 1)
    draw = nl < _FAR
    x0, x1 = _boxes(fx, lx, draw, size)
    y0, y1 = _boxes(fy, ly, draw, size)
    for i in np.flatnonzero((x0 < x1) & (y0 < y1)):
        ys, xs = slice(y0[i], y1[i]), slice(x0[i], x1[i])
        shape = (n, y1[i] - y0[i], x1[i] - x0[i])
        t = np.matmul(at_op[:, i, ys], bt_op[:, i, :, xs], out=arena.get("t", shape))
        e = np.clip(t, -half[:, i], half[:, i], out=arena.get("q", shape))
        np.subtract(t, e, out=t)
        np.square(t, out=t)
        q = np.matmul(as_op[:, i, ys], bs_op[:, i, :, xs], out=e)
        q += t
        view = acc[:, 0, ys, xs]
        np.minimum(view, q, out=view)
    return acc


def _to_values(acc: np.ndarray, params: SkeletonMapParams) -> np.ndarray:
    """Negative-log maps -> Gaussian values (float32, in place). Symmetric window: values below
    eps -> 0 (truncated: eps only decides which peaks are drawn, see ``_chunks``)."""
    if params.window == "symmetric":
        np.copyto(acc, np.inf, where=acc > -math.log(params.eps))
    return np.exp(np.negative(acc, out=acc), out=acc)


def _channel_scale(params: SkeletonMapParams) -> np.ndarray:
    """Per-channel factor on the Gaussian values: x weight, x 255 unless quantized twice (then
    the grey levels come from the values in [0, 1])."""
    unit = 1.0 if params.quantize == "twice" else 255.0
    return np.array([unit * params.limb_weight, unit * params.joint_weight], dtype=np.float32)


# matplotlib's ``cm.gray`` lookup table as OpenGait's ``HeatmapToImage`` applies it: level
# k = floor(256 v) (clipped to 255) becomes uint8(linspace(0, 1, 256)[k] * 255), which is
# k - 1 for some k (33, 37, 41, ...) through float rounding.
GRAY_LEVELS = (np.linspace(0.0, 1.0, 256) * 255).astype(np.uint8)
_GREY_OF_256V = np.append(GRAY_LEVELS, GRAY_LEVELS[-1])  # index floor(256 v), v in [0, 1]


def _grey_levels(vals: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (float32) -> OpenGait's grey levels 0..255 (float32; ``vals`` is
    overwritten). floor(256 v) is exact in float32, so the level boundaries are the released
    ones; v == 1 is level 255 (matplotlib maps N to N - 1)."""
    np.multiply(vals, 256.0, out=vals)
    levels = np.take(_GREY_OF_256V, vals.astype(np.uint16))  # the integer cast floors (v >= 0)
    np.copyto(vals, levels)
    return vals


# --------------------------------------------------------------------------------------------
# Crop and area resize
# --------------------------------------------------------------------------------------------


def area_weights(start: np.ndarray, length: np.ndarray, size: int, out: int) -> np.ndarray:
    """Area-resize weights (..., out, size): ``size`` input pixels -> ``out`` output pixels.

    Output pixel i covers [start + i*length/out, start + (i+1)*length/out) in pixel-edge
    coordinates (input pixel r spans [r, r+1)); its weight on pixel r is the overlap, divided
    by length/out so that the weights of one output sum to 1 when its interval lies inside the
    input (pixels outside it are zero padding). The overlap of [lo, hi) with [r, r+1) is
    clip(hi - r, 0, 1) - clip(lo - r, 0, 1).
    """
    start, length = np.asarray(start), np.asarray(length)
    overlaps = _area_overlaps(start, length, size, out, _Arena(), "w")
    return overlaps * (out / length.astype(np.float32))[..., None, None]


def _area_overlaps(start, length, size: int, out: int, arena: _Arena, name: str):
    """Unnormalised area weights: overlap lengths, (..., out, size)."""
    step = length.astype(np.float32) / np.float32(out)
    edges = start.astype(np.float32)[..., None] + np.arange(out + 1, dtype=np.float32) * step[..., None]
    pixels = np.arange(size, dtype=np.float32)
    cover = arena.get(name + "_cover", edges.shape + (size,))
    np.subtract(edges[..., None], pixels, out=cover)
    np.clip(cover, 0.0, 1.0, out=cover)
    w = arena.get(name, edges.shape[:-1] + (out, size))
    return np.subtract(cover[..., 1:, :], cover[..., :-1, :], out=w)


def _area_taps(start: np.ndarray, length: np.ndarray, size: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """The area weights of ``_area_overlaps`` as taps: for each output pixel the K input pixels
    it can overlap (K = ceil(size / out) + 1) and their overlap lengths, (..., out, K) each."""
    step = length.astype(np.float32)[..., None] / np.float32(out)
    lo = start.astype(np.float32)[..., None] + np.arange(out, dtype=np.float32) * step  # (..., out)
    pixel = np.floor(lo)[..., None] + np.arange(math.ceil(size / out) + 1, dtype=np.float32)
    w = np.clip((lo + step)[..., None] - pixel, 0.0, 1.0) - np.clip(lo[..., None] - pixel, 0.0, 1.0)
    inside = (pixel >= 0) & (pixel < size)
    return np.where(inside, pixel, 0).astype(np.intp), np.where(inside, w, 0.0).astype(np.float32)


def _crop_resize(vals: np.ndarray, params: SkeletonMapParams, arena: _Arena) -> np.ndarray:
    """Gaussian values (T, 2, C, C) -> (T, 2, out, out) float32, x weight x 255, cropped.

    ``quantize: twice``: the values are first turned into OpenGait's grey levels (in place),
    the crop is taken on levels >= 1 and the result is in grey levels (not yet truncated)."""
    n, size, out = len(vals), params.canvas, params.out_size
    scale = _channel_scale(params)
    if params.quantize == "twice":
        if (scale != 1).any():
            vals *= scale[:, None, None]
        vals = _grey_levels(vals)
        scale = np.ones(2, dtype=np.float32)
    # Row sums (one matrix-vector product) > 0 <=> the row has a non-zero value.
    nz = (vals.reshape(-1, size) @ np.ones(size, np.float32)).reshape(n, 2, size) * scale[:, None] > 0
    if params.align == "shared":
        nz = nz.any(axis=1, keepdims=True)  # (T, 1, C): one box for both channels
    has = nz.any(axis=2)
    top = np.argmax(nz, axis=2)
    bottom = size - 1 - np.argmax(nz[..., ::-1], axis=2)
    height = np.where(has, bottom - top + 1, 1)
    left = size // 2 - height // 2
    # OpenGait slices [c - h // 2, c + h // 2 + 1) of the canvas: 2 (h // 2) + 1 columns.
    width = np.minimum(2 * (height // 2) + 1, size - left) if params.crop_width == "odd" else height

    # Rows: each output row is a weighted sum of K <= 3 input rows (gathered, then einsum);
    # a dense matrix product would do ~40x the arithmetic.
    taps, wy = _area_taps(top, height, size, out)  # (T, S, out, K), S = 1 (shared) or 2
    taps, wy = np.broadcast_to(taps, (n, 2) + taps.shape[2:]), np.broadcast_to(wy, (n, 2) + wy.shape[2:])
    flat_rows = (np.arange(n * 2).reshape(n, 2, 1, 1) * size + taps).reshape(-1)
    gathered = np.take(vals.reshape(-1, size), flat_rows, axis=0, out=arena.get("g", (flat_rows.size, size)),
                       mode="clip")  # indices are valid; "clip" avoids a buffered copy
    rows = np.einsum("tcokx,tcok->tcox", gathered.reshape(taps.shape + (size,)), wy,
                     out=arena.get("rows", (n, 2, out, size)))
    # Columns: the same gather + einsum on the transposed rows (K <= 3 input columns per output
    # column; a dense (C, out) matrix product is ~40x the arithmetic and 6 % slower overall).
    cols_in = arena.get("rows_t", (n, 2, size, out))
    np.copyto(cols_in, rows.transpose(0, 1, 3, 2))
    taps, wx = _area_taps(left, width, size, out)
    taps, wx = np.broadcast_to(taps, (n, 2) + taps.shape[2:]), np.broadcast_to(wx, (n, 2) + wx.shape[2:])
    flat_cols = (np.arange(n * 2).reshape(n, 2, 1, 1) * size + taps).reshape(-1)
    gathered = np.take(cols_in.reshape(-1, out), flat_cols, axis=0, out=arena.get("gc", (flat_cols.size, out)),
                       mode="clip")
    res_t = np.einsum("tcxky,tcxk->tcxy", gathered.reshape(taps.shape + (out,)), wx,
                      out=arena.get("res_t", (n, 2, out, out)))
    res = arena.get("res", (n, 2, out, out))
    np.copyto(res, res_t.transpose(0, 1, 3, 2))
    factor = has * (out / height.astype(np.float32)) * (out / width.astype(np.float32)) * scale  # (T, 2)
    res *= factor.astype(np.float32)[..., None, None]
    return res


def _quantize(res: np.ndarray, dtype: str, truncate: bool = False) -> np.ndarray:
    np.clip(res, 0.0, 255.0, out=res)
    if truncate:  # OpenGait: (x * 255).astype("uint8") after the resize
        return res.astype(np.uint8)
    if dtype == "uint8":
        return np.rint(res, out=res).astype(np.uint8)
    return res


_local = threading.local()  # per thread: the scratch arena, reused from sequence to sequence
_blas = None  # threadpoolctl controller, created on first use


def _single_thread_blas():
    """Context manager: BLAS runs single-threaded inside (the matrix products here are small:
    BLAS threads only add overhead, and under CPU contention, with several jobs on a node,
    OpenBLAS threads can slow them down a hundredfold)."""
    global _blas
    if _blas is None:
        import sklearn.metrics.pairwise  # noqa: F401  (load every BLAS before taking stock)
        from threadpoolctl import ThreadpoolController

        _blas = ThreadpoolController()
    return _blas.limit(limits=1, user_api="blas")


def _chunks(pose: np.ndarray, params: SkeletonMapParams, impute: bool, stats: dict | None = None):
    """Yield (start, Gaussian values (n, 2, C, C), arena) chunk by chunk; ``stats`` (if given)
    receives ``zero_height_frames``.

    The values live in this thread's arena: consume each chunk before the next one (and do not
    interleave two of these generators in one thread).
    """
    with _single_thread_blas():
        pose = _impute(pose, params) if impute else pose
        if params.normalise_on == "all":
            xy, peak, empty = normalise_all_joints(pose, params)
            if stats is not None:
                stats["zero_height_frames"] = int(empty.sum())
        else:
            xy, peak = normalise_to_canvas(pose, params)
        if params.window == "truncated":  # OpenGait: a keypoint or limb with peak < eps is skipped
            peak = np.where(peak < params.eps, 0, peak)
        if not hasattr(_local, "arena"):
            _local.arena = _Arena()
        for s in range(0, len(pose), _CHUNK):
            acc = _render_chunk(xy[s:s + _CHUNK], peak[s:s + _CHUNK], params, _local.arena)
            yield s, _to_values(acc, params), _local.arena


def _as_params_pose(pose: np.ndarray, params: SkeletonMapParams) -> np.ndarray:
    """The checked pose: float32, or kept in float64 where the OpenGait normalisation computes
    in the pose's own dtype."""
    return as_pose(pose, keep_float64=params.normalise_on == "all")


def _impute(pose: np.ndarray, params: SkeletonMapParams) -> np.ndarray:
    if params.missing == "zero_coordinate":
        return impute_zero_coordinates(pose, params.impute, params.knn_k)
    return impute_missing(pose, params.impute, params.knn_k)


def render_canvas(pose: np.ndarray, params: SkeletonMapParams, impute: bool = True) -> np.ndarray:
    """Full-canvas maps (T, 2, canvas, canvas) float32, x weight x 255 (x 1 when quantized
    twice), before crop and resize."""
    pose = _as_params_pose(pose, params)
    out = np.zeros((len(pose), 2, params.canvas, params.canvas), dtype=np.float32)
    for s, vals, _ in _chunks(pose, params, impute):
        np.multiply(vals, _channel_scale(params)[:, None, None], out=out[s:s + len(vals)])
    return out


def rasterize_sequence(pose: np.ndarray, params: SkeletonMapParams, stats: dict | None = None) -> np.ndarray:
    """Pose (T, 17, 3) -> skeleton maps (T, 2, out_size, out_size): channel 0 limbs, 1 joints.

    Frames that cannot be normalised (``normalise_on: drawn``: no person, no hips; ``all``: a
    person 0 px tall, counted in ``stats["zero_height_frames"]`` when ``stats`` is given) give
    all-zero maps.
    """
    pose = _as_params_pose(pose, params)
    maps = np.zeros((len(pose), 2, params.out_size, params.out_size), dtype=np.dtype(params.dtype))
    truncate = params.quantize == "twice"
    for s, vals, arena in _chunks(pose, params, impute=True, stats=stats):
        maps[s:s + len(vals)] = _quantize(_crop_resize(vals, params, arena), params.dtype, truncate)
    return maps
