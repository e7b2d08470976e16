"""Counterfactual sensitivity of vision-language radiology-report models (the SpineFairBench
benchmark): bundle checksums, image QC, frozen report parsers, source-clustered bootstrap and
submission scoring. No training: each report model's scores feed the shared aggregation."""
