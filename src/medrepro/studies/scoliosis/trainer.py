"""The scoliosis trainer: P x K clips, cross-entropy (logit scale) plus batch-all triplet loss.

Everything else (resume, SIGTERM, determinism, selection, device, AMP, logs) is the shared loop
in :mod:`medrepro.train.loop`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medrepro.studies.scoliosis.evaluate import predict, score_predictions
from medrepro.studies.scoliosis.losses import part_cross_entropy, part_triplet
from medrepro.studies.scoliosis.store import PKSampler, SequenceStore
from medrepro.train.loop import LoopConfig, Trainer, fit
from medrepro.train.registry import build_model, model_needs


@dataclass(frozen=True)
class TrainConfig(LoopConfig):
    model: str = "sconet"
    width: float = 1.0
    n_classes: int = 3
    iterations: int = 20000
    p: int = 8
    k: int = 8
    clip: int = 30
    ce_scale: float = 16.0
    ce_weight: float = 1.0
    triplet_margin: float = 0.2
    triplet_weight: float = 1.0
    class_weights: Any = None  # None | "auto" | [w0, w1, w2]
    max_eval_frames: int = 720


def auto_class_weights(labels: list[int], n_classes: int) -> list[float]:
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    inv = np.divide(1.0, counts, out=np.zeros_like(counts), where=counts > 0)
    return list(inv / inv.sum() * n_classes)


class ScoliosisTrainer(Trainer):
    config_class = TrainConfig

    def __init__(self, cfg: TrainConfig, store: SequenceStore, split: dict, primary: str = "macro_f1",
                 higher_is_better: bool = True):
        super().__init__(cfg, primary, higher_is_better)
        self.store, self.split = store, split
        self.sampler = PKSampler(split["train"], store.labels, cfg.p, cfg.k, cfg.clip)
        self.uses_pav = "pav" in model_needs(cfg.model)
        weights = cfg.class_weights
        if weights == "auto":
            weights = auto_class_weights([store.labels[i] for i in split["train"]], cfg.n_classes)
        self.class_weights = weights
        self._weight_t = None

    def build_model(self) -> torch.nn.Module:
        return build_model(self.cfg.model, **self._model_kwargs())

    def _model_kwargs(self) -> dict:
        return {"in_channels": self.store.channels, "n_classes": self.cfg.n_classes, "width": self.cfg.width}

    def model_meta(self) -> dict:
        return {"model": self.cfg.model, **self._model_kwargs()}

    def next_batch(self, rng: np.random.Generator):
        x, y, pav = self.sampler.batch(self.store, rng)
        pav_t = torch.from_numpy(pav).to(self.device) if (self.uses_pav and pav is not None) else None
        return torch.from_numpy(x).to(self.device), torch.from_numpy(y).to(self.device), pav_t

    def loss(self, model, batch):
        x, y, pav = batch
        if self._weight_t is None and self.class_weights is not None:
            self._weight_t = torch.tensor(self.class_weights, dtype=torch.float32, device=self.device)
        emb, logits = model(x, pav)
        ce = part_cross_entropy(logits, y, self.cfg.ce_scale, self._weight_t)
        tri = part_triplet(emb, y, self.cfg.triplet_margin)
        return self.cfg.ce_weight * ce + self.cfg.triplet_weight * tri, {"ce": ce, "triplet": tri}

    def validate(self, model, split: str, amp: bool) -> dict[str, float]:
        pred = predict(model, self.store, self.split[split], self.device, self.cfg.max_eval_frames, amp)
        scores = score_predictions(pred, self.cfg.n_classes)
        return {k: scores[k] for k in dict.fromkeys(("accuracy", "macro_f1", self.primary))}

    def samples_per_step(self) -> int:
        return self.cfg.p * self.cfg.k

    def summary_extra(self) -> dict:
        return {"class_weights": self.class_weights}


def train(cfg: TrainConfig, store: SequenceStore, split: dict, run_dir: Path, checkpoint_out: Path,
          log_out: Path, summary_out: Path, init_from: Path | None = None, meta: dict | None = None,
          stop_at: int | None = None, primary: str = "macro_f1", higher_is_better: bool = True) -> dict:
    """Train one run x seed with the shared loop (see :func:`medrepro.train.loop.fit`)."""
    trainer = ScoliosisTrainer(cfg, store, split, primary, higher_is_better)
    return fit(trainer, run_dir, checkpoint_out, log_out, summary_out, init_from=init_from, meta=meta,
               stop_at=stop_at)
