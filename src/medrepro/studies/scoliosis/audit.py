"""Generated audit notes. Each study's note is built from its pipeline outputs only."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from medrepro.fsutil import write_text
from medrepro.studies.scoliosis.data import check_disjoint
from medrepro.studies.scoliosis.skeleton_maps import SkeletonMapParams
from medrepro.report.claims import claims_table, load_claims
from medrepro.report.summary import rank_study
from medrepro.report.render import fmt_ci, render

OPEN_CHOICES = {
    "canvas": "canvas size in px before cropping",
    "height_ratio": "body y-extent = canvas / height_ratio",
    "sigma": "Gaussian width (px on the canvas) for joints and limbs",
    "joint_weight": "multiplier of the joint channel",
    "limb_weight": "multiplier of the limb channel",
    "use_score": "Gaussian peak = keypoint confidence",
    "eps": "values below eps set to 0",
    "impute": "filling of missing keypoints across frames",
    "knn_k": "neighbours for KNN imputation",
    "align": "crop box shared by both channels or per channel",
    "representation": "joints kept",
    "out_size": "output side after area resize",
    "dtype": "stored dtype (quantization)",
}


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
    claim_rows = claims_table(load_claims(claims, "scoliosis"), ranked, run_cfgs, primary, desc["columns"], data_kind)

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
    resolved = {name: SkeletonMapParams.from_dict(dict(v)).__dict__ for name, v in variants.items()}
    used_variants = sorted({cfg["input"].split(".", 1)[1] for cfg in run_cfgs.values() if cfg["input"].startswith("skeleton_maps.")})

    text = render(
        "scoliosis/audit.md.j2", template_dir, desc=desc, primary=primary, data_kind=data_kind, chance=chance,
        stack=stack, resume=resume_result, claims=claim_rows, best=best, tied_with_best=tied_with_best,
        best_beats_chance=best_beats_chance,
        guided=guided, split_checks=split_checks, pav_checks=pav_checks, variants=resolved,
        used_variants=used_variants, open_choices=OPEN_CHOICES, study=study_config, by_run=by_run, fmt_ci=fmt_ci,
        ranked=ranked,
    )
    write_text(out_md, text)
    return text
