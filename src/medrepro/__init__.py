"""medrepro: a reproducibility pipeline for medical-imaging ML studies."""

__version__ = "0.1.0"
