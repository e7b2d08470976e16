"""Provenance records and lineage ids.

Every job writes ``<rule>.provenance.json`` beside its outputs. The lineage id is a hash of the
rule, its resolved params, the hash of the medrepro modules it depends on and the lineage ids of
its inputs (the sha256 of an input that no job of this workflow produced), so two results with
the same lineage id were produced the same way from the same data.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import json
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable

from medrepro.codehash import files_hash
from medrepro.errors import MismatchError
from medrepro.fsutil import sha256_file, write_json
from medrepro.hashcache import file_sha256

SCHEMA = "medrepro-provenance-v1"
PACKAGES = ("medrepro", "snakemake", "torch", "numpy", "scipy", "pandas", "scikit-learn", "scikit-image")
SRC_ROOT = Path(__file__).resolve().parent


def imported_code_hash() -> dict[str, Any]:
    """Hash of every medrepro module this process imported (recorded, not used for reruns)."""
    names = sorted(n for n, m in sys.modules.items()
                   if (n == "medrepro" or n.startswith("medrepro.")) and getattr(m, "__file__", None))
    return {"modules": names, "sha256": files_hash(names)}


# Snakemake adds this marker to every directory() output after the job that wrote it.
_DIR_MARKERS = {".snakemake_timestamp"}


def _dir_files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file() and p.name not in _DIR_MARKERS)


def path_sha256(path: str | Path, cached: bool = True) -> str:
    """sha256 of a file's bytes, or of a directory as the sorted (relative path, file sha256)
    list (Snakemake's own timestamp marker left out). ``cached``: reuse the hash of a file that
    has not changed since it was last hashed (:mod:`medrepro.hashcache`); the bytes are always
    the file's own."""
    path = Path(path)
    file_hash = file_sha256 if cached else sha256_file
    if path.is_dir():
        h = hashlib.sha256()
        for f in _dir_files(path):
            h.update(f"{f.relative_to(path)}\0{file_hash(f)}\n".encode())
        return h.hexdigest()
    return file_hash(path)


def dir_file_hashes(path: Path, cached: bool = True) -> dict[str, str]:
    """relative path -> sha256 of every file in a directory (the parts of its hash)."""
    file_hash = file_sha256 if cached else sha256_file
    return {f.relative_to(path).as_posix(): file_hash(f) for f in _dir_files(Path(path))}


def describe_dir_change(path: Path, recorded: dict[str, str] | None) -> str:
    """Which files of a directory differ from the per-file hashes recorded for it."""
    if not recorded:
        return ""
    now = dir_file_hashes(path)
    changed = [f"{k} (recorded {recorded[k]}, now {now[k]})" for k in sorted(recorded) if k in now and now[k] != recorded[k]]
    added = sorted(set(now) - set(recorded))
    removed = sorted(set(recorded) - set(now))
    parts = ([f"changed: {'; '.join(changed)}"] if changed else []) + \
            ([f"added: {', '.join(added)}"] if added else []) + ([f"removed: {', '.join(removed)}"] if removed else [])
    return "; ".join(parts)


def path_size(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in _dir_files(path))
    return path.stat().st_size


def provenance_path(rule: str, outputs: list[str | Path]) -> Path:
    first = Path(outputs[0])
    return first.parent / f"{rule}.provenance.json"


def _candidate_records(path: Path) -> list[Path]:
    """Provenance files that may list ``path``: those beside it first, then those in each
    enclosing folder and in that folder's subfolders (a job writes its record beside its first
    output; its other outputs may sit in a sibling folder, e.g. a figure)."""
    seen: list[Path] = []
    for folder in [path.parent, *path.parent.parents]:
        if folder == Path(".") or folder == Path(folder.anchor):
            break
        for pattern in ("*.provenance.json", "*/*.provenance.json"):
            for prov in sorted(folder.glob(pattern)):
                if prov not in seen:
                    seen.append(prov)
    return seen


def _read_record(prov: Path) -> dict | None:
    try:
        return json.loads(prov.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def find_producer(path: str | Path) -> tuple[Path, dict] | None:
    """(provenance file, output record with path, size, sha256, lineage id) of the job that
    wrote ``path``, from the provenance files near it (see :func:`_candidate_records`); None for
    a file no job produced."""
    path = Path(path)
    for prov in _candidate_records(path):
        record = _read_record(prov)
        for out in (record or {}).get("outputs", []):
            if Path(out["path"]) == path:
                return prov, out
    return None


def lookup_output(path: str | Path) -> dict | None:
    found = find_producer(path)
    return found[1] if found else None


def lookup_lineage(path: str | Path) -> str | None:
    """Lineage id of ``path`` if a provenance file beside it lists it as an output."""
    out = lookup_output(path)
    return out["lineage_id"] if out else None


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, check=True, cwd=SRC_ROOT, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def git_state() -> dict[str, Any]:
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def packages() -> dict[str, str | None]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


_ENVIRONMENT: dict[str, Any] | None = None


def environment() -> dict[str, Any]:
    """The full installed package set of this Python: every distribution's normalised name and
    version, and the sha256 of :func:`environment_text` of it (one hash names the set)."""
    global _ENVIRONMENT
    if _ENVIRONMENT is None:
        dists: dict[str, str] = {}
        for dist in importlib.metadata.distributions():
            name = (dist.metadata["Name"] or "").strip()
            if name:
                dists.setdefault(name.lower().replace("_", "-"), dist.version)
        dists = dict(sorted(dists.items()))
        text = "".join(f"{n}=={v}\n" for n, v in dists.items())
        _ENVIRONMENT = {"sha256": hashlib.sha256(text.encode()).hexdigest(), "distributions": dists}
    return _ENVIRONMENT


def environment_text(env: dict[str, Any] | None = None) -> str:
    """``name==version`` lines of :func:`environment`, sorted (what its sha256 is taken of)."""
    env = env or environment()
    return "".join(f"{n}=={v}\n" for n, v in env["distributions"].items())


def write_environment(path: Path) -> dict[str, Any]:
    """``path``: this Python's package set, one ``name==version`` per line after three ``#``
    header lines (Python, platform, the sha256 of the lines below). Returns :func:`environment`."""
    from medrepro.fsutil import write_text

    env = environment()
    header = (f"# python {sys.version.split()[0]} ({sys.executable})\n# platform {platform.platform()}\n"
              f"# sha256 of the {len(env['distributions'])} lines below: {env['sha256']}\n")
    write_text(Path(path), header + environment_text(env))
    return env


def read_environment(path: Path) -> dict[str, Any]:
    """The package set in a file written by :func:`write_environment`: the sha256 of its
    ``name==version`` lines (recomputed from the bytes, not taken from the header) and their count."""
    lines = [ln for ln in Path(path).read_text().splitlines(keepends=True) if not ln.startswith("#")]
    return {"sha256": hashlib.sha256("".join(lines).encode()).hexdigest(), "n_distributions": len(lines)}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_info(used: str = "cpu") -> dict[str, Any]:
    """The device a job actually used: CPU model always; GPU, CUDA and driver when on CUDA."""
    info: dict[str, Any] = {"used": used, "cpu": cpu_model(), "cpu_count": os.cpu_count()}
    info["cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES")
    if used.startswith("cuda"):
        import torch

        idx = torch.device(used).index or 0
        info["gpu"] = torch.cuda.get_device_name(idx)
        info["cuda"] = torch.version.cuda
        info["gpu_memory_gb"] = round(torch.cuda.get_device_properties(idx).total_memory / 2**30, 1)
        try:
            smi = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=10,
            )
            info["driver"] = smi.stdout.strip().splitlines()[0] if smi.returncode == 0 else None
        except (OSError, subprocess.SubprocessError, IndexError):
            info["driver"] = None
    return info


# CPU features that change which floating-point kernels BLAS, oneDNN and numpy dispatch to.
_KERNEL_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_tile",
                 "asimd", "sve")


