"""Standalone evaluation of a fracture checkpoint on the test images: flip TTA, the thresholds
saved with the checkpoint, a per-image table (pixel counts, presence label and every presence
score) and both metric conventions with 95% CIs by bootstrap over images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from medrepro.errors import InputError
from medrepro.fsutil import atomic_path, write_json
from medrepro.studies.fracture.metrics import VARIANTS
from medrepro.studies.fracture.metrics import per_image_table as metric_table
from medrepro.studies.fracture.trainer import ImageSet, predict
from medrepro.train.device import choose_device
from medrepro.train.registry import MODELS, build_model

MAX_CHANNELS = 1024
MAX_STAGES = 6


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_meta(path: Path, meta: Any, expected: dict | None) -> None:
    """Refuse, before building anything, a checkpoint whose architecture is out of bounds, that
    carries no thresholds, or that belongs to another run."""
    if not isinstance(meta, dict):
        raise InputError(path, "meta", f"got {type(meta).__name__}", "the dict a medrepro trainer writes")
    if meta.get("model") not in MODELS:
        raise InputError(path, "meta.model", f"{meta.get('model')!r}", f"one of {sorted(MODELS)}")
    ch = meta.get("channels")
    if not (isinstance(ch, list) and 2 <= len(ch) <= MAX_STAGES and all(_is_int(c) and 1 <= c <= MAX_CHANNELS
                                                                        for c in ch)):
        raise InputError(path, "meta.channels", f"{ch!r}", f"2 to {MAX_STAGES} integers in [1, {MAX_CHANNELS}]")
    width = meta.get("width")
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width <= 4:
        raise InputError(path, "meta.width", f"{width!r}", "a number in (0, 4]")
    if not _is_int(meta.get("num_res_units")) or not 0 <= meta["num_res_units"] <= 4:
        raise InputError(path, "meta.num_res_units", f"{meta.get('num_res_units')!r}", "an integer in [0, 4]")
    th = meta.get("thresholds")
    if not isinstance(th, dict) or not all(isinstance(th.get(k), float) for k in ("segmentation", "presence")):
        raise InputError(path, "meta.thresholds", f"{th!r}"[:80], "the thresholds chosen after training")
    for key, want in (expected or {}).items():
        if meta.get(key) != want:
            raise InputError(path, f"meta.{key}", f"{meta.get(key)!r}", f"{want!r} (the run being evaluated)")


def load_checkpoint(path: Path, expected: dict | None = None) -> tuple[torch.nn.Module, dict]:
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise InputError(path, "checkpoint", "no state_dict", "a medrepro checkpoint")
    check_meta(Path(path), ckpt.get("meta"), expected)
    meta = ckpt["meta"]
    model = build_model(meta["model"], channels=meta["channels"], width=meta["width"],
                        num_res_units=meta["num_res_units"])
    model.load_state_dict(ckpt["state_dict"])
    return model, meta


def per_image_table(ids: list[str], prob: np.ndarray, head: np.ndarray | None, truth: np.ndarray,
                    thresholds: dict) -> pd.DataFrame:
    """:func:`medrepro.studies.fracture.metrics.per_image_table` at the saved segmentation
    threshold (every presence score the model can give), with ``unit_id`` / ``cluster`` (the
    image: the bootstrap unit) and ``present``, the call at the saved presence threshold."""
    variants = tuple(v for v in VARIANTS if v != "head" or head is not None)
    table = metric_table(ids, truth, prob, thresholds["segmentation"], head, variants)
    table.insert(0, "unit_id", table.pop("image_id"))
    table.insert(1, "cluster", table["unit_id"])
    table["present"] = (table[f"score_{thresholds['presence_score']}"] >= thresholds["presence"]).astype(int)
    return table


def evaluate_checkpoint(checkpoint: Path, images: ImageSet, split: dict, *, study: str, run: str, seed: int,
                        data_kind: str, outputs: dict, iterations: int, boot_seed: int, primary: str = "dice_pos",
                        unit: str = "test image", tta: bool = True, expected: dict | None = None) -> dict:
    from medrepro.studies.fracture.metrics import evaluate

    model, meta = load_checkpoint(checkpoint, expected)
    device = choose_device("auto")
    model.to(device)
    ids = sorted(split["test"])
    prob, head = predict(model, images, ids, device, tta=tta)
    th = meta["thresholds"]
    table = per_image_table(ids, prob, head, images.y[images.rows(ids), 0], th)
    variants = [c.removeprefix("score_") for c in table.columns if c.startswith("score_")]
    metrics = evaluate(table, iterations, boot_seed, variants)
    # the challenge's presence columns: the run's own presence score
    for name in ("roc_auc", "ap"):
        if f"{name}_{th['presence_score']}" in metrics:
            metrics[name] = metrics[f"{name}_{th['presence_score']}"]
    test_guided = meta["selection"] == "test" or th["chosen_on"] == "test"
    labels, called = table["label"].to_numpy(bool), table["present"].to_numpy(bool)
    result = {
        "schema": "medrepro-metrics-v1", "study": study, "run": run, "seed": seed, "split": "test",
        "primary": primary, "metrics": metrics, "units": Path(outputs["per_image"]).name,
        "selection": {"policy": meta["selection"], "test_guided": test_guided, "step": meta["step"]},
        "bootstrap": {"iterations": iterations, "seed": boot_seed, "level": 0.95, "cluster": unit},
        "data": {"kind": data_kind},
        "details": {
            "thresholds": {k: th[k] for k in ("segmentation", "presence", "presence_score", "chosen_on")},
            "threshold_search_on_test": th["chosen_on"] == "test",
            "tta": "horizontal flip, mean of probabilities" if tta else "none",
            "n_images": int(len(table)), "n_fractured": int(labels.sum()),
            "presence_at_threshold": {"sensitivity": float(called[labels].mean()) if labels.any() else None,
                                      "specificity": float((~called[~labels]).mean()) if (~labels).any() else None},
            "device": str(device),
        },
    }
    with atomic_path(outputs["per_image"]) as tmp:
        table.to_csv(tmp, index=False)
    write_json(outputs["metrics"], result)
    return result
