"""`medrepro diff A B`: what changed between two results folders, with paired-bootstrap CIs.

``A`` and ``B`` are results folders, or ``PATH@REV``: the provenance records and metrics files
under ``PATH`` as committed at git revision ``REV`` (``results@HEAD~1``, ``results@v1.2``), for
labs that commit their results folder's records. A spec is read as ``PATH@REV`` only when no
file or folder of that exact name exists; it is split at its last ``@``.

One entry per run x seed (``study``, ``run``, ``seed`` of each ``metrics.json``):

- ``params``: the params of the run's own job records (the ``*.provenance.json`` files beside
  its ``metrics.json``: training, evaluation), flattened to dotted keys like ``dvc params diff``
  (``run.lr``); ``change`` is ``added``, ``removed`` or ``changed``. The ``code`` entry of the
  params is left out here and reported as ``code changed`` in ``records``.
- ``upstream_params``: the same for the jobs the run depends on (found through the inputs of its
  records: preprocessing variants, splits, the run it starts from...), each named
  ``rule[wildcard=value,...]``.
- ``records``: every job record of the run's chain that differs: only on one side, or with
  another lineage id or other output bytes, with the causes (params, code, inputs, outputs). A
  record with the same params and code but other input bytes says so ("same params and code,
  different inputs"); one with the same lineage id but other output bytes too.
- ``metrics``: for each metric of either metrics.json, ``a`` and ``b`` (estimate, ci_low,
  ci_high, n as recorded) and ``delta`` = b - a. Where both runs have a per-unit table on the
  same test units and the metric can be computed from it, ``ci_low``/``ci_high`` are the
  paired-bootstrap CI of the delta (the leaderboard's paired comparison:
  :func:`medrepro.report.summary.paired_diff`, same draws for both sides; iterations and seed
  from A's metrics.json, level :data:`medrepro.report.summary.LEVEL`). ``verdict``:
  ``changed`` when that CI excludes 0, ``not distinguishable`` when it holds 0 (or is undefined),
  ``not paired`` (no CI; ``reason`` says why) otherwise.

Runs on one side only have ``status`` ``only in A`` / ``only in B``. The JSON form
(:func:`to_json`) has ``schema`` ``medrepro-diff-v1``, ``a`` and ``b`` (``spec``, ``path``,
``revision``), ``level``, ``counts`` and ``runs`` (sorted by study, run, seed). Nothing here
names a study.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from medrepro.errors import InputError
from medrepro.fsutil import write_text
from medrepro.metrics.registry import known
from medrepro.report.render import fmt_ci
from medrepro.report.summary import LEVEL, paired_diff, read_metrics

SCHEMA = "medrepro-diff-v1"
CHANGED, NOT_DISTINGUISHABLE, NOT_PAIRED = "changed", "not distinguishable", "not paired"
ONLY_A, ONLY_B, BOTH = "only in A", "only in B", "in both"


# --- reading one side -------------------------------------------------------------------------
@dataclass
class Side:
    spec: str  # as given on the command line
    root: Path  # the folder read (a temporary export of the revision in git mode)
    path: str  # the results folder as named by the user
    revision: str | None = None  # full commit id in git mode

    def name(self, path: str | Path | None) -> str | None:
        """How a file of this side is named in messages: the file, or REV:path in git mode."""
        if path is None or self.revision is None:
            return None if path is None else str(path)
        try:
            rel = Path(path).relative_to(self.root).as_posix()
        except ValueError:
            return str(path)
        return f"{self.revision[:12]}:{PurePosixPath(self.path, rel)}"


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``PATH`` or ``PATH@REV`` -> (path, revision or None)."""
    if "@" in spec and not os.path.lexists(spec):
        path, rev = spec.rsplit("@", 1)
        if not path or not rev:
            raise InputError(None, spec, "empty path or revision", "PATH or PATH@REV")
        return path, rev
    return spec, None


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True)


