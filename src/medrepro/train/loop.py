"""The one training loop every study uses; a study's :class:`Trainer` supplies the hooks.

Guarantees, whatever the study:

- deterministic on CPU for a given seed (one thread is deterministic as it is; with several,
  torch's deterministic mode is switched on);
- a job that is killed, or receives SIGTERM (SLURM preemption or time limit), resumes from its
  last resume state and ends with the same weights and metrics as an uninterrupted run: the
  state holds model, optimizer, scheduler, grad scaler, the NumPy, torch and (on CUDA) CUDA RNG states, the evaluation history
  and the best weights so far. The state carries a fingerprint of everything that determines
  training (the run's config and seed, the code hash, the bytes of every input, the checkpoint it
  starts from): state with another fingerprint is discarded, and the log says which part differed;
- checkpoint selection ``val`` (best validation value of the study's primary metric), ``last``,
  or ``test`` (best test value: flagged test-guided wherever its numbers appear);
- CUDA where torch sees a GPU, with fp16 autocast when ``amp`` is set; CPU otherwise;
- a JSON-lines log with one entry per step, and validation entries every ``eval_every`` steps;
- a progress line in the job's log every ``log_every`` steps (about 20 per run by default):
  step, loss, elapsed time and an ETA, so a long SLURM job's log shows where it is;
- byte-stable outputs: the checkpoint, the log and the summary hold no timings or file names, so
  the same work gives the same bytes (timings are returned for the job's provenance instead).

The hooks, in the order the loop calls them: :meth:`Trainer.build_model`,
:meth:`Trainer.build_optimizer`, then per step :meth:`Trainer.next_batch` and
:meth:`Trainer.loss` (under autocast), and every ``eval_every`` steps :meth:`Trainer.validate`.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from medrepro.fsutil import atomic_path, write_json
from medrepro.train.device import choose_device

SELECTION_POLICIES = ("val", "last", "test")
log = logging.getLogger(__name__)


class Preempted(SystemExit):
    """Raised after the loop saved its state on SIGTERM; the job exits with an error."""

    def __init__(self, step: int):
        super().__init__(f"SIGTERM received: state saved at step {step}; rerun the job to resume")
        self.code = 143


@dataclass(frozen=True)
class LoopConfig:
    """Keys of a run's config that the loop itself reads; a study's config class adds its own."""

    model: str = ""
    iterations: int = 20000
    optimizer: str = "sgd"  # sgd | adamw | adam
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "multistep"  # multistep | cosine | constant | onecycle
    max_lr: float = 0.01  # onecycle: the peak learning rate (torch's OneCycleLR starts at max_lr / 25)
    pct_start: float = 0.3  # onecycle: share of the steps spent rising to max_lr
    milestones: tuple[int, ...] = (10000, 14000, 18000)
    gamma: float = 0.1
    eval_every: int = 500
    checkpoint_every: int = 500
    selection: str = "val"
    seed: int = 0
    amp: bool = True  # mixed precision when on CUDA
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 1
    log_every: int = 0  # progress line (step, loss, elapsed, ETA) every N steps; 0: about 20 per run

    def fingerprint(self) -> str:
        """What determines the weights (``log_every`` only decides how often the log speaks)."""
        fields = {k: v for k, v in asdict(self).items() if k != "log_every"}
        return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


def make_optimizer(cfg: LoopConfig, model: torch.nn.Module):
    """SGD (momentum), AdamW or Adam, with a multistep, cosine, constant or one-cycle schedule
    stepped every step (every batch). One-cycle is torch's ``OneCycleLR`` over ``iterations``
    steps with ``max_lr`` and ``pct_start`` and its defaults otherwise (it sets the learning
    rate itself, so ``lr`` only matters before the first step, and it cycles SGD's momentum or
    Adam's beta1 between 0.85 and 0.95)."""
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    elif cfg.optimizer == "adamw":
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    elif cfg.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        raise ValueError(f"optimizer {cfg.optimizer!r}: expected sgd, adamw or adam")
    if cfg.schedule == "multistep":
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(cfg.milestones), gamma=cfg.gamma)
    elif cfg.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.iterations)
    elif cfg.schedule == "constant":
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    elif cfg.schedule == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.max_lr, total_steps=cfg.iterations,
                                                    pct_start=cfg.pct_start)
    else:
        raise ValueError(f"schedule {cfg.schedule!r}: expected multistep, cosine, constant or onecycle")
    return opt, sched


