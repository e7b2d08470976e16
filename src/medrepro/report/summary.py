"""Study-agnostic summaries and ranking: one table per study from its metrics.json files, runs
ranked by the study's primary metric with bootstrap CIs and paired-bootstrap ties.

Reads metrics.json files (one schema for every study, validated on reading) and a per-study
descriptor (primary metric, direction, columns). Nothing here names a study.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd

from medrepro.codehash import TEMPLATE_DIR
from medrepro.errors import InputError
from medrepro.fsutil import atomic_path
from medrepro.metrics.bootstrap import cluster_weights, percentile_ci
from medrepro.metrics.registry import compute
from medrepro.provenance import find_producer

LEVEL = 0.95
METRICS_SCHEMA = TEMPLATE_DIR.parent / "schemas" / "metrics.schema.json"


@lru_cache(maxsize=4)
def _validator(schema_path: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(Path(schema_path).read_text()))


def read_metrics(path: Path, schema: Path | None = None) -> dict:
    """A metrics.json, validated against the metrics schema: a bad file is an
    :class:`~medrepro.errors.InputError` naming the file and the field."""
    path = Path(path)
    try:
        m = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise InputError(path, "metrics.json", f"not JSON ({e.msg} at line {e.lineno})", "a JSON object") from None
    errors = sorted(_validator(str(schema or METRICS_SCHEMA)).iter_errors(m), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        field = ".".join(str(p) for p in e.absolute_path) or "(top level)"
        raise InputError(path, field, e.message, f"a value valid under {Path(schema or METRICS_SCHEMA).name}")
    if m["primary"] not in m["metrics"]:
        raise InputError(path, "primary", f"{m['primary']!r} is not a key of metrics", "one of the metrics")
    return m


def write_study_summary(metrics_paths: list[Path], descriptor: dict, out_csv: Path, out_png: Path,
                        schema: Path | None = None) -> pd.DataFrame:
    """One row per run x seed: metrics with CIs, selection policy, lineage id, provenance file.
    Each metrics.json is validated against ``schema`` (default: the workflow's metrics schema)."""
    rows = []
    for path in metrics_paths:
        m = read_metrics(path, schema)
        missing = [c for c in descriptor["columns"] if c not in m["metrics"]]
        if missing and not m.get("external"):  # a result from outside may not report every column
            raise InputError(path, "metrics", f"no {missing}", f"the study's columns {descriptor['columns']}")
        row = {"study": m["study"], "run": m["run"], "seed": m["seed"], "split": m.get("split"),
               "data": m.get("data", {}).get("kind"), "selection": m["selection"]["policy"],
               "test_guided": bool(m["selection"]["test_guided"]),
               "external": (m.get("external") or {}).get("sha256")}
        for name in descriptor["columns"]:
            v = m["metrics"].get(name, {"estimate": float("nan"), "ci_low": float("nan"), "ci_high": float("nan")})
            row.update({name: v["estimate"], f"{name}_ci_low": v["ci_low"], f"{name}_ci_high": v["ci_high"]})
        row["n"] = m["metrics"][descriptor["primary"]]["n"]
        found = find_producer(path)
        row["lineage_id"] = found[1]["lineage_id"] if found else None
        row["provenance"] = str(found[0]) if found else None
        row["metrics_path"] = str(path)
        row["units_path"] = str(Path(path).parent / m["units"])
        rows.append(row)
    df = pd.DataFrame(rows)
    with atomic_path(out_csv) as tmp:
        df.to_csv(tmp, index=False)
    _plot_primary(df, descriptor, out_png)
    return df


def _plot_primary(df: pd.DataFrame, descriptor: dict, out_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    primary = descriptor["primary"]
    runs = list(dict.fromkeys(df["run"]))
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(runs) + 1.5))
    for i, run in enumerate(runs):
        sub = df[df["run"] == run].reset_index(drop=True)
        for j, r in sub.iterrows():
            y = i + (j - (len(sub) - 1) / 2) * 0.15
            ax.errorbar(r[primary], y, xerr=[[r[primary] - r[f"{primary}_ci_low"]], [r[f"{primary}_ci_high"] - r[primary]]],
                        fmt="o", color="C0", capsize=3)
    if descriptor.get("chance") is not None:
        ax.axvline(descriptor["chance"], color="grey", ls="--", label="chance")
        ax.legend(loc="lower left")
    ax.set_yticks(range(len(runs)), runs)
    ax.set_xlabel(f"{primary} (95% bootstrap CI; one point per seed)")
    ax.set_title(descriptor.get("title", ""))
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def _load_units(paths: list[str]) -> list[pd.DataFrame]:
    return [pd.read_csv(p, dtype={"unit_id": str, "cluster": str}).sort_values("unit_id").reset_index(drop=True)
            for p in paths]


