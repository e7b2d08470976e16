"""The shared training loop with a toy study's trainer: the loop names no study, and its
guarantees (selection on the descriptor's primary metric in either direction, bitwise resume,
ignored foreign resume state, test-guided selection) hold for any trainer."""

import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from medrepro.train.loop import LoopConfig, Preempted, Trainer, compare_interrupted, fit


@dataclass(frozen=True)
class ToyConfig(LoopConfig):
    model: str = "linear"
    batch: int = 8


class ToyRegression(Trainer):
    """y = 2x - 1 + noise; validation metric ``mse`` (lower is better) or ``neg_mse``."""

    config_class = ToyConfig

    def __init__(self, cfg, primary="mse", higher_is_better=False):
        super().__init__(cfg, primary, higher_is_better)
        rng = np.random.default_rng(123)
        self.x = {s: rng.normal(size=(32, 1)).astype(np.float32) for s in ("train", "val", "test")}
        self.y = {s: 2 * v - 1 + 0.1 * rng.normal(size=v.shape).astype(np.float32) for s, v in self.x.items()}

    def build_model(self):
        return torch.nn.Linear(1, 1)

    def next_batch(self, rng):
        idx = rng.choice(32, size=self.cfg.batch, replace=False)
        return torch.from_numpy(self.x["train"][idx]), torch.from_numpy(self.y["train"][idx])

    def loss(self, model, batch):
        x, y = batch
        mse = torch.mean((model(x) - y) ** 2)
        return mse, {"mse": mse}

    @torch.no_grad()
    def validate(self, model, split, amp):
        model.eval()
        mse = float(torch.mean((model(torch.from_numpy(self.x[split])) - torch.from_numpy(self.y[split])) ** 2))
        return {"mse": mse, "neg_mse": -mse}

    def samples_per_step(self):
        return self.cfg.batch


CFG = dict(iterations=30, lr=0.05, milestones=(100,), eval_every=5, checkpoint_every=4, device="cpu")


def _fit(tmp, trainer, stop_at=None):
    return fit(trainer, tmp, tmp / "checkpoint.pt", tmp / "log.jsonl", tmp / "summary.json", stop_at=stop_at)


def _state(path):
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


@pytest.mark.parametrize("primary,higher", [("mse", False), ("neg_mse", True)])
def test_selection_follows_the_metric_direction(tmp_path, primary, higher):
    summary = _fit(tmp_path, ToyRegression(ToyConfig(**CFG), primary, higher))
    vals = {h["step"]: h["val"][primary] for h in summary["history"]}
    best = (max if higher else min)(vals, key=vals.get)
    assert summary["selected"]["step"] == best
    assert summary["loss_last"] < summary["loss_first"]
    assert summary["timing"]["samples_per_second"] > 0 and summary["resume"] == {"resumed": False}
    assert "seconds" not in json.loads((tmp_path / "summary.json").read_text())
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert len(log) == 30 and set(log[0]) == {"step", "loss", "mse", "lr"}


def test_last_and_test_selection(tmp_path):
    last = _fit(tmp_path / "l", ToyRegression(ToyConfig(**{**CFG, "selection": "last"})))
    assert last["selected"]["step"] == 30
    test = _fit(tmp_path / "t", ToyRegression(ToyConfig(**{**CFG, "selection": "test"})))
    assert all("test" in h for h in test["history"])
    meta = torch.load(tmp_path / "t/checkpoint.pt", weights_only=True)["meta"]
    assert meta["selection"] == "test" and meta["model"] == "linear"


def test_interrupted_run_resumes_bitwise(tmp_path):
    def once(out, stop):
        return _fit(out, ToyRegression(ToyConfig(**CFG)), stop_at=stop)

    result = compare_interrupted(once, tmp_path, stop_at=13)
    assert result["identical"] and result["resumed"] and result["max_abs_weight_diff"] == 0.0


def test_resume_state_of_another_config_is_ignored(tmp_path):
    with pytest.raises(Preempted):
        _fit(tmp_path, ToyRegression(ToyConfig(**CFG)), stop_at=6)
    other = _fit(tmp_path, ToyRegression(ToyConfig(**{**CFG, "lr": 0.01})))
    assert not other["resumed"] and other["resume"]["differs"] == ["config"]


def _fit_inputs(tmp, inputs, init=None, stop_at=None):
    return fit(ToyRegression(ToyConfig(**CFG)), tmp, tmp / "checkpoint.pt", tmp / "log.jsonl", tmp / "summary.json",
               init_from=init, stop_at=stop_at, inputs=inputs)


def test_resume_state_for_other_inputs_or_another_start_is_discarded(tmp_path):
    with pytest.raises(Preempted):
        _fit_inputs(tmp_path, {"split": "a" * 64, "code": "c" * 64}, stop_at=6)
    other = _fit_inputs(tmp_path, {"split": "b" * 64, "code": "c" * 64})
    assert not other["resumed"] and other["resume"]["differs"] == ["inputs", "inputs.split"]
    start = tmp_path / "start.pt"
    torch.save({"state_dict": torch.nn.Linear(1, 1).state_dict()}, start)
    with pytest.raises(Preempted):
        _fit_inputs(tmp_path / "b", {}, init=start, stop_at=6)
    again = _fit_inputs(tmp_path / "b", {}, init=start)
    assert again["resumed"] and again["resume"]["from_step"] == 6 and len(again["resume"]["state_sha256"]) == 64
    with pytest.raises(Preempted):
        _fit_inputs(tmp_path / "c", {}, init=start, stop_at=6)
    torch.save({"state_dict": {"weight": torch.ones(1, 1), "bias": torch.zeros(1)}}, start)  # another start
    assert _fit_inputs(tmp_path / "c", {}, init=start)["resume"]["differs"] == ["init_from"]


def test_identical_runs_give_identical_bytes(tmp_path):
    for name in ("a", "b"):
        _fit(tmp_path / name, ToyRegression(ToyConfig(**CFG)))
    for f in ("checkpoint.pt", "log.jsonl", "summary.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


def test_unknown_selection_is_refused(tmp_path):
    with pytest.raises(ValueError, match="selection"):
        _fit(tmp_path, ToyRegression(ToyConfig(**{**CFG, "selection": "best"})))


def test_progress_lines_with_eta_and_log_every_does_not_touch_resume(tmp_path, caplog):
    import logging
    import re

    with caplog.at_level(logging.INFO, logger="medrepro.train.loop"):
        _fit(tmp_path / "a", ToyRegression(ToyConfig(**{**CFG, "log_every": 10})))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("step ")]
    assert [line.split()[1] for line in lines] == ["10/30", "20/30", "30/30"]
    m = re.fullmatch(r"step 10/30 \(33%\) loss (\d+\.\d{4}) elapsed (\d+\.\d) s ETA (\d+\.\d) s", lines[0])
    assert m, lines[0]
    log = [json.loads(x) for x in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert float(m.group(1)) == pytest.approx(log[9]["loss"], abs=1e-4)
    assert lines[-1].endswith("ETA 0.0 s")
    # default: every iterations // 20 steps (at least 1): here 40 iterations, a line every 2 steps
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="medrepro.train.loop"):
        _fit(tmp_path / "b", ToyRegression(ToyConfig(**{**CFG, "iterations": 40})))
    assert sum(r.getMessage().startswith("step ") for r in caplog.records) == 20
    # how often the log speaks is not part of what a resumed state must match
    assert ToyConfig(**CFG).fingerprint() == ToyConfig(**{**CFG, "log_every": 3}).fingerprint()
