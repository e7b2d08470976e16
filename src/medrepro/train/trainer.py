"""Trainer for the scoliosis models: P x K clips, CE + triplet, periodic and SIGTERM checkpoints.

Deterministic on CPU for a given seed. A job that is killed (or receives SIGTERM, e.g. SLURM
preemption or time limit) and is started again resumes from its last checkpoint and ends with
the same weights and metrics as an uninterrupted run: the resume state holds model, optimizer,
scheduler, grad scaler, both RNG states, the evaluation history and the best weights so far.
"""

from __future__ import annotations

import hashlib
import json
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medrepro.fsutil import atomic_path, write_json
from medrepro.models import build_model
from medrepro.train.data import PKSampler, SequenceStore
from medrepro.train.evaluate import predict, score_predictions
from medrepro.train.losses import part_cross_entropy, part_triplet

SELECTION_POLICIES = ("val", "last", "test")


class Preempted(SystemExit):
    """Raised after the trainer saved its state on SIGTERM; the job exits with an error."""

    def __init__(self, step: int):
        super().__init__(f"SIGTERM received: state saved at step {step}; rerun the job to resume")
        self.code = 143


@dataclass(frozen=True)
class TrainConfig:
    model: str = "sconet"
    width: float = 1.0
    n_classes: int = 3
    iterations: int = 20000
    p: int = 8
    k: int = 8
    clip: int = 30
    optimizer: str = "sgd"  # sgd | adamw
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "multistep"  # multistep | cosine | constant
    milestones: tuple[int, ...] = (10000, 14000, 18000)
    gamma: float = 0.1
    ce_scale: float = 16.0
    ce_weight: float = 1.0
    triplet_margin: float = 0.2
    triplet_weight: float = 1.0
    class_weights: Any = None  # None | "auto" | [w0, w1, w2]
    eval_every: int = 500
    checkpoint_every: int = 500
    selection: str = "val"
    max_eval_frames: int = 720
    seed: int = 0
    amp: bool = True  # mixed precision when on CUDA
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 1
    extra: dict = field(default_factory=dict)

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True, default=str).encode()).hexdigest()


def choose_device(requested: str = "auto") -> torch.device:
    """CUDA where torch sees a GPU (even if SLURM only set CUDA_VISIBLE_DEVICES), else CPU."""
    if requested == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if requested == "cuda":
        raise RuntimeError("device 'cuda' requested but torch sees no GPU")
    return torch.device("cpu")


def auto_class_weights(labels: list[int], n_classes: int) -> list[float]:
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    inv = np.divide(1.0, counts, out=np.zeros_like(counts), where=counts > 0)
    return list(inv / inv.sum() * n_classes)


def _make_optimizer(cfg: TrainConfig, model: torch.nn.Module):
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    elif cfg.optimizer == "adamw":
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        raise ValueError(f"optimizer {cfg.optimizer!r}: expected sgd or adamw")
    if cfg.schedule == "multistep":
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(cfg.milestones), gamma=cfg.gamma)
    elif cfg.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.iterations)
    elif cfg.schedule == "constant":
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    else:
        raise ValueError(f"schedule {cfg.schedule!r}: expected multistep, cosine or constant")
    return opt, sched


class _SigtermFlag:
    def __init__(self):
        self.raised = False
        self._old = None

    def __enter__(self):
        try:
            self._old = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not in the main thread
            self._old = None
        return self

    def _handle(self, signum, frame):
        self.raised = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)


def _rng_state(rng: np.random.Generator) -> str:
    return json.dumps(rng.bit_generator.state)


def _set_rng_state(rng: np.random.Generator, state: str) -> None:
    rng.bit_generator.state = json.loads(state)


