"""Building blocks shared by ScoNet and DRF (OpenGait-style set-level ResNet9)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.down = None
        if stride != 1 or c_in != c_out:
            self.down = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.down is None else self.down(x)))


class ResNet9(nn.Module):
    """Conv stem + one BasicBlock per stage, channels ``widths``, strides [1, 2, 2, 1], no max-pool."""

    def __init__(self, in_channels: int, widths: list[int], strides=(1, 2, 2, 1)):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()
        )
        layers, c = [], widths[0]
        for w, s in zip(widths, strides):
            layers.append(BasicBlock(c, w, s))
            c = w
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.stem(x))


class SeparateFCs(nn.Module):
    """One linear map per horizontal part: (N, C, P) -> (N, D, P)."""

    def __init__(self, parts: int, c_in: int, c_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(parts, c_in, c_out))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("ncp,pcd->ndp", x, self.weight)


class SeparateBNNecks(nn.Module):
    """BatchNorm over all parts' features, then one classifier per part: (N, D, P) -> (N, K, P)."""

    def __init__(self, parts: int, c_in: int, n_classes: int):
        super().__init__()
        self.bn = nn.BatchNorm1d(c_in * parts)
        self.weight = nn.Parameter(torch.empty(parts, c_in, n_classes))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, d, p = x.shape
        feat = self.bn(x.reshape(n, d * p)).reshape(n, d, p)
        feat = F.normalize(feat, dim=1)
        return torch.einsum("ndp,pdk->nkp", feat, F.normalize(self.weight, dim=1))


def horizontal_pooling(x: torch.Tensor, parts: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, parts): mean + max over each horizontal strip."""
    n, c = x.shape[:2]
    strips = x.reshape(n, c, parts, -1)
    return strips.mean(-1) + strips.amax(-1)


def scaled(width: float, channels: int) -> int:
    return max(4, int(round(channels * width)))

