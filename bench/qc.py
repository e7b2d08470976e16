"""Benchmark: counterfactual QC throughput at 512 x 512.

Library path (``qc_pairs``): pairs grouped by source, the source read and its statistics
computed once, global SSIM / edge preservation per image as the released QC computes them and the
windowed SSIM vectorised over the source's counterfactuals, groups on a thread pool. Baseline: a
per-pair loop that reads both images and calls ``skimage.metrics.structural_similarity``
(windowed SSIM), a plain NumPy global SSIM and a straightforward per-pair edge computation with
``scipy.ndimage`` (correlate1d + binary_dilation), in the released precisions (SSIM in float64,
edges in float32). Both read the same PNGs, so both timings include PNG decoding; a
compute-only comparison on in-memory arrays is printed too. The metrics of both paths are
checked to agree.

    .venv/bin/python bench/qc.py [--sources 16] [--size 512]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage
from skimage.metrics import structural_similarity

from medrepro.studies.counterfactual.qc import load_gray01, load_resized_gray01, qc_arrays, qc_pairs
from medrepro.studies.counterfactual.synthetic import generate_bundle

C1, C2 = 0.01**2, 0.03**2
K = np.array([-1.0, 0.0, 1.0], dtype=np.float32)
S3 = np.ones((3, 3), bool)


def baseline_pair(s: np.ndarray, c: np.ndarray, windowed: bool = True) -> tuple[float, float, float]:
    """The released definition written out per pair: SSIM in float64, edges in float32."""
    s64, c64 = s.astype(np.float64), c.astype(np.float64)
    ms, mc = s64.mean(), c64.mean()
    vs, vc = s64.var(), c64.var()
    cov = ((s64 - ms) * (c64 - mc)).mean()
    g = ((2 * ms * mc + C1) * (2 * cov + C2)) / ((ms**2 + mc**2 + C1) * (vs + vc + C2))

    def emap(x):
        x = x.astype(np.float32)
        gx = ndimage.correlate1d(x, K, axis=1, mode="constant")
        gy = ndimage.correlate1d(x, K, axis=0, mode="constant")
        gx[:, [0, -1]] = 0
        gy[[0, -1], :] = 0
        m = np.sqrt(gx * gx + gy * gy)
        return m > max(float(m.mean() + m.std()), 1e-6)

    es = emap(s)
    ec = ndimage.binary_dilation(emap(c), structure=S3)
    e = 1.0 if not es.any() else float((es & ec).sum()) / float(es.sum())
    w = structural_similarity(s64, c64, data_range=1.0) if windowed else float("nan")
    return g, e, w


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sources", type=int, default=16)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--workers", type=int, default=None)
    a = ap.parse_args()

    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        info = generate_bundle(d, n_sources=a.sources, size=a.size, degraded_fraction=0.15, seed=0)
        t_gen = time.perf_counter() - t0
        root = Path(info["root"])
        pairs = pd.read_csv(info["pairs_csv"])
        n = len(pairs)

        # -- library, end to end (PNG decode included)
        qc_pairs(root, pairs.head(4), policy="off")  # warm-up (imports)
        t0 = time.perf_counter()
        table = qc_pairs(root, pairs, policy="off", workers=a.workers)
        t_lib = time.perf_counter() - t0

        # -- baseline, end to end
        t0 = time.perf_counter()
        base = []
        for r in pairs.itertuples():
            s = load_gray01(root / r.source_path)
            c = load_resized_gray01(root / r.cf_path, s.shape)
            base.append(baseline_pair(s, c))
        t_base = time.perf_counter() - t0
        base = np.array(base)

        # -- compute only (arrays in memory)
        imgs = {p: load_gray01(root / p) for p in set(pairs["source_path"]) | set(pairs["cf_path"])}
        groups = [(imgs[sp], np.stack([imgs[c] for c in g["cf_path"]])) for sp, g in pairs.groupby("source_path", sort=False)]
        t0 = time.perf_counter()
        for s, cfs in groups:
            qc_arrays(s, cfs)
        t_lib_c1 = time.perf_counter() - t0
        t0 = time.perf_counter()
        for r in pairs.itertuples():
            baseline_pair(imgs[r.source_path], imgs[r.cf_path])
        t_base_c = time.perf_counter() - t0
        # gate metrics only (global SSIM + edge preservation; no windowed SSIM column)
        t0 = time.perf_counter()
        for s, cfs in groups:
            qc_arrays(s, cfs, windowed=False)
        t_lib_g = time.perf_counter() - t0
        t0 = time.perf_counter()
        for r in pairs.itertuples():
            baseline_pair(imgs[r.source_path], imgs[r.cf_path], windowed=False)
        t_base_g = time.perf_counter() - t0

    d_g = np.max(np.abs(table["ssim"].to_numpy() - base[:, 0]))
    d_e = np.max(np.abs(table["edge_preservation"].to_numpy() - base[:, 1]))
    d_w = np.max(np.abs(table["ssim_windowed"].to_numpy() - base[:, 2]))
    same_pass = bool(((base[:, 0] >= 0.70) & (base[:, 1] >= 0.276) == table["qc_pass"].to_numpy()).all())
    workers = a.workers if a.workers is not None else min(4, os.cpu_count() or 1)
    print(f"QC benchmark: {n} pairs ({a.sources} sources x 4 edits) at {a.size} x {a.size}, "
          f"{os.cpu_count()} CPU(s); bundle generated in {t_gen:.1f} s")
    print(f"  library qc_pairs (end to end, PNG decode, {workers} thread(s)): {t_lib:.2f} s = {n / t_lib:.1f} pairs/s")
    print(f"  baseline per-pair loop (end to end, skimage SSIM + scipy.ndimage edges): {t_base:.2f} s = "
          f"{n / t_base:.1f} pairs/s")
    print(f"  speed-up end to end: {t_base / t_lib:.2f}x")
    print(f"  compute only, single thread: library {n / t_lib_c1:.1f} pairs/s vs baseline {n / t_base_c:.1f} pairs/s "
          f"-> {t_base_c / t_lib_c1:.2f}x")
    print(f"  compute only, gate metrics (no windowed SSIM), single thread: library {n / t_lib_g:.1f} pairs/s vs "
          f"baseline {n / t_base_g:.1f} pairs/s -> {t_base_g / t_lib_g:.2f}x")
    print(f"  agreement: max |diff| global SSIM {d_g:.1e}, edge preservation {d_e:.1e}, windowed SSIM {d_w:.1e}; "
          f"same pass/fail: {same_pass}; {int(table['qc_pass'].sum())}/{n} pass")


if __name__ == "__main__":
    main()
