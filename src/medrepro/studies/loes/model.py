"""The 3D residual regressor of the loes study: MONAI's ``Regressor`` (residual units, instance
norm, PReLU, stride-2 stages, a linear head to one output), with a width multiplier."""

from __future__ import annotations

import numpy as np
import torch
from monai.networks.nets import Regressor

from medrepro.errors import InputError

#: The reference lab's four stages (spec: "4 stages, strides 2").
BASE_CHANNELS = (16, 32, 64, 128)


def scaled_channels(channels: tuple[int, ...] | list[int], width: float) -> tuple[int, ...]:
    """``channels`` times ``width``, rounded, at least 2 per stage."""
    return tuple(max(2, int(round(c * width))) for c in channels)


class LoesRegressor(torch.nn.Module):
    """MONAI ``Regressor`` on (N, 1, X, Y, Z) volumes; returns (N,) predicted scores.

    ``shape``: the volume shape the network is built for (the normalization variant's crop
    shape); ``channels`` and ``width``: the stages' channels before and after the multiplier."""

    def __init__(self, shape: tuple[int, int, int] | list[int], channels: tuple[int, ...] | list[int] = BASE_CHANNELS,
                 width: float = 1.0, num_res_units: int = 2):
        super().__init__()
        self.channels = scaled_channels(channels, width)
        final = [int(n) for n in shape]
        for _ in self.channels:  # a 3x3x3 convolution with stride 2 and padding 1 per stage
            final = [(n - 1) // 2 + 1 for n in final]
        if int(np.prod(final)) <= 1:
            raise InputError(None, "channels", f"{len(self.channels)} stride-2 stages reduce a {tuple(shape)} volume "
                             f"to {tuple(final)}", "fewer stages or a larger normalization shape (instance norm "
                             "needs more than one voxel after the last stage)")
        self.net = Regressor(in_shape=(1, *[int(s) for s in shape]), out_shape=(1,), channels=self.channels,
                             strides=(2,) * len(self.channels), num_res_units=num_res_units,
                             norm="INSTANCE", act="PRELU")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[:, 0]
