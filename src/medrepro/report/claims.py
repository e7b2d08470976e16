"""Set published claims beside this project's runs, with a verdict.

A claim's ``match`` block states what the claim is about (its attributes, e.g. model and data
split). A study computes the same attributes for each of its runs; the comparable run is the
first-ranked run whose attributes equal every attribute the claim states. An attribute stated
as null does not constrain. Nothing here knows what the attributes mean.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from medrepro.errors import InputError

REQUIRED = ("id", "claim", "source", "dataset", "metrics", "match")


def load_claims(path: Path, study: str, metrics: tuple[str, ...] | list[str] = (),
                attributes: dict[str, tuple] | None = None) -> list[dict]:
    """The claims of ``study`` in ``path``. With ``metrics``, every claim carries each of them
    as a number; with ``attributes`` ({name: allowed values}), every claim's ``match`` states
    exactly these names, each one of its allowed values or null (not stated). A claim that
    breaks a rule is an :class:`InputError` naming the file, the claim and the key."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    claims = data.get(study, [])
    for i, c in enumerate(claims):
        if not isinstance(c, dict):
            raise InputError(path, f"{study}[{i}]", f"got {type(c).__name__}", "a mapping")
        where = f"{study}.{c['id']}" if "id" in c else f"{study}[{i}]"
        missing = [k for k in REQUIRED if k not in c]
        if missing:
            raise InputError(path, where, f"missing keys {missing}", f"keys {list(REQUIRED)}")
        for name in metrics:
            if name not in c["metrics"]:
                raise InputError(path, f"{where}.metrics", f"missing key {name!r}", f"all of {list(metrics)}")
            value = c["metrics"][name]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InputError(path, f"{where}.metrics.{name}", f"bad value {value!r}", "a number")
        if attributes is not None:
            _check_attributes(path, f"{where}.match", c["match"], attributes)
    return claims


def _check_attributes(path: Path, where: str, match: dict, attributes: dict[str, tuple]) -> None:
    for name in attributes:
        if name not in match:
            raise InputError(path, where, f"missing key {name!r}", f"all of {list(attributes)} (null: not stated)")
    for name, value in match.items():
        if name not in attributes:
            raise InputError(path, f"{where}.{name}", "unknown key", f"one of {list(attributes)}")
        if value is not None and value not in attributes[name]:
            raise InputError(path, f"{where}.{name}", f"bad value {value!r}", f"null or one of {list(attributes[name])}")


def stated(claim: dict) -> dict:
    """The attributes a claim states (null ones left out)."""
    return {k: v for k, v in claim["match"].items() if v is not None}


def best_match(claim: dict, ranked: list[dict], run_attributes: dict[str, dict]) -> dict | None:
    """The first-ranked run whose attributes equal every attribute the claim states."""
    want = stated(claim)
    for row in ranked:
        have = run_attributes.get(row["run"], {})
        if all(have.get(k) == v for k, v in want.items()):
            return row
    return None


def fmt_value(value) -> str:
    if value is None:
        return "not stated"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def no_match_reason(claim: dict, run_attributes: dict[str, dict]) -> str:
    """Why no run is comparable: the stated attributes that no run has, or, when each is met by
    some run, that no run has them all."""
    want = stated(claim)
    alone = [f"no run with {k} {fmt_value(v)}" for k, v in want.items()
             if not any(a.get(k) == v for a in run_attributes.values())]
    if alone:
        return "; ".join(alone)
    return "no run with " + ", ".join(f"{k} {fmt_value(v)}" for k, v in want.items()) + " together"


def verdict(claim: dict, row: dict | None, primary: str, data_kind: str) -> tuple[str, str]:
    """(verdict, reason) for one metric (``primary``). Reproduced = the published value lies
    inside the run's 95% CI."""
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


def claims_table(claims: list[dict], ranked: list[dict], run_attributes: dict[str, dict], columns: list[str],
                 data_kind: str) -> list[dict]:
    """One row per claim: its attributes, the comparable run (or why there is none) and, per
    metric of ``columns``, the published value beside the run's estimate and CI, with a verdict."""
    rows = []
    for c in claims:
        row = best_match(c, ranked, run_attributes)
        scale = 100.0 if c.get("unit") == "percent" else 1.0
        metrics = []
        for name in columns:
            if name not in c["metrics"]:
                continue
            v, why = verdict(c, row, name, data_kind)
            metrics.append({"name": name, "published": c["metrics"][name] / scale,
                            "ours": (row["point"][name], row["ci"][name]) if row else None,
                            "verdict": v, "reason": why if row else "no comparable run"})
        rows.append({
            "id": c["id"], "claim": c["claim"], "source": c["source"],
            "attributes": {k: fmt_value(v) for k, v in c["match"].items()},
            "run": row["run"] if row else None, "ours": row,
            "run_attributes": {k: fmt_value(v) for k, v in run_attributes.get(row["run"], {}).items()} if row else {},
            "no_match": None if row else no_match_reason(c, run_attributes),
            "metrics": metrics, "test_guided_claim": bool(c.get("test_guided")),
        })
    return rows
