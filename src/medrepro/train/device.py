"""Device choice shared by training and evaluation."""

from __future__ import annotations

import torch


def choose_device(requested: str = "auto") -> torch.device:
    """CUDA where torch sees a GPU (even if SLURM only set CUDA_VISIBLE_DEVICES), else CPU.

    ``cpu`` forces the CPU; ``cuda`` fails when torch sees no GPU."""
    if requested == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if requested == "cuda":
        raise RuntimeError("device 'cuda' requested but torch sees no GPU")
    return torch.device("cpu")