def paired_diff(leader: dict, other: dict, name: str, iterations: int, seed: int) -> tuple[float, float, float] | None:
    """Leader minus other on the test units both were evaluated on (same bootstrap draws for
    both); None when they share under half of either's units."""
    common = sorted(set(leader["units"]) & set(other["units"]))
    if len(common) < 0.5 * max(len(leader["units"]), len(other["units"])):
        return None

    def on_common(r):
        return [t.set_index("unit_id").loc[common].reset_index() for t in r["tables"]]

    a, b = on_common(leader), on_common(other)
    w = cluster_weights(a[0]["cluster"], iterations, seed)
    one = np.ones((1, len(common)))
    reps = np.mean([compute(name, t, w) for t in a], axis=0) - np.mean([compute(name, t, w) for t in b], axis=0)
    point = float(np.mean([compute(name, t, one)[0] for t in a]) - np.mean([compute(name, t, one)[0] for t in b]))
    lo, hi = percentile_ci(reps, LEVEL)
    return point, lo, hi


def rank_study(summary: pd.DataFrame, descriptor: dict, iterations: int, seed: int) -> list[dict]:
    """Rank runs by the seed-mean primary metric; CIs from a bootstrap over test units shared by
    every seed of a run; ties by a paired bootstrap against the first-ranked run on the units
    both were evaluated on. A descriptor's own ``bootstrap`` overrides iterations and seed."""
    primary, higher = descriptor["primary"], descriptor["higher_is_better"]
    iterations = int(descriptor.get("bootstrap", {}).get("iterations", iterations))
    seed = int(descriptor.get("bootstrap", {}).get("seed", seed))
    runs = []
    for run, sub in summary.groupby("run", sort=False):
        tables = _load_units(list(sub["units_path"]))
        units = tuple(tables[0]["unit_id"])
        if any(tuple(t["unit_id"]) != units for t in tables):
            raise ValueError(f"run {run}: seeds were evaluated on different test units")
        runs.append({"run": run, "sub": sub, "tables": tables, "units": units})
    weights_by_units: dict[tuple, np.ndarray] = {}
    for r in runs:
        if not r["units"]:  # metrics without per-unit values (e.g. an external file of summary metrics)
            row = r["sub"].iloc[0]
            r["point"] = {name: float(row[name]) for name in descriptor["columns"]}
            r["ci"] = {name: (float(row[f"{name}_ci_low"]), float(row[f"{name}_ci_high"])) for name in descriptor["columns"]}
            continue
        if r["units"] not in weights_by_units:
            weights_by_units[r["units"]] = cluster_weights(r["tables"][0]["cluster"], iterations, seed)
        w = weights_by_units[r["units"]]
        r["point"], r["ci"] = {}, {}
        for name in descriptor["columns"]:
            reps = np.mean([compute(name, t, w) for t in r["tables"]], axis=0)
            r["point"][name] = float(np.mean([compute(name, t, np.ones((1, len(t))))[0] for t in r["tables"]]))
            r["ci"][name] = percentile_ci(reps, LEVEL)
    runs.sort(key=lambda r: r["point"][primary], reverse=higher)
    leader = runs[0]
    rows = []
    for rank, r in enumerate(runs, start=1):
        sub = r["sub"]
        row = {
            "rank": rank, "run": r["run"], "n_seeds": len(sub), "n_units": len(r["units"]),
            "split": sub["split"].iloc[0] if "split" in sub else None,
            "data": sub["data"].iloc[0], "selection": ",".join(sorted(set(sub["selection"]))),
            "test_guided": bool(sub["test_guided"].any()),
            "external": (str(sub["external"].iloc[0]) if "external" in sub and isinstance(sub["external"].iloc[0], str)
                         else None),
            "point": r["point"], "ci": r["ci"],
            "seed_values": [float(v) for v in sub[primary]],
            "lineage": [{"seed": s, "id": lid[:12] if isinstance(lid, str) else "",
                         "provenance": p if isinstance(p, str) else None}
                        for s, lid, p in zip(sub["seed"], sub["lineage_id"], sub["provenance"])],
        }
        if r is leader:
            row["vs_leader"] = "leader"
        elif not r["units"] or not leader["units"]:
            row["vs_leader"] = "not paired (no per-unit values)"
        else:
            diff = paired_diff(leader, r, primary, iterations, seed)
            if diff is None:
                row["vs_leader"] = "not paired (other test units)"
            else:
                if not higher:  # report how much worse, as a positive number, either way
                    diff = (-diff[0], -diff[2], -diff[1])
                row["diff"] = diff
                row["vs_leader"] = "tied" if diff[1] <= 0.0 <= diff[2] else "worse by"
        rows.append(row)
    return rows
