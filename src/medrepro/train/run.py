"""Glue between a run's config (a dict from the workflow) and the trainer / evaluator."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from medrepro.fsutil import write_json
from medrepro.train.data import load_store
from medrepro.train.evaluate import evaluate_checkpoint
from medrepro.train.trainer import Preempted, TrainConfig, train

WORKFLOW_KEYS = {"model", "input", "split", "seeds", "init_from", "resources"}


def train_config(run: dict, seed: int) -> TrainConfig:
    known = {f.name for f in fields(TrainConfig)}
    kwargs = {k: v for k, v in run.items() if k in known}
    if "milestones" in kwargs:
        kwargs["milestones"] = tuple(kwargs["milestones"])
    unknown = set(run) - known - WORKFLOW_KEYS
    if unknown:
        raise ValueError(f"run config: unknown keys {sorted(unknown)}")
    return TrainConfig(**kwargs, seed=seed)


def _store(run: dict, inputs: Any):
    source = "silhouette" if run["input"] == "silhouette" else "skeleton_maps"
    get = inputs.get if hasattr(inputs, "get") else lambda k, d=None: getattr(inputs, k, d)
    prep = get("prep", None)
    pav = get("pav", None)
    return load_store(Path(get("manifest")), Path(get("split")), source,
                      Path(prep) if prep else None, Path(pav) if pav and run["model"] == "drf" else None)


def _as_dict(obj: Any) -> dict:
    if isinstance(obj, dict):
        return obj
    return {k: v for k, v in obj.items()}


def train_run(run: dict, seed: int, inputs: Any, outputs: Any, run_name: str, stop_at: int | None = None) -> dict:
    inputs, outputs = _as_dict(inputs), _as_dict(outputs)
    cfg = train_config(run, seed)
    store, split = _store(run, inputs)
    run_dir = Path(outputs["checkpoint"]).parent
    meta = {"run": run_name, "input": run["input"], "split": run["split"], "class_map": split["class_map"]}
    init = Path(inputs["init"]) if inputs.get("init") else None
    return train(cfg, store, split, run_dir, Path(outputs["checkpoint"]), Path(outputs["log_jsonl"]),
                 Path(outputs["summary"]), init_from=init, meta=meta, stop_at=stop_at)


def evaluate_run(run: dict, seed: int, inputs: Any, outputs: Any, run_name: str, bootstrap: dict,
                 data_kind: str) -> dict:
    inputs, outputs = _as_dict(inputs), _as_dict(outputs)
    store, split = _store(run, inputs)
    summary = json.loads(Path(inputs["summary"]).read_text())
    return evaluate_checkpoint(
        Path(inputs["checkpoint"]), store, split, study="scoliosis", run=run_name, seed=seed,
        split_name=run["split"], data_kind=data_kind, train_summary=summary,
        metrics_out=Path(outputs["metrics"]), predictions_out=Path(outputs["predictions"]),
        iterations=int(bootstrap["iterations"]), boot_seed=int(bootstrap["seed"]),
        max_frames=int(run.get("max_eval_frames", 720)),
    )


def resume_check(run: dict, check: dict, inputs: Any, out_json: Path) -> dict:
    """Train a short run twice, once straight through and once stopped at ``stop_at`` and
    resumed; record whether the two end with identical weights and validation metrics."""
    import tempfile

    inputs = _as_dict(inputs)
    short = {**run, "iterations": int(check["iterations"]), "eval_every": max(1, int(check["iterations"]) // 2),
             "checkpoint_every": int(check["stop_at"]), "milestones": [int(check["iterations"]) * 2],
             "selection": "last"}
    inputs = {k: v for k, v in inputs.items() if k != "init"}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("straight", "interrupted"):
            outs = {name: str(Path(tmp, mode, f)) for name, f in
                    (("checkpoint", "checkpoint.pt"), ("log_jsonl", "log.jsonl"), ("summary", "summary.json"))}
            if mode == "interrupted":
                try:
                    train_run(short, 0, inputs, outs, "resume_check", stop_at=int(check["stop_at"]))
                    raise RuntimeError("the interrupted run did not stop")
                except Preempted:
                    pass
            summary = train_run(short, 0, inputs, outs, "resume_check")
            state = torch.load(outs["checkpoint"], map_location="cpu", weights_only=True)["state_dict"]
            results[mode] = {"summary": summary, "state": state}
    a, b = results["straight"], results["interrupted"]
    max_diff = max(float((a["state"][k].double() - b["state"][k].double()).abs().max()) for k in a["state"])
    out = {
        "iterations": short["iterations"], "stop_at": int(check["stop_at"]),
        "resumed": b["summary"]["resumed"],
        "max_abs_weight_diff": max_diff,
        "val_straight": a["summary"]["selected_eval"]["val"],
        "val_resumed": b["summary"]["selected_eval"]["val"],
        "identical": max_diff == 0.0 and a["summary"]["selected_eval"] == b["summary"]["selected_eval"],
    }
    write_json(out_json, out)
    return out
