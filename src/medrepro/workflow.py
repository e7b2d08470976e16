"""Helpers the Snakefile uses to resolve runs, inputs and per-rule code hashes.

Kept here (not in the .smk files) so they are plain functions that the tests can call.
"""

from __future__ import annotations

import hashlib
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
    "scoliosis_audit": ["medrepro.report.audit", "medrepro.report.claims", "medrepro.report.leaderboard",
                        "medrepro.report.render", "medrepro.metrics", "medrepro.io.scoliosis"],
    "cf_synthesize": ["medrepro.synthetic.counterfactual", "medrepro.counterfactual.checksums",
                      "medrepro.counterfactual.parse", "medrepro.counterfactual.qc", "medrepro.counterfactual.pipeline"],
    "cf_verify_checksums": ["medrepro.counterfactual.checksums", "medrepro.counterfactual.pipeline"],
    "cf_qc": ["medrepro.counterfactual.qc", "medrepro.counterfactual.pipeline"],
    "cf_score": ["medrepro.counterfactual.score", "medrepro.counterfactual.parse", "medrepro.counterfactual.bootstrap",
                 "medrepro.metrics.bootstrap",
                 "medrepro.counterfactual.pipeline"],
    "cf_audit": ["medrepro.report.audit_counterfactual", "medrepro.report.claims", "medrepro.report.leaderboard",
                 "medrepro.report.render", "medrepro.metrics", "medrepro.counterfactual.pipeline"],
    "study_summary": ["medrepro.report.leaderboard", "medrepro.report.render", "medrepro.metrics"],
    "leaderboard": ["medrepro.report.leaderboard", "medrepro.report.render", "medrepro.metrics"],
}


# Jinja2 templates a rule renders: their hash is part of the rule's code param too.
RULE_TEMPLATES = {
    "leaderboard": ["leaderboard.md.j2"],
    "scoliosis_audit": ["audit_scoliosis.md.j2"],
    "cf_audit": ["audit_counterfactual.md.j2"],
}
TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "workflow" / "templates"


def rule_code(rule: str, extra: list[str] | None = None) -> dict:
    """Modules (and templates) a rule depends on, with one hash over all of them."""
    modules = sorted(set(BASE_MODULES + RULE_MODULES[rule] + (extra or [])))
    digest = code_hash(modules)
    templates = RULE_TEMPLATES.get(rule, [])
    if templates:
        h = hashlib.sha256(digest.encode())
        for name in templates:
            h.update((TEMPLATE_DIR / name).read_bytes())
        digest = h.hexdigest()
    return {"modules": modules, "templates": templates, "sha256": digest}


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


# --- scoliosis study: paths and resources of its rules ---------------------------------------

def sc_dir(config: dict) -> str:
    return results_path(config, "scoliosis")


def sc_synthetic(config: dict) -> bool:
    return study_cfg(config, "scoliosis").get("data", {}).get("source", "synthetic") == "synthetic"


def sc_split_file(config: dict, split: str) -> str:
    data = study_cfg(config, "scoliosis")["data"]
    name = data["splits"][split]
    if sc_synthetic(config):
        return f"{sc_dir(config)}/data/synthetic/{name}"
    return str(Path(data["real"]["split_dir"]) / name)


def sc_split_input(config: dict, split: str) -> str:
    """The split file itself for real data; the synthetic folder that holds it otherwise."""
    return f"{sc_dir(config)}/data/synthetic" if sc_synthetic(config) else sc_split_file(config, split)


def sc_data_roots(config: dict) -> dict:
    data = study_cfg(config, "scoliosis").get("data", {})
    if sc_synthetic(config):
        base = f"{sc_dir(config)}/data/synthetic"
        return {"pose_root": f"{base}/Scoliosis1K-pose-pkl", "sil_root": f"{base}/Scoliosis1K-sil-pkl"}
    real = data.get("real", {})
    missing = [k for k in ("pose_root", "split_dir") if not real.get(k)]
    if missing:
        raise KeyError(f"studies.scoliosis.data.real: set {missing} when data.source is real")
    return {"pose_root": real["pose_root"], "sil_root": real.get("sil_root")}


def sc_inputs(config: dict, run: str, seed: int) -> dict:
    """Inputs of a run's training / evaluation job (and of the resume check)."""
    rc = run_cfg(config, "scoliosis", run)
    d = sc_dir(config)
    out = {"manifest": f"{d}/data/manifest.json", "split": f"{d}/splits/{rc['split']}.json"}
    variant = variant_of(rc["input"])
    if variant:
        if variant not in study_cfg(config, "scoliosis").get("skeleton_maps", {}):
            raise KeyError(f"studies.scoliosis.runs.{run}.input: no skeleton_maps variant named {variant!r}")
        out["prep"] = f"{d}/prep/skeleton_maps/{variant}"
    if rc["model"] == "drf":
        out["pav"] = f"{d}/prep/pav/{rc['split']}/pav.npz"
    if rc.get("init_from"):
        out["init"] = f"{d}/runs/{rc['init_from']}/seed{init_seed(config, 'scoliosis', run, seed)}/checkpoint.pt"
    return out


def sc_resource(config: dict, run: str, key: str, default, attempt: int = 1):
    """A run's resource; runtime and memory grow with the retry attempt."""
    value = run_cfg(config, "scoliosis", run).get("resources", {}).get(key, default)
    return value * attempt if key in ("runtime", "mem_mb") else value


def sc_audit_inputs(config: dict) -> dict:
    d = sc_dir(config)
    runs = study_cfg(config, "scoliosis")["runs"]
    cfgs = {r: run_cfg(config, "scoliosis", r) for r in runs}
    return {
        "metrics": [f"{d}/runs/{r}/seed{s}/metrics.json" for r, s in run_seeds(config, "scoliosis")],
        "summaries": [f"{d}/runs/{r}/seed{s}/train_summary.json" for r, s in run_seeds(config, "scoliosis")],
        "splits": sorted({f"{d}/splits/{c['split']}.json" for c in cfgs.values()}),
        "pav_stats": sorted({f"{d}/prep/pav/{c['split']}/minmax_train.json" for c in cfgs.values() if c["model"] == "drf"}),
    }
