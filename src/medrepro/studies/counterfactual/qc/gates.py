"""Gates of the counterfactual QC: thresholds, pass/fail per pair and the QC summary.

A pair passes when global SSIM >= 0.70, edge preservation >= 0.276 and (when LPIPS gates,
see :mod:`.lpips`) LPIPS <= 0.40; every threshold is a parameter (:class:`QCThresholds`).

Note (audit): the benchmark's own production QC used Canny edges with unreleased parameters;
this released QC therefore does not establish parity with the published counts
(:data:`PUBLISHED_COUNTS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from medrepro.errors import InputError

__all__ = ["PUBLISHED_COUNTS", "QCThresholds", "apply_gates", "qc_summary", "as_bool"]

#: Published counts of the benchmark's production QC (not reproducible by the released QC).
PUBLISHED_COUNTS = {"filtered_sources": 2987, "sources_with_qc_pass": 2950, "qc_passed_pairs": 11795}


@dataclass(frozen=True)
class QCThresholds:
    """QC thresholds (all configurable; defaults are the benchmark's)."""

    ssim_min: float = 0.70
    edge_min: float = 0.276
    lpips_max: float = 0.40

    @classmethod
    def from_any(cls, value: "QCThresholds | Mapping[str, float] | None") -> "QCThresholds":
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        unknown = set(value) - {"ssim_min", "edge_min", "lpips_max"}
        if unknown:
            raise InputError(None, "thresholds", f"unknown key(s) {sorted(unknown)}",
                             "ssim_min, edge_min, lpips_max")
        return cls(**{k: float(v) for k, v in value.items()})


def apply_gates(table: pd.DataFrame, thr: QCThresholds, policy: str) -> pd.DataFrame:
    t = table.copy()
    t["pass_ssim"] = t["ssim"] >= thr.ssim_min
    t["pass_edge"] = t["edge_preservation"] >= thr.edge_min
    have = t["lpips"].notna().to_numpy()
    pass_lp = pd.array([pd.NA] * len(t), dtype="boolean")
    if policy != "off":
        pass_lp[have] = (t["lpips"].to_numpy()[have] <= thr.lpips_max)
        if policy == "required":
            pass_lp[~have] = False
            t.loc[~have, "lpips_status"] = [
                s.replace("unavailable", "unavailable (required)", 1) if s.startswith("unavailable") else s
                for s in t.loc[~have, "lpips_status"]
            ]
    t["pass_lpips"] = pass_lp
    gate_lp = pass_lp.fillna(True).to_numpy(dtype=bool)
    t["qc_pass"] = t["pass_ssim"].to_numpy() & t["pass_edge"].to_numpy() & gate_lp
    reasons = []
    for ps, pe, pl, lv in zip(t["pass_ssim"], t["pass_edge"], pass_lp, t["lpips"]):
        r = []
        if not ps:
            r.append(f"ssim<{thr.ssim_min:g}")
        if not pe:
            r.append(f"edge<{thr.edge_min:g}")
        if pl is not pd.NA and not pl:
            r.append(f"lpips>{thr.lpips_max:g}" if lv == lv else "lpips unavailable (required)")
        reasons.append(";".join(r))
    t["qc_fail_reason"] = reasons
    return t


def qc_summary(table: pd.DataFrame | str | Path, published: Mapping[str, int] | bool | None = None) -> dict:
    """Counts and pass rates of a QC table (overall and by edit), number of sources and of
    sources with at least one passing counterfactual. With ``published`` (``True`` for
    :data:`PUBLISHED_COUNTS`, or a mapping with the same keys) the published counts are put
    beside the observed ones under ``comparison``."""
    if isinstance(table, (str, Path)):
        table = pd.read_csv(table, keep_default_na=True)
    t = table
    qc = as_bool(t["qc_pass"])

    def rates(sub: pd.DataFrame, q: np.ndarray) -> dict:
        n = len(sub)
        d = {
            "n": n, "n_pass": int(q.sum()), "pass_rate": float(q.mean()) if n else None,
            "pass_rate_ssim": float(as_bool(sub["pass_ssim"]).mean()) if n else None,
            "pass_rate_edge": float(as_bool(sub["pass_edge"]).mean()) if n else None,
        }
        pl = sub["pass_lpips"].dropna() if "pass_lpips" in sub else pd.Series([], dtype=object)
        d["pass_rate_lpips"] = float(as_bool(pl).mean()) if len(pl) else None
        return d

    overall = rates(t, qc)
    by_edit = {str(e): rates(t[mask], qc[mask.to_numpy()])
               for e, mask in ((e, t["edit"] == e) for e in sorted(t["edit"].astype(str).unique()))}
    src_pass = pd.Series(qc, index=t.index).groupby(t["source_id"].astype(str)).any()
    out = {
        "n_pairs": overall["n"], "n_pass": overall["n_pass"], "pass_rate": overall["pass_rate"],
        "pass_rate_ssim": overall["pass_rate_ssim"], "pass_rate_edge": overall["pass_rate_edge"],
        "pass_rate_lpips": overall["pass_rate_lpips"],
        "lpips_policy": sorted(t["lpips_policy"].astype(str).unique().tolist()) if "lpips_policy" in t else [],
        "n_sources": int(src_pass.size), "n_sources_with_pass": int(src_pass.sum()),
        "by_edit": by_edit,
    }
    if published:
        pub = dict(PUBLISHED_COUNTS) if published is True else dict(published)
        observed = {"filtered_sources": out["n_sources"], "sources_with_qc_pass": out["n_sources_with_pass"],
                    "qc_passed_pairs": out["n_pass"]}
        out["published"] = pub
        out["comparison"] = {k: {"observed": observed.get(k), "published": v} for k, v in pub.items()}
    return out


def as_bool(s: Any) -> np.ndarray:
    s = pd.Series(s)
    if s.dtype == bool or str(s.dtype) == "boolean":
        return s.fillna(False).to_numpy(dtype=bool)
    return s.astype(str).str.strip().str.lower().isin(["true", "1", "yes"]).to_numpy()