def _export_revision(path: str, rev: str, dest: Path) -> tuple[str, str]:
    """Write the records, metrics files and per-unit tables under ``path`` at ``rev`` into
    ``dest``; return (commit id, path relative to the repository)."""
    target = Path(path).resolve()
    probe = target
    while not probe.is_dir():
        probe = probe.parent
    top = _git(probe, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        raise InputError(path, "revision", f"not inside a git repository, so @{rev} cannot be read",
                         "a results folder inside a git work tree")
    top_dir = Path(top.stdout.decode().strip()).resolve()
    commit = _git(top_dir, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if commit.returncode != 0:
        raise InputError(top_dir, "revision", f"{rev!r} is not a commit of this repository", "a git revision")
    commit_id = commit.stdout.decode().strip()
    try:
        rel = target.relative_to(top_dir).as_posix()
    except ValueError:
        raise InputError(path, "revision", f"outside the git repository {top_dir}", "a folder inside it") from None
    listed = _git(top_dir, "ls-tree", "-r", "-z", "--name-only", commit_id, "--", rel)
    names = [n for n in listed.stdout.decode("utf-8", "surrogateescape").split("\0") if n]
    prefix = "" if rel == "." else rel + "/"
    names = [n for n in names if n.startswith(prefix)]
    wanted = [n for n in names if n.endswith(".provenance.json") or PurePosixPath(n).name == "metrics.json"]
    if not any(n.endswith(".provenance.json") for n in wanted):
        raise InputError(f"{rev}:{rel}", "provenance", "no *.provenance.json committed under it at that revision",
                         "the results folder's records committed in git")

    def export(name: str) -> Path:
        blob = _git(top_dir, "cat-file", "blob", f"{commit_id}:{name}")
        if blob.returncode != 0:
            raise InputError(f"{rev}:{name}", "git", blob.stderr.decode().strip(), "a file of that revision")
        out = dest / name[len(prefix):]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(blob.stdout)
        return out

    present = set(names)
    for name in wanted:
        out = export(name)
        if out.name == "metrics.json":
            try:
                units = json.loads(out.read_text()).get("units")
            except (ValueError, AttributeError):
                continue  # reported when the file is read
            if isinstance(units, str) and str(PurePosixPath(name).parent / units) in present:
                export(str(PurePosixPath(name).parent / units))
    return commit_id, rel


def open_side(spec: str, stack: ExitStack) -> Side:
    """A side of the comparison: a folder, or a temporary export of ``PATH@REV``."""
    path, rev = parse_spec(spec)
    if rev is None:
        root = Path(path)
        if not root.is_dir():
            raise InputError(path, "results", "not a folder", "a results folder or PATH@REV")
        return Side(spec=spec, root=root, path=path)
    dest = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="medrepro-diff-")))
    commit, _ = _export_revision(path, rev, dest)
    return Side(spec=spec, root=dest, path=path, revision=commit)


def _label(rec: dict) -> str:
    wc = rec["wildcards"]
    return rec["rule"] + (f"[{','.join(f'{k}={wc[k]}' for k in sorted(wc))}]" if wc else "")


def _check_record(prov: Path, rec: Any) -> dict:
    if not isinstance(rec, dict):
        raise InputError(prov, "(top level)", "not a JSON object", "a medrepro provenance record")
    for key, kind in [("rule", str), ("wildcards", dict), ("params", dict), ("inputs", list), ("outputs", list),
                      ("lineage_id", str)]:
        if not isinstance(rec.get(key), kind):
            raise InputError(prov, key, "missing" if key not in rec else f"not a {kind.__name__}",
                             "a medrepro provenance record")
    for key in ("inputs", "outputs"):
        for i, f in enumerate(rec[key]):
            if not isinstance(f, dict) or not isinstance(f.get("path"), str) or "sha256" not in f:
                raise InputError(prov, f"{key}.{i}", "no path and sha256", "a file entry with path and sha256")
    return rec


def _results_prefix(records: dict[Path, dict], root: Path) -> str | None:
    """The folder the records' paths start with (``results``, or an absolute one), found from a record
    whose first output lies in the record's own folder."""
    for prov, rec in records.items():
        if not rec["outputs"]:
            continue
        out = PurePosixPath(rec["outputs"][0]["path"]).parent.parts
        here = prov.parent.relative_to(root).parts
        if len(out) > len(here) and (not here or out[-len(here):] == here):
            return str(PurePosixPath(*out[: len(out) - len(here)]))
    return None


@dataclass
class Loaded:
    records: dict[str, dict]  # label -> record (paths normalised to the results folder)
    files: dict[str, Path]  # label -> its provenance file
    produced_by: dict[str, str]  # output path -> label
    runs: dict[tuple, dict]  # (study, run, seed) -> {"metrics", "path", "units", "own"}


