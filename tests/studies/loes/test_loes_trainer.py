"""The loes trainer on the shared loop: OneCycleLR over batches per epoch x epochs stepped every
batch, augmentation drawn fresh for every batch (never cached), weighted MSE, resume, learning a
planted signal, and a checkpoint's recorded architecture checked before anything is built."""

import json
import math

import numpy as np
import pytest
import torch

from medrepro.errors import InputError
from medrepro.studies.loes.evaluate import check_meta, load_checkpoint
from medrepro.studies.loes.trainer import LoesTrainer, VolumeSet, augment, score_weights, train_config
from medrepro.train.loop import compare_interrupted, fit

SHAPE = (16, 16, 16)


def _volumes(n_subjects=12, sessions=2, seed=0):
    """Volumes whose bright cube grows with the score (a planted signal)."""
    rng = np.random.default_rng(seed)
    xs, scores, ids, subjects = [], [], [], []
    for i in range(n_subjects):
        for j in range(sessions):
            score = float(rng.integers(0, 21)) / 2
            x = rng.normal(0, 0.1, SHAPE).astype(np.float32)
            half = int(1 + score / 2)
            x[8 - half:8 + half, 8 - half:8 + half, 4:12] += 1.0
            xs.append(x)
            scores.append(score)
            ids.append(f"s{i:02d}/ses-{j}/x")
            subjects.append(f"s{i:02d}")
    return VolumeSet(np.stack(xs)[:, None], np.array(scores), ids, subjects)


def _split(vs):
    subj = sorted(set(vs.subjects))
    side = {s: ("test" if k % 4 == 0 else "val" if k % 4 == 1 else "train") for k, s in enumerate(subj)}
    return {k: [u for u, s in zip(vs.unit_ids, vs.subjects) if side[s] == k] for k in ("train", "val", "test")}


RUN = {"input": "v", "split": "s", "seeds": [0], "channels": [4, 8, 16], "width": 1.0, "epochs": 3,
       "batch_size": 4, "max_lr": 0.01}


def _fit(tmp_path, run=RUN, stop_at=None, vs=None):
    vs = vs or _volumes()
    split = _split(vs)
    cfg = train_config(run, 0, len(split["train"]))
    trainer = LoesTrainer(cfg, vs, split)
    out = tmp_path
    out.mkdir(parents=True, exist_ok=True)
    summary = fit(trainer, out, out / "checkpoint.pt", out / "log.jsonl", out / "summary.json",
                  meta={"run": "r", "input": "v", "split": "s"}, stop_at=stop_at)
    return summary, cfg, trainer


def test_onecycle_total_steps_are_batches_per_epoch_times_epochs(tmp_path):
    summary, cfg, trainer = _fit(tmp_path)
    per_epoch = math.ceil(12 / 4)  # 6 train subjects x 2 sessions, batch 4
    assert trainer.per_epoch == per_epoch and cfg.iterations == per_epoch * 3
    lrs = [json.loads(line)["lr"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    ref = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.01, total_steps=cfg.iterations, pct_start=0.3)
    want = []
    for _ in range(cfg.iterations):
        opt.step()
        ref.step()
        want.append(opt.param_groups[0]["lr"])
    assert lrs == pytest.approx(want[: len(lrs)], rel=1e-12)
    assert len(lrs) == cfg.iterations and max(lrs) == pytest.approx(0.01, rel=0.05)


def test_each_epoch_visits_every_training_scan_once_in_a_new_order():
    vs = _volumes()
    split = _split(vs)
    trainer = LoesTrainer(train_config(RUN, 0, len(split["train"])), vs, split)
    epochs = [np.concatenate([trainer.batch_positions(e * trainer.per_epoch + k) for k in range(trainer.per_epoch)])
              for e in range(2)]
    assert sorted(epochs[0]) == list(range(12)) and sorted(epochs[1]) == list(range(12))
    assert list(epochs[0]) != list(epochs[1])


def test_augmentation_is_drawn_fresh_every_time_and_only_in_training():
    x = torch.from_numpy(_volumes().x[:2])
    rng = np.random.default_rng(0)
    a, b = augment(x, rng, 0.5, 5.0, 2.0), augment(x, rng, 0.5, 5.0, 2.0)
    assert not torch.equal(a, b) and not torch.equal(a, x)
    assert torch.equal(augment(x, rng, 0.0, 0.0, 0.0), x)
    flipped = augment(x, rng, 1.0, 0.0, 0.0)
    assert torch.equal(flipped, x.flip(2))  # left-right is the RAS x axis


def test_a_rotation_and_shift_keep_the_volume_close_to_itself():
    x = torch.from_numpy(_volumes().x[:1])
    y = augment(x, np.random.default_rng(1), 0.0, 5.0, 2.0)
    assert 0 < float((y - x).abs().mean()) < 0.3 * float(x.abs().mean()) + 0.1


def test_weighted_mse_weights_are_inverse_score_frequency():
    w = score_weights(np.array([0.0, 0.0, 0.0, 5.0, 5.5]))
    assert w == pytest.approx(np.array([1 / 3, 1 / 3, 1 / 3, 1, 1]) / np.mean([1 / 3, 1 / 3, 1 / 3, 1, 1]))
    assert w.mean() == pytest.approx(1.0)


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path):
    vs = _volumes()
    run = {**RUN, "loss": "weighted_mse", "checkpoint_every_epochs": 1}

    def train_once(out, stop):
        return _fit(out, run, stop_at=stop, vs=vs)[0]

    out = compare_interrupted(train_once, tmp_path, stop_at=4)
    assert out["resumed"] and out["identical"], out


def test_it_learns_the_planted_signal(tmp_path):
    vs = _volumes(n_subjects=24)
    run = {**RUN, "epochs": 15, "channels": [8, 16, 32]}
    summary, _, _ = _fit(tmp_path, run, vs=vs)
    assert summary["loss_last"] < 0.5 * summary["loss_first"]
    assert summary["selected_eval"]["val"]["standardized_rmse"] < 0.8


def test_a_network_that_would_reduce_the_volume_to_one_voxel_is_refused():
    from medrepro.studies.loes.model import LoesRegressor

    with pytest.raises(InputError, match=r"reduce a \(16, 16, 16\) volume to \(1, 1, 1\)"):
        LoesRegressor((16, 16, 16), channels=(4, 8, 16, 32))
    assert LoesRegressor((24, 24, 24), channels=(4, 8, 16, 32))(torch.zeros(2, 1, 24, 24, 24)).shape == (2,)


def test_a_checkpoint_asking_for_a_huge_network_is_refused_before_building(tmp_path):
    _fit(tmp_path)
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    model, meta = load_checkpoint(tmp_path / "checkpoint.pt", {"run": "r"})
    assert meta["shape"] == list(SHAPE)
    for key, bad in (("shape", [4096, 4096, 4096]), ("channels", [10 ** 6]), ("width", 100.0), ("model", "os.system")):
        with pytest.raises(InputError, match=f"meta.{key}"):
            check_meta(tmp_path / "checkpoint.pt", {**ckpt["meta"], key: bad}, None)
    with pytest.raises(InputError, match="meta.run"):
        load_checkpoint(tmp_path / "checkpoint.pt", {"run": "another"})
