"""Cross-entropy with a logit scale and batch-all triplet loss over horizontal parts.

Written after OpenGait's released losses (ShiqiYu/OpenGait, commit
0efafd4779f127fbce34f22aff301bd82e923da5): ``opengait/modeling/losses/ce.py`` (CrossEntropyLoss),
``opengait/modeling/losses/triplet.py`` (TripletLoss) and ``opengait/modeling/loss_aggregator.py``
(each loss term is ``loss.mean() * loss_term_weight``).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

TRIPLET_REDUCTIONS = ("per_part", "pooled")


def part_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, scale: float,
                       class_weights: torch.Tensor | None = None, label_smoothing: float = 0.0) -> torch.Tensor:
    """logits (N, K, P); CE of ``scale * logits`` for every part, averaged over samples and parts.

    ``label_smoothing`` eps: the target is ``(1 - eps) * one_hot + eps / K`` for every part, as
    OpenGait's CrossEntropyLoss (ce.py: ``label_smooth=True, eps=0.1`` by default, logits cast to
    float and multiplied by ``scale`` = 16 in configs/sconet/sconet_scoliosis1k.yaml)."""
    n, k, p = logits.shape
    flat = (scale * logits.float()).permute(0, 2, 1).reshape(n * p, k)
    return F.cross_entropy(flat, labels.repeat_interleave(p), weight=class_weights,
                           label_smoothing=label_smoothing)


def part_triplet(emb: torch.Tensor, labels: torch.Tensor, margin: float,
                 reduction: str = "per_part") -> torch.Tensor:
    """Batch-all triplet loss per part on (N, D, P) embeddings, Euclidean distances.

    ``per_part`` (OpenGait's TripletLoss, triplet.py): for each part, the hinge
    ``relu(d(a, p) - d(a, n) + margin)`` over every anchor a, every p with a's label and every n
    with another label. As in the released ``Convert2Triplets`` the positives come from the label
    match matrix *with* its diagonal, so p = a (distance 0) is one of the positives. Each part's
    terms are averaged over its non-zero terms (``AvgNonZeroReducer``: 0 when there are none),
    then the parts are averaged (the loss aggregator's ``loss.mean()``).

    ``pooled`` (medrepro's earlier loss): positives exclude the anchor itself, and one mean over
    the non-zero terms of all parts together.
    """
    if reduction not in TRIPLET_REDUCTIONS:
        raise ValueError(f"triplet reduction {reduction!r}: expected one of {TRIPLET_REDUCTIONS}")
    x = emb.float().permute(2, 0, 1)  # (P, N, D)
    dist = torch.cdist(x, x)  # (P, N, N)
    same = labels[:, None] == labels[None, :]
    pos = same
    if reduction == "pooled":
        pos = same & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    valid = pos[:, :, None] & ~same[:, None, :]  # anchor, positive, negative
    terms = F.relu(dist[:, :, :, None] - dist[:, :, None, :] + margin) * valid
    if reduction == "pooled":
        return terms.sum() / (terms > 0).sum().clamp(min=1)
    per_part = terms.sum(dim=(1, 2, 3)) / (terms > 0).sum(dim=(1, 2, 3)).clamp(min=1)
    return per_part.mean()
