"""`medrepro reproduce`: run the chain of jobs behind a result again and compare the bytes.

The target is a file in a results folder (e.g. a ``metrics.json``) or a lineage id (a prefix of
at least 8 hex characters, as the leaderboard shows 12). Its chain is the job that wrote it and,
transitively, every job that wrote one of that job's inputs. In a scratch folder:

1. the code is the recorded commit (``git archive`` of the repository this medrepro sits in);
   a record made from a tree with uncommitted changes is refused unless ``allow_dirty``, which
   uses the current tree instead and says so;
2. inputs no job of the chain produced (raw data, config files) are linked in from the
   original folder, after checking that their bytes still equal the recorded ones;
3. each job runs its recorded script with its recorded named inputs, outputs, params,
   wildcards and threads, in dependency order;
4. every output of the chain is compared with its record. Where the new records show the
   same numerics as the old ones (CPU vector features, BLAS, torch threads and deterministic
   mode, device), the bytes must be equal. Elsewhere JSON and CSV files are compared number by
   number within ``rtol`` / ``atol``, and other files by bytes.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from medrepro.codehash import SRC_ROOT
from medrepro.errors import InputError
from medrepro.provenance import path_sha256
from medrepro.verify import _base, _load_records

RTOL, ATOL = 1e-6, 1e-9
THREAD_VARS = ("OMP_NUM_THREADS", "GOTO_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


@dataclass
class FileResult:
    path: str
    rule: str
    status: str  # "bytes equal" | "within tolerance" | "differs" | "missing"
    detail: str = ""


@dataclass
class Result:
    target: str
    commit: str | None
    code_source: str
    jobs: list[str]
    mode: str  # "bytes" | "numeric"
    files: list[FileResult] = field(default_factory=list)
    scratch: str | None = None

    @property
    def ok(self) -> bool:
        return all(f.status in ("bytes equal", "within tolerance") for f in self.files)


def _find_target(target: str, records: dict[Path, dict], base: Path) -> tuple[Path, dict]:
    by_output = {o["path"]: (p, r) for p, r in records.items() for o in r["outputs"]}
    candidates = [target]
    if Path(target).exists():
        absolute = Path(target).resolve()
        candidates += [os.path.relpath(absolute, base), str(absolute)]
    for c in candidates:
        if c in by_output:
            return by_output[c]
    t = target.lower()
    if len(t) >= 8 and all(ch in "0123456789abcdef" for ch in t):
        hits = [(p, r) for p, r in records.items() if r["lineage_id"].startswith(t)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise InputError(None, "target", f"lineage id prefix {target!r} matches {len(hits)} jobs", "a longer prefix")
    raise InputError(None, "target", f"{target!r} is no output and no lineage id of a recorded job",
                     "a file in the results folder or a lineage id (8 or more hex characters)")


def chain_of(target: tuple[Path, dict], records: dict[Path, dict]) -> list[tuple[Path, dict]]:
    """The target's job and every job upstream of it, producers first."""
    by_output = {o["path"]: (p, r) for p, r in records.items() for o in r["outputs"]}
    order: list[tuple[Path, dict]] = []
    done: set[Path] = set()

    def visit(item: tuple[Path, dict], stack: tuple[Path, ...]) -> None:
        prov, rec = item
        if prov in done:
            return
        if prov in stack:
            raise InputError(prov, "inputs", "the records form a cycle", "an acyclic chain of jobs")
        for i in rec["inputs"]:
            if i["path"] in by_output:
                visit(by_output[i["path"]], stack + (prov,))
        done.add(prov)
        order.append(item)

    visit(target, ())
    return order


def _code_tree(chain: list[tuple[Path, dict]], dest: Path, allow_dirty: bool) -> tuple[str | None, str]:
    commits = {r["code"].get("commit") for _, r in chain}
    if len(commits) != 1 or None in commits:
        raise InputError(None, "code.commit", f"the chain's records name commits {sorted(map(str, commits))}",
                         "one recorded commit (rerun the chain at one commit first)")
    commit = commits.pop()
    dirty = any(r["code"].get("dirty") for _, r in chain)
    repo = SRC_ROOT.parents[1]
    if dirty and not allow_dirty:
        raise InputError(None, "code.dirty", f"the records were made from commit {commit[:12]} with uncommitted changes",
                         "records made from a committed tree (or --allow-dirty to run the current tree instead)")
    if dirty:
        for part in ("src", "workflow"):
            shutil.copytree(repo / part, dest / part, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        return commit, f"the current tree of {repo} (the records' tree at {commit[:12]} had uncommitted changes)"
    proc = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", commit, "src", "workflow"],
                          capture_output=True, timeout=300)
    if proc.returncode != 0:
        raise InputError(repo, "git", f"cannot archive commit {commit}: {proc.stderr.decode(errors='replace').strip()}",
                         "the recorded commit in this repository")
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return commit, f"commit {commit}"


def _flatten(values) -> list[str]:
    out = []
    for v in values:
        out.extend(_flatten(v) if isinstance(v, (list, tuple)) else [str(v)])
    return out


def _same_numerics(old: dict, new: dict) -> bool:
    keys = ("cpu_flags_sha256", "blas", "torch")
    return all(old.get("numerics", {}).get(k) == new.get("numerics", {}).get(k) for k in keys) and \
        old.get("device", {}).get("used") == new.get("device", {}).get("used")


