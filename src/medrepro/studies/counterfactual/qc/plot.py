"""The QC figure of the counterfactual study (:func:`plot_qc`)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from medrepro.fsutil import atomic_path
from medrepro.studies.counterfactual.qc.gates import QCThresholds, as_bool
from medrepro.studies.counterfactual.qc.images import load_gray01, load_resized_gray01
from medrepro.studies.counterfactual.qc.table import resolve_path

__all__ = ["plot_qc"]


def plot_qc(table: pd.DataFrame | str | Path, bundle_root: str | Path, out_png: str | Path,
            thresholds: QCThresholds | Mapping[str, float] | None = None, n_examples: int = 4,
            sixteen_bit: str = "saturate") -> Path:
    """Write a QC figure: SSIM and edge-preservation histograms with the threshold lines, and a
    grid of ``n_examples`` passing and failing pairs (source | counterfactual side by side).
    Examples are evenly spaced through the pairs sorted by ``pair_id`` (deterministic)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if isinstance(table, (str, Path)):
        table = pd.read_csv(table)
    thr = QCThresholds.from_any(thresholds)
    root = Path(bundle_root)
    t = table.sort_values("pair_id").reset_index(drop=True)
    q = as_bool(t["qc_pass"])
    have_paths = {"source_path", "cf_path"} <= set(t.columns)

    def pick(mask: np.ndarray) -> pd.DataFrame:
        sub = t[mask]
        if not len(sub) or not have_paths:
            return sub.iloc[:0]
        k = min(n_examples, len(sub))
        return sub.iloc[np.linspace(0, len(sub) - 1, k).round().astype(int)]

    ex_pass, ex_fail = pick(q), pick(~q)
    n_cols = max(2, n_examples)
    n_rows = 1 + (1 if len(ex_pass) else 0) + (1 if len(ex_fail) else 0)
    fig = plt.figure(figsize=(3.2 * n_cols, 3.0 * n_rows))
    gs = fig.add_gridspec(n_rows, n_cols)
    half = n_cols // 2
    ax1 = fig.add_subplot(gs[0, :half])
    ax2 = fig.add_subplot(gs[0, half:])
    for ax, col, th, lab in ((ax1, "ssim", thr.ssim_min, "global SSIM"),
                             (ax2, "edge_preservation", thr.edge_min, "edge preservation")):
        vals = pd.to_numeric(t[col], errors="coerce").dropna()
        ax.hist(vals, bins=40, color="0.55")
        ax.axvline(th, color="crimson", ls="--", label=f"threshold {th:g}")
        ax.set_xlabel(lab)
        ax.set_ylabel("pairs")
        ax.legend(fontsize=8)
    ax1.set_title(f"{int(q.sum())}/{len(t)} pairs pass QC", fontsize=10)
    row = 1
    for ex, label in ((ex_pass, "PASS"), (ex_fail, "FAIL")):
        if not len(ex):
            continue
        for j, (_, r) in enumerate(ex.iterrows()):
            ax = fig.add_subplot(gs[row, j])
            s = load_gray01(resolve_path(root, r["source_path"]), sixteen_bit)
            c = load_resized_gray01(resolve_path(root, r["cf_path"]), s.shape, sixteen_bit)
            ax.imshow(np.concatenate([s, c], axis=1), cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"{label} {r['pair_id']}\nSSIM {float(r['ssim']):.2f} edge {float(r['edge_preservation']):.2f}",
                         fontsize=7)
            ax.axis("off")
        row += 1
    fig.tight_layout()
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
    return out_png
