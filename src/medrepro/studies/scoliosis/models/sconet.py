"""ScoNet (silhouettes, 1 channel) and ScoNet-MT-ske (skeleton maps, 2 channels).

Set-level ResNet9 applied per frame, temporal max pooling, horizontal pooling into 16 parts,
SeparateFCs 512 -> 256 and SeparateBNNecks -> 3 logits per part. Input (N, C, T, 64, 64) with
values in [0, 255]; 10 px are cut from each side (-> 64 x 44) and values divided by 255, as
OpenGait's BaseSilCuttingTransform does to 64-wide frames (ShiqiYu/OpenGait, commit
0efafd4779f127fbce34f22aff301bd82e923da5, opengait/data/transform.py). Any other input shape is
refused, so frames that were already cut are not cut again.
"""

from __future__ import annotations

import torch
from torch import nn

from medrepro.errors import InputError
from medrepro.studies.scoliosis.models.common import ResNet9, SeparateBNNecks, SeparateFCs, horizontal_pooling, scaled

BASE_WIDTHS = (64, 128, 256, 512)
EMBED = 256
PARTS = 16
CUT = 10
SIZE = (64, 64)


class ScoNet(nn.Module):
    def __init__(self, in_channels: int = 1, n_classes: int = 3, width: float = 1.0, parts: int = PARTS):
        super().__init__()
        widths = [scaled(width, c) for c in BASE_WIDTHS]
        self.in_channels = in_channels
        self.parts = parts
        self.backbone = ResNet9(in_channels, widths)
        self.fcs = SeparateFCs(parts, widths[-1], scaled(width, EMBED))
        self.necks = SeparateBNNecks(parts, scaled(width, EMBED), n_classes)

    def check_input(self, x: torch.Tensor) -> None:
        """Refuse anything but (N, in_channels, T, 64, 64) uncut frames."""
        if x.ndim != 5 or x.shape[1] != self.in_channels or tuple(x.shape[3:]) != SIZE:
            raise InputError(None, f"{type(self).__name__} input", f"got shape {tuple(x.shape)}",
                             f"(N, {self.in_channels}, T, 64, 64): uncut 64 x 64 frames, the model cuts "
                             f"{CUT} px from each side itself")

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, 64, 64) uint8-range input -> part embeddings (N, D, parts)."""
        self.check_input(x)
        x = x[..., CUT:-CUT].float() / 255.0
        n, c, t, h, w = x.shape
        frames = x.permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w)
        feat = self.backbone(frames)
        feat = feat.reshape(n, t, *feat.shape[1:]).amax(dim=1)  # temporal max pooling
        return self.fcs(horizontal_pooling(feat, self.parts))

    def forward(self, x: torch.Tensor, pav: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.embed(x)
        return emb, self.necks(emb)
