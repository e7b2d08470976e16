"""The fracture study's networks: MONAI's 2D ``UNet`` for segmentation, and a dual-head variant
whose presence classifier reads the U-Net's bottleneck (global average pool, then a linear layer).

MONAI builds the U-Net recursively (``Sequential(down, SkipConnection(inner), up)``); the
bottleneck is the innermost ``SkipConnection``'s submodule, and a forward hook hands its output
to the presence head, so the U-Net itself is MONAI's, unchanged."""

from __future__ import annotations

import torch
from monai.networks.layers import SkipConnection
from monai.networks.nets import UNet

BASE_CHANNELS = (16, 32, 64, 128)


def scaled_channels(channels, width: float) -> tuple[int, ...]:
    return tuple(max(2, int(round(c * width))) for c in channels)


def bottleneck(unet: UNet) -> torch.nn.Module:
    """The innermost block of a MONAI ``UNet`` (its bottom layer)."""
    block = unet.model
    while True:
        skip = block[1]
        if not isinstance(skip, SkipConnection):
            raise TypeError("not a MONAI UNet layout: expected Sequential(down, SkipConnection, up)")
        if isinstance(skip.submodule, torch.nn.Sequential) and isinstance(skip.submodule[1], SkipConnection):
            block = skip.submodule
        else:
            return skip.submodule


class FractureUNet(torch.nn.Module):
    """(N, 1, H, W) radiographs -> (segmentation logits (N, 1, H, W), presence logits (N,) or None).

    ``presence_head``: add the classifier on the bottleneck (the dual-head variant)."""

    def __init__(self, channels=BASE_CHANNELS, width: float = 1.0, num_res_units: int = 1,
                 presence_head: bool = False):
        super().__init__()
        self.channels = scaled_channels(channels, width)
        self.unet = UNet(spatial_dims=2, in_channels=1, out_channels=1, channels=self.channels,
                         strides=(2,) * (len(self.channels) - 1), num_res_units=num_res_units)
        self.head = None
        self._features: torch.Tensor | None = None
        if presence_head:
            self.head = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                            torch.nn.Linear(self.channels[-1], 1))
            bottleneck(self.unet).register_forward_hook(self._keep)

    def _keep(self, module, inputs, output) -> None:
        self._features = output

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        seg = self.unet(x)
        if self.head is None:
            return seg, None
        presence = self.head(self._features)[:, 0]
        self._features = None
        return seg, presence


class FractureUNetPresence(FractureUNet):
    """The dual-head variant: the U-Net plus the presence classifier on its bottleneck."""

    def __init__(self, channels=BASE_CHANNELS, width: float = 1.0, num_res_units: int = 1):
        super().__init__(channels, width, num_res_units, presence_head=True)
