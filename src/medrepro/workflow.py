"""Helpers the Snakefile uses to resolve runs, inputs and per-rule code hashes.

Kept here (not in the .smk files) so they are plain functions that the tests can call.
"""

from __future__ import annotations

from pathlib import Path

from medrepro.models import MODEL_MODULES
from medrepro.provenance import code_hash

# The medrepro modules each kind of job depends on. The hash of exactly these files is passed
# to the rule as a param, so Snakemake reruns a job when (and only when) its code changed.
BASE_MODULES = ["medrepro.errors", "medrepro.fsutil", "medrepro.provenance", "medrepro.smk"]
RULE_MODULES = {
    "scoliosis_synthesize": ["medrepro.synthetic.scoliosis"],
    "scoliosis_manifest": ["medrepro.io.scoliosis", "medrepro.io.safe_pickle"],
    "scoliosis_split": ["medrepro.io.scoliosis", "medrepro.io.safe_pickle"],
    "scoliosis_skeleton_maps": ["medrepro.preprocess.skeleton_maps", "medrepro.io.scoliosis", "medrepro.io.safe_pickle"],
    "scoliosis_pav": ["medrepro.preprocess.pav", "medrepro.io.scoliosis", "medrepro.io.safe_pickle"],
    "scoliosis_figure": ["medrepro.report.figures", "medrepro.preprocess.skeleton_maps", "medrepro.io.scoliosis"],
    "scoliosis_train": ["medrepro.train", "medrepro.metrics", "medrepro.io.scoliosis", "medrepro.io.safe_pickle"],
    "scoliosis_evaluate": ["medrepro.train", "medrepro.metrics", "medrepro.io.scoliosis", "medrepro.io.safe_pickle"],
    "scoliosis_resume_check": ["medrepro.train", "medrepro.metrics", "medrepro.io.scoliosis", "medrepro.io.safe_pickle"],
    "scoliosis_audit": ["medrepro.report", "medrepro.metrics"],
    "cf_synthesize": ["medrepro.synthetic.counterfactual", "medrepro.counterfactual.checksums",
                      "medrepro.counterfactual.parse", "medrepro.counterfactual.qc", "medrepro.counterfactual.pipeline"],
    "cf_verify_checksums": ["medrepro.counterfactual.checksums", "medrepro.counterfactual.pipeline"],
    "cf_qc": ["medrepro.counterfactual.qc", "medrepro.counterfactual.pipeline"],
    "cf_score": ["medrepro.counterfactual.score", "medrepro.counterfactual.parse", "medrepro.counterfactual.bootstrap",
                 "medrepro.counterfactual.pipeline"],
    "cf_audit": ["medrepro.report", "medrepro.metrics"],
    "study_summary": ["medrepro.report", "medrepro.metrics"],
    "leaderboard": ["medrepro.report", "medrepro.metrics"],
}


def rule_code(rule: str, extra: list[str] | None = None) -> dict:
    modules = sorted(set(BASE_MODULES + RULE_MODULES[rule] + (extra or [])))
    return {"modules": modules, "sha256": code_hash(modules)}


def study_cfg(config: dict, study: str) -> dict:
    return config["studies"][study]


def enabled_studies(config: dict) -> list[str]:
    return [s for s, c in config["studies"].items() if c.get("enabled", True)]


def run_cfg(config: dict, study: str, run: str) -> dict:
    """A run's full training config: the study's train_defaults overridden by the run's keys."""
    sc = study_cfg(config, study)
    if run not in sc["runs"]:
        raise KeyError(f"studies.{study}.runs: no run named {run!r}; known: {sorted(sc['runs'])}")
    merged = {**sc.get("train_defaults", {}), **sc["runs"][run]}
    merged["resources"] = {**sc.get("train_defaults", {}).get("resources", {}), **sc["runs"][run].get("resources", {})}
    init = merged.get("init_from")
    if init is not None and init not in sc["runs"]:
        raise KeyError(f"studies.{study}.runs.{run}.init_from: no run named {init!r}")
    return merged


def run_seeds(config: dict, study: str) -> list[tuple[str, int]]:
    sc = study_cfg(config, study)
    return [(run, seed) for run in sc["runs"] for seed in run_cfg(config, study, run)["seeds"]]


def init_seed(config: dict, study: str, run: str, seed: int) -> int:
    """The seed of the init_from run to start from: the same seed if it has it, else its first."""
    parent = run_cfg(config, study, run_cfg(config, study, run)["init_from"])
    return seed if seed in parent["seeds"] else parent["seeds"][0]


def train_code(config: dict, study: str, run: str) -> dict:
    """Code hash for a training/evaluation job: trainer + exactly its model's modules (and those
    of the run it starts from)."""
    extra, current = [], run
    while current is not None:
        rc = run_cfg(config, study, current)
        extra += MODEL_MODULES[rc["model"]]
        if rc["input"].startswith("skeleton_maps"):
            extra.append("medrepro.preprocess.skeleton_maps")
        current = rc.get("init_from")
    return rule_code("scoliosis_train", extra)


def variant_of(input_name: str) -> str | None:
    return input_name.split(".", 1)[1] if input_name.startswith("skeleton_maps.") else None


def results_path(config: dict, *parts: str) -> str:
    return str(Path(config["results"], *parts))
