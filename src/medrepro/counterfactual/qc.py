"""Counterfactual image QC: the preprocessing rule of the counterfactual benchmark.

Reproduces the released QC (see ``shared/specs/counterfactual.md``):

* Images are converted to grayscale floats in [0, 1] (:func:`to_gray01`); the counterfactual
  is resized to the source's size before any comparison (:func:`resize_to`, Pillow bilinear
  on a 32-bit float image).
* **Global SSIM** (:func:`global_ssim`): ONE window over the whole image -- image means,
  population variances (divide by N), population covariance, C1 = 0.01**2, C2 = 0.03**2
  (data range 1). Pass: SSIM >= 0.70. This is *not* the usual windowed SSIM; the windowed
  SSIM (scikit-image defaults: 7x7 uniform window, sample covariance, data_range=1) is
  reported as the extra column ``ssim_windowed`` and never gates.
* **Edge preservation** (:func:`edge_map`, :func:`edge_preservation`): central differences
  without the usual 1/2 factor, ``gx[:, 1:-1] = a[:, 2:] - a[:, :-2]`` and
  ``gy[1:-1, :] = a[2:, :] - a[:-2, :]``, zero on the borders; magnitude
  ``sqrt(gx**2 + gy**2)``; edges are pixels with magnitude strictly greater than
  ``max(mean + std, 1e-6)`` of that image's magnitude (population std, border zeros
  included in mean and std); score = ``|E_src AND dilate3x3(E_cf)| / |E_src|`` with a 3x3
  square dilation (outside the image counts as no edge), and 1.0 when the source has no edge
  pixel at all (quirk kept from the reference: a blank source passes). Pass: >= 0.276.
* **LPIPS** (AlexNet) <= 0.40, governed by the ``lpips`` policy:

  - ``off``: the column is empty, ``pass_lpips`` is NA and LPIPS never gates;
  - ``optional``: LPIPS is computed if the ``lpips`` package and its weights load; otherwise
    ``lpips_status`` says ``unavailable: <why>`` and LPIPS does not gate;
  - ``required``: as the reference does, a pair whose LPIPS is missing FAILS
    (``pass_lpips`` False, ``qc_fail_reason`` says ``lpips unavailable (required)``).

  The ``lpips`` package and its AlexNet weights cannot be installed on machines without
  access to model hubs, so ``optional`` is the practical default.

Note (audit): the benchmark's own production QC used Canny edges with unreleased parameters;
this released QC therefore does not establish parity with the published counts.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
from scipy.ndimage import uniform_filter

from medrepro.errors import InputError

__all__ = [
    "C1",
    "C2",
    "LPIPS_POLICIES",
    "PUBLISHED_COUNTS",
    "QCThresholds",
    "QC_COLUMNS",
    "to_gray01",
    "load_gray01",
    "resize_to",
    "global_ssim",
    "global_ssim_batch",
    "edge_map",
    "dilate3x3",
    "edge_preservation",
    "edge_preservation_batch",
    "windowed_ssim",
    "windowed_ssim_batch",
    "qc_arrays",
    "make_lpips_fn",
    "qc_pairs",
    "qc_summary",
    "plot_qc",
]

C1 = 0.01**2
C2 = 0.03**2
LPIPS_POLICIES = ("required", "optional", "off")
#: Published counts of the benchmark's production QC (not reproducible by the released QC).
PUBLISHED_COUNTS = {"filtered_sources": 2987, "sources_with_qc_pass": 2950, "qc_passed_pairs": 11795}

QC_COLUMNS = [
    "pair_id", "source_id", "edit", "ssim", "ssim_windowed", "edge_preservation", "lpips",
    "lpips_policy", "lpips_status", "pass_ssim", "pass_edge", "pass_lpips", "qc_pass",
    "qc_fail_reason", "source_path", "cf_path",
]
PAIR_COLUMNS = ("pair_id", "source_id", "edit", "source_path", "cf_path")

LpipsFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


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


# --------------------------------------------------------------------------------------
# image loading
# --------------------------------------------------------------------------------------

_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, the weights of Pillow's "L" mode


def to_gray01(img: Any) -> np.ndarray:
    """Convert an image (array, PIL image or path) to a 2-D float64 array in [0, 1].

    * unsigned integers are divided by their dtype maximum (uint8 /255, uint16 /65535);
      signed integers by their dtype maximum and clipped at 0; booleans become 0/1;
    * floats are taken as already in [0, 1] and clipped to it;
    * RGB(A) arrays (last axis 3 or 4) become luminance with the BT.601 weights
      0.299/0.587/0.114, computed in float (no 8-bit rounding); alpha is ignored; a
      trailing axis of size 1 is dropped.
    """
    if isinstance(img, (str, Path)):
        return load_gray01(img)
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a dependency of matplotlib
        Image = None
    if Image is not None and isinstance(img, Image.Image):
        img = _pil_to_array(img)
    a = np.asarray(img)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.dtype == bool:
        out = a.astype(np.float64)
    elif np.issubdtype(a.dtype, np.integer):
        out = a.astype(np.float64) / float(np.iinfo(a.dtype).max)
    elif np.issubdtype(a.dtype, np.floating):
        out = a.astype(np.float64)
    else:
        raise InputError(None, "image", f"unsupported dtype {a.dtype}", "integer, bool or float pixels")
    if out.ndim == 3 and out.shape[-1] in (3, 4):
        out = out[..., :3] @ _LUMA
    if out.ndim != 2:
        raise InputError(None, "image", f"shape {a.shape} is not a grayscale or RGB(A) image",
                         "(H, W), (H, W, 1), (H, W, 3) or (H, W, 4)")
    return np.clip(out, 0.0, 1.0)


def _pil_to_array(im: Any) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L"):
        return np.asarray(im, dtype=np.uint16)
    if im.mode == "I":  # 32-bit ints: Pillow stores 16-bit PNGs this way
        a = np.asarray(im)
        return np.clip(a, 0, 65535).astype(np.uint16)
    if im.mode == "F":
        return np.asarray(im, dtype=np.float64)
    if im.mode in ("L", "1", "RGB", "RGBA"):
        return np.asarray(im)
    if im.mode == "LA":
        return np.asarray(im)[..., 0]
    return np.asarray(im.convert("RGB"))


def load_gray01(path: str | Path) -> np.ndarray:
    """Read an image file with Pillow and convert it with :func:`to_gray01`."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            return to_gray01(_pil_to_array(im))
    except FileNotFoundError:
        raise InputError(path, "image", "file not found", "an existing image file") from None
    except OSError as e:
        raise InputError(path, "image", f"cannot read image ({e})", "a PNG/JPEG/TIFF image") from None


