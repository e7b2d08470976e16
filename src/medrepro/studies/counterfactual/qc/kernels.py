"""Image metrics of the counterfactual QC, on [0, 1] float arrays (see :mod:`.images`).

* **Global SSIM** (:func:`global_ssim`): ONE window over the whole image -- image means,
  population variances (divide by N), population covariance, C1 = 0.01**2, C2 = 0.03**2
  (data range 1). This is *not* the usual windowed SSIM; the windowed SSIM (scikit-image
  defaults: 7x7 uniform window, sample covariance, data_range=1) is computed by
  :func:`windowed_ssim` and is reported only, never a gate.
* **Edge preservation** (:func:`edge_map`, :func:`edge_preservation`): central differences
  without the usual 1/2 factor, ``gx[:, 1:-1] = a[:, 2:] - a[:, :-2]`` and
  ``gy[1:-1, :] = a[2:, :] - a[:-2, :]``, zero on the borders; magnitude
  ``sqrt(gx**2 + gy**2)``; edges are pixels with magnitude strictly greater than
  ``max(mean + std, 1e-6)`` of that image's magnitude (population std, border zeros
  included in mean and std); score = ``|E_src AND dilate3x3(E_cf)| / |E_src|`` with a 3x3
  square dilation (outside the image counts as no edge), and 1.0 when the source has no edge
  pixel at all (quirk kept from the released benchmark QC: a blank source passes).

The thresholds these metrics are gated on live in :mod:`.gates`.
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

C1 = 0.01**2
C2 = 0.03**2


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