def _close(a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or isinstance(a, str) or isinstance(b, str) or a is None or b is None:
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=RTOL, abs_tol=ATOL)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    return a == b


def _numeric_equal(old: Path, new: Path) -> bool:
    if old.suffix == ".json":
        return _close(json.loads(old.read_text()), json.loads(new.read_text()))
    if old.suffix == ".csv":
        a, b = pd.read_csv(old), pd.read_csv(new)
        if list(a.columns) != list(b.columns) or a.shape != b.shape:
            return False
        return all(_close(a[c].tolist(), b[c].tolist()) for c in a.columns)
    return path_sha256(old, cached=False) == path_sha256(new, cached=False)


def reproduce(target: str, results: str | Path, scratch: str | Path | None = None, allow_dirty: bool = False,
              keep: bool = False, timeout: int = 3600) -> Result:
    results = Path(results).resolve()
    records = _load_records(results)
    base = next(_base(p, r) for p, r in records.items() if r["outputs"])
    chain = chain_of(_find_target(target, records, base), records)
    missing = [str(p) for p, r in chain if "job" not in r.get("extra", {})]
    if missing:
        raise InputError(missing[0], "extra.job", "no named inputs and outputs recorded",
                         "a record written by a medrepro version that records them (rerun the job)")
    root = Path(scratch) if scratch else Path(tempfile.mkdtemp(prefix="medrepro-reproduce-"))
    root.mkdir(parents=True, exist_ok=True)
    tree, work = root / "tree", root / "work"
    tree.mkdir(exist_ok=True)
    work.mkdir(exist_ok=True)
    commit, source = _code_tree(chain, tree, allow_dirty)
    produced = {o["path"] for _, r in chain for o in r["outputs"]}
    # raw inputs: linked in once their bytes are checked against the record
    for _, rec in chain:
        for i in rec["inputs"]:
            if i["path"] in produced or Path(i["path"]).is_absolute():
                continue
            original = base / i["path"]
            if not original.exists() or path_sha256(original, cached=False) != i["sha256"]:
                raise InputError(original, "sha256", "missing or changed since it was recorded",
                                 f"the input recorded with sha256 {i['sha256']}")
            link = work / i["path"]
            if not link.exists():
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(original)
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "MEDREPRO_HASH_CACHE": ""}
    result = Result(target=target, commit=commit, code_source=source, jobs=[], mode="bytes",
                    scratch=str(root) if keep or scratch else None)
    numerics_same = True
    for prov, rec in chain:
        job = rec["extra"]["job"]
        spec = {"rule": rec["rule"], "script": str(tree / "workflow" / "scripts" / rec["params"]["code"]["script"]),
                "input": job["input"], "output": job["output"], "params": rec["params"],
                "wildcards": rec["wildcards"], "log": job["log"], "threads": job["threads"]}
        for path in [*job["log"], *_flatten(job["output"].values())]:  # as Snakemake does before a job
            (work / path).parent.mkdir(parents=True, exist_ok=True)
        spec_path = root / f"job{len(result.jobs):03d}.json"
        spec_path.write_text(json.dumps(spec))
        # the thread settings Snakemake gives a job (they decide how BLAS splits its sums)
        threads = str(job["threads"])
        job_env = {**env, **{k: threads for k in THREAD_VARS}}
        proc = subprocess.run([sys.executable, "-m", "medrepro.reproduce_job", str(spec_path)], cwd=work,
                              env=job_env, capture_output=True, text=True, timeout=timeout)
        result.jobs.append(f"{rec['rule']} {rec['wildcards'] or ''}".strip())
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise InputError(prov, "rule", f"{rec['rule']} failed when run again: {tail}", "the job to run as recorded")
        new_rec = json.loads((work / job["output"]["prov"]).read_text())
        numerics_same = numerics_same and _same_numerics(rec, new_rec)
        for o in rec["outputs"]:
            new = work / o["path"]
            if not new.exists():
                result.files.append(FileResult(o["path"], rec["rule"], "missing"))
            elif path_sha256(new, cached=False) == o["sha256"]:
                result.files.append(FileResult(o["path"], rec["rule"], "bytes equal"))
            else:
                result.files.append(FileResult(o["path"], rec["rule"], "differs", f"recorded {o['sha256']}, "
                                               f"now {path_sha256(new, cached=False)}"))
    if not numerics_same:  # another kind of machine: numbers within tolerance instead of bytes
        result.mode = "numeric"
        for f in result.files:
            if f.status == "differs" and (base / f.path).exists() and _numeric_equal(base / f.path, work / f.path):
                f.status, f.detail = "within tolerance", f"rtol {RTOL}, atol {ATOL}"
    if not (keep or scratch):
        shutil.rmtree(root, ignore_errors=True)
    return result


def format_result(r: Result) -> str:
    lines = [f"reproduced {r.target}: {len(r.jobs)} jobs with {r.code_source}",
             f"comparison: {'bytes (same numerics as recorded)' if r.mode == 'bytes' else 'numbers within tolerance where the numerics differ from the record'}"]
    lines += [f"  {f.status:16s} {f.path}" + (f" ({f.detail})" if f.detail else "") for f in r.files]
    if r.scratch:
        lines.append(f"scratch folder kept: {r.scratch}")
    lines.append("OK: every output of the chain reproduced" if r.ok
                 else f"{sum(not (f.status in ('bytes equal', 'within tolerance')) for f in r.files)} outputs differ")
    return "\n".join(lines)
