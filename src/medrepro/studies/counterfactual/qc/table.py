"""The QC table of the counterfactual study: every (source, counterfactual) pair of a bundle
QC'd, one row per pair (:func:`qc_pairs`, columns :data:`QC_COLUMNS`)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from medrepro.errors import InputError
from medrepro.studies.counterfactual.qc.gates import QCThresholds, apply_gates
from medrepro.studies.counterfactual.qc.images import SIXTEEN_BIT_MODES, load_gray01, load_resized_gray01
from medrepro.studies.counterfactual.qc.kernels import qc_arrays
from medrepro.studies.counterfactual.qc.lpips import LPIPS_POLICIES, LpipsFn, make_lpips_fn

__all__ = ["QC_COLUMNS", "PAIR_COLUMNS", "qc_pairs", "resolve_path"]

QC_COLUMNS = [
    "pair_id", "source_id", "edit", "ssim", "ssim_windowed", "edge_preservation", "lpips",
    "lpips_policy", "lpips_status", "pass_ssim", "pass_edge", "pass_lpips", "qc_pass",
    "qc_fail_reason", "source_path", "cf_path",
]
PAIR_COLUMNS = ("pair_id", "source_id", "edit", "source_path", "cf_path")


def resolve_path(root: Path, p: Any) -> Path:
    """``p`` as a path: itself when absolute, else relative to ``root`` (a bundle root)."""
    q = Path(str(p))
    return q if q.is_absolute() else root / q


def _read_pairs(pairs: Any) -> tuple[pd.DataFrame, str]:
    if isinstance(pairs, (str, Path)):
        where = str(pairs)
        try:
            df = pd.read_csv(pairs, dtype=str, keep_default_na=False)
        except FileNotFoundError:
            raise InputError(pairs, "pairs", "file not found", "a pairs CSV") from None
    elif isinstance(pairs, pd.DataFrame):
        where, df = "<pairs table>", pairs.copy()
    else:
        where, df = "<pairs list>", pd.DataFrame(list(pairs))
    missing = [c for c in PAIR_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(where, f"columns {missing}", "missing", f"columns {list(PAIR_COLUMNS)}")
    df = df.reset_index(drop=True)
    for c in PAIR_COLUMNS:
        df[c] = df[c].astype(str)
    dup = df["pair_id"][df["pair_id"].duplicated()]
    if len(dup):
        raise InputError(where, "pair_id", f"duplicate pair_id {dup.iloc[0]!r}", "unique pair ids")
    return df, where


def qc_pairs(
    bundle_root: str | Path,
    pairs: Any,
    policy: str = "optional",
    thresholds: QCThresholds | Mapping[str, float] | None = None,
    *,
    workers: int | None = None,
    lpips_fn: LpipsFn | None = None,
    windowed: bool = True,
    sixteen_bit: str = "saturate",
) -> pd.DataFrame:
    """QC every (source, counterfactual) pair; one row per pair (columns :data:`QC_COLUMNS`).

    ``pairs``: a DataFrame, a list of dicts or a CSV path with columns ``pair_id, source_id,
    edit, source_path, cf_path`` (paths relative to ``bundle_root`` unless absolute).
    ``policy``: ``required | optional | off`` (see :mod:`.lpips`). ``lpips_fn``
    overrides the LPIPS scorer (tests); by default :func:`make_lpips_fn` is tried unless the
    policy is ``off``. Images are read as the released QC reads them (:mod:`.images`;
    ``sixteen_bit`` chooses how 16-bit images are read). Pairs are grouped by source so each source image is read and its
    statistics computed once; groups run on ``workers`` threads (NumPy/SciPy release the
    GIL), default ``min(4, cpu count)``. The row order follows ``pairs``.
    """
    if policy not in LPIPS_POLICIES:
        raise InputError(None, "lpips", f"unknown policy {policy!r}", " | ".join(LPIPS_POLICIES))
    if sixteen_bit not in SIXTEEN_BIT_MODES:
        raise InputError(None, "sixteen_bit", f"{sixteen_bit!r}", " | ".join(SIXTEEN_BIT_MODES))
    thr = QCThresholds.from_any(thresholds)
    root = Path(bundle_root)
    df, where = _read_pairs(pairs)

    if policy == "off":
        fn, lp_status = None, "off"
    elif lpips_fn is not None:
        fn, lp_status = lpips_fn, "computed"
    else:
        fn, lp_status = make_lpips_fn()

    def load(row_idx: int, field: str, shape: tuple[int, int] | None = None) -> np.ndarray:
        p = resolve_path(root, df.at[row_idx, field])
        if not p.is_file():
            raise InputError(where, f"row {row_idx} (pair_id={df.at[row_idx, 'pair_id']!r}).{field}",
                             f"image not found: {p}", "an existing image file in the bundle")
        if shape is None:
            return load_gray01(p, sixteen_bit)
        return load_resized_gray01(p, shape, sixteen_bit)

    groups = list(df.groupby("source_path", sort=False).indices.values())

    def run_group(idx: np.ndarray) -> list[tuple[int, dict[str, Any]]]:
        idx = list(idx)
        src = load(idx[0], "source_path")
        cfs = np.stack([load(i, "cf_path", src.shape) for i in idx])
        m = qc_arrays(src, cfs, windowed=windowed)
        lp = np.full(len(idx), np.nan)
        status = lp_status
        if fn is not None:
            try:
                lp = np.asarray(fn(src, cfs), dtype=np.float64).reshape(len(idx))
            except Exception as e:  # a scorer failing on some images counts as unavailable
                status = f"unavailable: LPIPS failed ({type(e).__name__}: {e})"
        return [
            (i, {"ssim": m["ssim"][k], "ssim_windowed": m.get("ssim_windowed", np.full(len(idx), np.nan))[k],
                 "edge_preservation": m["edge_preservation"][k], "lpips": lp[k], "lpips_status": status})
            for k, i in enumerate(idx)
        ]

    n_workers = workers if workers is not None else min(4, os.cpu_count() or 1)
    results: dict[int, dict[str, Any]] = {}
    if n_workers <= 1 or len(groups) <= 1:
        for g in groups:
            results.update(run_group(g))
    else:
        with ThreadPoolExecutor(max_workers=n_workers) as ex:
            for out in ex.map(run_group, groups):
                results.update(out)

    met = pd.DataFrame.from_dict(results, orient="index").sort_index()
    table = pd.DataFrame({
        "pair_id": df["pair_id"], "source_id": df["source_id"], "edit": df["edit"],
        "ssim": met["ssim"].astype(float), "ssim_windowed": met["ssim_windowed"].astype(float),
        "edge_preservation": met["edge_preservation"].astype(float), "lpips": met["lpips"].astype(float),
        "lpips_policy": policy, "lpips_status": met["lpips_status"],
    })
    return apply_gates(table, thr, policy).assign(source_path=df["source_path"], cf_path=df["cf_path"])[QC_COLUMNS]

