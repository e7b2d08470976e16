"""Standalone evaluation: predictions of a checkpoint on a split, metrics and bootstrap CIs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from medrepro.errors import InputError
from medrepro.fsutil import atomic_path, write_json
from medrepro.metrics.bootstrap import cluster_weights, percentile_ci
from medrepro.metrics.registry import CLASSIFICATION, classification_from_confusion, compute, confusion_counts
from medrepro.studies.scoliosis.store import SequenceStore
from medrepro.train.device import choose_device
from medrepro.train.registry import MODELS, build_model


def fp16_at_eval(eval_fp16: bool, device: torch.device) -> bool:
    """Whether evaluation runs under fp16 autocast: ``eval_fp16`` and a CUDA device (OpenGait's
    evaluator autocasts when ``evaluator_cfg.enable_float16``: opengait/modeling/base_model.py
    ``inference``, ShiqiYu/OpenGait commit 0efafd4779f127fbce34f22aff301bd82e923da5); never on CPU."""
    return bool(eval_fp16) and device.type == "cuda"


@torch.no_grad()
def predict(model: torch.nn.Module, store: SequenceStore, ids: list[str], device: torch.device,
            max_frames: int = 720, fp16: bool = False) -> pd.DataFrame:
    """All frames (up to ``max_frames``) of each sequence; logits averaged over parts; argmax.
    ``fp16``: fp16 autocast, on CUDA only (see :func:`fp16_at_eval`)."""
    model.eval()
    fp16 = fp16_at_eval(fp16, device)
    rows = []
    for sid in sorted(ids):
        seq = store.sequences[sid][:max_frames]
        x = torch.from_numpy(np.ascontiguousarray(seq.transpose(1, 0, 2, 3)[None])).to(device)
        pav = torch.from_numpy(store.pav[sid][None]).to(device) if store.pav is not None else None
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=fp16):
            _, logits = model(x, pav)
        mean_logits = logits.float().mean(dim=2)[0].cpu().numpy()
        rows.append({"unit_id": sid, "cluster": sid, "y_true": store.labels[sid],
                     "y_pred": int(mean_logits.argmax()),
                     **{f"logit_{c}": float(v) for c, v in enumerate(mean_logits)}})
    return pd.DataFrame(rows)


def score_predictions(pred: pd.DataFrame, n_classes: int) -> dict:
    cm = confusion_counts(pred["y_true"], pred["y_pred"], n_classes, np.ones((1, len(pred))))
    scores = classification_from_confusion(cm)
    out = {k: float(scores[k][0]) for k in CLASSIFICATION}
    out["per_class_recall"] = [float(v) for v in scores["per_class_recall"][0]]
    out["confusion_matrix"] = cm[0].astype(int).tolist()
    return out


def metrics_with_ci(pred: pd.DataFrame, n_classes: int, iterations: int, seed: int) -> dict:
    """Point estimate and 95% percentile bootstrap CI over test units for each metric."""
    point = score_predictions(pred, n_classes)
    weights = cluster_weights(pred["cluster"], iterations, seed)
    out = {}
    for name in CLASSIFICATION:
        lo, hi = percentile_ci(compute(name, pred, weights, n_classes))
        out[name] = {"estimate": point[name], "ci_low": lo, "ci_high": hi, "n": int(len(pred))}
    return out


# Bounds on what a checkpoint may ask the loader to build (the published recipe is width 1).
MAX_WIDTH = 4.0
MAX_CLASSES = 16
CHANNELS = (1, 2)


def _check_meta(path: Path, meta: Any, expected: dict | None) -> None:
    """Refuse, before building anything, a checkpoint whose recorded architecture is out of
    bounds or that belongs to another run than the one being evaluated."""
    if not isinstance(meta, dict):
        raise InputError(path, "meta", f"got {type(meta).__name__}", "the dict a medrepro trainer writes")
    if meta.get("model") not in MODELS:
        raise InputError(path, "meta.model", f"{meta.get('model')!r}", f"one of {sorted(MODELS)}")
    width = meta.get("width")
    if not isinstance(width, (int, float)) or isinstance(width, bool) or not 0 < width <= MAX_WIDTH:
        raise InputError(path, "meta.width", f"{width!r}", f"a number in (0, {MAX_WIDTH}]")
    if meta.get("in_channels") not in CHANNELS:
        raise InputError(path, "meta.in_channels", f"{meta.get('in_channels')!r}", f"one of {CHANNELS}")
    n = meta.get("n_classes")
    if not isinstance(n, int) or isinstance(n, bool) or not 2 <= n <= MAX_CLASSES:
        raise InputError(path, "meta.n_classes", f"{n!r}", f"an integer in [2, {MAX_CLASSES}]")
    for key, want in (expected or {}).items():
        if meta.get(key) != want:
            raise InputError(path, f"meta.{key}", f"{meta.get(key)!r}", f"{want!r} (the run being evaluated)")


def load_checkpoint(path: Path, expected: dict | None = None) -> tuple[torch.nn.Module, dict]:
    """Rebuild the model from a checkpoint, loading weights only (no code runs from the file).

    ``expected``: meta keys the checkpoint must have (run, model, input, split, config
    fingerprint), so a checkpoint of another run is not evaluated in its place."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise InputError(path, "checkpoint", "no state_dict", "a medrepro checkpoint")
    meta = ckpt.get("meta")
    _check_meta(Path(path), meta, expected)
    model = build_model(meta["model"], in_channels=meta["in_channels"], n_classes=meta["n_classes"],
                        width=meta["width"])
    model.load_state_dict(ckpt["state_dict"])
    return model, meta


