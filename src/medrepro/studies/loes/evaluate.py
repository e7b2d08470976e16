"""Standalone evaluation of a loes checkpoint: predictions on the test scans, metrics with 95%
CIs by bootstrap over subjects, and the predictions again in the reference lab's CSV format
(the input CSV's columns plus ``predicted_loes_score``), which ``medrepro loes-card`` reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from medrepro.errors import InputError
from medrepro.fsutil import atomic_path, write_json
from medrepro.studies.loes.metrics import evaluate_table
from medrepro.studies.loes.trainer import VALIDATION_METRICS, VolumeSet, point_metrics, predict
from medrepro.train.device import choose_device
from medrepro.train.registry import MODELS, build_model

# Bounds on what a checkpoint may ask the loader to build.
MAX_SIDE = 256
MAX_CHANNELS = 1024
MAX_STAGES = 6
MAX_WIDTH = 4.0

LAB_COLUMNS = ("anonymized_subject_id", "anonymized_session_id", "scan", "loes-score", "Gd-enhanced")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_meta(path: Path, meta: Any, expected: dict | None) -> None:
    """Refuse, before building anything, a checkpoint whose recorded architecture is out of
    bounds or that belongs to another run than the one being evaluated."""
    if not isinstance(meta, dict):
        raise InputError(path, "meta", f"got {type(meta).__name__}", "the dict a medrepro trainer writes")
    if meta.get("model") not in MODELS:
        raise InputError(path, "meta.model", f"{meta.get('model')!r}", f"one of {sorted(MODELS)}")
    shape = meta.get("shape")
    if not (isinstance(shape, list) and len(shape) == 3 and all(_is_int(s) and 8 <= s <= MAX_SIDE for s in shape)):
        raise InputError(path, "meta.shape", f"{shape!r}", f"3 integers in [8, {MAX_SIDE}]")
    ch = meta.get("channels")
    if not (isinstance(ch, list) and 1 <= len(ch) <= MAX_STAGES and all(_is_int(c) and 1 <= c <= MAX_CHANNELS
                                                                        for c in ch)):
        raise InputError(path, "meta.channels", f"{ch!r}", f"1 to {MAX_STAGES} integers in [1, {MAX_CHANNELS}]")
    width = meta.get("width")
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width <= MAX_WIDTH:
        raise InputError(path, "meta.width", f"{width!r}", f"a number in (0, {MAX_WIDTH}]")
    if not _is_int(meta.get("num_res_units")) or not 0 <= meta["num_res_units"] <= 4:
        raise InputError(path, "meta.num_res_units", f"{meta.get('num_res_units')!r}", "an integer in [0, 4]")
    for key, want in (expected or {}).items():
        if meta.get(key) != want:
            raise InputError(path, f"meta.{key}", f"{meta.get(key)!r}", f"{want!r} (the run being evaluated)")


def load_checkpoint(path: Path, expected: dict | None = None) -> tuple[torch.nn.Module, dict]:
    """Rebuild the model from a checkpoint, loading weights only (no code runs from the file)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise InputError(path, "checkpoint", "no state_dict", "a medrepro checkpoint")
    meta = ckpt.get("meta")
    check_meta(Path(path), meta, expected)
    model = build_model(meta["model"], shape=meta["shape"], channels=meta["channels"], width=meta["width"],
                        num_res_units=meta["num_res_units"])
    model.load_state_dict(ckpt["state_dict"])
    return model, meta


def lab_table(test: pd.DataFrame, manifest_json: Path) -> pd.DataFrame:
    """The test predictions in the reference lab's CSV format."""
    scans = {s["unit_id"]: s for s in json.loads(Path(manifest_json).read_text())["scans"]}
    rows = []
    for r in test.itertuples():
        s = scans[r.unit_id]
        rows.append({"anonymized_subject_id": s["subject"], "anonymized_session_id": s["session"],
                     "scan": s["scan"], "loes-score": s["score"], "Gd-enhanced": s["gd"],
                     "predicted_loes_score": round(float(r.y_pred), 6)})
    return pd.DataFrame(rows, columns=[*LAB_COLUMNS, "predicted_loes_score"])


def evaluate_checkpoint(checkpoint: Path, volumes: VolumeSet, split: dict, manifest_json: Path, *, study: str,
                        run: str, seed: int, split_name: str, data_kind: str, train_summary: dict, outputs: dict,
                        iterations: int, boot_seed: int, primary: str = "standardized_rmse",
                        unit: str = "test subject", expected: dict | None = None, selection: str = "last") -> dict:
    """Re-load the selected checkpoint, predict the test scans (and the validation scans, to
    check that the standalone evaluation reproduces the in-training one) and write
    ``metrics.json``, ``predictions.csv`` (unit_id, cluster = subject, y_true, y_pred) and
    ``predictions_lab.csv``."""
    model, meta = load_checkpoint(checkpoint, expected)
    device = choose_device("auto")
    model.to(device)
    test = predict(model, volumes, split["test"], device)
    val = point_metrics(predict(model, volumes, split["val"], device))
    in_training = train_summary["selected_eval"]["val"]
    diffs = [abs(in_training[k] - val[k]) for k in VALIDATION_METRICS if k in in_training
             and in_training[k] == in_training[k] and val[k] == val[k]]
    result = {
        "schema": "medrepro-metrics-v1",
        "study": study, "run": run, "seed": seed, "split": split_name, "primary": primary,
        "metrics": evaluate_table(test, iterations, boot_seed),
        "units": Path(outputs["predictions"]).name,
        "selection": {"policy": meta["selection"], "test_guided": meta["selection"] == "test", "step": meta["step"]},
        "bootstrap": {"iterations": iterations, "seed": boot_seed, "level": 0.95, "cluster": unit},
        "data": {"kind": data_kind},
        "details": {
            "n_scans": int(len(test)), "n_subjects": int(test["cluster"].nunique()),
            "val_reproduction": {"in_training": in_training, "standalone": val,
                                 "max_abs_diff": max(diffs) if diffs else None},
            "device": str(device),
        },
    }
    with atomic_path(outputs["predictions"]) as tmp:
        test.to_csv(tmp, index=False)
    with atomic_path(outputs["lab_csv"]) as tmp:
        lab_table(test, manifest_json).to_csv(tmp, index=False)
    write_json(outputs["metrics"], result)
    return result
