"""In-memory sequence store and the P x K clip sampler for the scoliosis study."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medrepro.errors import InputError
from medrepro.studies.scoliosis.data import load_silhouette


@dataclass
class SequenceStore:
    """uint8 sequences (T, C, 64, 64) by id, labels as class indices, optional PAV (8, 3)."""

    sequences: dict[str, np.ndarray]
    labels: dict[str, int]
    pav: dict[str, np.ndarray] | None = None

    @property
    def channels(self) -> int:
        return next(iter(self.sequences.values())).shape[1]


def load_store(manifest_path: Path, split_path: Path, source: str, prep_dir: Path | None = None,
               pav_path: Path | None = None) -> tuple[SequenceStore, dict]:
    """Load every sequence of the split. ``source`` is ``silhouette`` or ``skeleton_maps``."""
    manifest = json.loads(Path(manifest_path).read_text())
    split = json.loads(Path(split_path).read_text())
    class_map = split["class_map"]
    ids = sorted(set(split["train"]) | set(split["val"]) | set(split["test"]))
    by_id = {s["id"]: s for s in manifest["sequences"]}
    sequences = {}
    for sid in ids:
        if source == "silhouette":
            if not manifest.get("sil_root") or not by_id[sid].get("sil"):
                raise InputError(manifest_path, "sil_root", "no silhouettes in the manifest", "a silhouette tree")
            entry = by_id[sid]
            sil = load_silhouette(Path(manifest["sil_root"]) / entry["sil"], sha256=entry.get("sil_sha256"))
            sequences[sid] = sil[:, None]
        elif source == "skeleton_maps":
            path = Path(prep_dir) / f"{sid}.npy"
            arr = np.load(path, allow_pickle=False)
            if arr.ndim != 4 or arr.shape[1:] != (2, 64, 64):
                raise InputError(path, "skeleton map", f"shape {arr.shape}", "(T, 2, 64, 64)")
            sequences[sid] = arr
        else:
            raise InputError(None, "input", f"unknown source {source!r}", "silhouette or skeleton_maps")
    labels = {sid: int(class_map[split["labels"][sid]]) for sid in ids}
    pav = None
    if pav_path is not None:
        with np.load(pav_path, allow_pickle=False) as z:
            pav = {str(i): z["scaled"][k].astype(np.float32) for k, i in enumerate(z["ids"])}
    return SequenceStore(sequences, labels, pav), split


class PKSampler:
    """P ids per batch, each drawn K times; each sample ``clip`` frames drawn without order."""

    def __init__(self, ids: list[str], labels: dict[str, int], p: int, k: int, clip: int):
        self.ids = sorted(ids)
        self.labels = labels
        self.p = min(p, len(self.ids))
        self.k = k
        self.clip = clip

    def batch(self, store: SequenceStore, rng: np.random.Generator):
        chosen = rng.choice(len(self.ids), size=self.p, replace=False)
        clips, labels, pavs = [], [], []
        for i in chosen:
            sid = self.ids[i]
            seq = store.sequences[sid]
            for _ in range(self.k):
                t = seq.shape[0]
                frames = rng.choice(t, size=self.clip, replace=t < self.clip)
                clips.append(seq[np.sort(frames)])
                labels.append(self.labels[sid])
                if store.pav is not None:
                    pavs.append(store.pav[sid])
        x = np.stack(clips).transpose(0, 2, 1, 3, 4)  # (N, C, T, H, W)
        pav = np.stack(pavs) if pavs else None
        return x, np.asarray(labels, dtype=np.int64), pav
