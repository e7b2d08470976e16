"""Study-agnostic aggregation: summary tables and the leaderboard.

Reads metrics.json files (one schema for every study) and a per-study descriptor (primary
metric, direction, columns). Nothing here names a study.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from medrepro.fsutil import atomic_path, write_text
from medrepro.metrics.bootstrap import cluster_weights, percentile_ci
from medrepro.metrics.registry import compute
from medrepro.provenance import find_producer
from medrepro.report.render import fmt_ci, render

LEVEL = 0.95


def write_study_summary(metrics_paths: list[Path], descriptor: dict, out_csv: Path, out_png: Path) -> pd.DataFrame:
    """One row per run x seed: metrics with CIs, selection policy, lineage id, provenance file."""
    rows = []
    for path in metrics_paths:
        m = json.loads(Path(path).read_text())
        row = {"study": m["study"], "run": m["run"], "seed": m["seed"], "split": m.get("split"),
               "data": m.get("data", {}).get("kind"), "selection": m["selection"]["policy"],
               "test_guided": bool(m["selection"]["test_guided"])}
        for name in descriptor["columns"]:
            v = m["metrics"][name]
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


def _paired_diff(leader: dict, other: dict, name: str, iterations: int, seed: int) -> tuple[float, float, float] | None:
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
            "point": r["point"], "ci": r["ci"],
            "seed_values": [float(v) for v in sub[primary]],
            "lineage": [{"seed": s, "id": (lid or "")[:12], "provenance": p}
                        for s, lid, p in zip(sub["seed"], sub["lineage_id"], sub["provenance"])],
        }
        if r is leader:
            row["vs_leader"] = "leader"
        else:
            diff = _paired_diff(leader, r, primary, iterations, seed)
            if diff is None:
                row["vs_leader"] = "not paired (other test units)"
            else:
                if not higher:  # report how much worse, as a positive number, either way
                    diff = (-diff[0], -diff[2], -diff[1])
                row["diff"] = diff
                row["vs_leader"] = "tied" if diff[1] <= 0.0 <= diff[2] else "worse by"
        rows.append(row)
    return rows


def compute_usage(metrics_paths: list[Path]) -> dict:
    """Device, CPU/GPU hours and SLURM jobs from the provenance files beside the metrics."""
    seen, jobs, cpu_h, gpu_h, devices, partitions = set(), set(), 0.0, 0.0, set(), set()
    for mp in metrics_paths:
        for prov in Path(mp).parent.glob("*.provenance.json"):
            if prov in seen:
                continue
            seen.add(prov)
            rec = json.loads(prov.read_text())
            hours = (_dt.datetime.fromisoformat(rec["end"]) - _dt.datetime.fromisoformat(rec["start"])).total_seconds() / 3600
            dev = rec["device"]
            if str(dev.get("used", "cpu")).startswith("cuda"):
                gpu_h += hours
                devices.add(f"{dev.get('gpu')} (CUDA {dev.get('cuda')})")
            else:
                cpu_h += hours
                devices.add(f"CPU: {dev.get('cpu')}")
            if rec.get("slurm"):
                jobs.add(rec["slurm"]["job_id"])
                if rec["slurm"].get("partition"):
                    partitions.add(rec["slurm"]["partition"])
    return {"jobs": len(seen), "gpu_hours": gpu_h, "cpu_hours": cpu_h, "devices": sorted(devices),
            "slurm_jobs": len(jobs), "partitions": sorted(partitions)}


def write_leaderboard(summaries: list[Path], studies: list[str], descriptors: dict, bootstrap: dict, title: str,
                      out_md: Path, audits: list[Path] | None = None, template_dir: Path | None = None) -> str:
    sections = []
    audit_of = {Path(a).stem: os.path.relpath(a, out_md.parent) for a in (audits or [])}
    for study, summary_path in zip(studies, summaries):
        df = pd.read_csv(summary_path, dtype={"split": str, "lineage_id": str})
        desc = descriptors[study]
        rows = rank_study(df, desc, int(bootstrap["iterations"]), int(bootstrap["seed"]))
        for row in rows:
            for item in row["lineage"]:
                item["link"] = os.path.relpath(item["provenance"], out_md.parent) if item["provenance"] else None
        sections.append({
            "study": study, "descriptor": desc, "rows": rows, "data_kinds": sorted(set(df["data"].astype(str))),
            "usage": compute_usage([Path(p) for p in df["metrics_path"]]),
            "summary": os.path.relpath(summary_path, out_md.parent),
            "audit": audit_of.get(study),
            "bootstrap": {"iterations": int(desc.get("bootstrap", {}).get("iterations", bootstrap["iterations"])),
                          "seed": int(desc.get("bootstrap", {}).get("seed", bootstrap["seed"]))},
        })
    text = render("leaderboard.md.j2", template_dir, title=title, sections=sections, bootstrap=bootstrap,
                  level=LEVEL, fmt_ci=fmt_ci)
    write_text(out_md, text)
    return text
