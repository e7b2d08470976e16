"""Counterfactual-fairness study: bundle checksums, image QC, frozen report parsers,
source-clustered bootstrap and submission scoring.

Submodules: :mod:`.checksums`, :mod:`.qc`, :mod:`.parse`, :mod:`.bootstrap`, :mod:`.score`.
"""

from medrepro.counterfactual.bootstrap import clustered_bootstrap_ci, paired_clustered_bootstrap_diff
from medrepro.counterfactual.checksums import (
    ChecksumMismatchError,
    ManifestError,
    parse_manifest,
    verify_manifest,
    write_manifest,
)
from medrepro.counterfactual.parse import (
    classify_refusal,
    label_jaccard,
    parse_labels,
    parse_recommendations,
    recommendation_changed,
)
from medrepro.counterfactual.qc import (
    QCThresholds,
    edge_map,
    edge_preservation,
    global_ssim,
    plot_qc,
    qc_pairs,
    qc_summary,
    to_gray01,
    windowed_ssim,
)
from medrepro.counterfactual.score import (
    load_submission,
    score_submission,
    write_per_pair_csv,
    write_score,
)

__all__ = [
    "ChecksumMismatchError", "ManifestError", "parse_manifest", "verify_manifest", "write_manifest",
    "QCThresholds", "to_gray01", "global_ssim", "edge_map", "edge_preservation", "windowed_ssim",
    "qc_pairs", "qc_summary", "plot_qc",
    "parse_labels", "label_jaccard", "parse_recommendations", "recommendation_changed", "classify_refusal",
    "clustered_bootstrap_ci", "paired_clustered_bootstrap_diff",
    "load_submission", "score_submission", "write_score", "write_per_pair_csv",
]
