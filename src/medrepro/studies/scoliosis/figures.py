"""Figures for the report (matplotlib, Agg canvas; every PNG written atomically)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medrepro.fsutil import atomic_path
from medrepro.studies.scoliosis.data import as_pose
from medrepro.studies.scoliosis.skeleton_maps import SkeletonMapParams, rasterize_sequence


def plot_skeleton_frames(
    pose: np.ndarray,
    silhouette: np.ndarray,
    params: SkeletonMapParams,
    out_png: Path,
    n_frames: int = 4,
    title: str = "",
) -> list[int]:
    """Silhouettes next to their skeleton maps, for ``n_frames`` evenly spaced frames.

    Rows: silhouette, limb channel, joint channel, and an overlay (red = limbs, green =
    joints). ``pose`` is (T, 17, 3), ``silhouette`` (T', H, W) (uint8 0..255 or float 0..1);
    frames are taken from the first min(T, T') of both. Returns the frame indices shown.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    pose = as_pose(pose, "pose")
    silhouette = np.asarray(silhouette)
    n_common = min(len(pose), len(silhouette))
    if n_common == 0:
        raise ValueError("plot_skeleton_frames: no frames to show")
    frames = sorted(set(np.linspace(0, n_common - 1, max(1, n_frames)).round().astype(int).tolist()))
    maps = rasterize_sequence(pose, params).astype(np.float32)
    maps /= 255.0  # float32 maps are on the same 0..255 scale as uint8 ones

    sil = silhouette.astype(np.float32)
    if silhouette.dtype == np.uint8 or sil.max(initial=0.0) > 1.0:
        sil /= 255.0

    rows = ("silhouette", "limbs", "joints", "overlay")
    fig = Figure(figsize=(1.6 * len(frames) + 0.8, 1.6 * len(rows) + (0.4 if title else 0.1)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(rows), len(frames), squeeze=False)
    for col, t in enumerate(frames):
        limbs, joints = np.clip(maps[t, 0], 0, 1), np.clip(maps[t, 1], 0, 1)
        overlay = np.stack([limbs, joints, np.zeros_like(limbs)], axis=-1)
        images = (sil[t], limbs, joints, overlay)
        for row, img in enumerate(images):
            ax = axes[row, col]
            if img.ndim == 2:
                ax.imshow(img, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            else:
                ax.imshow(img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"frame {t}", fontsize=8)
            if col == 0:
                ax.set_ylabel(rows[row], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return frames