def load(side: Side) -> Loaded:
    """Every record and metrics.json of a side."""
    try:
        return _load(side)
    except InputError as e:
        if side.revision is None:
            raise
        raise InputError(side.name(e.path), e.field, e.problem, e.expected) from None


def _load(side: Side) -> Loaded:
    root = side.root
    raw: dict[Path, dict] = {}
    for prov in sorted(root.rglob("*.provenance.json")):
        try:
            raw[prov] = _check_record(prov, json.loads(prov.read_text()))
        except json.JSONDecodeError as e:
            raise InputError(prov, "provenance", f"not JSON ({e.msg} at line {e.lineno})", "a JSON object") from None
    metrics_files = sorted(root.rglob("metrics.json"))
    if not raw and not metrics_files:
        raise InputError(root, "results", "no *.provenance.json or metrics.json under it", "a medrepro results folder")
    prefix = _results_prefix(raw, root)

    def norm(p: str) -> str:
        if prefix and p.startswith(prefix + "/"):
            return p[len(prefix) + 1:]
        return p

    records, files, produced_by = {}, {}, {}
    for prov, rec in raw.items():
        rec = {**rec, "inputs": [{**f, "path": norm(f["path"])} for f in rec["inputs"]],
               "outputs": [{**f, "path": norm(f["path"])} for f in rec["outputs"]]}
        label = _label(rec)
        if label in records:
            raise InputError(prov, "rule/wildcards", f"the same job as {side.name(files[label])}", "one record per job")
        records[label], files[label] = rec, prov
        for out in rec["outputs"]:
            produced_by[out["path"]] = label
    runs: dict[tuple, dict] = {}
    for mp in metrics_files:
        m = read_metrics(mp)
        key = (m["study"], m["run"], m["seed"])
        if key in runs:
            raise InputError(mp, "study/run/seed", f"the same run as {side.name(runs[key]['path'])}",
                             "one metrics.json per run x seed")
        own = sorted(label for label, prov in files.items() if prov.parent == mp.parent)
        runs[key] = {"metrics": m, "path": mp, "units": _read_units(mp.parent / m["units"]), "own": own}
    return Loaded(records, files, produced_by, runs)


def _read_units(path: Path) -> pd.DataFrame | None:
    """The per-unit table sorted by unit id (as the leaderboard reads it); None when absent."""
    if not path.is_file():
        return None
    table = pd.read_csv(path, dtype={"unit_id": str, "cluster": str})
    for column in ("unit_id", "cluster"):
        if column not in table.columns:
            raise InputError(path, column, "no such column", "a per-unit table with unit_id and cluster")
    return table.sort_values("unit_id").reset_index(drop=True)


def chain(loaded: Loaded, own: list[str]) -> list[str]:
    """The labels of the jobs the run's own records depend on, directly or through others."""
    seen, todo = set(own), list(own)
    while todo:
        for f in loaded.records[todo.pop()]["inputs"]:
            up = loaded.produced_by.get(f["path"])
            if up is not None and up not in seen:
                seen.add(up)
                todo.append(up)
    return sorted(seen - set(own))


