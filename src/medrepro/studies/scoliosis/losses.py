"""Cross-entropy with a logit scale and batch-all triplet loss over horizontal parts."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def part_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, scale: float,
                       class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """logits (N, K, P); CE of ``scale * logits`` for every part, averaged."""
    n, k, p = logits.shape
    flat = (scale * logits).permute(0, 2, 1).reshape(n * p, k)
    return F.cross_entropy(flat.float(), labels.repeat_interleave(p), weight=class_weights)


def part_triplet(emb: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Batch-all triplet loss per part on (N, D, P) embeddings; mean over non-zero terms."""
    x = emb.float().permute(2, 0, 1)  # (P, N, D)
    dist = torch.cdist(x, x)  # (P, N, N)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    pos = same & ~eye
    neg = ~same
    valid = pos[:, :, None] & neg[:, None, :]  # anchor, positive, negative
    terms = F.relu(dist[:, :, :, None] - dist[:, :, None, :] + margin) * valid
    nonzero = (terms > 0).sum()
    return terms.sum() / nonzero.clamp(min=1)
