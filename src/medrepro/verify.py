"""`medrepro verify`: re-hash a results folder against its provenance records.

Checks, for every provenance record under the folder:

- each output's bytes against the sha256 the record holds for it;
- each input that another job produced against that producer's recorded output (the lineage
  chain: same sha256, same lineage id), and the input's bytes against both;
- each input from outside the folder (raw data, config files) against the recorded sha256 when
  the file is present (a folder received without the data it was built from is reported as
  "not present", not as a difference).

A difference lists the records that depend on the file, directly or through other jobs, and
the leaderboard rows (study, run, seed of each metrics.json) whose numbers it feeds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from medrepro.errors import InputError
from medrepro.provenance import path_sha256


@dataclass
class Difference:
    path: str
    kind: str  # "bytes" | "missing" | "lineage"
    recorded: str | None
    actual: str | None
    records: list[str] = field(default_factory=list)
    dependents: list[str] = field(default_factory=list)
    rows: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        what = {"bytes": "bytes differ from the record", "missing": "file missing",
                "lineage": "input record differs from its producer's output record"}[self.kind]
        out = [f"DIFFERS {self.path}: {what}", f"  recorded {self.recorded}", f"  actual   {self.actual}"]
        out += [f"  recorded in {r}" for r in self.records]
        out += [f"  depends on it: {d}" for d in self.dependents]
        out += [f"  leaderboard row: {r}" for r in self.rows]
        return out


@dataclass
class Report:
    records: int
    files: int
    differences: list[Difference]
    not_present: list[str]

    @property
    def clean(self) -> bool:
        return not self.differences


def _load_records(results: Path) -> dict[Path, dict]:
    records = {}
    for prov in sorted(results.rglob("*.provenance.json")):
        try:
            rec = json.loads(prov.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise InputError(prov, "provenance", f"unreadable: {e}", "a provenance JSON record") from None
        if not isinstance(rec, dict) or "outputs" not in rec or "inputs" not in rec:
            raise InputError(prov, "provenance", "no inputs/outputs", "a medrepro provenance record")
        records[prov] = rec
    if not records:
        raise InputError(results, "results", "no *.provenance.json under it", "a medrepro results folder")
    return records


def _base(prov: Path, rec: dict) -> Path:
    """The working directory the record's relative paths are relative to."""
    first = Path(rec["outputs"][0]["path"]) if rec["outputs"] else None
    if first is None or first.is_absolute():
        return Path("/")
    base = prov.parent
    for _ in first.parent.parts:
        base = base.parent
    return base


def verify_results(results: str | Path) -> Report:
    results = Path(results).resolve()
    if not results.is_dir():
        raise InputError(results, "results", "not a folder", "a results folder")
    records = _load_records(results)
    base = next(_base(p, r) for p, r in records.items() if r["outputs"])

    def where(path: str) -> Path:
        return Path(path) if Path(path).is_absolute() else base / path

    produced = {o["path"]: (prov, o) for prov, rec in records.items() for o in rec["outputs"]}
    consumers: dict[str, list[Path]] = {}
    for prov, rec in records.items():
        for i in rec["inputs"]:
            consumers.setdefault(i["path"], []).append(prov)

    actual: dict[str, str | None] = {}

    def sha(path: str) -> str | None:
        if path not in actual:
            p = where(path)
            actual[path] = path_sha256(p, cached=False) if p.exists() else None
        return actual[path]

    def dependents(path: str) -> tuple[list[str], list[str]]:
        seen, todo, rows = set(), list(consumers.get(path, [])), set()
        while todo:
            prov = todo.pop()
            if prov in seen:
                continue
            seen.add(prov)
            for o in records[prov]["outputs"]:
                if o["path"].endswith("metrics.json") and where(o["path"]).is_file():
                    try:
                        m = json.loads(where(o["path"]).read_text())
                        rows.add(f"{m.get('study')} / {m.get('run')} / seed {m.get('seed')}")
                    except (OSError, json.JSONDecodeError):
                        rows.add(o["path"])
                todo.extend(consumers.get(o["path"], []))
        return sorted(str(p.relative_to(results.parent)) for p in seen), sorted(rows)

    diffs: list[Difference] = []
    not_present: set[str] = set()

    def differ(path: str, kind: str, recorded: str | None, now: str | None, recs: list[Path]) -> None:
        deps, rows = dependents(path) if kind != "lineage" else ([], [])
        diffs.append(Difference(path, kind, recorded, now, [str(p.relative_to(results.parent)) for p in recs],
                                deps, rows))

    for path, (prov, out) in sorted(produced.items()):
        now = sha(path)
        if now != out["sha256"]:
            differ(path, "missing" if now is None else "bytes", out["sha256"], now, [prov])
    for prov, rec in records.items():
        for i in rec["inputs"]:
            if i["path"] in produced:
                src_prov, out = produced[i["path"]]
                if (i["sha256"], i.get("lineage_id")) != (out["sha256"], out["lineage_id"]):
                    differ(i["path"], "lineage", f"{out['sha256']} (output of {src_prov.name})",
                           f"{i['sha256']} (input of {prov.name})", [src_prov, prov])
            else:
                now = sha(i["path"])
                if now is None:
                    not_present.add(i["path"])
                elif now != i["sha256"]:
                    differ(i["path"], "bytes", i["sha256"], now, [prov])
    return Report(len(records), len(actual), diffs, sorted(not_present))


def format_report(report: Report) -> str:
    lines = [f"{report.records} provenance records, {report.files} files re-hashed"]
    for d in report.differences:
        lines += d.lines()
    if report.not_present:
        lines.append(f"{len(report.not_present)} inputs from outside the folder are not present here (not checked):")
        lines += [f"  {p}" for p in report.not_present]
    lines.append("OK: every file matches its record" if report.clean
                 else f"{len(report.differences)} differences")
    return "\n".join(lines)
