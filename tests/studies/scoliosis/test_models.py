import pytest
import torch

import medrepro.studies.scoliosis  # noqa: F401  (registers the models)
from medrepro.train.registry import build_model as _build, model_needs
from medrepro.studies.scoliosis.losses import part_cross_entropy, part_triplet


def build_model(name, channels, n_classes, width):
    return _build(name, in_channels=channels, n_classes=n_classes, width=width)


def test_models_declare_their_extra_inputs():
    assert model_needs("drf") == ("pav",)
    assert model_needs("sconet") == ()
    with pytest.raises(ValueError, match="unknown model"):
        model_needs("resnet")


@pytest.mark.parametrize("name,channels", [("sconet", 1), ("sconet", 2), ("drf", 2)])
def test_output_shapes(name, channels):
    torch.manual_seed(0)
    model = build_model(name, channels, 3, width=0.0625)
    x = torch.randint(0, 256, (4, channels, 7, 64, 64), dtype=torch.uint8)
    pav = torch.rand(4, 8, 3)
    emb, logits = model(x, pav)
    assert emb.shape == (4, 16, 16)  # D = 256 * width, 16 parts
    assert logits.shape == (4, 3, 16)


def test_full_width_matches_published_sizes():
    model = build_model("sconet", 2, 3, width=1.0)
    assert model.fcs.weight.shape == (16, 512, 256)
    assert model.necks.weight.shape == (16, 256, 3)


def test_drf_uses_pav():
    torch.manual_seed(0)
    model = build_model("drf", 2, 3, width=0.0625).eval()
    x = torch.randint(0, 256, (2, 2, 5, 64, 64), dtype=torch.uint8)
    e1, _ = model(x, torch.zeros(2, 8, 3))
    e2, _ = model(x, torch.ones(2, 8, 3))
    assert not torch.allclose(e1, e2)
    with pytest.raises(ValueError, match="PAV"):
        model(x, None)


def test_losses():
    labels = torch.tensor([0, 0, 1, 1])
    emb = torch.zeros(4, 8, 16)
    emb[2:] += 5.0  # classes far apart: no triplet violates the margin
    assert part_triplet(emb, labels, 0.2).item() == 0.0
    logits = torch.zeros(4, 3, 16)
    ce = part_cross_entropy(logits, labels, 16.0)
    assert ce.item() == pytest.approx(torch.log(torch.tensor(3.0)).item(), rel=1e-5)
