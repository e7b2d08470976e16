"""The fracture study's generated audit note: how each run's thresholds were chosen, both Dice
conventions side by side, every presence score, and the challenge's reference figures beside
comparable runs. Built from pipeline outputs only."""

from __future__ import annotations

import json
from pathlib import Path

from medrepro.fsutil import write_text
from medrepro.report.claims import claims_table, load_claims
from medrepro.report.render import fmt_ci, render
from medrepro.studies.fracture.layout import NAME

CLAIM_ATTRIBUTES = {"model": ("unet", "unet_presence", "nnunet"), "presence_score": ("max", "mean", "area", "top1", "head")}
CLAIM_METRICS = ("dice_pos", "roc_auc", "ap")
CONVENTION_COLUMNS = ("dice_pos", "iou_pos", "dice_nnunet", "iou_nnunet", "precision_pos", "recall_pos")


def _ci(m: dict, name: str) -> str:
    v = m.get(name)
    if v is None or v["estimate"] != v["estimate"]:
        return "-"
    return fmt_ci(v["estimate"], (v["ci_low"], v["ci_high"]))


def run_rows(metrics: list[Path]) -> list[dict]:
    """One row per run (its best seed by Dice_pos, the challenge's rule), ranked by Dice_pos."""
    best: dict[str, dict] = {}
    for p in metrics:
        m = json.loads(Path(p).read_text())
        if m["run"] not in best or m["metrics"]["dice_pos"]["estimate"] > best[m["run"]]["metrics"]["dice_pos"]["estimate"]:
            best[m["run"]] = m
    ranked = sorted(best.values(), key=lambda m: -m["metrics"]["dice_pos"]["estimate"])
    rows = []
    for rank, m in enumerate(ranked, start=1):
        rows.append({"rank": rank, "run": m["run"], "split": "test", "m": m, "test_guided": m["selection"]["test_guided"],
                     "point": {k: v["estimate"] for k, v in m["metrics"].items()},
                     "ci": {k: (v["ci_low"], v["ci_high"]) for k, v in m["metrics"].items()}})
    return rows


def write_fracture_audit(metrics: list[Path], claims: Path, study_config: dict, descriptor: dict, out_md: Path,
                         template_dir: Path | None = None) -> str:
    rows = run_rows(metrics)
    data_kind = study_config.get("data", {}).get("source", "synthetic")
    run_cfgs = {run: {**study_config.get("train_defaults", {}), **cfg} for run, cfg in study_config["runs"].items()}
    attrs = {run: {"model": c.get("model", "unet"), "presence_score": c.get("presence_score", "max")}
             for run, c in run_cfgs.items()}
    claim_rows = claims_table(load_claims(claims, NAME, metrics=("dice_pos",), attributes=CLAIM_ATTRIBUTES), rows,
                              attrs, list(CLAIM_METRICS), data_kind)
    variants = sorted({k.removeprefix("roc_auc_") for r in rows for k in r["m"]["metrics"] if k.startswith("roc_auc_")})
    table = []
    for r in rows:
        m, d = r["m"]["metrics"], r["m"]["details"]
        table.append({"run": r["run"], "rank": r["rank"], "test_guided": r["test_guided"], "thresholds": d["thresholds"],
                      "n_images": d["n_images"], "n_fractured": d["n_fractured"],
                      "presence_at_threshold": d["presence_at_threshold"],
                      "conventions": {c: _ci(m, c) for c in CONVENTION_COLUMNS},
                      "presence": {v: (_ci(m, f"roc_auc_{v}"), _ci(m, f"ap_{v}")) for v in variants}})
    text = render("fracture/audit.md.j2", template_dir, desc=descriptor, data_kind=data_kind, rows=table,
                  variants=variants, claims=claim_rows, fmt_ci=fmt_ci,
                  guided=[r["run"] for r in table if r["test_guided"]])
    write_text(out_md, text)
    return text
