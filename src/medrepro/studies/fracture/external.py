"""A folder of result files a lab already has, as rows of the fracture challenge table: the
study's importer for :mod:`medrepro.external`. The folder is read by the challenge's rules
(:func:`medrepro.studies.fracture.challenge.collect`); each run's row keeps its file's sha256."""

from __future__ import annotations

from pathlib import Path

from medrepro.fsutil import sha256_file
from medrepro.studies.fracture.challenge import METRICS, collect


def _block(value) -> dict:
    nan = float("nan")
    if isinstance(value, dict):
        return {"estimate": float(value["estimate"]), "ci_low": float(value.get("ci_low", nan)),
                "ci_high": float(value.get("ci_high", nan)), "n": 0}
    return {"estimate": float(value), "ci_low": nan, "ci_high": nan, "n": 0}


def import_results(source: Path, *, name: str, bootstrap: dict, descriptor: dict) -> dict:
    """The folder's top run (by Dice_pos) as the entry's metrics (no per-image values: CIs only
    where the file carries them, ``n`` 0 = not stated), and every run's row in ``details.rows``."""
    rows, info = collect(Path(source))
    out_rows = [{"run": r["run"], "source": r["source"], "metrics": r["metrics"], "files": r["files"],
                 "sha256": sha256_file(Path(source) / r["source"])} for r in rows]
    top = rows[0]
    metrics = {k: _block(v) for k, v in top["metrics"].items() if k in METRICS and v is not None}
    return {"metrics": metrics, "units": None, "format": "folder of *metrics*.json result files",
            "details": {"rows": out_rows, "top_run": top["run"], "found": info["found"],
                        "excluded": info["excluded"], "exclude": info["exclude"]}}
