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


def subject_of(sequence_id: str) -> str:
    """The subject of a sequence id: the part before the first "/".

    This repo's manifests name a sequence by its five-digit Scoliosis1K ID alone (one label
    folder per ID, only view 000_180 is read), so there the subject is the id itself; an id of
    the form ``<subject>/<label>/<view>`` maps to ``<subject>``."""
    return sequence_id.split("/", 1)[0]


SAMPLER_MODES = ("subject", "class")


class PKSampler:
    """P x K training batches; each sample is ``clip`` frames of a sequence drawn without order.

    ``by="subject"``, OpenGait's TripletSampler (ShiqiYu/OpenGait, commit
    0efafd4779f127fbce34f22aff301bd82e923da5, ``opengait/data/sampler.py``): P subjects drawn
    without replacement (all of them when there are fewer than P; OpenGait would then draw with
    replacement), then K sequences of each subject, without replacement when it has at
    least K, with replacement otherwise (``sync_random_sample_list``), one clip of each; the
    triplet labels are subject indices into :attr:`subjects`. With one sequence per subject (as
    in Scoliosis1K) that is K clips of the subject's sequence.

    ``by="class"`` (medrepro's earlier sampler): P sequences, K clips of each; the triplet labels
    are the class labels.

    :meth:`batch` returns ``x`` (N, C, T, H, W), class labels, triplet labels and the PAV (or None).
    """

    def __init__(self, ids: list[str], labels: dict[str, int], p: int, k: int, clip: int, by: str = "subject"):
        if by not in SAMPLER_MODES:
            raise ValueError(f"sampler mode {by!r}: expected one of {SAMPLER_MODES}")
        self.by = by
        self.labels = labels
        if by == "subject":
            groups: dict[str, list[str]] = {}
            for sid in sorted(ids):
                groups.setdefault(subject_of(sid), []).append(sid)
            self.subjects = sorted(groups)
            self.groups = [groups[s] for s in self.subjects]
        else:
            self.subjects = None
            self.groups = [[sid] for sid in sorted(ids)]
        self.p = min(p, len(self.groups))
        self.k = k
        self.clip = clip

    def _members(self, group: int, rng: np.random.Generator) -> list[str]:
        """The K sequences (one per sample) drawn for a chosen group."""
        members = self.groups[group]
        if self.by == "class":
            return members * self.k
        picks = rng.choice(len(members), size=self.k, replace=len(members) < self.k)
        return [members[j] for j in picks]

    def batch(self, store: SequenceStore, rng: np.random.Generator):
        chosen = rng.choice(len(self.groups), size=self.p, replace=False)
        clips, labels, triplet_labels, pavs = [], [], [], []
        for g in chosen:
            for sid in self._members(int(g), rng):
                seq = store.sequences[sid]
                t = seq.shape[0]
                frames = rng.choice(t, size=self.clip, replace=t < self.clip)
                clips.append(seq[np.sort(frames)])
                labels.append(self.labels[sid])
                triplet_labels.append(int(g) if self.by == "subject" else self.labels[sid])
                if store.pav is not None:
                    pavs.append(store.pav[sid])
        x = np.stack(clips).transpose(0, 2, 1, 3, 4)  # (N, C, T, H, W)
        pav = np.stack(pavs) if pavs else None
        return x, np.asarray(labels, dtype=np.int64), np.asarray(triplet_labels, dtype=np.int64), pav
