"""DRF: ScoNet-MT-ske with PAV-Guided Attention (PGA) after SeparateFCs.

PGA as in the public re-implementation (the paper's equations are not public): a channel gate
sigmoid(Linear(24 -> D)) of the flattened (8, 3) PAV and a part gate sigmoid(Conv1d(3 -> 1))
over the 8 left/right pairs, interpolated to the 16 parts; the part features are multiplied by
both gates.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from medrepro.studies.scoliosis.models.sconet import ScoNet


class PGA(nn.Module):
    def __init__(self, dim: int, parts: int, pairs: int = 8, measures: int = 3):
        super().__init__()
        self.parts = parts
        self.channel = nn.Linear(pairs * measures, dim)
        self.part = nn.Conv1d(measures, 1, kernel_size=1)

    def forward(self, feat: torch.Tensor, pav: torch.Tensor) -> torch.Tensor:
        n = pav.shape[0]
        pav = pav.to(feat.dtype)
        channel_gate = torch.sigmoid(self.channel(pav.reshape(n, -1))).unsqueeze(-1)  # (N, D, 1)
        part_gate = torch.sigmoid(self.part(pav.transpose(1, 2)))  # (N, 1, 8)
        part_gate = F.interpolate(part_gate, size=self.parts, mode="linear", align_corners=False)
        return feat * channel_gate * part_gate


class DRF(ScoNet):
    def __init__(self, in_channels: int = 2, n_classes: int = 3, width: float = 1.0):
        super().__init__(in_channels, n_classes, width)
        self.pga = PGA(self.fcs.weight.shape[2], self.parts)

    def forward(self, x: torch.Tensor, pav: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if pav is None:
            raise ValueError("DRF needs the PAV of each sequence")
        emb = self.pga(self.embed(x), pav)
        return emb, self.necks(emb)
