"""Model registry: config name -> (module, constructor)."""

from __future__ import annotations

from torch import nn

MODEL_MODULES = {
    "sconet": ["medrepro.models.common", "medrepro.models.sconet"],
    "drf": ["medrepro.models.common", "medrepro.models.sconet", "medrepro.models.drf"],
}


def build_model(name: str, in_channels: int, n_classes: int, width: float) -> nn.Module:
    if name == "sconet":
        from medrepro.models.sconet import ScoNet

        return ScoNet(in_channels, n_classes, width)
    if name == "drf":
        from medrepro.models.drf import DRF

        return DRF(in_channels, n_classes, width)
    raise ValueError(f"unknown model {name!r}; expected one of {sorted(MODEL_MODULES)}")
