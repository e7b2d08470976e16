"""Skeleton maps for a whole data set: every sequence of a manifest -> ``<out_dir>/<id>.npy``
plus ``index.json``, written under a temporary name and renamed into place, optionally in
worker processes."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from medrepro.fsutil import replace_dir, sha256_file, write_json
from medrepro.studies.scoliosis import data as scoliosis_data
from medrepro.studies.scoliosis.data import as_pose, read_manifest
from medrepro.studies.scoliosis.skeleton_maps.params import SkeletonMapParams
from medrepro.studies.scoliosis.skeleton_maps.render import _single_thread_blas, rasterize_sequence


def _rasterize_one(args: tuple[str, str, str | None, str, SkeletonMapParams]) -> tuple[str, int, str, int]:
    sid, pose_path, pose_sha256, tmp_dir, params = args
    # load_pose is looked up in the data module at call time (tests replace it there); the file
    # must still have the bytes the manifest recorded.
    pose = scoliosis_data.load_pose(pose_path, sha256=pose_sha256)
    stats: dict = {}
    maps = rasterize_sequence(as_pose(pose, pose_path, keep_float64=True), params, stats)
    target = Path(tmp_dir) / f"{sid}.npy"
    np.save(target, maps)
    return sid, len(maps), sha256_file(target), stats.get("zero_height_frames", 0)


def _init_worker() -> None:
    """Process-pool initializer: one BLAS thread for the worker's whole life."""
    _single_thread_blas().__enter__()


def build_skeleton_maps(manifest_path: Path, out_dir: Path, params: SkeletonMapParams, workers: int = 1) -> dict:
    """Rasterize every sequence of the manifest into ``<out_dir>/<id>.npy`` + ``index.json``.

    The whole folder is written under a temporary sibling name and renamed onto ``out_dir`` at
    the end (an existing ``out_dir`` is replaced), so a failed run leaves nothing half-written.
    ``workers > 1`` rasterizes sequences in that many processes (same output bytes).
    Returns the index: ``{"params": asdict(params), "sequences": {id: {"frames", "sha256"}},
    "zero_height_frames": n}`` (frames rendered empty because the person is 0 px tall, where
    the released OpenGait pretreatment divides by zero; only ``normalise_on: all`` has them).
    """
    root, seqs = read_manifest(manifest_path)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    os.chmod(tmp_dir, 0o755)  # mkdtemp makes it private; the result is an ordinary folder
    try:
        jobs = [(e["id"], str(root / e["pose"]), e.get("pose_sha256"), str(tmp_dir), params) for e in seqs]
        if workers > 1 and len(jobs) > 1:
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker) as pool:
                results = list(pool.map(_rasterize_one, jobs, chunksize=4))
        else:
            with _single_thread_blas():
                results = [_rasterize_one(job) for job in jobs]
        index = {
            "params": asdict(params),
            "sequences": {sid: {"frames": frames, "sha256": digest} for sid, frames, digest, _ in results},
            "zero_height_frames": sum(r[3] for r in results),
        }
        write_json(tmp_dir / "index.json", index)
        replace_dir(tmp_dir, out_dir)
    finally:
        if tmp_dir.exists():
            shutil.rmtree(tmp_dir)
    return index