def resize_to(img: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize a [0, 1] float image to ``shape`` (H, W) with Pillow's bilinear filter on a
    32-bit float image (antialiased when shrinking). Returns the input if already that size."""
    if img.shape == tuple(shape):
        return img
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(img, dtype=np.float32), mode="F")
    out = np.asarray(im.resize((int(shape[1]), int(shape[0])), Image.Resampling.BILINEAR), dtype=np.float64)
    return np.clip(out, 0.0, 1.0)


# --------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------

def _check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise InputError(None, "image", f"shapes {a.shape} and {b.shape} differ or are not 2-D",
                         "two 2-D images of the same size (resize the counterfactual first)")
    return a, b


def global_ssim(a: np.ndarray, b: np.ndarray, c1: float = C1, c2: float = C2) -> float:
    """SSIM with one window covering the whole image (population statistics, data range 1)."""
    a, b = _check_pair(a, b)
    return float(global_ssim_batch(a, b[None])[0])


def global_ssim_batch(src: np.ndarray, cfs: np.ndarray, c1: float = C1, c2: float = C2) -> np.ndarray:
    """Global SSIM of one source ``(H, W)`` against a stack of counterfactuals ``(n, H, W)``."""
    src = np.asarray(src, dtype=np.float64)
    cfs = np.asarray(cfs, dtype=np.float64)
    mu_s = src.mean()
    ds = src - mu_s
    var_s = np.mean(ds * ds)
    mu_c = cfs.mean(axis=(1, 2))
    dc = cfs - mu_c[:, None, None]
    var_c = np.mean(dc * dc, axis=(1, 2))
    cov = np.mean(dc * ds[None], axis=(1, 2))
    num = (2.0 * mu_s * mu_c + c1) * (2.0 * cov + c2)
    den = (mu_s**2 + mu_c**2 + c1) * (var_s + var_c + c2)
    return num / den


def edge_map(a: np.ndarray) -> np.ndarray:
    """Boolean edge map of an image (or of a stack ``(..., H, W)``), per the frozen rule.

    ``gx[..., :, 1:-1] = a[..., :, 2:] - a[..., :, :-2]`` and
    ``gy[..., 1:-1, :] = a[..., 2:, :] - a[..., :-2, :]`` (no 1/2 factor, borders 0);
    edges: ``hypot(gx, gy) > max(mean + std, 1e-6)`` per image.
    """
    a = np.asarray(a, dtype=np.float64)
    gx = np.empty_like(a)
    gy = np.empty_like(a)
    gx[..., :, [0, -1]] = 0.0
    gy[..., [0, -1], :] = 0.0
    np.subtract(a[..., :, 2:], a[..., :, :-2], out=gx[..., :, 1:-1])
    np.subtract(a[..., 2:, :], a[..., :-2, :], out=gy[..., 1:-1, :])
    gx *= gx
    gy *= gy
    gx += gy
    mag = np.sqrt(gx, out=gx)  # in place: sqrt(gx**2 + gy**2)
    mean = mag.mean(axis=(-2, -1), keepdims=True)
    np.subtract(mag, mean, out=gy)
    gy *= gy
    std = np.sqrt(gy.mean(axis=(-2, -1), keepdims=True))  # population std, two-pass like np.std
    thr = np.maximum(mean + std, 1e-6)
    return mag > thr


def dilate3x3(e: np.ndarray) -> np.ndarray:
    """Binary dilation with a 3x3 square (separable; pixels outside the image are False)."""
    e = np.asarray(e, dtype=bool)
    h = e.copy()
    h[..., :, 1:] |= e[..., :, :-1]
    h[..., :, :-1] |= e[..., :, 1:]
    out = h.copy()
    out[..., 1:, :] |= h[..., :-1, :]
    out[..., :-1, :] |= h[..., 1:, :]
    return out


def edge_preservation(src: np.ndarray, cf: np.ndarray) -> float:
    """``|E_src AND dilate3x3(E_cf)| / |E_src|``; 1.0 when the source has no edges."""
    src, cf = _check_pair(src, cf)
    return float(edge_preservation_batch(src, cf[None])[0])


def edge_preservation_batch(src: np.ndarray, cfs: np.ndarray, src_edges: np.ndarray | None = None) -> np.ndarray:
    """Edge preservation of one source against a stack of counterfactuals ``(n, H, W)``."""
    es = edge_map(src) if src_edges is None else src_edges
    dc = dilate3x3(edge_map(cfs))
    n_src = int(es.sum())
    if n_src == 0:
        return np.ones(len(cfs))
    hit = np.count_nonzero(dc & es[None], axis=(1, 2))
    return hit / n_src


def windowed_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """scikit-image's ``structural_similarity(a, b, data_range=1)`` (7x7 uniform window,
    sample covariance); an extra QC column, never a gate."""
    from skimage.metrics import structural_similarity

    a, b = _check_pair(a, b)
    return float(structural_similarity(a, b, data_range=1.0))


def windowed_ssim_batch(src: np.ndarray, cfs: np.ndarray, win_size: int = 7,
                        src_filtered: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Vectorised equivalent of :func:`windowed_ssim` for one source and ``n`` counterfactuals
    (same filters, same order of operations as scikit-image; the source's filtered moments
    are computed once and shared)."""
    src = np.asarray(src, dtype=np.float64)
    cfs = np.asarray(cfs, dtype=np.float64)
    size2 = win_size
    size3 = (1, win_size, win_size)
    cov_norm = win_size**2 / (win_size**2 - 1.0)
    if src_filtered is None:
        ux = uniform_filter(src, size=size2)
        uxx = uniform_filter(src * src, size=size2)
    else:
        ux, uxx = src_filtered
    uy = uniform_filter(cfs, size=size3)
    uyy = uniform_filter(cfs * cfs, size=size3)
    uxy = uniform_filter(src[None] * cfs, size=size3)
    # Only the cropped interior enters the mean, so do the arithmetic there (same values),
    # in place. Each step rounds exactly like scikit-image's expression (products by 2 are
    # exact, sums are commutative).
    pad = (win_size - 1) // 2
    h, w = src.shape
    ux = ux[pad:h - pad, pad:w - pad]
    uxx = uxx[pad:h - pad, pad:w - pad]
    uy = np.ascontiguousarray(uy[:, pad:h - pad, pad:w - pad])
    uyy = np.ascontiguousarray(uyy[:, pad:h - pad, pad:w - pad])
    uxy = np.ascontiguousarray(uxy[:, pad:h - pad, pad:w - pad])
    vx = cov_norm * (uxx - ux * ux)
    uxuy = ux * uy                       # ux * uy
    uxy -= uxuy
    uxy *= 2.0 * cov_norm
    uxy += C2                            # A2 = 2 * vxy + C2
    uxuy *= 2.0
    uxuy += C1                           # A1 = 2 * ux * uy + C1
    uy *= uy                             # uy ** 2
    uyy -= uy
    uyy *= cov_norm                      # vy
    uyy += vx
    uyy += C2                            # B2 = vx + vy + C2
    uy += ux * ux
    uy += C1                             # B1 = ux**2 + uy**2 + C1
    uxuy *= uxy                          # A1 * A2
    uy *= uyy                            # D = B1 * B2
    uxuy /= uy                           # S
    return uxuy.mean(axis=(1, 2), dtype=np.float64)


