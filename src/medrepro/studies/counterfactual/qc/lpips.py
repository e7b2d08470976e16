"""LPIPS for the counterfactual QC: the ``lpips`` policy and the optional scorer.

LPIPS (AlexNet) gates at <= 0.40 (:class:`.gates.QCThresholds`), governed by the ``lpips``
policy (:data:`LPIPS_POLICIES`):

- ``off``: the column is empty, ``pass_lpips`` is NA and LPIPS never gates;
- ``optional``: LPIPS is computed if the ``lpips`` package and its weights load; otherwise
  ``lpips_status`` says ``unavailable: <why>`` and LPIPS does not gate;
- ``required``: as the released benchmark QC does, a pair whose LPIPS is missing FAILS
  (``pass_lpips`` False, ``qc_fail_reason`` says ``lpips unavailable (required)``).

The ``lpips`` package and its AlexNet weights cannot be installed on machines without
access to model hubs, so ``optional`` is the practical default.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["LPIPS_POLICIES", "LpipsFn", "make_lpips_fn"]

LPIPS_POLICIES = ("required", "optional", "off")

LpipsFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def make_lpips_fn(net: str = "alex") -> tuple[LpipsFn | None, str]:
    """Try to build an LPIPS scorer. Returns ``(fn, "computed")`` or ``(None, reason)``.

    ``fn(src (H, W), cfs (n, H, W)) -> (n,)`` distances; images go to 3 channels in [-1, 1].
    """
    try:
        import lpips  # type: ignore[import-not-found]
        import torch
    except Exception as e:  # ImportError, or a broken torch install
        return None, f"unavailable: lpips package not importable ({type(e).__name__}: {e})"
    try:
        model = lpips.LPIPS(net=net, verbose=False)
        model.eval()
    except Exception as e:  # weights cannot be downloaded
        return None, f"unavailable: LPIPS/{net} weights not loadable ({type(e).__name__}: {e})"

    def fn(src: np.ndarray, cfs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            s = torch.from_numpy(np.ascontiguousarray(src, dtype=np.float32))
            c = torch.from_numpy(np.ascontiguousarray(cfs, dtype=np.float32))
            s3 = (s * 2 - 1)[None, None].expand(len(cfs), 3, *src.shape)
            c3 = (c * 2 - 1)[:, None].expand(-1, 3, -1, -1)
            return model(s3, c3).reshape(-1).cpu().numpy().astype(np.float64)

    return fn, "computed"
