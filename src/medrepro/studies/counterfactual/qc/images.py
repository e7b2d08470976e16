"""Image loading for the counterfactual QC: grayscale floats in [0, 1] and resizing.

Images are converted to grayscale floats in [0, 1] (:func:`to_gray01`); the counterfactual is
resized to the source's size before any comparison (:func:`resize_to`, Pillow bilinear on a
32-bit float image).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medrepro.errors import InputError

__all__ = ["to_gray01", "load_gray01", "resize_to"]

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
