"""The fracture networks and trainer: MONAI's U-Net with a presence head on its bottleneck,
Dice + BCE training that learns a planted crack, thresholds chosen on validation (or flagged on
test) and saved with the checkpoint, flip TTA, and bounds on what a checkpoint may ask for."""

import numpy as np
import pytest
import torch

from medrepro.errors import InputError
from medrepro.studies.fracture.evaluate import check_meta, load_checkpoint, per_image_table
from medrepro.studies.fracture.model import FractureUNet, FractureUNetPresence, bottleneck
from medrepro.studies.fracture.thresholds import choose_presence_threshold, choose_segmentation_threshold
from medrepro.studies.fracture.trainer import FractureTrainer, ImageSet, predict, train_config
from medrepro.train.loop import fit

S = 32


def _images(n=48, seed=0):
    """Bright bars, a dark vertical crack on every third image (the mask)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.1, (n, 1, S, S)).astype(np.float32)
    y = np.zeros((n, 1, S, S), np.uint8)
    x[:, :, 10:22, :] += 1.0
    for i in range(0, n, 3):
        c = int(rng.integers(6, 26))
        x[i, 0, 10:22, c] -= 1.5
        y[i, 0, 10:22, c] = 1
    ids = [f"img{i:03d}" for i in range(n)]
    labels = y.reshape(n, -1).any(1).astype(np.uint8)
    split = {"train": ids[:30], "val": ids[30:39], "test": ids[39:]}
    return ImageSet(x, y, ids, labels), split


RUN = {"input": "p", "seeds": [0], "channels": [8, 16, 32], "width": 1.0, "iterations": 120, "batch_size": 8,
       "lr": 0.01, "eval_every": 40, "checkpoint_every": 40}


def test_the_presence_head_reads_the_bottleneck():
    m = FractureUNetPresence(channels=(8, 16, 32))
    seg, presence = m(torch.zeros(3, 1, S, S))
    assert seg.shape == (3, 1, S, S) and presence.shape == (3,)
    assert m.head[2].in_features == m.channels[-1]
    assert FractureUNet(channels=(8, 16, 32))(torch.zeros(1, 1, S, S))[1] is None
    assert bottleneck(m.unet) is not None


def test_thresholds_by_hand():
    assert choose_presence_threshold(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == 0.35
    truth = np.zeros((2, 4, 4), bool)
    truth[0, 0, :2] = True
    p = np.zeros((2, 4, 4))
    p[0, 0, :2] = 0.3
    best, curve = choose_segmentation_threshold(p, truth)
    assert best == 0.05 and curve[0.3] == pytest.approx(1.0) and curve[0.35] == pytest.approx(1e-6 / 2.000001)


def test_training_learns_the_crack_and_saves_thresholds_chosen_on_val(tmp_path):
    from medrepro.studies.fracture.thresholds import choose_thresholds

    images, split = _images()
    cfg = train_config(RUN, 0)
    trainer = FractureTrainer(cfg, images, split)
    summary = fit(trainer, tmp_path, tmp_path / "c.pt", tmp_path / "l.jsonl", tmp_path / "s.json",
                  meta={"run": "r", "input": "p"})
    assert summary["loss_last"] < summary["loss_first"]
    model = trainer.build_model()
    model.load_state_dict(torch.load(tmp_path / "c.pt", weights_only=True)["state_dict"])
    prob, head = predict(model, images, split["val"], torch.device("cpu"))
    th = choose_thresholds(prob, images.y[images.rows(split["val"]), 0], head, "max", "val")
    assert th["chosen_on"] == "val" and 0.05 <= th["segmentation"] <= 0.95
    test_prob, _ = predict(model, images, split["test"], torch.device("cpu"))
    table = per_image_table(split["test"], test_prob, None, images.y[images.rows(split["test"]), 0], th)
    pos = table[table["label"] == 1]
    dice = (2 * pos["tp"] + 1e-6) / (pos["p"] + pos["t"] + 1e-6)
    assert dice.mean() > 0.5


def test_flip_tta_is_the_mean_of_the_two_probabilities():
    images, split = _images(n=6)
    model = FractureUNet(channels=(4, 8, 16)).eval()
    plain, _ = predict(model, images, split["train"][:2], torch.device("cpu"), tta=False)
    both, _ = predict(model, images, split["train"][:2], torch.device("cpu"), tta=True)
    with torch.no_grad():
        flipped = torch.sigmoid(model(torch.from_numpy(images.x[:2]).flip(-1))[0]).flip(-1)[:, 0].numpy()
    assert both == pytest.approx((plain + flipped) / 2, abs=1e-6)


def test_a_presence_score_the_model_cannot_give_is_refused():
    with pytest.raises(InputError, match="presence_score"):
        train_config({**RUN, "presence_score": "head"}, 0)
    assert train_config({**RUN, "model": "unet_presence", "presence_score": "head"}, 0).presence_score == "head"


def test_checkpoint_bounds_and_thresholds_are_checked(tmp_path):
    good = {"model": "unet", "channels": [8, 16, 32], "width": 1.0, "num_res_units": 1,
            "thresholds": {"segmentation": 0.5, "presence": 0.3}, "run": "r"}
    check_meta(tmp_path / "c.pt", good, {"run": "r"})
    for key, bad in (("channels", [10 ** 6, 2]), ("width", 99.0), ("model", "builtins.eval"), ("thresholds", None)):
        with pytest.raises(InputError, match=f"meta.{key}"):
            check_meta(tmp_path / "c.pt", {**good, key: bad}, None)
    with pytest.raises(InputError, match="meta.run"):
        check_meta(tmp_path / "c.pt", good, {"run": "other"})
    assert load_checkpoint is not None
