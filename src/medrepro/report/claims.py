"""Set published claims beside this project's runs, with a verdict."""

from __future__ import annotations

from pathlib import Path

import yaml

from medrepro.errors import InputError

REQUIRED = ("id", "claim", "source", "dataset", "metrics", "match")


def load_claims(path: Path, study: str) -> list[dict]:
    data = yaml.safe_load(Path(path).read_text()) or {}
    claims = data.get(study, [])
    for i, c in enumerate(claims):
        missing = [k for k in REQUIRED if k not in c]
        if missing:
            raise InputError(path, f"{study}[{i}]", f"missing keys {missing}", f"keys {list(REQUIRED)}")
    return claims


def verdict(claim: dict, row: dict | None, primary: str, data_kind: str) -> tuple[str, str]:
    """(verdict, reason). Reproduced = the published value lies inside the run's 95% CI."""
    if row is None:
        return "not comparable", "no run of this project matches the claim's method"
    if data_kind != "real":
        return "not comparable", f"the run used {data_kind} data, the claim {claim['dataset']}"
    if claim.get("split") and str(row.get("split")) != str(claim["split"]):
        return "not comparable", f"the run used split {row.get('split')}, the claim {claim['split']}"
    scale = 100.0 if claim.get("unit") == "percent" else 1.0
    value = claim["metrics"][primary] / scale
    lo, hi = row["ci"][primary]
    if lo <= value <= hi:
        return "reproduced", f"published {value:.3f} lies inside the run's 95% CI [{lo:.3f}, {hi:.3f}]"
    return "not reproduced", f"published {value:.3f} lies outside the run's 95% CI [{lo:.3f}, {hi:.3f}]"


def best_match(claim: dict, ranked: list[dict], run_configs: dict) -> dict | None:
    """First-ranked run whose config matches the claim's ``match`` keys."""
    m = claim["match"]
    for row in ranked:
        rc = run_configs.get(row["run"], {})
        if "model" in m and rc.get("model") != m["model"]:
            continue
        if "input_prefix" in m and not str(rc.get("input", "")).startswith(m["input_prefix"]):
            continue
        if "init_from" in m and bool(rc.get("init_from")) != bool(m["init_from"]):
            continue
        return row
    return None


def claims_table(claims: list[dict], ranked: list[dict], run_configs: dict, primary: str, columns: list[str],
                 data_kind: str) -> list[dict]:
    rows = []
    for c in claims:
        row = best_match(c, ranked, run_configs)
        v, why = verdict(c, row, primary, data_kind)
        scale = 100.0 if c.get("unit") == "percent" else 1.0
        rows.append({
            "claim": c["claim"], "source": c["source"], "published": {k: c["metrics"][k] / scale for k in columns if k in c["metrics"]},
            "run": row["run"] if row else None, "ours": row, "verdict": v, "reason": why,
            "test_guided_claim": bool(c.get("test_guided")),
        })
    return rows
