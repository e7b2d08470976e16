"""The loes study's generated audit note: split and normalization leakage checks, the runs
ranked with CIs, the model cards' paired comparisons and the lab's reported numbers beside
comparable runs. Built from pipeline outputs only."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from medrepro.fsutil import write_text
from medrepro.report.claims import claims_table, load_claims
from medrepro.report.render import fmt_ci, render
from medrepro.report.summary import rank_study
from medrepro.studies.loes.layout import NAME
from medrepro.studies.loes.split import SIDES, check_disjoint

#: What a claim in config/claims.yaml is about (its `match` block); null: the source does not say.
CLAIM_ATTRIBUTES = {
    "model": ("loes_regressor",),
    "scheduler": ("onecycle", "cosine", "constant", "multistep"),
    "loss": ("mse", "weighted_mse"),
    "selection": ("val", "last", "test"),
}
CLAIM_METRICS = ("standardized_rmse", "pearson_r")


def run_attributes(run_cfg: dict) -> dict:
    """A run's attributes in the terms of CLAIM_ATTRIBUTES (defaults are the trainer's)."""
    return {"model": run_cfg.get("model", "loes_regressor"), "scheduler": run_cfg.get("schedule", "onecycle"),
            "loss": run_cfg.get("loss", "mse"), "selection": run_cfg.get("selection", "last")}


def load_loes_claims(path: Path) -> list[dict]:
    return load_claims(path, NAME, metrics=CLAIM_METRICS, attributes=CLAIM_ATTRIBUTES)


def leakage_checks(splits: list[Path], landmarks: list[Path], manifest: Path, study_config: dict) -> dict:
    """Every split's subjects on one side (re-checked from the split files); every Nyul landmark
    file fitted on TRAIN scans of its split only."""
    scans = {s["unit_id"]: s for s in json.loads(Path(manifest).read_text())["scans"]}
    split_rows = []
    by_name = {}
    for p in splits:
        sp = json.loads(Path(p).read_text())
        by_name[Path(p).stem] = sp
        check = check_disjoint({k: sp[k] for k in SIDES}, scans, Path(p))
        split_rows.append({"split": Path(p).stem, "mode": sp["mode"], "n_subjects": check["n_subjects"],
                           "n_scans": check["n_scans"], "excluded": len(sp.get("excluded", []))})
    nyul_rows = []
    variants = study_config.get("normalization", {})
    for p in landmarks:
        lm = json.loads(Path(p).read_text())
        variant = Path(p).name.split(".")[0]
        fit_split = variants.get(variant, {}).get("fit_split")
        sp = by_name.get(fit_split)
        fitted = set(lm["fitted_on"])
        outside = sorted(fitted - set(sp["train"])) if sp else sorted(fitted)
        nyul_rows.append({"variant": variant, "split": fit_split, "n_fitted": len(fitted),
                          "n_train": len(sp["train"]) if sp else None, "outside_train": outside,
                          "ok": sp is not None and not outside and fitted == set(sp["train"])})
    return {"splits": split_rows, "nyul": nyul_rows}


def write_loes_audit(metrics: list[Path], summaries: list[Path], splits: list[Path], landmarks: list[Path],
                     cards: list[Path], manifest: Path, claims: Path, study_config: dict, descriptor: dict,
                     summary_csv: Path, bootstrap: dict, out_md: Path, template_dir: Path | None = None) -> str:
    desc, primary = descriptor, descriptor["primary"]
    df = pd.read_csv(summary_csv, dtype={"split": str, "lineage_id": str})
    ranked = rank_study(df, desc, int(bootstrap["iterations"]), int(bootstrap["seed"]))
    data_kind = study_config.get("data", {}).get("source", "synthetic")
    run_cfgs = {run: {**study_config.get("train_defaults", {}), **cfg} for run, cfg in study_config["runs"].items()}

    stack = []
    for m_path, s_path in zip(metrics, summaries):
        m, s = json.loads(Path(m_path).read_text()), json.loads(Path(s_path).read_text())
        est = m["metrics"][primary]
        rep = m["details"]["val_reproduction"]["max_abs_diff"]
        stack.append({"run": m["run"], "seed": m["seed"], "device": s["device"],
                      "loss": f"{s['loss_first']:.3f} -> {s['loss_last']:.3f}",
                      "loss_down": s["loss_last"] < s["loss_first"],
                      "reproduced": rep is not None and rep <= 1e-5, "repro_diff": rep,
                      "primary": fmt_ci(est["estimate"], (est["ci_low"], est["ci_high"])),
                      "below_chance": est["ci_high"] < desc.get("chance", 1.0),
                      "epochs": s.get("epochs"), "steps": s["iterations"]})
    comparisons = []
    for p in cards:
        card = json.loads(Path(p).read_text())
        if card.get("comparison"):
            comparisons.append({"run": Path(p).stem, "compare_to": card["meta"].get("compare_to"), **card["comparison"]})
    attrs = {run: run_attributes(cfg) for run, cfg in run_cfgs.items()}
    claim_rows = claims_table(load_loes_claims(claims), ranked, attrs, list(CLAIM_METRICS), data_kind)
    text = render("loes/audit.md.j2", template_dir, desc=desc, primary=primary, data_kind=data_kind, stack=stack,
                  ranked=ranked, checks=leakage_checks(splits, landmarks, manifest, study_config),
                  comparisons=comparisons, claims=claim_rows, fmt_ci=fmt_ci,
                  guided=[r["run"] for r in ranked if r["test_guided"]],
                  external=[r["run"] for r in ranked if r.get("external")])
    write_text(out_md, text)
    return text
