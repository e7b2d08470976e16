"""The leaderboard: every active study's ranked runs, compute used, links to provenance.

Reads each study's summary table (:mod:`medrepro.report.summary`) and descriptor. Nothing here
names a study.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path

import pandas as pd

from medrepro.fsutil import write_text
from medrepro.provenance import read_environment
from medrepro.report.render import fmt_ci, render
from medrepro.report.summary import LEVEL, rank_study


def compute_usage(metrics_paths: list[Path]) -> dict:
    """Device, CPU/GPU hours and SLURM jobs from the provenance files beside the metrics."""
    seen, jobs, cpu_h, gpu_h, devices, partitions, envs = set(), set(), 0.0, 0.0, set(), set(), set()
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
            envs.add((rec.get("environment") or {}).get("sha256") or "unrecorded")
            if rec.get("slurm"):
                jobs.add(rec["slurm"]["job_id"])
                if rec["slurm"].get("partition"):
                    partitions.add(rec["slurm"]["partition"])
    return {"jobs": len(seen), "gpu_hours": gpu_h, "cpu_hours": cpu_h, "devices": sorted(devices),
            "slurm_jobs": len(jobs), "partitions": sorted(partitions), "environments": sorted(envs)}


def write_leaderboard(summaries: list[Path], studies: list[str], descriptors: dict, bootstrap: dict, title: str,
                      out_md: Path, audits: list[Path] | None = None, template_dir: Path | None = None,
                      environment: Path | None = None, own_tables: dict[str, Path] | None = None,
                      efficiency_dir: Path | None = None) -> str:
    """``environment``: the run's package-set file (``results/environment.txt``); each section
    says whether the job records behind its rows name that package set. ``own_tables``: study ->
    a Markdown table of its own (its field's ranking rules), shown instead of the generic one.
    ``efficiency_dir``: where the SLURM profile has the executor plugin write its efficiency
    report (default: ``logs/`` beside the leaderboard); a section whose rows ran on SLURM links
    it. The plugin writes the report when the workflow ends, after this file: the link names
    the folder and the file name it will have, not a file that exists now."""
    sections = []
    efficiency_dir = Path(efficiency_dir) if efficiency_dir is not None else Path(out_md).parent / "logs"
    env = None
    if environment is not None:
        env = {**read_environment(environment), "link": os.path.relpath(environment, out_md.parent)}
    audit_of = {Path(a).stem: os.path.relpath(a, out_md.parent) for a in (audits or [])}
    for study, summary_path in zip(studies, summaries):
        df = pd.read_csv(summary_path, dtype={"split": str, "lineage_id": str})
        desc = descriptors[study]
        own = Path(own_tables[study]).read_text() if own_tables and study in own_tables else None
        rows = [] if own is not None else rank_study(df, desc, int(bootstrap["iterations"]), int(bootstrap["seed"]))
        for row in rows:
            for item in row["lineage"]:
                item["link"] = os.path.relpath(item["provenance"], out_md.parent) if item["provenance"] else None
        sections.append({
            "study": study, "descriptor": desc, "rows": rows, "own_table": own, "data_kinds": sorted(set(df["data"].astype(str))),
            "usage": compute_usage([Path(p) for p in df["metrics_path"]]),
            "efficiency": os.path.relpath(efficiency_dir, out_md.parent),
            "summary": os.path.relpath(summary_path, out_md.parent),
            "audit": audit_of.get(study),
            "bootstrap": {"iterations": int(desc.get("bootstrap", {}).get("iterations", bootstrap["iterations"])),
                          "seed": int(desc.get("bootstrap", {}).get("seed", bootstrap["seed"]))},
        })
    text = render("leaderboard.md.j2", template_dir, title=title, sections=sections, bootstrap=bootstrap,
                  level=LEVEL, fmt_ci=fmt_ci, environment=env)
    write_text(out_md, text)
    return text
