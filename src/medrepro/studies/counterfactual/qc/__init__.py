"""Counterfactual image QC: the preprocessing rule of the counterfactual benchmark.

Reproduces the QC released with the benchmark (the released code, not the benchmark's
unreleased production QC). For each (source, counterfactual) pair, both images read as the
released QC reads them (8-bit ``L`` through Pillow, ``float32`` in [0, 1], the counterfactual
resized to the source's size with Pillow's default filter; see :mod:`.images`):

* global SSIM (one window over the whole image, population statistics) >= 0.70;
* edge preservation (central-difference edges, 3x3 dilation; 1.0 for a source without
  edges) >= 0.276;
* LPIPS (AlexNet) <= 0.40, under the ``lpips`` policy ``off | optional | required``;
* the windowed SSIM (scikit-image defaults) is an extra column that never gates.

Modules: :mod:`.images` (loading, grayscale, resizing), :mod:`.kernels` (the metrics),
:mod:`.lpips` (LPIPS policy and scorer), :mod:`.gates` (thresholds, pass/fail, summary),
:mod:`.table` (the per-pair QC table of a bundle) and :mod:`.plot` (the QC figure).
"""

from __future__ import annotations

from medrepro.studies.counterfactual.qc.gates import PUBLISHED_COUNTS, QCThresholds, qc_summary
from medrepro.studies.counterfactual.qc.images import (SIXTEEN_BIT_MODES, load_gray01, load_resized_gray01,
                                                       resize_to, to_gray01)
from medrepro.studies.counterfactual.qc.kernels import (
    C1,
    C2,
    dilate3x3,
    edge_map,
    edge_preservation,
    edge_preservation_batch,
    global_ssim,
    global_ssim_batch,
    qc_arrays,
    windowed_ssim,
    windowed_ssim_batch,
)
from medrepro.studies.counterfactual.qc.lpips import LPIPS_POLICIES, LpipsFn, make_lpips_fn
from medrepro.studies.counterfactual.qc.plot import plot_qc
from medrepro.studies.counterfactual.qc.table import PAIR_COLUMNS, QC_COLUMNS, qc_pairs, resolve_path

__all__ = [
    "C1",
    "C2",
    "LPIPS_POLICIES",
    "PUBLISHED_COUNTS",
    "PAIR_COLUMNS",
    "QCThresholds",
    "QC_COLUMNS",
    "LpipsFn",
    "to_gray01",
    "load_gray01",
    "load_resized_gray01",
    "resize_to",
    "SIXTEEN_BIT_MODES",
    "global_ssim",
    "global_ssim_batch",
    "edge_map",
    "dilate3x3",
    "edge_preservation",
    "edge_preservation_batch",
    "windowed_ssim",
    "windowed_ssim_batch",
    "qc_arrays",
    "make_lpips_fn",
    "qc_pairs",
    "qc_summary",
    "plot_qc",
    "resolve_path",
]