def qc_arrays(src: np.ndarray, cfs: np.ndarray, windowed: bool = True) -> dict[str, np.ndarray]:
    """All image metrics of one source ``(H, W)`` against counterfactuals ``(n, H, W)``
    (already resized to the source's size): ``ssim``, ``ssim_windowed``, ``edge_preservation``."""
    src = np.asarray(src, dtype=np.float64)
    cfs = np.asarray(cfs, dtype=np.float64)
    if cfs.ndim == 2:
        cfs = cfs[None]
    if cfs.shape[1:] != src.shape:
        raise InputError(None, "image", f"counterfactual shape {cfs.shape[1:]} != source {src.shape}",
                         "counterfactuals resized to the source size")
    out = {
        "ssim": global_ssim_batch(src, cfs),
        "edge_preservation": edge_preservation_batch(src, cfs),
    }
    if windowed:
        if min(src.shape) >= 7:
            out["ssim_windowed"] = windowed_ssim_batch(src, cfs)
        else:
            out["ssim_windowed"] = np.full(len(cfs), np.nan)
    return out


# --------------------------------------------------------------------------------------
# LPIPS
# --------------------------------------------------------------------------------------

def make_lpips_fn(net: str = "alex") -> tuple[LpipsFn | None, str]:
    """Try to build an LPIPS scorer. Returns ``(fn, "computed")`` or ``(None, reason)``.

    ``fn(src (H, W), cfs (n, H, W)) -> (n,)`` distances; images go to 3 channels in [-1, 1].
    """
    try:
        import lpips  # type: ignore[import-not-found]
        import torch
    except Exception as e:  # ImportError, or a broken torch install
        return None, f"unavailable: lpips package not importable ({type(e).__name__}: {e})"
    try:
        model = lpips.LPIPS(net=net, verbose=False)
        model.eval()
    except Exception as e:  # weights cannot be downloaded
        return None, f"unavailable: LPIPS/{net} weights not loadable ({type(e).__name__}: {e})"

    def fn(src: np.ndarray, cfs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            s = torch.from_numpy(np.ascontiguousarray(src, dtype=np.float32))
            c = torch.from_numpy(np.ascontiguousarray(cfs, dtype=np.float32))
            s3 = (s * 2 - 1)[None, None].expand(len(cfs), 3, *src.shape)
            c3 = (c * 2 - 1)[:, None].expand(-1, 3, -1, -1)
            return model(s3, c3).reshape(-1).cpu().numpy().astype(np.float64)

    return fn, "computed"


# --------------------------------------------------------------------------------------
# QC over a bundle
# --------------------------------------------------------------------------------------

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
) -> pd.DataFrame:
    """QC every (source, counterfactual) pair; one row per pair (columns :data:`QC_COLUMNS`).

    ``pairs``: a DataFrame, a list of dicts or a CSV path with columns ``pair_id, source_id,
    edit, source_path, cf_path`` (paths relative to ``bundle_root`` unless absolute).
    ``policy``: ``required | optional | off`` (see the module docstring). ``lpips_fn``
    overrides the LPIPS scorer (tests); by default :func:`make_lpips_fn` is tried unless the
    policy is ``off``. Pairs are grouped by source so each source image is read and its
    statistics computed once; groups run on ``workers`` threads (NumPy/SciPy release the
    GIL), default ``min(4, cpu count)``. The row order follows ``pairs``.
    """
    if policy not in LPIPS_POLICIES:
        raise InputError(None, "lpips", f"unknown policy {policy!r}", " | ".join(LPIPS_POLICIES))
    thr = QCThresholds.from_any(thresholds)
    root = Path(bundle_root)
    df, where = _read_pairs(pairs)

    if policy == "off":
        fn, lp_status = None, "off"
    elif lpips_fn is not None:
        fn, lp_status = lpips_fn, "computed"
    else:
        fn, lp_status = make_lpips_fn()

    def resolve(p: str) -> Path:
        q = Path(p)
        return q if q.is_absolute() else root / q

    def load(row_idx: int, field: str) -> np.ndarray:
        p = resolve(df.at[row_idx, field])
        if not p.is_file():
            raise InputError(where, f"row {row_idx} (pair_id={df.at[row_idx, 'pair_id']!r}).{field}",
                             f"image not found: {p}", "an existing image file in the bundle")
        return load_gray01(p)

    groups = list(df.groupby("source_path", sort=False).indices.values())

    def run_group(idx: np.ndarray) -> list[tuple[int, dict[str, Any]]]:
        idx = list(idx)
        src = load(idx[0], "source_path")
        cfs = np.stack([resize_to(load(i, "cf_path"), src.shape) for i in idx])
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
    return _apply_gates(table, thr, policy).assign(source_path=df["source_path"], cf_path=df["cf_path"])[QC_COLUMNS]


