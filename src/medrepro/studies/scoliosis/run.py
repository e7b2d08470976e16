"""Glue between a run's config (a dict from the workflow) and the trainer / evaluator."""

from __future__ import annotations

import json
import tempfile
from dataclasses import fields
from pathlib import Path
from typing import Any

from medrepro.fsutil import write_json
from medrepro.provenance import path_sha256
from medrepro.studies.scoliosis.evaluate import evaluate_checkpoint
from medrepro.studies.scoliosis.store import load_store
from medrepro.studies.scoliosis.trainer import TrainConfig
from medrepro.train.loop import compare_interrupted, fit
from medrepro.train.registry import model_needs, trainer_entry

WORKFLOW_KEYS = {"model", "input", "split", "seeds", "init_from", "resources", "trainer"}
DEFAULT_TRAINER = "scoliosis"


def train_config(run: dict, seed: int) -> TrainConfig:
    known = {f.name for f in fields(TrainConfig)}
    kwargs = {k: v for k, v in run.items() if k in known}
    if "milestones" in kwargs:
        kwargs["milestones"] = tuple(kwargs["milestones"])
    unknown = set(run) - known - WORKFLOW_KEYS
    if unknown:
        raise ValueError(f"run config: unknown keys {sorted(unknown)}")
    return TrainConfig(**kwargs, seed=seed)


def _store(run: dict, inputs: dict):
    source = "silhouette" if run["input"] == "silhouette" else "skeleton_maps"
    prep = inputs.get("prep")
    pav = inputs.get("pav") if "pav" in model_needs(run["model"]) else None
    return load_store(Path(inputs["manifest"]), Path(inputs["split"]), source,
                      Path(prep) if prep else None, Path(pav) if pav else None)


def _as_dict(obj: Any) -> dict:
    if isinstance(obj, dict):
        return obj
    return {k: v for k, v in obj.items()}


def train_run(run: dict, seed: int, inputs: Any, outputs: Any, run_name: str, descriptor: dict,
              stop_at: int | None = None, code_sha256: str | None = None) -> dict:
    """Train one run x seed. The resume fingerprint covers the run's config, ``code_sha256``
    (the job's code param) and the bytes of every input (the checkpoint it starts from too)."""
    inputs, outputs = _as_dict(inputs), _as_dict(outputs)
    cfg = train_config(run, seed)
    store, split = _store(run, inputs)
    trainer = trainer_entry(run.get("trainer", DEFAULT_TRAINER)).load()(
        cfg, store, split, descriptor["primary"], bool(descriptor["higher_is_better"]))
    run_dir = Path(outputs["checkpoint"]).parent
    meta = {"run": run_name, "input": run["input"], "split": run["split"], "class_map": split["class_map"]}
    init = Path(inputs["init"]) if inputs.get("init") else None
    hashes = {name: path_sha256(path) for name, path in sorted(inputs.items()) if name != "init"}
    if code_sha256:
        hashes["code"] = code_sha256
    return fit(trainer, run_dir, Path(outputs["checkpoint"]), Path(outputs["log_jsonl"]),
               Path(outputs["summary"]), init_from=init, meta=meta, stop_at=stop_at, inputs=hashes)


def evaluate_run(run: dict, seed: int, inputs: Any, outputs: Any, run_name: str, bootstrap: dict,
                 data_kind: str, descriptor: dict, study: str) -> dict:
    inputs, outputs = _as_dict(inputs), _as_dict(outputs)
    cfg = train_config(run, seed)
    store, split = _store(run, inputs)
    summary = json.loads(Path(inputs["summary"]).read_text())
    return evaluate_checkpoint(
        Path(inputs["checkpoint"]), store, split, study=study, run=run_name, seed=seed,
        split_name=run["split"], data_kind=data_kind, train_summary=summary,
        metrics_out=Path(outputs["metrics"]), predictions_out=Path(outputs["predictions"]),
        iterations=int(bootstrap["iterations"]), boot_seed=int(bootstrap["seed"]),
        max_frames=cfg.max_eval_frames, primary=descriptor["primary"],
        unit=descriptor.get("unit", "test sequence"),
        expected={"run": run_name, "model": run["model"], "input": run["input"], "split": run["split"],
                  "config_fingerprint": cfg.fingerprint()},
        eval_fp16=cfg.eval_fp16,
    )


def resume_check(run: dict, check: dict, inputs: Any, out_json: Path, descriptor: dict) -> dict:
    """Train a short run twice, once straight through and once stopped at ``stop_at`` and
    resumed; record whether the two end with identical weights and validation metrics."""
    iterations, stop_at = int(check["iterations"]), int(check["stop_at"])
    short = {**run, "iterations": iterations, "eval_every": max(1, iterations // 2),
             "checkpoint_every": stop_at, "milestones": [iterations * 2], "selection": "last"}
    inputs = {k: v for k, v in _as_dict(inputs).items() if k != "init"}

    def train_once(out_dir: Path, stop: int | None) -> dict:
        outs = {"checkpoint": out_dir / "checkpoint.pt", "log_jsonl": out_dir / "log.jsonl",
                "summary": out_dir / "summary.json"}
        return train_run(short, 0, inputs, outs, "resume_check", descriptor, stop_at=stop)

    with tempfile.TemporaryDirectory() as tmp:
        out = compare_interrupted(train_once, Path(tmp), stop_at)
    write_json(out_json, out)
    return out
