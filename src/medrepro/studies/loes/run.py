"""Glue between a loes run's config (a dict from the workflow) and the trainer / evaluation:
loading the normalized volumes, training one run x seed, the standalone evaluation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from medrepro.errors import InputError
from medrepro.provenance import path_sha256
from medrepro.studies.loes.trainer import TrainConfig, VolumeSet, train_config
from medrepro.train.loop import fit
from medrepro.train.registry import trainer_entry

DEFAULT_TRAINER = "loes"
MAX_SIDE = 256  # a normalized volume larger than this along any axis is refused before loading


def load_volumes(manifest_json: Path, prep_dir: Path, ids: list[str] | None = None) -> VolumeSet:
    """The normalized volumes of a variant (``prep_dir/index.json``) with the manifest's scores;
    every volume must have the same shape (the variant's crop shape)."""
    manifest = json.loads(Path(manifest_json).read_text())
    index = json.loads((Path(prep_dir) / "index.json").read_text())["scans"]
    by_unit = {s["unit_id"]: s for s in manifest["scans"]}
    ids = sorted(ids if ids is not None else index)
    arrays, shape = [], None
    for uid in ids:
        if uid not in index:
            raise InputError(Path(prep_dir) / "index.json", f"scans.{uid}", "missing", "every scan of the split")
        path = Path(prep_dir) / index[uid]["file"]
        img = nib.load(path)
        if len(img.shape) != 3 or any(not 0 < s <= MAX_SIDE for s in img.shape):
            raise InputError(path, "shape", f"{tuple(img.shape)}", f"3 axes of 1..{MAX_SIDE} voxels")
        if shape is not None and tuple(img.shape) != shape:
            raise InputError(path, "shape", f"{tuple(img.shape)} differs from {shape}",
                             "one shape for every volume of a variant (set the variant's shape)")
        shape = tuple(img.shape)
        arrays.append(np.asarray(img.dataobj, dtype=np.float32))
    x = np.stack(arrays)[:, None] if arrays else np.zeros((0, 1, 1, 1, 1), np.float32)
    scores = np.array([by_unit[u]["score"] for u in ids], dtype=np.float32)
    return VolumeSet(np.ascontiguousarray(x), scores, ids, [by_unit[u]["subject"] for u in ids])


def _as_dict(obj: Any) -> dict:
    return obj if isinstance(obj, dict) else {k: v for k, v in obj.items()}


def split_units(split_json: Path) -> dict:
    return json.loads(Path(split_json).read_text())


def make_config(run: dict, seed: int, split: dict) -> TrainConfig:
    return train_config(run, seed, len(split["train"]))


def train_run(run: dict, seed: int, inputs: Any, outputs: Any, run_name: str, descriptor: dict,
              stop_at: int | None = None, code_sha256: str | None = None) -> dict:
    """Train one run x seed. The resume fingerprint covers the run's config, ``code_sha256`` and
    the bytes of every input."""
    inputs, outputs = _as_dict(inputs), _as_dict(outputs)
    split = split_units(Path(inputs["split"]))
    cfg = make_config(run, seed, split)
    ids = sorted(split["train"] + split["val"] + (split["test"] if cfg.selection == "test" else []))
    volumes = load_volumes(Path(inputs["manifest"]), Path(inputs["prep"]), ids)
    trainer = trainer_entry(run.get("trainer", DEFAULT_TRAINER)).load()(
        cfg, volumes, split, descriptor["primary"], bool(descriptor["higher_is_better"]))
    meta = {"run": run_name, "input": run["input"], "split": run["split"]}
    init = Path(inputs["init"]) if inputs.get("init") else None
    hashes = {name: path_sha256(path) for name, path in sorted(inputs.items()) if name != "init"}
    if code_sha256:
        hashes["code"] = code_sha256
    return fit(trainer, Path(outputs["checkpoint"]).parent, Path(outputs["checkpoint"]), Path(outputs["log_jsonl"]),
               Path(outputs["summary"]), init_from=init, meta=meta, stop_at=stop_at, inputs=hashes)


def evaluate_run(run: dict, seed: int, inputs: Any, outputs: Any, run_name: str, bootstrap: dict,
                 data_kind: str, descriptor: dict, study: str) -> dict:
    from medrepro.studies.loes.evaluate import evaluate_checkpoint

    inputs, outputs = _as_dict(inputs), _as_dict(outputs)
    split = split_units(Path(inputs["split"]))
    cfg = make_config(run, seed, split)
    volumes = load_volumes(Path(inputs["manifest"]), Path(inputs["prep"]), sorted(split["val"] + split["test"]))
    summary = json.loads(Path(inputs["summary"]).read_text())
    return evaluate_checkpoint(
        Path(inputs["checkpoint"]), volumes, split, Path(inputs["manifest"]), study=study, run=run_name, seed=seed,
        split_name=run["split"], data_kind=data_kind, train_summary=summary, outputs=outputs,
        iterations=int(bootstrap["iterations"]), boot_seed=int(bootstrap["seed"]), primary=descriptor["primary"],
        unit=descriptor.get("unit", "test subject"),
        expected={"run": run_name, "model": run.get("model", cfg.model), "input": run["input"],
                  "split": run["split"], "config_fingerprint": cfg.fingerprint()},
        selection=cfg.selection,
    )


def card_meta(run: dict, run_name: str, metrics_json: Path, summary_json: Path, data_kind: str,
              out_md: Path) -> dict:
    """What a run's card says about its configuration and lineage."""
    import os

    from medrepro.provenance import find_producer

    metrics = json.loads(Path(metrics_json).read_text())
    summary = json.loads(Path(summary_json).read_text())
    cfg = summary.get("config", {})
    found = find_producer(metrics_json)
    return {
        "run": run_name, "seed": metrics["seed"], "model": cfg.get("model"), "input": run.get("input"),
        "split": run.get("split"), "data": data_kind, "loss": cfg.get("loss"), "optimizer": cfg.get("optimizer"),
        "lr": cfg.get("lr"), "scheduler": cfg.get("schedule"), "max_lr": cfg.get("max_lr"),
        "pct_start": cfg.get("pct_start"), "epochs": cfg.get("epochs"), "batch_size": cfg.get("batch_size"),
        "total_steps": cfg.get("iterations"), "channels": cfg.get("channels"), "width": cfg.get("width"),
        "selection": metrics["selection"]["policy"], "test_guided": metrics["selection"]["test_guided"],
        "compare_to": run.get("compare_to"), "device": summary.get("device"),
        "lineage_id": (found[1]["lineage_id"][:12] if found else None),
        "provenance": (os.path.relpath(found[0], Path(out_md).parent) if found else None),
    }


def write_run_card(run: dict, run_name: str, inputs: Any, outputs: Any, bootstrap: dict, data_kind: str) -> dict:
    """The run's model card (first seed), compared with its ``compare_to`` run where set."""
    import os

    import pandas as pd

    from medrepro.studies.loes.card import build_card, plot_predicted_vs_true, plot_residuals_by_range, write_card

    inputs, outputs = _as_dict(inputs), _as_dict(outputs)
    read = lambda p: pd.read_csv(p, dtype={"unit_id": str, "cluster": str})  # noqa: E731
    table = read(inputs["predictions"])
    previous = read(inputs["previous"]) if inputs.get("previous") else None
    meta = card_meta(run, run_name, Path(inputs["metrics"]), Path(inputs["summary"]), data_kind, Path(outputs["md"]))
    card = build_card(table, previous, iterations=int(bootstrap["iterations"]), seed=int(bootstrap["seed"]), meta=meta)
    plot_predicted_vs_true(table, Path(outputs["scatter"]))
    plot_residuals_by_range(table, Path(outputs["residuals"]))
    here = Path(outputs["md"]).parent
    figures = {"predicted_vs_true": os.path.relpath(outputs["scatter"], here),
               "residuals_by_range": os.path.relpath(outputs["residuals"], here)}
    write_card(card, Path(outputs["md"]), Path(outputs["json"]), figures=figures)
    return card
