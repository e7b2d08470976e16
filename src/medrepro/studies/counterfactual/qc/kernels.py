"""Image metrics of the counterfactual QC, computed exactly as the benchmark's released QC.

Inputs are images in [0, 1] as :mod:`.images` loads them (``float32``); any float array works.

* **Global SSIM** (:func:`global_ssim`): ONE window over the whole image, computed in float64
  -- image means, population variances (``ndarray.var``), population covariance,
  C1 = (0.01 * 1)**2, C2 = (0.03 * 1)**2 (data range 1), in the released order of operations.
  This is *not* the usual windowed SSIM; the windowed SSIM (scikit-image defaults: 7x7 uniform
  window, sample covariance, data_range=1, in float64) is computed by :func:`windowed_ssim`
  and is reported only, never a gate.
* **Edge preservation** (:func:`edge_map`, :func:`edge_preservation`): in float32, central
  differences without the usual 1/2 factor, ``gx[:, 1:-1] = a[:, 2:] - a[:, :-2]`` and
  ``gy[1:-1, :] = a[2:, :] - a[:-2, :]``, zero on the borders; magnitude
  ``sqrt(gx*gx + gy*gy)``; edges are pixels with magnitude strictly greater than
  ``max(mean + std, 1e-6)`` of that image's magnitude (float32 ``mean`` and population
  ``std``, border zeros included); score = ``|E_src AND dilate3x3(E_cf)| / |E_src|`` with a
  3x3 square dilation (outside the image counts as no edge), and 1.0 when the source has no
  edge pixel at all (quirk kept from the released QC: a blank source passes).

Each image's statistics are reduced on that image alone (one 2-D array at a time), as the
released QC does, so the results are bit-identical to it. The thresholds these metrics are
gated on live in :mod:`.gates`.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter

from medrepro.errors import InputError

__all__ = [
    "C1",
    "C2",
    "global_ssim",
    "global_ssim_batch",
    "edge_map",
    "dilate3x3",
    "edge_preservation",
    "edge_preservation_batch",
    "windowed_ssim",
    "windowed_ssim_batch",
    "qc_arrays",
]

C1 = (0.01 * 1.0) ** 2
C2 = (0.03 * 1.0) ** 2


def _check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape or a.ndim != 2:
        raise InputError(None, "image", f"shapes {a.shape} and {b.shape} differ or are not 2-D",
                         "two 2-D images of the same size (resize the counterfactual first)")
    return a, b


def _ssim(a: np.ndarray, mu_a: float, var_a: float, b: np.ndarray, c1: float, c2: float) -> float:
    mu_b = b.mean()
    numerator = (2 * mu_a * mu_b + c1) * (2 * ((a - mu_a) * (b - mu_b)).mean() + c2)
    denominator = (mu_a**2 + mu_b**2 + c1) * (var_a + b.var() + c2)
    return float(numerator / denominator)


def global_ssim(a: np.ndarray, b: np.ndarray, c1: float = C1, c2: float = C2) -> float:
    """SSIM with one window covering the whole image (population statistics, data range 1)."""
    a, b = _check_pair(a, b)
    a = a.astype("float64")
    return _ssim(a, a.mean(), a.var(), b.astype("float64"), c1, c2)


def global_ssim_batch(src: np.ndarray, cfs: np.ndarray, c1: float = C1, c2: float = C2) -> np.ndarray:
    """Global SSIM of one source ``(H, W)`` against a stack of counterfactuals ``(n, H, W)``
    (the source's mean and variance computed once)."""
    a = np.asarray(src).astype("float64")
    mu_a, var_a = a.mean(), a.var()
    return np.array([_ssim(a, mu_a, var_a, np.asarray(b).astype("float64"), c1, c2) for b in cfs], dtype=np.float64)


def _edge_map_2d(image: np.ndarray) -> np.ndarray:
    arr = image.astype("float32")
    gx = np.zeros_like(arr)
    gy = np.zeros_like(arr)
    gx[:, 1:-1] = arr[:, 2:] - arr[:, :-2]
    gy[1:-1, :] = arr[2:, :] - arr[:-2, :]
    mag = np.sqrt(gx * gx + gy * gy)
    threshold = max(float(mag.mean() + mag.std()), 1e-6)
    return mag > threshold


def edge_map(a: np.ndarray) -> np.ndarray:
    """Boolean edge map of an image (or of each image of a stack ``(..., H, W)``), per the
    frozen rule (module docstring)."""
    a = np.asarray(a)
    if a.ndim == 2:
        return _edge_map_2d(a)
    flat = a.reshape(-1, *a.shape[-2:])
    return np.stack([_edge_map_2d(x) for x in flat]).reshape(a.shape)


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
    n_src = float(es.sum())
    if n_src == 0:
        return np.ones(len(cfs))
    return np.array([float((es & d).sum()) / n_src for d in dc], dtype=np.float64)


def windowed_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """scikit-image's ``structural_similarity(a, b, data_range=1)`` (7x7 uniform window,
    sample covariance); an extra QC column, never a gate."""
    from skimage.metrics import structural_similarity

    a, b = _check_pair(a, b)
    return float(structural_similarity(a.astype(np.float64), b.astype(np.float64), data_range=1.0))


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
    src = np.asarray(src)
    cfs = np.asarray(cfs)
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
