"""Image loading for the counterfactual QC, as the benchmark's released QC loads images.

* Every image is converted with Pillow's ``Image.convert("L")`` (RGB and RGBA to 8-bit luma
  ``L = R 299/1000 + G 587/1000 + B 114/1000``, alpha ignored; palette images through their
  palette) and becomes ``float32`` in [0, 1] as ``np.asarray(L, dtype=float32) / 255``.
* The counterfactual is resized to the source's size as an 8-bit ``L`` image with Pillow's
  default filter (``Image.resize`` without ``resample``: bicubic for mode ``L``) before the
  division by 255; an image already at that size is unchanged.
* 16-bit images (Pillow modes ``I;16*`` and ``I``) are saturated by ``convert("L")``: every
  value above 255 becomes 255, so a typical 16-bit radiograph is read as almost all white.
  This is the released behaviour and the default (``sixteen_bit="saturate"``).
  ``sixteen_bit="rescale"`` reads them correctly instead: ``round(v / 257)`` maps 0..65535 to
  0..255 before the same 8-bit pipeline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medrepro.errors import InputError

__all__ = ["SIXTEEN_BIT_MODES", "to_gray01", "load_gray01", "load_resized_gray01", "resize_to"]

SIXTEEN_BIT_MODES = ("saturate", "rescale")
_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def _check_mode(sixteen_bit: str) -> None:
    if sixteen_bit not in SIXTEEN_BIT_MODES:
        raise InputError(None, "qc.sixteen_bit", f"{sixteen_bit!r}", " or ".join(SIXTEEN_BIT_MODES))


def _to_l(im: Any, sixteen_bit: str = "saturate") -> Any:
    """A Pillow image in mode ``L`` (see the module docstring)."""
    from PIL import Image

    if sixteen_bit == "rescale" and im.mode in _WIDE_MODES:
        a = np.clip(np.asarray(im, dtype=np.int64), 0, 65535)
        return Image.fromarray(((a + 128) // 257).astype(np.uint8))
    return im.convert("L")


def _to_float(im_l: Any) -> np.ndarray:
    return np.asarray(im_l, dtype="float32") / 255.0


def _open_l(path: str | Path, sixteen_bit: str) -> Any:
    from PIL import Image

    _check_mode(sixteen_bit)
    try:
        with Image.open(path) as im:
            return _to_l(im, sixteen_bit)
    except FileNotFoundError:
        raise InputError(path, "image", "file not found", "an existing image file") from None
    except OSError as e:
        raise InputError(path, "image", f"cannot read image ({e})", "a PNG/JPEG/TIFF image") from None


def load_gray01(path: str | Path, sixteen_bit: str = "saturate") -> np.ndarray:
    """Read an image file as the released QC reads a source: ``float32`` in [0, 1]."""
    return _to_float(_open_l(path, sixteen_bit))


def load_resized_gray01(path: str | Path, shape: tuple[int, int], sixteen_bit: str = "saturate") -> np.ndarray:
    """Read a counterfactual as the released QC does: 8-bit ``L``, resized to ``shape``
    (H, W) with Pillow's default filter, then ``float32`` in [0, 1]."""
    im = _open_l(path, sixteen_bit)
    return _to_float(im.resize((int(shape[1]), int(shape[0]))))


def to_gray01(img: Any, sixteen_bit: str = "saturate") -> np.ndarray:
    """An image (path, Pillow image or array) as a 2-D array in [0, 1].

    Paths, Pillow images and integer arrays go through the loading rule of the module
    docstring and give ``float32`` (integer arrays are turned into a Pillow image first, so
    a ``uint16`` array saturates like a 16-bit PNG); booleans become 0/1; float arrays are
    taken as already in [0, 1] and clipped to it (dtype kept). A trailing axis of size 1 is
    dropped.
    """
    if isinstance(img, (str, Path)):
        return load_gray01(img, sixteen_bit)
    from PIL import Image

    _check_mode(sixteen_bit)
    if isinstance(img, Image.Image):
        return _to_float(_to_l(img, sixteen_bit))
    a = np.asarray(img)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[-1] in (3, 4))):
        raise InputError(None, "image", f"shape {a.shape} is not a grayscale or RGB(A) image",
                         "(H, W), (H, W, 1), (H, W, 3) or (H, W, 4)")
    if a.dtype == bool:
        if a.ndim != 2:
            raise InputError(None, "image", "a boolean RGB image", "a 2-D boolean mask")
        return a.astype(np.float32)
    if np.issubdtype(a.dtype, np.floating):
        if a.ndim != 2:
            raise InputError(None, "image", "a float RGB image", "a 2-D float image in [0, 1]")
        return np.clip(a, 0.0, 1.0)
    if not np.issubdtype(a.dtype, np.integer):
        raise InputError(None, "image", f"unsupported dtype {a.dtype}", "integer, bool or float pixels")
    if a.ndim == 3:
        return _to_float(Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).convert("L"))
    if a.dtype == np.uint8:
        return _to_float(Image.fromarray(a))
    wide = Image.fromarray(np.clip(a, 0, 65535).astype(np.int32))
    return _to_float(_to_l(wide, sixteen_bit))


def resize_to(img: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize an image in [0, 1] to ``shape`` (H, W) the way the released QC resizes a
    counterfactual: as 8-bit ``L`` (``round(255 x)``) with Pillow's default filter, then
    ``float32 / 255``. Returns the input unchanged when it already has that size."""
    if img.shape == tuple(shape):
        return img
    from PIL import Image

    a = np.round(np.clip(np.asarray(img, dtype=np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)
    return _to_float(Image.fromarray(a).resize((int(shape[1]), int(shape[0]))))