def _cpu_state_dict(model: torch.nn.Module) -> dict:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def train(cfg: TrainConfig, store: SequenceStore, split: dict, run_dir: Path, checkpoint_out: Path,
          log_out: Path, summary_out: Path, init_from: Path | None = None, meta: dict | None = None, stop_at: int | None = None) -> dict:
    """Train one run x seed; write the selected checkpoint, a JSON-lines log and a summary.

    ``stop_at`` simulates a preemption at that step (used by the pipeline's resume check).
    """
    if cfg.selection not in SELECTION_POLICIES:
        raise ValueError(f"selection {cfg.selection!r}: expected one of {SELECTION_POLICIES}")
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    device = choose_device(cfg.device)
    use_amp = cfg.amp and device.type == "cuda"
    # One CPU thread is deterministic as it is (tests check bitwise-equal reruns and resumes);
    # with several threads, oneDNN's parallel reductions need the deterministic mode (~40% slower).
    torch.use_deterministic_algorithms(device.type == "cpu" and cfg.threads > 1)
    rng = np.random.default_rng(cfg.seed)

    needs_pav = cfg.model == "drf"
    model = build_model(cfg.model, store.channels, cfg.n_classes, cfg.width)
    if init_from is not None:
        start = torch.load(init_from, map_location="cpu", weights_only=True)
        model.load_state_dict(start["state_dict"])
    model.to(device)
    opt, sched = _make_optimizer(cfg, model)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    train_ids = split["train"]
    sampler = PKSampler(train_ids, store.labels, cfg.p, cfg.k, cfg.clip)
    weights = cfg.class_weights
    if weights == "auto":
        weights = auto_class_weights([store.labels[i] for i in train_ids], cfg.n_classes)
    weight_t = torch.tensor(weights, dtype=torch.float32, device=device) if weights is not None else None

    resume_path = Path(run_dir) / "resume.pt"
    step, history, best, log_lines = 0, [], None, []
    if resume_path.exists():
        state = torch.load(resume_path, map_location="cpu", weights_only=True)
        if state["fingerprint"] == cfg.fingerprint():
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            _set_rng_state(rng, state["numpy_rng"])
            torch.set_rng_state(state["torch_rng"])
            step, history, best = state["step"], json.loads(state["history"]), state["best"]
            log_lines = json.loads(state["log"])
            log_lines.append({"event": "resumed", "step": step})

    def save_resume() -> None:
        state = {
            "fingerprint": cfg.fingerprint(), "model": _cpu_state_dict(model), "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(), "scaler": scaler.state_dict(), "numpy_rng": _rng_state(rng),
            "torch_rng": torch.get_rng_state(), "step": step, "history": json.dumps(history), "best": best,
            "log": json.dumps(log_lines),
        }
        with atomic_path(resume_path) as tmp:
            torch.save(state, tmp)

    def evaluate_splits(names: list[str]) -> dict:
        out = {}
        for name in names:
            pred = predict(model, store, split[name], device, cfg.max_eval_frames, use_amp)
            scores = score_predictions(pred, cfg.n_classes)
            out[name] = {k: scores[k] for k in ("accuracy", "macro_f1")}
        return out

    eval_splits = ["val", "test"] if cfg.selection == "test" else ["val"]
    t0 = time.time()
    with _SigtermFlag() as sigterm:
        while step < cfg.iterations:
            model.train()
            x, y, pav = sampler.batch(store, rng)
            x_t = torch.from_numpy(x).to(device)
            y_t = torch.from_numpy(y).to(device)
            pav_t = torch.from_numpy(pav).to(device) if (needs_pav and pav is not None) else None
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
                emb, logits = model(x_t, pav_t)
                ce = part_cross_entropy(logits, y_t, cfg.ce_scale, weight_t)
                tri = part_triplet(emb, y_t, cfg.triplet_margin)
                loss = cfg.ce_weight * ce + cfg.triplet_weight * tri
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            step += 1
            entry = {"step": step, "loss": loss.item(), "ce": ce.item(), "triplet": tri.item(),
                     "lr": float(opt.param_groups[0]["lr"])}
            if step % cfg.eval_every == 0 or step == cfg.iterations:
                entry.update(evaluate_splits(eval_splits))
                history.append({"step": step, **{k: entry[k] for k in eval_splits}})
                key = {"val": "val", "test": "test", "last": None}[cfg.selection]
                score = entry[key]["macro_f1"] if key else step
                if best is None or score > best["score"] or cfg.selection == "last":
                    best = {"score": score, "step": step, "state_dict": _cpu_state_dict(model)}
            log_lines.append(entry)
            if step % cfg.checkpoint_every == 0 and step < cfg.iterations:
                save_resume()
            if sigterm.raised or step == stop_at:
                save_resume()
                raise Preempted(step)
    elapsed = time.time() - t0

    selected = {k: v for k, v in best.items() if k != "state_dict"}
    final_in_training = next(h for h in history if h["step"] == best["step"])
    checkpoint = {
        "state_dict": best["state_dict"],
        "meta": {**(meta or {}), "model": cfg.model, "width": cfg.width, "in_channels": store.channels,
                 "n_classes": cfg.n_classes, "selection": cfg.selection, "step": best["step"],
                 "seed": cfg.seed, "fingerprint": cfg.fingerprint()},
    }
    with atomic_path(checkpoint_out) as tmp:
        torch.save(checkpoint, tmp)
    with atomic_path(log_out) as tmp:
        tmp.write_text("".join(json.dumps(line) + "\n" for line in log_lines))
    losses = [line["loss"] for line in log_lines if "loss" in line]
    head = max(1, len(losses) // 10)
    summary = {
        "device": str(device), "amp": use_amp, "iterations": cfg.iterations, "seconds": round(elapsed, 3),
        "samples_per_second": round(cfg.p * cfg.k * (len(losses)) / max(elapsed, 1e-9), 2),
        "loss_first": float(np.mean(losses[:head])), "loss_last": float(np.mean(losses[-head:])),
        "selected": selected, "selected_eval": final_in_training, "history": history,
        "class_weights": weights, "resumed": any(line.get("event") == "resumed" for line in log_lines),
        "config": asdict(cfg),
    }
    write_json(summary_out, summary)
    resume_path.unlink(missing_ok=True)
    return summary
