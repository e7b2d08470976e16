"""Benchmark: vectorized skeleton-map rasterizer vs the per-joint / per-limb reference loop.

Both run on the same random plausible walking poses (sequences of 300 frames, 5 % of keypoints
and 1 % of frames dropped; KNN imputation is included in both timings). The reference is the
one in tests/studies/scoliosis/test_skeleton_maps.py, with numpy over the pixel grid inside its
loops over frames, joints and limbs. Prints frames/s for both, the speedup, and the projected
time for all of Scoliosis1K (447,900 frames) with the vectorized version, in one process and in
``--workers`` processes (as ``build_skeleton_maps(workers=...)`` runs it). Times are the best
of ``--repeat`` runs; the 1-minute load average is printed because other jobs may share the
CPUs.

    .venv/bin/python bench/rasterize.py --frames 3000 --ref-frames 40

``--preset opengait`` times the preset that reproduces OpenGait's released pretreatment;
``--opengait DIR`` (a checkout of ShiqiYu/OpenGait, with opencv-python-headless importable, see
bench/opengait_released.py) also times the released pretreatment itself on the same frames,
both in one thread, and prints the speedup and the largest difference between the two:

    PYTHONPATH=/tmp/og-deps .venv/bin/python bench/rasterize.py --preset opengait --opengait /tmp/OpenGait

The poses are float64, as the released pose pkls are.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from medrepro.studies.scoliosis.skeleton_maps import SkeletonMapParams, rasterize_sequence

SCOLIOSIS1K_FRAMES = 447_900
ROOT = Path(__file__).resolve().parents[1]


def _load_test_module():
    path = ROOT / "tests" / "studies" / "scoliosis" / "test_skeleton_maps.py"
    spec = importlib.util.spec_from_file_location("_skeleton_ref", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _rasterize_all(seqs: list[np.ndarray], params: SkeletonMapParams) -> float:
    """Rasterize every sequence; return the wall time."""
    t0 = time.perf_counter()
    for s in seqs:
        rasterize_sequence(s, params)
    return time.perf_counter() - t0


def _best_parallel(pool: ProcessPoolExecutor, seqs: list, params: SkeletonMapParams, workers: int) -> float:
    shares = [seqs[i::workers] for i in range(workers)]
    t0 = time.perf_counter()
    list(pool.map(_rasterize_all, shares, [params] * workers))
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=3000, help="frames for the vectorized version")
    ap.add_argument("--ref-frames", type=int, default=40, help="frames for the slow reference")
    ap.add_argument("--seq-len", type=int, default=300, help="frames per sequence (real data: ~300)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes for the parallel run")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs; the best is reported")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--preset", choices=("medrepro", "opengait"), default="medrepro", help="skeleton-map preset")
    ap.add_argument("--opengait", type=Path, default=None,
                    help="checkout of ShiqiYu/OpenGait: also time its released pretreatment")
    args = ap.parse_args(argv)

    ref = _load_test_module()
    rng = np.random.default_rng(args.seed)
    n_seq = max(1, -(-args.frames // args.seq_len))
    seqs = [ref.random_walk_pose(args.seq_len, rng, drop=0.05, empty=0.01).astype(np.float64)
            for _ in range(n_seq)]
    frames = sum(len(s) for s in seqs)
    params = SkeletonMapParams.of_preset(args.preset)
    print(f"params     : {params}")
    print(f"machine    : {os.cpu_count()} CPUs, numpy {np.__version__}, "
          f"load average {os.getloadavg()[0]:.2f} at start")

    if args.opengait is not None:
        return _versus_released(args, seqs, params)
    if args.preset != "medrepro":
        print(f"the reference loop draws the medrepro preset; for preset {args.preset} pass --opengait DIR "
              "(a checkout of ShiqiYu/OpenGait) to compare with the released pretreatment")
        return 2

    # Agreement with the reference (and its speed) on the first --ref-frames frames.
    clip = seqs[0][: args.ref_frames]
    t0 = time.perf_counter()
    want = ref.reference_rasterize(clip, params, pixel_loops=False)
    fps_ref = len(clip) / (time.perf_counter() - t0)
    got = rasterize_sequence(clip, params)
    diff = int(np.abs(got.astype(int) - want.astype(int)).max())
    n_off = int((got != want).sum())

    _rasterize_all(seqs[:1], params)  # warm-up
    fps_vec = frames / min(_rasterize_all(seqs, params) for _ in range(args.repeat))
    fps_par = None
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers) as pool:
            _best_parallel(pool, seqs[: args.workers], params, args.workers)  # warm-up
            fps_par = frames / min(_best_parallel(pool, seqs, params, args.workers) for _ in range(args.repeat))

    print(f"reference  : {fps_ref:,.1f} frames/s (per-joint/limb loop, {len(clip)} frames)")
    print(f"vectorized : {fps_vec:,.0f} frames/s (1 process, {frames} frames, best of {args.repeat})")
    print(f"agreement  : max |diff| = {diff} on uint8 ({n_off} of {got.size} values differ) -> "
          f"{'OK' if diff <= 1 else 'MISMATCH'}")
    print(f"speedup    : {fps_vec / fps_ref:,.1f}x")
    print(f"Scoliosis1K: {SCOLIOSIS1K_FRAMES:,} frames -> {SCOLIOSIS1K_FRAMES / fps_vec:,.1f} s in 1 process")
    if fps_par is not None:
        print(f"Scoliosis1K: {SCOLIOSIS1K_FRAMES:,} frames -> {SCOLIOSIS1K_FRAMES / fps_par:,.1f} s in "
              f"{args.workers} processes ({fps_par:,.0f} frames/s)")
    return 0 if diff <= 1 else 1


def _versus_released(args, seqs: list[np.ndarray], params: SkeletonMapParams) -> int:
    """Released OpenGait pretreatment vs medrepro on the same sequences, one thread each."""
    import cv2
    from threadpoolctl import threadpool_limits

    sys.path.insert(0, str(ROOT / "bench"))
    from opengait_released import load_released

    released = load_released(args.opengait)
    cv2.setNumThreads(1)
    ref_seqs, ref_frames = [], 0  # whole sequences, --ref-frames or more in all
    for s in seqs:
        if ref_frames >= args.ref_frames:
            break
        ref_seqs.append(s)
        ref_frames += len(s)
    with threadpool_limits(1):
        diff, t_rel, t_ours = 0, [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            want = [released(s) for s in ref_seqs]
            t_rel.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            got = [rasterize_sequence(s, params) for s in ref_seqs]
            t_ours.append(time.perf_counter() - t0)
        diff = max(int(np.abs(g.astype(int) - w.astype(int)).max()) for g, w in zip(got, want))
        n_off = sum(int((g != w).sum()) for g, w in zip(got, want))
    fps_rel, fps_ours = ref_frames / min(t_rel), ref_frames / min(t_ours)
    print(f"released   : {fps_rel:,.1f} frames/s (OpenGait datasets/pretreatment_heatmap.py, "
          f"{ref_frames} frames, 1 thread, best of {args.repeat})")
    print(f"medrepro   : {fps_ours:,.1f} frames/s (preset {params.preset}, same frames, 1 thread)")
    print(f"agreement  : max |diff| = {diff} grey levels ({n_off} values differ) -> "
          f"{'OK' if diff <= 1 else 'MISMATCH'}")
    print(f"speedup    : {fps_ours / fps_rel:,.1f}x")
    return 0 if diff <= 1 else 1


if __name__ == "__main__":
    sys.exit(main())
