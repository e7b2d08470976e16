"""The fracture study's preprocessing rule: images and masks resized to one square size and
images intensity-normalized, stored as one array file per variant.

Images are resized with anti-aliasing (scikit-image, bilinear), masks by area (the fraction of
fracture pixels under each output pixel, kept where it is at least one half, so a thin crack
survives a modest downscale as long as it covers half an output pixel). Intensities: ``zscore``
(per image, mean 0 and SD 1 over the whole image), ``unit`` (divide by 255, as read) or
``minmax`` (per image to [0, 1])."""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
from skimage.transform import resize

from medrepro.errors import InputError
from medrepro.fsutil import atomic_path, write_json

INTENSITIES = ("zscore", "unit", "minmax")


@dataclass(frozen=True)
class PrepParams:
    size: int = 96
    intensity: str = "zscore"

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> "PrepParams":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(source, unknown[0], "unknown key", f"one of {sorted(known)}")
        p = cls(**d)
        if p.intensity not in INTENSITIES:
            raise InputError(source, "intensity", f"got {p.intensity!r}", f"one of {', '.join(INTENSITIES)}")
        if isinstance(p.size, bool) or not isinstance(p.size, int) or not 16 <= p.size <= 1024:
            raise InputError(source, "size", f"got {p.size!r}", "an integer in [16, 1024]")
        return p


def normalize_intensity(image: np.ndarray, how: str, path: Path | None = None) -> np.ndarray:
    if how == "unit":
        return image.astype(np.float32)
    if how == "minmax":
        lo, hi = float(image.min()), float(image.max())
        if hi <= lo:
            raise InputError(path, "image", "constant image", "an image with more than one intensity")
        return ((image - lo) / (hi - lo)).astype(np.float32)
    sd = float(image.std())
    if sd == 0:
        raise InputError(path, "image", "constant image (SD 0)", "an image with more than one intensity")
    return ((image - image.mean()) / sd).astype(np.float32)


def prepare(manifest_json: Path, params: PrepParams, out_npz: Path, out_index: Path) -> dict:
    """Every image of the manifest at ``params.size`` x ``params.size``: ``images`` float32
    (N, 1, S, S), ``masks`` uint8 (N, 1, S, S), ``ids`` (sorted image ids), ``labels`` (1 when the
    ORIGINAL mask has a fracture pixel), ``lost`` (images whose fracture vanished in the resize)."""
    from medrepro.studies.fracture.data import load_image, load_mask

    manifest = json.loads(Path(manifest_json).read_text())
    rows = sorted(manifest["images"], key=lambda r: r["image_id"])
    s = params.size
    images = np.zeros((len(rows), 1, s, s), np.float32)
    masks = np.zeros((len(rows), 1, s, s), np.uint8)
    labels = np.zeros(len(rows), np.uint8)
    lost = []
    for i, r in enumerate(rows):
        path = Path(r["path"])  # as the manifest recorded it (relative to the working directory)
        img = load_image(path)
        mask = load_mask(Path(r["mask_path"]), img.shape)
        small = resize(img, (s, s), order=1, anti_aliasing=True, preserve_range=True)
        images[i, 0] = normalize_intensity(small, params.intensity, path)
        frac = resize(mask.astype(np.float32), (s, s), order=1, anti_aliasing=True, preserve_range=True)
        masks[i, 0] = frac >= 0.5
        labels[i] = bool(mask.any())
        if labels[i] and not masks[i].any():  # keep the fracture's most covered pixel, so labels agree
            y, x = np.unravel_index(int(np.argmax(frac)), frac.shape)
            masks[i, 0, y, x] = 1
            lost.append(r["image_id"])
    buf = io.BytesIO()
    np.savez_compressed(buf, images=images, masks=masks, labels=labels,
                        ids=np.array([r["image_id"] for r in rows]), splits=np.array([r["split"] for r in rows]))
    with atomic_path(out_npz) as tmp:
        tmp.write_bytes(buf.getvalue())
    info = {"params": asdict(params), "n_images": len(rows), "n_fractured": int(labels.sum()),
            "thin_fractures_kept_by_one_pixel": lost}
    write_json(out_index, info)
    return info


def load_prepared(npz: Path) -> dict:
    with np.load(npz, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}
