"""Results made outside the pipeline, entering a study's leaderboard section.

A study block's ``external:`` maps a name to a file or folder a lab already has (predictions,
result files). The shared rule ``external_import`` hands it to the study's registered importer
(``Study.importer``, ``"module:function"``), which returns the metrics and the per-unit table
in the study's own terms; this module writes them as a ``metrics.json`` in the one schema,
marked ``external`` with the sha256 of the bytes read (per file for a folder), so the row's
provenance is the file itself. Nothing here names a study.

An importer is called as ``importer(source: Path, *, name, bootstrap, descriptor)`` and returns
``{"metrics": {name: {estimate, ci_low, ci_high, n}}, "units": DataFrame | None,
"details": {...}, "format": "<what the source was>"}``.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from medrepro.errors import InputError
from medrepro.fsutil import atomic_path, write_json
from medrepro.provenance import dir_file_hashes, path_sha256


def load_importer(target: str):
    module, attr = target.split(":", 1)
    return getattr(importlib.import_module(module), attr)


def source_hashes(source: Path) -> dict:
    """sha256 of the source: one for a file; per relative path, and one over them, for a folder."""
    if source.is_dir():
        files = dir_file_hashes(source, cached=False)
        return {"sha256": path_sha256(source, cached=False), "files": files}
    if not source.is_file():
        raise InputError(source, "external", "no such file or folder", "a results file or folder a lab already has")
    return {"sha256": path_sha256(source, cached=False)}


def import_external(study: str, name: str, source: Path, importer: str, out_metrics: Path, out_units: Path,
                    bootstrap: dict, descriptor: dict, data_kind: str = "real") -> dict:
    """Import one external entry; write ``metrics.json`` and its per-unit table (header only
    when the source has no per-unit values, e.g. a file of summary metrics)."""
    source = Path(source)
    hashes = source_hashes(source)
    result = load_importer(importer)(source, name=name, bootstrap=bootstrap, descriptor=descriptor)
    after = source_hashes(source)
    if after["sha256"] != hashes["sha256"]:
        raise InputError(source, "external", "changed while it was read", "a file or folder that stays put")
    units = result.get("units")
    with atomic_path(out_units) as tmp:
        if units is None:
            tmp.write_text("unit_id,cluster\n")
        else:
            units.to_csv(tmp, index=False)
    metrics = {
        "schema": "medrepro-metrics-v1", "study": study, "run": name, "seed": None, "split": None,
        "primary": descriptor["primary"], "metrics": result["metrics"], "units": Path(out_units).name,
        "selection": {"policy": "none", "test_guided": bool(result.get("test_guided", False)), "step": None},
        "bootstrap": {"iterations": int(bootstrap["iterations"]), "seed": int(bootstrap["seed"]), "level": 0.95,
                      "cluster": descriptor.get("unit", "test unit")},
        "data": {"kind": data_kind},
        "external": {"source": str(source), "format": result.get("format", ""), **hashes},
        "details": result.get("details", {}),
    }
    if descriptor["primary"] not in metrics["metrics"]:
        raise InputError(source, descriptor["primary"], "not reported", "the study's primary metric")
    write_json(out_metrics, metrics)
    return metrics
