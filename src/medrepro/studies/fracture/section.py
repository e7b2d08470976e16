"""The fracture section of the leaderboard, by the challenge's rules: one row per run (the
pipeline's runs, one result file per seed, and the runs of every external folder), its best
comparable test result, ranked by Dice_pos, then the best run per metric and the top run's
delta against the reference run, with a paired bootstrap CI where both runs were made here."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from medrepro.studies.fracture.challenge import (DEFAULT_EXCLUDE, _estimate, read_result_file, render_markdown,
                                                 write_outputs)


def _rank(rows: list[dict]) -> list[dict]:
    rows.sort(key=lambda r: (_estimate(r["metrics"].get("dice_pos")) is None,
                             -(_estimate(r["metrics"].get("dice_pos")) or 0.0), r["run"]))
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    return rows


def challenge_rows(metrics: list[Path], external: list[Path], results_dir: Path,
                   exclude=DEFAULT_EXCLUDE) -> tuple[list[dict], dict, dict[str, Path]]:
    """Rows, what was read, and each pipeline run's chosen metrics file."""
    patterns = tuple(exclude)
    found, excluded, by_run, guided = [], [], {}, set()
    for p in metrics:
        rel = Path(p).relative_to(results_dir).as_posix()
        found.append(rel)
        if any(pat in rel for pat in patterns):
            excluded.append(rel)
            continue
        m = json.loads(Path(p).read_text())
        if m["selection"]["test_guided"]:
            guided.add(m["run"])
        by_run.setdefault(m["run"], []).append((rel, read_result_file(p), Path(p)))
    rows, chosen = [], {}
    for run, files in by_run.items():
        rel, values, path = min(files, key=lambda f: (-(_estimate(f[1].get("dice_pos")) or 0.0), f[0]))
        rows.append({"run": run, "source": rel, "metrics": values, "files": len(files), "origin": "pipeline"})
        chosen[run] = path
    for p in external:
        m = json.loads(Path(p).read_text())
        name = m["run"]
        for r in m["details"]["rows"]:
            rows.append({"run": f"{name}/{r['run']}", "source": f"{name}: {r['source']}", "metrics": r["metrics"],
                         "files": r["files"], "origin": "external", "sha256": r["sha256"]})
        found += [f"{name}: {f}" for f in m["details"]["found"]]
        excluded += [f"{name}: {f}" for f in m["details"]["excluded"]]
    info = {"dir": f"{results_dir} (pipeline runs) and the external folders", "exclude": list(patterns),
            "found": found, "excluded": excluded, "ignored": 0, "comparable": len(found) - len(excluded),
            "test_guided": sorted(guided)}
    return _rank(rows), info, chosen


def write_challenge_section(metrics: list[Path], external: list[Path], results_dir: Path, reference: str | None,
                            exclude, bootstrap: dict, out_md: Path, out_csv: Path) -> dict:
    rows, info, chosen = challenge_rows(metrics, external, results_dir, exclude or DEFAULT_EXCLUDE)
    paired = {run: pd.read_csv(path.parent / json.loads(path.read_text())["units"], dtype={"unit_id": str})
              for run, path in chosen.items()}
    text = render_markdown(rows, info, reference, paired=paired, iterations=int(bootstrap["iterations"]),
                           seed=int(bootstrap["seed"]))
    # a section of the leaderboard: its own headings one level down; marks on the run cells
    text = text.replace("# Challenge leaderboard\n\n", "", 1).replace("\n## Analysis\n", "\n### Analysis\n", 1)
    for r in rows:
        mark = (" (test-guided)" if r["run"] in info["test_guided"] else "") + \
            (f" (external, sha256 `{r['sha256'][:12]}`)" if r.get("origin") == "external" else "")
        if mark:
            text = text.replace(f"| {r['rank']} | {r['run']} |", f"| {r['rank']} | {r['run']}{mark} |", 1)
    if info["test_guided"]:
        text += (f"\nTest-guided (checkpoint or thresholds chosen on test; optimistic, not held-out estimates): "
                 f"{', '.join(info['test_guided'])}.\n")
    write_outputs(rows, text, out_md, out_csv)
    return {"rows": rows, "info": info}
