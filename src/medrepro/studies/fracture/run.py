"""Glue between a fracture run's config and the trainer / evaluation: training one run x seed
(then choosing its thresholds and saving them with the checkpoint), the standalone evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from medrepro.provenance import path_sha256
from medrepro.studies.fracture.prepare import load_prepared
from medrepro.studies.fracture.thresholds import choose_thresholds
from medrepro.studies.fracture.trainer import ImageSet, predict, train_config
from medrepro.train.loop import fit, save_torch
from medrepro.train.registry import trainer_entry

DEFAULT_TRAINER = "fracture"


def _as_dict(obj: Any) -> dict:
    return obj if isinstance(obj, dict) else {k: v for k, v in obj.items()}


def load_images(prep_dir: Path) -> tuple[ImageSet, dict]:
    """The prepared images and the split they carry (train / val / test image ids)."""
    d = load_prepared(Path(prep_dir) / "data.npz")
    images = ImageSet(d["images"], d["masks"], d["ids"], d["labels"])
    split = {side: sorted(str(i) for i, s in zip(d["ids"], d["splits"]) if s == side) for side in ("train", "val", "test")}
    return images, split


def train_run(run: dict, seed: int, inputs: Any, outputs: Any, run_name: str, descriptor: dict,
              stop_at: int | None = None, code_sha256: str | None = None) -> dict:
    inputs, outputs = _as_dict(inputs), _as_dict(outputs)
    cfg = train_config(run, seed)
    images, split = load_images(Path(inputs["prep"]))
    trainer = trainer_entry(run.get("trainer", DEFAULT_TRAINER)).load()(
        cfg, images, split, descriptor["primary"], bool(descriptor["higher_is_better"]))
    hashes = {name: path_sha256(path) for name, path in sorted(inputs.items()) if name != "init"}
    if code_sha256:
        hashes["code"] = code_sha256
    init = Path(inputs["init"]) if inputs.get("init") else None
    ckpt_path = Path(outputs["checkpoint"])
    summary = fit(trainer, ckpt_path.parent, ckpt_path, Path(outputs["log_jsonl"]), Path(outputs["summary"]),
                  init_from=init, meta={"run": run_name, "input": run["input"]}, stop_at=stop_at, inputs=hashes)
    # thresholds: chosen on validation (or, test-guided, on test), saved with the checkpoint
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    model = trainer.build_model()
    model.load_state_dict(ckpt["state_dict"])
    device = trainer.device
    model.to(device)
    ids = split[cfg.threshold_split]
    prob, head = predict(model, images, ids, device, tta=cfg.tta)
    truth = images.y[images.rows(ids), 0]
    ckpt["meta"]["thresholds"] = choose_thresholds(prob, truth, head, cfg.presence_score, cfg.threshold_split)
    save_torch(ckpt, ckpt_path)
    return {**summary, "thresholds": ckpt["meta"]["thresholds"]}


def evaluate_run(run: dict, seed: int, inputs: Any, outputs: Any, run_name: str, bootstrap: dict,
                 data_kind: str, descriptor: dict, study: str) -> dict:
    from medrepro.studies.fracture.evaluate import evaluate_checkpoint

    inputs, outputs = _as_dict(inputs), _as_dict(outputs)
    cfg = train_config(run, seed)
    images, split = load_images(Path(inputs["prep"]))
    return evaluate_checkpoint(
        Path(inputs["checkpoint"]), images, split, study=study, run=run_name, seed=seed, data_kind=data_kind,
        outputs=outputs, iterations=int(bootstrap["iterations"]), boot_seed=int(bootstrap["seed"]),
        primary=descriptor["primary"], unit=descriptor.get("unit", "test image"), tta=cfg.tta,
        expected={"run": run_name, "model": cfg.model, "input": run["input"], "config_fingerprint": cfg.fingerprint()})