class Trainer:
    """A study's part of training. Override the hooks; the loop does the rest.

    ``device`` is set by the loop before any hook runs. ``primary`` and ``higher_is_better``
    (from the study descriptor) decide which validation value selects the checkpoint.
    """

    config_class: type[LoopConfig] = LoopConfig

    def __init__(self, cfg: LoopConfig, primary: str, higher_is_better: bool = True):
        self.cfg = cfg
        self.primary = primary
        self.higher_is_better = higher_is_better
        self.device = torch.device("cpu")
        self.step = 0  # steps done before the batch being drawn (set by the loop; survives a resume)

    # --- hooks -------------------------------------------------------------------------------
    def build_model(self) -> torch.nn.Module:
        raise NotImplementedError

    def model_meta(self) -> dict:
        """What a standalone evaluation needs to rebuild the model (stored in the checkpoint)."""
        return {"model": self.cfg.model}

    def build_optimizer(self, model: torch.nn.Module):
        return make_optimizer(self.cfg, model)

    def next_batch(self, rng: np.random.Generator) -> Any:
        """One training batch, on ``self.device``; all randomness from ``rng``."""
        raise NotImplementedError

    def loss(self, model: torch.nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(total loss, named parts to log) for one batch; runs under autocast."""
        raise NotImplementedError

    def validate(self, model: torch.nn.Module, split: str, amp: bool) -> dict[str, float]:
        """Metrics of the model on split ``val`` (or ``test``); must include ``primary``."""
        raise NotImplementedError

    def samples_per_step(self) -> int:
        return 1

    def summary_extra(self) -> dict:
        """Study-specific entries of the training summary."""
        return {}


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


def save_torch(obj: Any, path: Path) -> None:
    """``torch.save`` with byte-stable output: saved through a buffer, so the archive's internal
    name does not follow the (temporary) file name; written atomically."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def progress_line(step: int, total: int, loss: float, elapsed: float, done_here: int) -> str:
    """``step 40/100 (40%) loss 1.2345 elapsed 12.3 s ETA 18.5 s``; the ETA extrapolates the
    steps this process has run (a resumed job counts from where it resumed)."""
    eta = elapsed / done_here * (total - step) if done_here > 0 else float("nan")
    return (f"step {step}/{total} ({100 * step // max(total, 1)}%) loss {loss:.4f} "
            f"elapsed {elapsed:.1f} s ETA {eta:.1f} s")


def run_fingerprint(cfg: LoopConfig, inputs: dict[str, str] | None, init_from: Path | None) -> dict:
    """The parts of a run's fingerprint: config (with seed), input hashes (and code hash), the
    checkpoint it starts from."""
    init = hashlib.sha256(Path(init_from).read_bytes()).hexdigest() if init_from is not None else None
    return {"config": cfg.fingerprint(), "inputs": dict(sorted((inputs or {}).items())), "init_from": init}


def _digest(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def fit(trainer: Trainer, run_dir: Path, checkpoint_out: Path, log_out: Path, summary_out: Path,
        init_from: Path | None = None, meta: dict | None = None, stop_at: int | None = None,
        inputs: dict[str, str] | None = None) -> dict:
    """Train one run x seed; write the selected checkpoint, a JSON-lines log and a summary.

    ``inputs``: name -> sha256 of everything else that determines training (input files, code
    hash); part of the resume fingerprint. ``stop_at`` simulates a preemption at that step (used
    by the pipeline's resume check). Returns the summary, plus ``timing`` and ``resume`` (from
    which step and state, or why saved state was discarded) for the job's provenance.
    """
    cfg = trainer.cfg
    fp_parts = run_fingerprint(cfg, inputs, init_from)
    fingerprint = _digest(fp_parts)
    if cfg.selection not in SELECTION_POLICIES:
        raise ValueError(f"selection {cfg.selection!r}: expected one of {SELECTION_POLICIES}")
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    device = choose_device(cfg.device)
    trainer.device = device
    use_amp = cfg.amp and device.type == "cuda"
    # One CPU thread is deterministic as it is (tests check bitwise-equal reruns and resumes);
    # with several threads, oneDNN's parallel reductions need the deterministic mode (~40% slower).
    torch.use_deterministic_algorithms(device.type == "cpu" and cfg.threads > 1)
    rng = np.random.default_rng(cfg.seed)

    model = trainer.build_model()
    if init_from is not None:
        start = torch.load(init_from, map_location="cpu", weights_only=True)
        model.load_state_dict(start["state_dict"])
    model.to(device)
    opt, sched = trainer.build_optimizer(model)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    resume_path = Path(run_dir) / "resume.pt"
    step, history, best, log_lines = 0, [], None, []
    resume: dict[str, Any] = {"resumed": False}
    if resume_path.exists():
        state_sha = hashlib.sha256(resume_path.read_bytes()).hexdigest()
        state = torch.load(resume_path, map_location="cpu", weights_only=True)
        if state.get("fingerprint") != fingerprint:
            saved = json.loads(state["fingerprint_parts"]) if "fingerprint_parts" in state else {}
            differ = sorted(k for k in fp_parts if saved.get(k) != fp_parts[k]) or ["fingerprint"]
            if saved.get("inputs") and fp_parts["inputs"]:
                differ += [f"inputs.{k}" for k in sorted(set(saved["inputs"]) | set(fp_parts["inputs"]))
                           if saved["inputs"].get(k) != fp_parts["inputs"].get(k)]
            log.warning("resume state %s discarded: it was saved for another %s", resume_path, ", ".join(differ))
            resume = {"resumed": False, "discarded": str(resume_path), "state_sha256": state_sha, "differs": differ}
        else:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            _set_rng_state(rng, state["numpy_rng"])
            torch.set_rng_state(state["torch_rng"])
            if device.type == "cuda" and state.get("cuda_rng") is not None:
                torch.cuda.set_rng_state_all(list(state["cuda_rng"]))
            step, history, best = state["step"], json.loads(state["history"]), state["best"]
            log_lines = json.loads(state["log"])
            log_lines.append({"event": "resumed", "step": step})
            resume = {"resumed": True, "from_step": step, "state": str(resume_path), "state_sha256": state_sha}
            log.info("resumed from %s at step %d", resume_path, step)

    def save_resume() -> None:
        state = {
            "fingerprint": fingerprint, "fingerprint_parts": json.dumps(fp_parts),
            "model": _cpu_state_dict(model), "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(), "scaler": scaler.state_dict(), "numpy_rng": _rng_state(rng),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else None, "step": step, "history": json.dumps(history), "best": best,
            "log": json.dumps(log_lines),
        }
        save_torch(state, resume_path)

    eval_splits = ["val", "test"] if cfg.selection == "test" else ["val"]
    select_on = {"val": "val", "test": "test", "last": None}[cfg.selection]
    t0 = time.time()
    first_step = step
    every = cfg.log_every or max(1, cfg.iterations // 20)
    with _SigtermFlag() as sigterm:
        while step < cfg.iterations:
            model.train()
            trainer.step = step
            batch = trainer.next_batch(rng)
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
                loss, parts = trainer.loss(model, batch)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            step += 1
            entry = {"step": step, "loss": loss.item(), **{k: v.item() for k, v in parts.items()},
                     "lr": float(opt.param_groups[0]["lr"])}
            if step % cfg.eval_every == 0 or step == cfg.iterations:
                entry.update({name: trainer.validate(model, name, use_amp) for name in eval_splits})
                history.append({"step": step, **{k: entry[k] for k in eval_splits}})
                score = entry[select_on][trainer.primary] if select_on else step
                improved = best is None or (score > best["score"] if trainer.higher_is_better or not select_on
                                            else score < best["score"])
                if improved or cfg.selection == "last":
                    best = {"score": score, "step": step, "state_dict": _cpu_state_dict(model)}
            log_lines.append(entry)
            if step % every == 0 or step == cfg.iterations:
                log.info("%s", progress_line(step, cfg.iterations, entry["loss"], time.time() - t0, step - first_step))
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
        "meta": {**(meta or {}), **trainer.model_meta(), "selection": cfg.selection, "step": best["step"],
                 "seed": cfg.seed, "fingerprint": fingerprint, "config_fingerprint": fp_parts["config"]},
    }
    save_torch(checkpoint, checkpoint_out)
    with atomic_path(log_out) as tmp:
        tmp.write_text("".join(json.dumps(line) + "\n" for line in log_lines))
    losses = [line["loss"] for line in log_lines if "loss" in line]
    head = max(1, len(losses) // 10)
    summary = {
        "device": str(device), "amp": use_amp, "iterations": cfg.iterations,
        "loss_first": float(np.mean(losses[:head])), "loss_last": float(np.mean(losses[-head:])),
        "selected": selected, "selected_eval": final_in_training, "history": history,
        **trainer.summary_extra(), "resumed": any(line.get("event") == "resumed" for line in log_lines),
        "config": asdict(cfg),
    }
    write_json(summary_out, summary)
    resume_path.unlink(missing_ok=True)
    timing = {"seconds": round(elapsed, 3),
              "samples_per_second": round(trainer.samples_per_step() * len(losses) / max(elapsed, 1e-9), 2)}
    return {**summary, "timing": timing, "resume": resume}


def compare_interrupted(train_once: Callable[[Path, int | None], dict], work_dir: Path, stop_at: int) -> dict:
    """Train twice, once straight through and once stopped at ``stop_at`` and resumed.

    ``train_once(out_dir, stop_at)`` trains into ``out_dir`` (``checkpoint.pt`` and the summary
    it returns); it must raise :class:`Preempted` when ``stop_at`` is reached. Returns whether
    the two end with identical weights and validation metrics."""
    results = {}
    for mode in ("straight", "interrupted"):
        out = Path(work_dir) / mode
        if mode == "interrupted":
            try:
                train_once(out, stop_at)
                raise RuntimeError("the interrupted run did not stop")
            except Preempted:
                pass
        summary = train_once(out, None)
        state = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)["state_dict"]
        results[mode] = {"summary": summary, "state": state}
    a, b = results["straight"], results["interrupted"]
    max_diff = max(float((a["state"][k].double() - b["state"][k].double()).abs().max()) for k in a["state"])
    return {
        "iterations": a["summary"]["iterations"], "stop_at": int(stop_at),
        "resumed": b["summary"]["resumed"],
        "max_abs_weight_diff": max_diff,
        "val_straight": a["summary"]["selected_eval"]["val"],
        "val_resumed": b["summary"]["selected_eval"]["val"],
        "identical": max_diff == 0.0 and a["summary"]["selected_eval"] == b["summary"]["selected_eval"],
    }