def _apply_gates(table: pd.DataFrame, thr: QCThresholds, policy: str) -> pd.DataFrame:
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
    qc = _as_bool(t["qc_pass"])

    def rates(sub: pd.DataFrame, q: np.ndarray) -> dict:
        n = len(sub)
        d = {
            "n": n, "n_pass": int(q.sum()), "pass_rate": float(q.mean()) if n else None,
            "pass_rate_ssim": float(_as_bool(sub["pass_ssim"]).mean()) if n else None,
            "pass_rate_edge": float(_as_bool(sub["pass_edge"]).mean()) if n else None,
        }
        pl = sub["pass_lpips"].dropna() if "pass_lpips" in sub else pd.Series([], dtype=object)
        d["pass_rate_lpips"] = float(_as_bool(pl).mean()) if len(pl) else None
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


def _as_bool(s: Any) -> np.ndarray:
    s = pd.Series(s)
    if s.dtype == bool or str(s.dtype) == "boolean":
        return s.fillna(False).to_numpy(dtype=bool)
    return s.astype(str).str.strip().str.lower().isin(["true", "1", "yes"]).to_numpy()


def plot_qc(table: pd.DataFrame | str | Path, bundle_root: str | Path, out_png: str | Path,
            thresholds: QCThresholds | Mapping[str, float] | None = None, n_examples: int = 4) -> Path:
    """Write a QC figure: SSIM and edge-preservation histograms with the threshold lines, and a
    grid of ``n_examples`` passing and failing pairs (source | counterfactual side by side).
    Examples are evenly spaced through the pairs sorted by ``pair_id`` (deterministic)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from medrepro.fsutil import atomic_path

    if isinstance(table, (str, Path)):
        table = pd.read_csv(table)
    thr = QCThresholds.from_any(thresholds)
    root = Path(bundle_root)
    t = table.sort_values("pair_id").reset_index(drop=True)
    q = _as_bool(t["qc_pass"])
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
            s = load_gray01(_resolve(root, r["source_path"]))
            c = resize_to(load_gray01(_resolve(root, r["cf_path"])), s.shape)
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


def _resolve(root: Path, p: Any) -> Path:
    q = Path(str(p))
    return q if q.is_absolute() else root / q
