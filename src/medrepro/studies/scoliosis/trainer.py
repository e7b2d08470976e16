"""The scoliosis trainer: P x K clips, cross-entropy (logit scale) plus batch-all triplet loss.

The recipe keys default to OpenGait's released ScoNet recipe (ShiqiYu/OpenGait, commit
0efafd4779f127fbce34f22aff301bd82e923da5: configs/sconet/sconet_scoliosis1k.yaml,
opengait/modeling/models/sconet.py, losses/ce.py, losses/triplet.py, data/sampler.py,
modeling/base_model.py): triplet loss on subject ids over P subjects x K sequences, label
smoothing 0.1, triplet loss averaged per part, Xavier / N(1, 0.02) initialisation, fp16 autocast
at test time. The other value of each key is medrepro's earlier behaviour.

Everything else (resume, SIGTERM, determinism, selection, device, AMP, logs) is the shared loop
in :mod:`medrepro.train.loop`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medrepro.errors import InputError
from medrepro.studies.scoliosis.evaluate import fp16_at_eval, predict, score_predictions
from medrepro.studies.scoliosis.losses import TRIPLET_REDUCTIONS, part_cross_entropy, part_triplet
from medrepro.studies.scoliosis.init import INITS, opengait_init
from medrepro.studies.scoliosis.store import SAMPLER_MODES, PKSampler, SequenceStore
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
    triplet_labels: str = "subject"  # subject (OpenGait: P subjects x K sequences) | class
    label_smoothing: float = 0.1  # OpenGait's CrossEntropyLoss eps
    triplet_reduction: str = "per_part"  # per_part (OpenGait) | pooled
    init: str = "opengait"  # opengait (Xavier conv/linear, BN N(1, 0.02)) | pytorch (torch defaults)
    eval_fp16: bool = True  # fp16 autocast at validation / test when on CUDA (OpenGait's evaluator)

    def __post_init__(self) -> None:
        choices = {"triplet_labels": SAMPLER_MODES, "triplet_reduction": TRIPLET_REDUCTIONS, "init": INITS}
        for key, allowed in choices.items():
            value = getattr(self, key)
            if not isinstance(value, str) or value not in allowed:
                raise InputError(None, key, f"got {value!r}", f"one of {', '.join(allowed)}")
        eps = self.label_smoothing
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 <= eps < 1:
            raise InputError(None, "label_smoothing", f"got {eps!r}", "a number in [0, 1)")
        if not isinstance(self.eval_fp16, bool):
            raise InputError(None, "eval_fp16", f"got {self.eval_fp16!r}", "true or false")


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
        self.sampler = PKSampler(split["train"], store.labels, cfg.p, cfg.k, cfg.clip, by=cfg.triplet_labels)
        self.uses_pav = "pav" in model_needs(cfg.model)
        weights = cfg.class_weights
        if weights == "auto":
            weights = auto_class_weights([store.labels[i] for i in split["train"]], cfg.n_classes)
        self.class_weights = weights
        self._weight_t = None

    def build_model(self) -> torch.nn.Module:
        """The model, initialised as ``init`` says (the loop seeds torch before this runs)."""
        model = build_model(self.cfg.model, **self._model_kwargs())
        if self.cfg.init == "opengait":
            opengait_init(model)
        return model

    def _model_kwargs(self) -> dict:
        return {"in_channels": self.store.channels, "n_classes": self.cfg.n_classes, "width": self.cfg.width}

    def model_meta(self) -> dict:
        return {"model": self.cfg.model, **self._model_kwargs()}

    def next_batch(self, rng: np.random.Generator):
        x, y, tri_y, pav = self.sampler.batch(self.store, rng)
        pav_t = torch.from_numpy(pav).to(self.device) if (self.uses_pav and pav is not None) else None
        x_t, y_t, tri_t = (torch.from_numpy(a).to(self.device) for a in (x, y, tri_y))
        return x_t, y_t, tri_t, pav_t

    def loss(self, model, batch):
        """CE on the class labels; triplet loss on the sampler's triplet labels (subject ids as in
        OpenGait's ScoNet, whose triplet term gets ``pids`` and softmax term the class: sconet.py)."""
        x, y, tri_y, pav = batch
        if self._weight_t is None and self.class_weights is not None:
            self._weight_t = torch.tensor(self.class_weights, dtype=torch.float32, device=self.device)
        emb, logits = model(x, pav)
        ce = part_cross_entropy(logits, y, self.cfg.ce_scale, self._weight_t, self.cfg.label_smoothing)
        tri = part_triplet(emb, tri_y, self.cfg.triplet_margin, self.cfg.triplet_reduction)
        return self.cfg.ce_weight * ce + self.cfg.triplet_weight * tri, {"ce": ce, "triplet": tri}

    @property
    def eval_fp16_used(self) -> bool:
        return fp16_at_eval(self.cfg.eval_fp16, self.device)

    def validate(self, model, split: str, amp: bool) -> dict[str, float]:
        """Validation under fp16 autocast iff ``eval_fp16`` on CUDA (the loop's training-time
        ``amp`` is not used here), as the standalone evaluation does, so the two agree."""
        pred = predict(model, self.store, self.split[split], self.device, self.cfg.max_eval_frames,
                       self.eval_fp16_used)
        scores = score_predictions(pred, self.cfg.n_classes)
        return {k: scores[k] for k in dict.fromkeys(("accuracy", "macro_f1", self.primary))}

    def samples_per_step(self) -> int:
        return self.cfg.p * self.cfg.k

    def summary_extra(self) -> dict:
        return {"class_weights": self.class_weights, "eval_fp16": self.eval_fp16_used}


def train(cfg: TrainConfig, store: SequenceStore, split: dict, run_dir: Path, checkpoint_out: Path,
          log_out: Path, summary_out: Path, init_from: Path | None = None, meta: dict | None = None,
          stop_at: int | None = None, primary: str = "macro_f1", higher_is_better: bool = True) -> dict:
    """Train one run x seed with the shared loop (see :func:`medrepro.train.loop.fit`)."""
    trainer = ScoliosisTrainer(cfg, store, split, primary, higher_is_better)
    return fit(trainer, run_dir, checkpoint_out, log_out, summary_out, init_from=init_from, meta=meta,
               stop_at=stop_at)
