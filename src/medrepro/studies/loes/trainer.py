"""The loes trainer: the 3D residual regressor on normalized volumes, MSE or weighted MSE, Adam
with OneCycleLR stepped every batch, training-only augmentation drawn fresh for every batch.

The reference lab's recipe (spec): Adam lr 1e-4, OneCycleLR max_lr 0.01 over batches per epoch x
epochs, pct_start 0.3, batch size 1, 128-256 epochs, left-right flip p 0.5 and a small affine
(rotation +-5 degrees, shift +-2 voxels). The reference cached augmented tensors to disk, which
froze the augmentation after the first epoch; here every batch draws its own flips and affines
from the run's random generator, so each epoch sees new ones (and a resumed run the same ones).

Epochs are whole passes over the training scans in an order drawn per epoch from
``default_rng([seed, epoch])``; the step counter, not a cursor, says where the run is, so a
resumed run continues the same order. Everything else (resume, SIGTERM, determinism, selection,
device, AMP, logs) is the shared loop in :mod:`medrepro.train.loop`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from medrepro.errors import InputError
from medrepro.metrics.registry import compute
from medrepro.studies.loes.model import BASE_CHANNELS
from medrepro.train.loop import LoopConfig, Trainer
from medrepro.train.registry import build_model

LOSSES = ("mse", "weighted_mse")
VALIDATION_METRICS = ("standardized_rmse", "rmse", "mae", "pearson_r")


@dataclass(frozen=True)
class TrainConfig(LoopConfig):
    model: str = "loes_regressor"
    channels: tuple[int, ...] = BASE_CHANNELS
    width: float = 1.0
    num_res_units: int = 2
    epochs: int = 128
    batch_size: int = 1
    loss: str = "mse"  # mse | weighted_mse (weights 1 / frequency of each training score)
    optimizer: str = "adam"
    lr: float = 1e-4
    weight_decay: float = 0.0
    schedule: str = "onecycle"
    max_lr: float = 0.01
    pct_start: float = 0.3
    flip_p: float = 0.5  # left-right flip (the RAS x axis)
    rotate_deg: float = 5.0  # rotation about each axis, uniform in +-rotate_deg
    shift_vox: float = 2.0  # shift along each axis, uniform in +-shift_vox voxels
    eval_every_epochs: int = 1
    checkpoint_every_epochs: int = 1
    selection: str = "last"  # the reference trains a fixed number of epochs and keeps the last model
    iterations: int = 0  # derived: batches per epoch x epochs (train_config sets it)

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise InputError(None, "loss", f"got {self.loss!r}", f"one of {', '.join(LOSSES)}")
        for key in ("epochs", "batch_size", "eval_every_epochs", "checkpoint_every_epochs"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(None, key, f"got {value!r}", "an integer >= 1")
        if not 0 <= self.flip_p <= 1:
            raise InputError(None, "flip_p", f"got {self.flip_p!r}", "a probability in [0, 1]")


WORKFLOW_KEYS = {"model", "input", "split", "seeds", "init_from", "resources", "trainer", "compare_to"}


def train_config(run: dict, seed: int, n_train: int) -> TrainConfig:
    """The run's config with the loop's step counts derived from epochs: batches per epoch =
    ceil(n_train / batch_size); iterations (OneCycleLR's total_steps) = that x epochs."""
    known = {f.name for f in fields(TrainConfig)} - {"iterations", "eval_every", "checkpoint_every"}
    unknown = set(run) - known - WORKFLOW_KEYS
    if unknown:
        raise InputError(None, "run config", f"unknown keys {sorted(unknown)}", f"keys of {sorted(known)}")
    kwargs = {k: v for k, v in run.items() if k in known}
    if "channels" in kwargs:
        kwargs["channels"] = tuple(int(c) for c in kwargs["channels"])
    probe = TrainConfig(**kwargs, seed=seed)
    per_epoch = math.ceil(n_train / probe.batch_size)
    return TrainConfig(**kwargs, seed=seed, iterations=per_epoch * probe.epochs,
                       eval_every=per_epoch * probe.eval_every_epochs,
                       checkpoint_every=per_epoch * probe.checkpoint_every_epochs)


def score_weights(scores: np.ndarray) -> np.ndarray:
    """Weighted MSE's per-scan weights: 1 / frequency of the scan's score among the training
    scans, scaled so they average 1 over the training scans (the loss keeps MSE's scale)."""
    values, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    w = 1.0 / counts[inverse]
    return (w / w.mean()).astype(np.float32)


def augment(x: torch.Tensor, rng: np.random.Generator, flip_p: float, rotate_deg: float,
            shift_vox: float) -> torch.Tensor:
    """A left-right flip (p ``flip_p``) and a small affine (rotation about each axis, shift in
    voxels) per volume of a (N, 1, X, Y, Z) batch, drawn from ``rng``; trilinear, zero padding."""
    n = x.shape[0]
    flips = rng.random(n) < flip_p
    angles = np.deg2rad(rng.uniform(-rotate_deg, rotate_deg, size=(n, 3)))
    shifts = rng.uniform(-shift_vox, shift_vox, size=(n, 3))
    if flips.any():
        x = x.clone()
        x[torch.from_numpy(flips)] = x[torch.from_numpy(flips)].flip(2)
    if rotate_deg == 0 and shift_vox == 0:
        return x
    theta = np.zeros((n, 3, 4))
    for i in range(n):
        a, b, c = angles[i]
        rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
        ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
        rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
        theta[i, :, :3] = rx @ ry @ rz
        # affine_grid's coordinates run (W, H, D) = volume axes (Z, Y, X); one voxel is 2 / size
        size = np.array(x.shape[2:][::-1], dtype=float)
        theta[i, :, 3] = 2.0 * shifts[i][::-1] / size
    grid = F.affine_grid(torch.from_numpy(theta).to(x.dtype).to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class VolumeSet:
    """Normalized volumes in memory: ``x`` (N, 1, X, Y, Z) float32, scores, unit and subject ids."""

    def __init__(self, x: np.ndarray, scores: np.ndarray, unit_ids: list[str], subjects: list[str]):
        self.x, self.scores, self.unit_ids, self.subjects = x, scores.astype(np.float32), unit_ids, subjects
        self.index = {u: i for i, u in enumerate(unit_ids)}

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.x.shape[2:])

    def rows(self, ids: list[str]) -> np.ndarray:
        return np.array([self.index[u] for u in ids], dtype=np.int64)


@torch.no_grad()
def predict(model: torch.nn.Module, volumes: VolumeSet, ids: list[str], device: torch.device,
            batch_size: int = 8) -> pd.DataFrame:
    """Predicted scores of the scans ``ids`` (sorted), no augmentation: unit_id, cluster (the
    subject), y_true, y_pred."""
    model.eval()
    ids = sorted(ids)
    rows = volumes.rows(ids)
    preds = []
    for start in range(0, len(rows), batch_size):
        xb = torch.from_numpy(volumes.x[rows[start:start + batch_size]]).to(device)
        preds.append(model(xb).float().cpu().numpy())
    y_pred = np.concatenate(preds) if preds else np.zeros(0, dtype=np.float32)
    return pd.DataFrame({"unit_id": ids, "cluster": [volumes.subjects[i] for i in rows],
                         "y_true": volumes.scores[rows].astype(np.float64), "y_pred": y_pred.astype(np.float64)})


def point_metrics(table: pd.DataFrame, names=VALIDATION_METRICS) -> dict[str, float]:
    ones = np.ones((1, len(table)))
    return {name: float(compute(name, table, ones)[0]) for name in names}


class LoesTrainer(Trainer):
    config_class = TrainConfig

    def __init__(self, cfg: TrainConfig, volumes: VolumeSet, split: dict, primary: str = "standardized_rmse",
                 higher_is_better: bool = False):
        super().__init__(cfg, primary, higher_is_better)
        self.volumes, self.split = volumes, split
        self.train_rows = volumes.rows(sorted(split["train"]))
        self.per_epoch = math.ceil(len(self.train_rows) / cfg.batch_size)
        self.weights = score_weights(volumes.scores[self.train_rows]) if cfg.loss == "weighted_mse" else None

    def build_model(self) -> torch.nn.Module:
        return build_model(self.cfg.model, **self._model_kwargs())

    def _model_kwargs(self) -> dict:
        return {"shape": list(self.volumes.shape), "channels": list(self.cfg.channels), "width": self.cfg.width,
                "num_res_units": self.cfg.num_res_units}

    def model_meta(self) -> dict:
        return {"model": self.cfg.model, **self._model_kwargs()}

    def batch_positions(self, step: int) -> np.ndarray:
        """Positions (in the sorted training scans) of the batch after ``step`` steps."""
        epoch, pos = divmod(step, self.per_epoch)
        order = np.random.default_rng([self.cfg.seed, epoch]).permutation(len(self.train_rows))
        return order[pos * self.cfg.batch_size:(pos + 1) * self.cfg.batch_size]

    def next_batch(self, rng: np.random.Generator):
        positions = self.batch_positions(self.step)
        rows = self.train_rows[positions]
        x = torch.from_numpy(self.volumes.x[rows]).to(self.device)
        x = augment(x, rng, self.cfg.flip_p, self.cfg.rotate_deg, self.cfg.shift_vox)
        y = torch.from_numpy(self.volumes.scores[rows]).to(self.device)
        w = torch.from_numpy(self.weights[positions]).to(self.device) if self.weights is not None else None
        return x, y, w

    def loss(self, model, batch):
        x, y, w = batch
        err = (model(x).float() - y) ** 2
        loss = (err * w).mean() if w is not None else err.mean()
        return loss, {}

    def validate(self, model, split: str, amp: bool) -> dict[str, Any]:
        table = predict(model, self.volumes, self.split[split], self.device)
        return point_metrics(table, dict.fromkeys((*VALIDATION_METRICS, self.primary)))

    def samples_per_step(self) -> int:
        return self.cfg.batch_size

    def summary_extra(self) -> dict:
        return {"batches_per_epoch": self.per_epoch, "epochs": self.cfg.epochs,
                "n_train_scans": int(len(self.train_rows)),
                "score_weights": None if self.weights is None else "1 / frequency of the training score, mean 1"}