# --- comparing ------------------------------------------------------------------------------------
def flatten(params: dict, prefix: str = "") -> dict[str, Any]:
    """Nested dicts to dotted keys (lists and scalars are values)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def diff_params(a: dict, b: dict) -> list[dict]:
    """Added, removed and changed dotted keys of two params dicts (their ``code`` left out)."""
    fa = flatten({k: v for k, v in a.items() if k != "code"})
    fb = flatten({k: v for k, v in b.items() if k != "code"})
    out = []
    for key in sorted(fa.keys() | fb.keys()):
        if key not in fb:
            out.append({"key": key, "change": "removed", "a": fa[key], "b": None})
        elif key not in fa:
            out.append({"key": key, "change": "added", "a": None, "b": fb[key]})
        elif not _same(fa[key], fb[key]):
            out.append({"key": key, "change": "changed", "a": fa[key], "b": fb[key]})
    return out


def _code_sha(rec: dict) -> Any:
    code = rec["params"].get("code")
    return code.get("sha256") if isinstance(code, dict) else None


def diff_record(a: dict | None, b: dict | None, produced: set[str]) -> dict | None:
    """How one job's record differs between the sides; None when it does not."""
    if a is None or b is None:
        return {"change": ONLY_B if a is None else ONLY_A, "causes": [ONLY_B if a is None else ONLY_A],
                "lineage_a": a and a["lineage_id"], "lineage_b": b and b["lineage_id"],
                "params_changed": False, "code_changed": False, "inputs_changed": [], "outputs_changed": []}

    def changed_files(key: str) -> list[str]:
        fa = {f["path"]: f["sha256"] for f in a[key]}
        fb = {f["path"]: f["sha256"] for f in b[key]}
        return sorted(p for p in fa.keys() | fb.keys() if fa.get(p) != fb.get(p))

    params = bool(diff_params(a["params"], b["params"]))
    code = _code_sha(a) != _code_sha(b)
    inputs, outputs = changed_files("inputs"), changed_files("outputs")
    same_lineage = a["lineage_id"] == b["lineage_id"]
    if same_lineage and not outputs:
        return None
    causes = []
    if params:
        causes.append("params changed")
    if code:
        causes.append("code changed")
    outside = [p for p in inputs if p not in produced]
    inside = [p for p in inputs if p in produced]
    if inputs and not params and not code:
        causes.append("same params and code, different inputs")
    if outside:
        causes.append("input data from outside the results folder differs: " + ", ".join(outside))
    if inside:
        causes.append("inputs from other jobs differ: " + ", ".join(inside))
    if same_lineage:
        causes.append("same lineage id, different output bytes (not deterministic, or another machine)")
    elif not causes:
        causes.append("lineage id differs (an input's record differs, its bytes do not)")
    return {"change": "differs", "causes": causes, "lineage_a": a["lineage_id"], "lineage_b": b["lineage_id"],
            "params_changed": params, "code_changed": code, "inputs_changed": inputs, "outputs_changed": outputs}


