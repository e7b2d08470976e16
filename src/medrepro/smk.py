"""The wrapper every workflow script runs inside: logging to the rule's log file, provenance
written on success, no partial outputs on failure (the library writes atomically)."""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
from typing import Any, Iterator

from medrepro.provenance import Recorder


def _plain(obj: Any) -> Any:
    """Snakemake params (Namespaces, dict-likes) -> plain JSON-able data."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def _flat(items) -> list[str]:
    out = []
    for item in items:
        out.extend(_flat(item) if isinstance(item, (list, tuple)) else [str(item)])
    return out


@contextlib.contextmanager
def job(snakemake, seeds: dict | None = None) -> Iterator[Recorder]:
    """Run a rule's work; on success write ``snakemake.output.prov``."""
    log_path = snakemake.log[0] if len(snakemake.log) else None
    handlers = [logging.FileHandler(log_path, mode="w")] if log_path else []
    handlers.append(logging.StreamHandler(sys.stderr))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", handlers=handlers, force=True)
    params = {k: _plain(v) for k, v in snakemake.params.items()}
    code = params.get("code", {})
    outputs = _flat(p for name, p in snakemake.output.items() if name != "prov")
    inputs = _flat(snakemake.input)
    recorder = Recorder(snakemake.rule, dict(snakemake.wildcards.items()), params, inputs, outputs,
                        code_modules=code.get("modules"), code_templates=code.get("templates"), seeds=seeds)
    # the job's named inputs and outputs, log and threads: what `medrepro reproduce` needs to run it again
    recorder.extra["job"] = {
        "input": {k: _plain(v) for k, v in snakemake.input.items()},
        "output": {k: _plain(v) for k, v in snakemake.output.items()},
        "log": [str(p) for p in snakemake.log], "threads": int(getattr(snakemake, "threads", 1) or 1),
    }
    logging.info("rule %s wildcards %s", snakemake.rule, dict(snakemake.wildcards.items()))
    try:
        recorder.check_inputs()  # before any work: refuse inputs whose bytes differ from their record
        yield recorder
    except BaseException:
        logging.error("job failed:\n%s", traceback.format_exc())
        raise
    recorder.finish(snakemake.output.prov)
    logging.info("provenance written to %s", snakemake.output.prov)