def numerics_info() -> dict[str, Any]:
    """What decides whether two machines can give bitwise-equal numbers: the CPU's vector
    features, the BLAS libraries numpy loaded (threadpoolctl), and torch's threading,
    deterministic-algorithm, oneDNN and cuDNN settings (when the job imported torch)."""
    flags: list[str] = []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = line.split(":", 1)[1].split()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu_flags": sorted(f for f in set(flags) if f in _KERNEL_FLAGS),
        "cpu_flags_sha256": hashlib.sha256(" ".join(sorted(set(flags))).encode()).hexdigest() if flags else None,
        "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                               "OPENBLAS_CORETYPE", "CUBLAS_WORKSPACE_CONFIG") if k in os.environ},
    }
    if "numpy" in sys.modules:
        try:
            from threadpoolctl import threadpool_info

            info["blas"] = [{k: lib.get(k) for k in ("internal_api", "version", "threading_layer", "architecture",
                                                       "num_threads")}
                            for lib in sorted(threadpool_info(), key=lambda x: (x.get("internal_api") or "",
                                                                               x.get("filepath") or ""))]
        except Exception as e:  # never fail a job over what it records about the machine
            info["blas"] = f"unavailable: {type(e).__name__}"
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch"] = {
            "version": torch.__version__, "num_threads": torch.get_num_threads(),
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "mkldnn": torch.backends.mkldnn.is_available(),
            "cudnn": {"available": torch.backends.cudnn.is_available(),
                      "version": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
                      "deterministic": torch.backends.cudnn.deterministic, "benchmark": torch.backends.cudnn.benchmark},
        }
    return info


