"""The fracture trainer: a 2D U-Net (optionally with a presence head on its bottleneck), Dice +
BCE on the masks (+ BCE on presence for the dual head), horizontal-flip augmentation in training,
fractured images over-sampled to ``pos_fraction`` of each batch. After training, the segmentation
and presence thresholds are chosen on the validation split (or, flagged test-guided, on test) and
saved with the checkpoint. Everything else is the shared loop in :mod:`medrepro.train.loop`."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from medrepro.errors import InputError
from medrepro.studies.fracture.metrics import VARIANTS as PRESENCE_SCORES
from medrepro.studies.fracture.model import BASE_CHANNELS
from medrepro.studies.fracture.thresholds import dice_pos_at
from medrepro.train.loop import LoopConfig, Trainer
from medrepro.train.registry import build_model, model_needs

WORKFLOW_KEYS = {"model", "input", "split", "seeds", "init_from", "resources", "trainer"}


@dataclass(frozen=True)
class TrainConfig(LoopConfig):
    model: str = "unet"  # unet | unet_presence (the dual-head variant)
    channels: tuple[int, ...] = BASE_CHANNELS
    width: float = 1.0
    num_res_units: int = 1
    iterations: int = 2000
    batch_size: int = 8
    pos_fraction: float = 0.5  # share of each batch drawn from fractured training images
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    dice_weight: float = 1.0
    bce_weight: float = 0.1  # pixel BCE; at 1.0 it swamps the Dice term on thin cracks (few pixels)
    presence_weight: float = 0.5
    flip_p: float = 0.5
    presence_score: str = "max"  # the score the presence threshold is chosen for (head: the dual head's)
    threshold_split: str = "val"  # val | test (test: threshold search on test, flagged test-guided)
    tta: bool = True  # evaluation: mean of the probabilities of the image and its horizontal flip

    def __post_init__(self) -> None:
        if self.presence_score not in PRESENCE_SCORES:
            raise InputError(None, "presence_score", f"got {self.presence_score!r}",
                             f"one of {', '.join(PRESENCE_SCORES)}")
        if self.threshold_split not in ("val", "test"):
            raise InputError(None, "threshold_split", f"got {self.threshold_split!r}", "val or test")
        if not 0 <= self.pos_fraction <= 1:
            raise InputError(None, "pos_fraction", f"got {self.pos_fraction!r}", "a fraction in [0, 1]")


def train_config(run: dict, seed: int) -> TrainConfig:
    known = {f.name for f in fields(TrainConfig)}
    unknown = set(run) - known - WORKFLOW_KEYS
    if unknown:
        raise InputError(None, "run config", f"unknown keys {sorted(unknown)}", f"keys of {sorted(known)}")
    kwargs = {k: v for k, v in run.items() if k in known}
    for key in ("channels", "milestones"):
        if key in kwargs:
            kwargs[key] = tuple(kwargs[key])
    cfg = TrainConfig(**kwargs, seed=seed)
    if cfg.presence_score == "head" and "presence_head" not in model_needs(cfg.model):
        raise InputError(None, "presence_score", "head, but the model has no presence head",
                         "max, mean, area or top1 (or model unet_presence)")
    return cfg


class ImageSet:
    """Prepared images in memory: ``x`` (N, 1, S, S) float32, ``y`` (N, 1, S, S) uint8, ids, labels."""

    def __init__(self, images: np.ndarray, masks: np.ndarray, ids, labels):
        self.x, self.y = images, masks
        self.ids = [str(i) for i in ids]
        self.labels = np.asarray(labels, dtype=np.uint8)
        self.index = {u: i for i, u in enumerate(self.ids)}

    def rows(self, ids) -> np.ndarray:
        return np.array([self.index[u] for u in ids], dtype=np.int64)


@torch.no_grad()
def predict(model: torch.nn.Module, images: ImageSet, ids: list[str], device: torch.device, tta: bool = True,
            batch_size: int = 16) -> tuple[np.ndarray, np.ndarray | None]:
    """Probability maps (n, S, S) float32 of the images ``ids`` (in that order), and the presence
    head's probabilities (n,) or None; ``tta``: mean of the probabilities of the image and of its
    horizontal flip (flipped back)."""
    model.eval()
    rows = images.rows(ids)
    probs, heads = [], []
    for start in range(0, len(rows), batch_size):
        x = torch.from_numpy(images.x[rows[start:start + batch_size]]).to(device)
        seg, head = model(x)
        p = torch.sigmoid(seg.float())
        h = torch.sigmoid(head.float()) if head is not None else None
        if tta:
            seg_f, head_f = model(x.flip(-1))
            p = (p + torch.sigmoid(seg_f.float()).flip(-1)) / 2
            if h is not None:
                h = (h + torch.sigmoid(head_f.float())) / 2
        probs.append(p[:, 0].cpu().numpy())
        if h is not None:
            heads.append(h.cpu().numpy())
    size = images.x.shape[-1]
    prob = np.concatenate(probs) if probs else np.zeros((0, size, size), np.float32)
    return prob, (np.concatenate(heads) if heads else None)


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    p = torch.sigmoid(logits)
    inter = (p * target).sum()
    return 1 - (2 * inter + eps) / (p.sum() + target.sum() + eps)


class FractureTrainer(Trainer):
    config_class = TrainConfig

    def __init__(self, cfg: TrainConfig, images: ImageSet, split: dict, primary: str = "dice_pos",
                 higher_is_better: bool = True):
        super().__init__(cfg, primary, higher_is_better)
        self.images, self.split = images, split
        train = images.rows(split["train"])
        self.pos = train[images.labels[train] == 1]
        self.neg = train[images.labels[train] == 0]
        if len(self.pos) == 0 or len(self.neg) == 0:
            raise InputError(None, "split.train", f"{len(self.pos)} fractured and {len(self.neg)} other images",
                             "both kinds of image in the training split")
        self.has_head = "presence_head" in model_needs(cfg.model)

    def build_model(self) -> torch.nn.Module:
        return build_model(self.cfg.model, **self._model_kwargs())

    def _model_kwargs(self) -> dict:
        return {"channels": list(self.cfg.channels), "width": self.cfg.width, "num_res_units": self.cfg.num_res_units}

    def model_meta(self) -> dict:
        return {"model": self.cfg.model, **self._model_kwargs(), "size": int(self.images.x.shape[-1])}

    def next_batch(self, rng: np.random.Generator):
        n_pos = int(rng.binomial(self.cfg.batch_size, self.cfg.pos_fraction))
        rows = np.concatenate([rng.choice(self.pos, n_pos), rng.choice(self.neg, self.cfg.batch_size - n_pos)])
        x = torch.from_numpy(self.images.x[rows]).to(self.device)
        y = torch.from_numpy(self.images.y[rows].astype(np.float32)).to(self.device)
        flip = torch.from_numpy(rng.random(len(rows)) < self.cfg.flip_p).to(self.device)
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        y = torch.where(flip[:, None, None, None], y.flip(-1), y)
        return x, y

    def loss(self, model, batch):
        x, y = batch
        seg, head = model(x)
        seg = seg.float()
        dice = soft_dice_loss(seg, y)
        bce = F.binary_cross_entropy_with_logits(seg, y)
        total = self.cfg.dice_weight * dice + self.cfg.bce_weight * bce
        parts = {"dice": dice, "bce": bce}
        if head is not None:
            presence = F.binary_cross_entropy_with_logits(head.float(), (y.flatten(1).amax(1) > 0).float())
            total = total + self.cfg.presence_weight * presence
            parts["presence"] = presence
        return total, parts

    def validate(self, model, split: str, amp: bool) -> dict[str, Any]:
        ids = sorted(self.split[split])
        prob, _ = predict(model, self.images, ids, self.device, tta=False)
        truth = self.images.y[self.images.rows(ids), 0]
        return {"dice_pos": dice_pos_at(prob, truth, 0.5)}

    def samples_per_step(self) -> int:
        return self.cfg.batch_size