def evaluate_checkpoint(checkpoint: Path, store: SequenceStore, split: dict, *, study: str, run: str, seed: int,
                        split_name: str, data_kind: str, train_summary: dict, metrics_out: Path,
                        predictions_out: Path, iterations: int, boot_seed: int, max_frames: int = 720,
                        primary: str = "macro_f1", unit: str = "test sequence", expected: dict | None = None,
                        eval_fp16: bool = True) -> dict:
    """Re-load the selected checkpoint and evaluate it on the test split (and on val, to check
    that the standalone evaluation reproduces the in-training evaluation). ``eval_fp16``: the
    run's key, fp16 autocast on CUDA; ``details.eval_fp16`` records whether it was used."""
    model, meta = load_checkpoint(checkpoint, expected)
    device = choose_device("auto")
    model.to(device)
    n_classes = meta["n_classes"]
    fp16 = fp16_at_eval(eval_fp16, device)
    test = predict(model, store, split["test"], device, max_frames, fp16)
    val = score_predictions(predict(model, store, split["val"], device, max_frames, fp16), n_classes)
    in_training = train_summary["selected_eval"]["val"]
    point = score_predictions(test, n_classes)
    inv_class = {v: k for k, v in split["class_map"].items()}
    result = {
        "schema": "medrepro-metrics-v1",
        "study": study, "run": run, "seed": seed, "split": split_name, "primary": primary,
        "metrics": metrics_with_ci(test, n_classes, iterations, boot_seed),
        "units": Path(predictions_out).name,
        "selection": {"policy": meta["selection"], "test_guided": meta["selection"] == "test", "step": meta["step"]},
        "bootstrap": {"iterations": iterations, "seed": boot_seed, "level": 0.95, "cluster": unit},
        "data": {"kind": data_kind},
        "details": {
            "confusion_matrix": point["confusion_matrix"],
            "classes": [inv_class[i] for i in range(n_classes)],
            "per_class_recall": dict(zip([inv_class[i] for i in range(n_classes)], point["per_class_recall"])),
            "val_reproduction": {
                "in_training": in_training,
                "standalone": {k: val[k] for k in ("accuracy", "macro_f1")},
                "max_abs_diff": max(abs(in_training[k] - val[k]) for k in ("accuracy", "macro_f1")),
            },
            "device": str(device),
            "eval_fp16": fp16,
        },
    }
    with atomic_path(predictions_out) as tmp:
        test.to_csv(tmp, index=False)
    write_json(metrics_out, result)
    return result