def _finite(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def compare_metric(name: str, ra: dict, rb: dict, iterations: int, seed: int) -> dict:
    """One metric of a run in A and in B: delta b - a, the paired-bootstrap CI and the verdict."""
    ma, mb = ra["metrics"], rb["metrics"]
    a, b = ma["metrics"].get(name), mb["metrics"].get(name)
    entry = {"name": name, "primary": name in (ma["primary"], mb["primary"]), "a": a, "b": b,
             "delta": None, "ci_low": None, "ci_high": None, "n_units": None, "verdict": NOT_PAIRED, "reason": None}
    if a is None or b is None:
        entry["reason"] = f"reported {'only in B' if a is None else 'only in A'}"
        return entry
    entry["delta"] = float(b["estimate"]) - float(a["estimate"])
    ta, tb = ra["units"], rb["units"]
    if ta is None or tb is None:
        missing = " and ".join(s for s, t in (("A", ta), ("B", tb)) if t is None)
        entry["reason"] = f"no per-unit table in {missing}"
        return entry
    if not known(name):
        entry["reason"] = "metric not computable from the per-unit table"
        return entry
    ua, ub = tuple(ta["unit_id"]), tuple(tb["unit_id"])
    if set(ua) != set(ub) or len(ua) != len(ub):
        entry["reason"] = (f"other test units ({len(set(ua) - set(ub))} only in A, {len(set(ub) - set(ua))} only in B, "
                           f"{len(set(ua) & set(ub))} shared)")
        return entry
    # the leaderboard's paired comparison: first minus second, the same draws for both
    point, lo, hi = paired_diff({"units": ub, "tables": [tb]}, {"units": ua, "tables": [ta]}, name, iterations, seed)
    entry["n_units"] = len(ua)
    entry["ci_low"], entry["ci_high"] = _finite(lo), _finite(hi)
    if entry["ci_low"] is None or entry["ci_high"] is None:
        entry["verdict"] = NOT_DISTINGUISHABLE
        entry["reason"] = "the statistic is undefined on every bootstrap draw"
    else:
        entry["verdict"] = CHANGED if (lo > 0.0 or hi < 0.0) else NOT_DISTINGUISHABLE
    if not math.isclose(point, entry["delta"], rel_tol=1e-9, abs_tol=1e-9):
        entry["reason"] = f"the per-unit tables give a delta of {point:.6g}, the metrics files {entry['delta']:.6g}"
    return entry


def _merge_params(per_record: dict[str, list[dict]]) -> list[dict]:
    """Param changes of several records, one entry per (key, change, a, b) with its records."""
    merged: dict[str, dict] = {}
    for label in sorted(per_record):
        for p in per_record[label]:
            k = json.dumps([p["key"], p["change"], p["a"], p["b"]], sort_keys=True)
            merged.setdefault(k, {**p, "records": []})["records"].append(label)
    return sorted(merged.values(), key=lambda p: (p["key"], p["records"]))


def compare_run(key: tuple, la: Loaded, lb: Loaded) -> dict:
    study, run, seed = key
    ra, rb = la.runs.get(key), lb.runs.get(key)
    entry: dict[str, Any] = {"study": study, "run": run, "seed": seed,
                             "status": BOTH if ra and rb else (ONLY_A if ra else ONLY_B),
                             "params": [], "upstream_params": [], "records": [], "metrics": [], "bootstrap": None,
                             "summary": None}
    if not (ra and rb):
        entry["summary"] = entry["status"]
        return entry
    own = sorted(set(ra["own"]) | set(rb["own"]))
    upstream = sorted((set(chain(la, ra["own"])) | set(chain(lb, rb["own"]))) - set(own))
    own_params = {label: diff_params(la.records[label]["params"], lb.records[label]["params"])
                  for label in own if label in la.records and label in lb.records}
    entry["params"] = _merge_params(own_params)
    entry["upstream_params"] = [{**p, "record": label} for label in upstream
                                if label in la.records and label in lb.records
                                for p in diff_params(la.records[label]["params"], lb.records[label]["params"])]
    produced = set(la.produced_by) | set(lb.produced_by)
    for label in own + upstream:
        d = diff_record(la.records.get(label), lb.records.get(label), produced)
        if d is not None:
            entry["records"].append({"record": label, "scope": "run" if label in own else "upstream", **d})
    boot = ra["metrics"]["bootstrap"]
    iterations, bseed = int(boot["iterations"]), int(boot["seed"])
    entry["bootstrap"] = {"iterations": iterations, "seed": bseed, "level": LEVEL,
                          "from": "A", "same_in_b": _same(rb["metrics"]["bootstrap"], boot)}
    names = list(dict.fromkeys([*ra["metrics"]["metrics"], *rb["metrics"]["metrics"]]))
    primary = ra["metrics"]["primary"]
    names.sort(key=lambda n: (n != primary, n))
    entry["metrics"] = [compare_metric(n, ra, rb, iterations, bseed) for n in names]
    entry["summary"] = _summary(entry)
    return entry


def _summary(entry: dict) -> str:
    parts = []
    if entry["params"]:
        parts.append("params changed: " + ", ".join(dict.fromkeys(p["key"] for p in entry["params"])))
    if entry["upstream_params"]:
        parts.append("upstream params changed: " + ", ".join(
            dict.fromkeys(f"{p['record']} {p['key']}" for p in entry["upstream_params"])))
    recs = entry["records"]
    if any(r["code_changed"] for r in recs):
        parts.append("code changed")
    if recs and not parts:
        if any(r["inputs_changed"] for r in recs):
            parts.append("same params and code, different data")
        else:
            parts.append("; ".join(dict.fromkeys(c for r in recs for c in r["causes"])))
    if not parts:
        parts.append("records identical")
    return "; ".join(parts)


def diff_results(a: str, b: str) -> dict:
    """Compare two results folders (or ``PATH@REV``); the JSON-ready report."""
    with ExitStack() as stack:
        sa, sb = open_side(a, stack), open_side(b, stack)
        la, lb = load(sa), load(sb)
        keys = sorted(la.runs.keys() | lb.runs.keys(), key=lambda k: (k[0], k[1], -1 if k[2] is None else k[2]))
        runs = [compare_run(k, la, lb) for k in keys]
    counts = {s: sum(r["status"] == s for r in runs) for s in (BOTH, ONLY_A, ONLY_B)}
    counts["changed_params"] = sum(bool(r["params"]) for r in runs)
    counts["changed_metrics"] = sum(any(m["verdict"] == CHANGED for m in r["metrics"]) for r in runs)
    return {"schema": SCHEMA,
            "a": {"spec": sa.spec, "path": sa.path, "revision": sa.revision},
            "b": {"spec": sb.spec, "path": sb.path, "revision": sb.revision},
            "level": LEVEL, "counts": counts, "runs": runs}


# --- output ---------------------------------------------------------------------------------------
def _json_safe(obj: Any) -> Any:
    """NaN and infinities (a recorded CI that was undefined) as null: strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    return obj


def to_json(report: dict) -> str:
    return json.dumps(_json_safe(report), indent=2, sort_keys=True, allow_nan=False) + "\n"


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else ("(absent)" if value is None else json.dumps(value, sort_keys=True))
    return " ".join(text.split()).replace("|", "\\|")


def _num(m: dict | None) -> str:
    if m is None:
        return "(absent)"
    lo, hi = m["ci_low"], m["ci_high"]
    return fmt_ci(m["estimate"], (lo, hi), 4)


def _delta(m: dict) -> str:
    if m["delta"] is None:
        return "(absent)"
    if m["ci_low"] is None or m["ci_high"] is None:
        return f"{m['delta']:+.4f}"
    return f"{m['delta']:+.4f} [{m['ci_low']:+.4f}, {m['ci_high']:+.4f}]"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out + [""]


def to_markdown(report: dict) -> str:
    def side(s: dict) -> str:
        return f"`{s['path']}` at git revision `{s['revision'][:12]}`" if s["revision"] else f"`{s['path']}`"

    c = report["counts"]
    level = int(round(report["level"] * 100))
    lines = ["# medrepro diff", "", f"- A: {side(report['a'])}", f"- B: {side(report['b'])}",
             f"- runs x seeds: {c[BOTH]} in both, {c[ONLY_A]} only in A, {c[ONLY_B]} only in B; "
             f"{c['changed_params']} with changed params, {c['changed_metrics']} with a changed metric", "",
             f"Deltas are B - A. The CI of a delta is the {level}% paired bootstrap over the test units both runs "
             "were evaluated on (the leaderboard's draws; iterations and seed from A's metrics.json). Verdict: "
             f"{CHANGED} when that CI excludes 0, {NOT_DISTINGUISHABLE} when it holds 0, {NOT_PAIRED} when the "
             "runs do not share their test units or have no per-unit values.", ""]
    runs = report["runs"]
    key = lambda r: [r["study"], r["run"], r["seed"]]  # noqa: E731
    lines += ["## Runs", ""] + _table(["study", "run", "seed", "status", "what differs"],
                                      [key(r) + [r["status"], r["summary"]] for r in runs])
    rows = [key(r) + [p["key"], p["change"], p["a"], p["b"], ", ".join(p["records"])] for r in runs for p in r["params"]]
    lines += ["## Params (the run's own jobs)", ""]
    lines += _table(["study", "run", "seed", "param", "change", "A", "B", "records"], rows) if rows else \
        ["No param of any run's own jobs differs.", ""]
    rows = [key(r) + [p["record"], p["key"], p["change"], p["a"], p["b"]] for r in runs for p in r["upstream_params"]]
    lines += ["## Params of the jobs the runs depend on", ""]
    lines += _table(["study", "run", "seed", "job", "param", "change", "A", "B"], rows) if rows else \
        ["No param of an upstream job differs.", ""]
    rows = [key(r) + [d["record"], "; ".join(d["causes"])] for r in runs for d in r["records"]]
    lines += ["## Job records that differ", ""]
    lines += _table(["study", "run", "seed", "job", "difference"], rows) if rows else \
        ["Every job record of every run in both is the same (lineage ids and output bytes).", ""]
    rows = []
    for r in runs:
        for m in r["metrics"]:
            verdict = m["verdict"] + (f" ({m['reason']})" if m["reason"] else "")
            rows.append(key(r) + [m["name"] + (" (primary)" if m["primary"] else ""), _num(m["a"]), _num(m["b"]),
                                  _delta(m), verdict])
    lines += ["## Metrics", ""]
    lines += _table(["study", "run", "seed", "metric", f"A [{level}% CI]", f"B [{level}% CI]",
                     f"delta B - A [{level}% paired CI]", "verdict"], rows) if rows else \
        ["No run is in both.", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_diff(a: str, b: str, json_out: str | Path | None = None, md_out: str | Path | None = None) -> dict:
    """Compare, write the JSON and Markdown forms where asked; return the report."""
    report = diff_results(a, b)
    if json_out is not None:
        write_text(Path(json_out), to_json(report))
    if md_out is not None:
        write_text(Path(md_out), to_markdown(report))
    return report