def slurm_info() -> dict[str, Any] | None:
    """SLURM job id, partition, node, cluster and GPUs of the running job (None outside SLURM).

    The executor plugin's job step drops most SLURM_* variables before its inner srun, so GPUs
    are read from SLURM_GPUS_ON_NODE (set there) before SLURM_GPUS."""
    env = os.environ
    if "SLURM_JOB_ID" not in env:
        return None
    return {
        "job_id": env.get("SLURM_JOB_ID"), "step_id": env.get("SLURM_STEP_ID"),
        "partition": env.get("SLURM_JOB_PARTITION"), "node": env.get("SLURMD_NODENAME"),
        "cluster": env.get("SLURM_CLUSTER_NAME"), "cpus_on_node": env.get("SLURM_CPUS_ON_NODE"),
        "gpus": env.get("SLURM_GPUS_ON_NODE") or env.get("SLURM_GPUS"),
    }


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def lineage_id(rule: str, params: dict, code_sha256: str, input_lineages: list[str],
               wildcards: dict | None = None) -> str:
    """Hash of how a result was made: rule, wildcards (e.g. the seed), params, code, inputs."""
    h = hashlib.sha256()
    h.update(canonical({"rule": rule, "wildcards": wildcards or {}, "params": params, "code": code_sha256,
                        "inputs": sorted(input_lineages)}).encode())
    return h.hexdigest()


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class Recorder:
    """Collects provenance for one job. Use ``start()`` before the work, ``finish()`` after."""

    def __init__(self, rule: str, wildcards: dict, params: dict, inputs: list, outputs: list,
                 code_modules: list[str] | None = None, seeds: dict | None = None,
                 code_templates: list[str] | None = None):
        self.rule = rule
        self.wildcards = {k: str(v) for k, v in dict(wildcards).items()}
        self.params = params
        self.inputs = [Path(p) for p in inputs]
        self.outputs = [Path(p) for p in outputs]
        self.code_modules = code_modules or []
        self.code_templates = code_templates or []
        self.seeds = seeds or {}
        self.device: dict[str, Any] = device_info("cpu")
        self.started = now()
        self.extra: dict[str, Any] = {}
        self._inputs: list[dict] | None = None

    def set_device(self, used: str) -> None:
        self.device = device_info(used)

    def check_inputs(self) -> list[dict]:
        """Hash the bytes of every input. An input another job produced must have the bytes
        that job recorded (else :class:`~medrepro.errors.MismatchError` naming the file, both
        hashes and the record); its lineage id is then that job's."""
        inputs = []
        for p in self.inputs:
            sha = path_sha256(p)
            found = find_producer(p)
            lineage = sha
            if found:
                prov, out = found
                if out["sha256"] != sha:
                    detail = describe_dir_change(p, out.get("files")) if p.is_dir() else ""
                    raise MismatchError(p, "sha256", f"the bytes hash to {sha}, its producer's record {prov} says "
                                        f"{out['sha256']}" + (f"; {detail}" if detail else ""),
                                        "the bytes the producing job wrote (restore the file or rerun that job)")
                lineage = out["lineage_id"]
            inputs.append({"path": str(p), "size": path_size(p), "sha256": sha, "lineage_id": lineage})
        self._inputs = inputs
        return inputs

    def finish(self, path: str | Path | None = None, extra: dict | None = None) -> dict:
        """Write the provenance record (atomically) and return it."""
        # recomputed from the files now, not taken from the rule's param
        rule_code = files_hash(self.code_modules or ["medrepro"], self.code_templates)
        inputs = self._inputs if self._inputs is not None else self.check_inputs()
        lid = lineage_id(self.rule, self.params, rule_code, [i["lineage_id"] for i in inputs], self.wildcards)
        outputs = []
        for p in self.outputs:
            if p.exists():
                out = {"path": str(p), "size": path_size(p), "sha256": path_sha256(p), "lineage_id": lid}
                if p.is_dir():  # per-file hashes, so a later change can be named file by file
                    out["files"] = dir_file_hashes(p)
                outputs.append(out)
        record = {
            "schema": SCHEMA,
            "rule": self.rule,
            "wildcards": self.wildcards,
            "params": self.params,
            "inputs": inputs,
            "outputs": outputs,
            "code": {
                **git_state(),
                "rule_modules": self.code_modules,
                "rule_templates": self.code_templates,
                "rule_modules_sha256": rule_code,
                "imported": imported_code_hash(),
            },
            "python": sys.version.split()[0],
            "packages": packages(),
            "environment": environment(),
            "host": socket.gethostname(),
            "platform": platform.platform(),
            "device": self.device,
            "numerics": numerics_info(),
            "slurm": slurm_info(),
            "seeds": self.seeds,
            "start": self.started,
            "end": now(),
            "lineage_id": lid,
            "extra": {**self.extra, **(extra or {})},
        }
        write_json(path or provenance_path(self.rule, self.outputs), record)
        return record
