"""Generated audit notes. Each study's note is built from its pipeline outputs only."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from medrepro.fsutil import write_text
from medrepro.studies.scoliosis.data import check_disjoint
from medrepro.studies.scoliosis.layout import NAME, variant_of
from medrepro.studies.scoliosis.skeleton_maps import SkeletonMapParams
from medrepro.studies.scoliosis.skeleton_maps.params import MEANINGS, PRESETS, REPRESENTATION_JOINTS
from medrepro.report.claims import claims_table, load_claims
from medrepro.report.summary import rank_study
from medrepro.report.render import fmt_ci, render



#: What a claim in config/claims.yaml is about (its `match` block) and the values each may take;
#: null means the source does not state it. Runs get the same attributes from run_attributes.
CLAIM_ATTRIBUTES = {
    "model": ("sconet", "drf"),
    "input": ("silhouette", *REPRESENTATION_JOINTS),
    "split": ("112", "114", "118", "1116"),
    "selection": ("val", "last", "test"),
    "init_from": (True, False),
}


def run_attributes(run_cfg: dict, study_config: dict) -> dict:
    """A run's attributes in the terms of CLAIM_ATTRIBUTES: its model, its input representation
    (silhouette, or the `representation` of its skeleton-map variant), split, checkpoint
    selection and whether it starts from another run's checkpoint. ``run_cfg`` is the run's
    config merged over train_defaults."""
    variant = variant_of(run_cfg["input"])
    if variant is None:
        representation = run_cfg["input"]
    else:
        params = dict(study_config.get("skeleton_maps", {}).get(variant, {}))
        representation = SkeletonMapParams.from_dict(params).representation
    return {"model": run_cfg["model"], "input": representation, "split": str(run_cfg["split"]),
            "selection": run_cfg.get("selection", "val"),  # the training loop's default
            "init_from": bool(run_cfg.get("init_from"))}


def load_scoliosis_claims(path: Path, metrics: list[str]) -> list[dict]:
    """The study's claims; each must carry every metric of ``metrics`` and state every attribute."""
    return load_claims(path, NAME, metrics=metrics, attributes=CLAIM_ATTRIBUTES)


def _counts(counts: dict) -> str:
    return ", ".join(f"{label} {n}" for label, n in sorted(counts.items()))


def write_scoliosis_audit(metrics: list[Path], summaries: list[Path], splits: list[Path], pav_stats: list[Path],
                          resume: Path, claims: Path, study_config: dict, descriptor: dict, out_md: Path,
                          summary_csv: Path, bootstrap: dict, template_dir: Path | None = None) -> str:
    desc = descriptor
    primary = desc["primary"]
    df = pd.read_csv(summary_csv, dtype={"split": str, "lineage_id": str})
    iterations, boot_seed = int(bootstrap["iterations"]), int(bootstrap["seed"])
    ranked = rank_study(df, desc, iterations, boot_seed)
    by_run = {r["run"]: r for r in ranked}
    run_cfgs = {run: {**study_config.get("train_defaults", {}), **cfg} for run, cfg in study_config["runs"].items()}
    data_kind = study_config.get("data", {}).get("source", "synthetic")
    chance = desc.get("chance")

    # 1. Is the stack working?
    stack = []
    for m_path, s_path in zip(metrics, summaries):
        m = json.loads(Path(m_path).read_text())
        s = json.loads(Path(s_path).read_text())
        rep = m["details"]["val_reproduction"]
        est = m["metrics"][primary]
        stack.append({
            "run": m["run"], "seed": m["seed"], "loss": f"{s['loss_first']:.3f} -> {s['loss_last']:.3f}",
            "loss_down": s["loss_last"] < s["loss_first"],
            "reproduced": rep["max_abs_diff"] <= 1e-6, "repro_diff": rep["max_abs_diff"],
            "primary": fmt_ci(est["estimate"], (est["ci_low"], est["ci_high"])),
            "beats_chance": chance is not None and est["ci_low"] > chance,
            "device": s["device"],
        })
    resume_result = json.loads(Path(resume).read_text())

    # 2. Claims
    attrs = {run: run_attributes(cfg, study_config) for run, cfg in run_cfgs.items()}
    claim_rows = claims_table(load_scoliosis_claims(claims, desc["columns"]), ranked, attrs, desc["columns"], data_kind)

    # 3. Strongest practical model: the best run not selected on test, ties among those runs.
    clean_df = df[~df["test_guided"].astype(bool)]
    clean = rank_study(clean_df, desc, iterations, boot_seed) if len(clean_df) else []
    best = clean[0] if clean else None
    tied_with_best = [r["run"] for r in clean[1:] if r["vs_leader"] == "tied"]
    best_beats_chance = best is not None and chance is not None and best["ci"][primary][0] > chance

    # 4. Caveats
    guided = [r["run"] for r in ranked if r["test_guided"]]
    split_checks = []
    for p in splits:
        sp = json.loads(Path(p).read_text())
        check_disjoint({k: sp[k] for k in ("train", "val", "test")}, str(p))
        split_checks.append({"split": Path(p).stem, "file": sp.get("split_file"),
                             "counts": {k: _counts(v) for k, v in sp["counts"].items()}})
    pav_checks = []
    for p in pav_stats:
        st = json.loads(Path(p).read_text())
        sp = json.loads((Path(p).parents[3] / "splits" / f"{Path(p).parent.name}.json").read_text())
        pav_checks.append({"split": Path(p).parent.name, "n_fit": st["n_train"], "n_train": len(sp["train"]),
                           "ok": st["n_train"] == len(sp["train"])})

    # 5. Open preprocessing choices
    variants = study_config.get("skeleton_maps", {})
    params = {name: SkeletonMapParams.from_dict(dict(v)) for name, v in variants.items()}
    resolved = {name: asdict(p) for name, p in params.items()}
    overrides = {name: p.differs_from(p.preset) for name, p in params.items()}
    presets = {name: asdict(SkeletonMapParams.of_preset(name)) for name in PRESETS}
    used_variants = sorted({cfg["input"].split(".", 1)[1] for cfg in run_cfgs.values() if cfg["input"].startswith("skeleton_maps.")})

    text = render(
        "scoliosis/audit.md.j2", template_dir, desc=desc, primary=primary, data_kind=data_kind, chance=chance,
        stack=stack, resume=resume_result, claims=claim_rows, best=best, tied_with_best=tied_with_best,
        best_beats_chance=best_beats_chance,
        guided=guided, split_checks=split_checks, pav_checks=pav_checks, variants=resolved,
        used_variants=used_variants, open_choices=MEANINGS, presets=presets, overrides=overrides, study=study_config, by_run=by_run, fmt_ci=fmt_ci,
        ranked=ranked,
    )
    write_text(out_md, text)
    return text
