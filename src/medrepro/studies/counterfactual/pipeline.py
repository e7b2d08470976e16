"""Workflow glue for the counterfactual study: one function per Snakemake rule.

Each function takes paths and typed parameters, calls the library (:mod:`.checksums`,
:mod:`.qc`, :mod:`.score`, :mod:`medrepro.studies.counterfactual.synthetic`) and writes its outputs
atomically. The rule scripts in ``workflow/scripts/counterfactual/`` only unpack ``snakemake`` and
call these.

* :func:`synthesize` -- a synthetic bundle and simulated report submissions (data.source
  ``synthetic`` only).
* :func:`verify_bundle` -- every manifest is verified, and every image the QC will read must be
  listed in a verified manifest; writes a small JSON report that every later job takes as
  input, so nothing reads the bundle before it was verified.
* :func:`run_qc` -- the QC table (one row per pair), the QC summary and the QC figure.
* :func:`score_model` -- the benchmark score JSON, the per-pair CSV and a ``metrics.json`` in
  the one schema every study shares (see :func:`build_metrics`). A simulated model (synthetic
  data) answers every pair of the bundle, before QC; its submission is cut to the pairs of
  its declared scope in the QC table before it is scored, as a real model is run over the
  released pairs of its scope. A real submission is scored as it is: a pair outside its
  scope is an error.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from medrepro.studies.counterfactual.bootstrap import clustered_bootstrap_ci
from medrepro.studies.counterfactual.checksums import ChecksumMismatchError, parse_manifest, verify_manifest
from medrepro.studies.counterfactual.qc import (PAIR_COLUMNS, QC_COLUMNS, QCThresholds, plot_qc, qc_pairs,
                                                qc_summary, resolve_path)
from medrepro.studies.counterfactual.score import load_submission, scope_pairs, score_submission, write_score
from medrepro.studies.counterfactual.synthetic import generate_bundle, generate_submissions
from medrepro.errors import InputError, MismatchError
from medrepro.fsutil import atomic_path, sha256_file, write_json
from medrepro.hashcache import file_sha256

__all__ = [
    "CHECKS_SCHEMA",
    "METRIC_SOURCES",
    "PER_PAIR_COLUMNS",
    "synthesize",
    "verify_bundle",
    "require_verified",
    "run_qc",
    "score_model",
    "per_pair_table",
    "build_metrics",
]

log = logging.getLogger(__name__)

CHECKS_SCHEMA = "medrepro-counterfactual-checksums-v1"
#: Columns of the per-pair CSV named by metrics.json ``units`` (usable pairs only).
PER_PAIR_COLUMNS = ("unit_id", "cluster", "edit", "rec_change", "label_jaccard", "rec_jaccard", "gap_exact",
                    "gap_graded", "partial_refusal", "both_empty")
#: metrics.json metric name -> (per-pair column, the score's endpoint it equals, if any).
#: ``mean:gap_exact`` and ``mean:gap_graded`` are means of per-pair terms
#: (``label_jaccard + rec_change - 1`` and ``label_jaccard - rec_jaccard``), so the same
#: registry metric reproduces the benchmark's stability gaps.
METRIC_SOURCES: dict[str, tuple[str, str | None]] = {
    "mean:rec_change": ("rec_change", "recommendation_change"),
    "mean:label_jaccard": ("label_jaccard", "label_consistency"),
    "mean:gap_exact": ("gap_exact", None),
    "mean:gap_graded": ("gap_graded", None),
    "mean:rec_jaccard": ("rec_jaccard", None),
}


# --------------------------------------------------------------------------------------
# counterfactual_synthesize
# --------------------------------------------------------------------------------------

def synthesize(bundle_dir: str | Path, submissions_dir: str | Path, synthetic: Mapping[str, Any],
               models: Mapping[str, Mapping[str, float]], scope: str | None = "qc-passed") -> dict:
    """Write the synthetic bundle to ``bundle_dir`` and one submission per model (covering every
    pair of the bundle, tagged with ``scope``) plus ``truth.json`` to ``submissions_dir``."""
    if not models:
        raise InputError(None, "studies.counterfactual.models", "no simulated model", "at least one model")
    for name in models:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise InputError(None, f"studies.counterfactual.models.{name}", "name is not a safe file name",
                             "letters, digits, '-', '_' and '.' only")
    syn = dict(synthetic)
    scope = scope or "qc-passed"
    seed = int(syn.get("seed", 0))
    summary = generate_bundle(bundle_dir, n_sources=int(syn.get("n_sources", 300)), size=int(syn.get("size", 128)),
                              degraded_fraction=float(syn.get("degraded_fraction", 0.15)), seed=seed)
    paths = generate_submissions(submissions_dir, summary["pairs_csv"], {k: dict(v) for k, v in models.items()},
                                 seed=seed, scope=scope, source_heterogeneity=syn.get("source_heterogeneity"))
    log.info("bundle: %d sources, %d pairs (%d degraded) -> %s", summary["n_sources"], summary["n_pairs"],
             summary["n_degraded"], bundle_dir)
    log.info("submissions: %s", ", ".join(p.name for p in paths))
    return summary


# --------------------------------------------------------------------------------------
# counterfactual_verify_checksums
# --------------------------------------------------------------------------------------

def verify_bundle(manifests: list[str | Path], bundle_root: str | Path, pairs_csv: str | Path,
                  out_json: str | Path, data_kind: str = "synthetic") -> dict:
    """Verify every manifest (each relative to its own folder, like ``sha256sum -c``), then
    check that ``pairs_csv`` and every source / counterfactual image it names are listed in a
    verified manifest. Every manifest is checked and every bad file logged before the first
    mismatch is raised (a :class:`ChecksumMismatchError` naming the file and both hashes).
    Writes ``out_json`` only when everything verified."""
    if not manifests:
        raise InputError(None, "studies.counterfactual.data.real.manifests", "no manifest", "at least one manifest")
    root = Path(bundle_root)
    reports, errors, listed = [], [], set()
    for m in manifests:
        m = Path(m)
        try:
            rep = verify_manifest(m)
        except ChecksumMismatchError as e:
            for line_no, rel, exp, act in e.failures:
                log.error("%s: line %d: %s: checksum mismatch: expected %s, actual %s", m, line_no, rel, exp, act)
            errors.append(e)
            continue
        rep["sha256"] = sha256_file(m)
        reports.append(rep)
        listed.update((m.parent / rel).resolve() for _sha, rel in parse_manifest(m))
        log.info("verified %s: %d files, %d bytes", m, rep["n_files"], rep["n_bytes"])
    if errors:
        raise errors[0]

    pairs_csv = Path(pairs_csv)
    pairs_listed = pairs_csv.resolve() in listed
    if not pairs_listed and data_kind != "real":
        raise InputError(pairs_csv, "pairs table", "not listed in any verified manifest",
                         "the bundle's pairs.csv covered by SHA256SUMS.txt")
    df = pd.read_csv(pairs_csv, dtype=str, keep_default_na=False)
    missing_cols = [c for c in ("pair_id", "source_path", "cf_path") if c not in df.columns]
    if missing_cols:
        raise InputError(pairs_csv, f"columns {missing_cols}", "missing", f"columns {list(PAIR_COLUMNS)}")
    images = sorted({str(p) for col in ("source_path", "cf_path") for p in df[col]})
    unlisted = [p for p in images if resolve_path(root, p).resolve() not in listed]
    if unlisted:
        raise InputError(pairs_csv, "source_path/cf_path",
                         f"{len(unlisted)} image(s) the QC would read are in no verified manifest, "
                         f"e.g. {', '.join(unlisted[:5])}", "every image listed in a SHA256SUMS manifest")
    report = {
        "schema": CHECKS_SCHEMA,
        "ok": True,
        "data_kind": data_kind,
        "bundle_root": str(root),
        "manifests": reports,
        "n_manifests": len(reports),
        "n_files": sum(r["n_files"] for r in reports),
        "n_bytes": sum(r["n_bytes"] for r in reports),
        "pairs_csv": {"path": str(pairs_csv), "sha256": sha256_file(pairs_csv), "in_manifest": pairs_listed,
                      "n_pairs": len(df)},
        "images_read": {"n": len(images), "all_in_manifest": True},
    }
    write_json(out_json, report)
    return report


def require_verified(checks_json: str | Path, bundle_root: str | Path | None = None) -> dict:
    """Refuse to go on unless ``checks_json`` is a passing verification report (of
    ``bundle_root`` if given)."""
    path = Path(checks_json)
    try:
        rep = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(path, "verification report", f"unreadable ({e})", "the output of cf_verify_checksums") from None
    if rep.get("schema") != CHECKS_SCHEMA or rep.get("ok") is not True:
        raise InputError(path, "ok", f"{rep.get('ok')!r}", "a passing verification report")
    if bundle_root is not None and Path(rep["bundle_root"]).resolve() != Path(bundle_root).resolve():
        raise InputError(path, "bundle_root", f"{rep['bundle_root']!r} was verified, not {str(bundle_root)!r}",
                         "the bundle this job reads")
    return rep


def recheck_bundle(report: Mapping[str, Any], pairs_csv: str | Path, bundle_root: str | Path,
                   pairs: pd.DataFrame) -> int:
    """Check, in the job that reads them, that the pairs table and every image it names still
    have the bytes that were verified: the table against the verification report, each image
    against its manifest (each manifest's own sha256 against the report too). A file changed
    since verification is a :class:`~medrepro.errors.MismatchError` naming it. Returns the number
    of images checked."""
    pairs_csv = Path(pairs_csv)
    want = report["pairs_csv"]["sha256"]
    if sha256_file(pairs_csv) != want:
        raise MismatchError(pairs_csv, "sha256", f"the bytes hash to {sha256_file(pairs_csv)}, the verification "
                            f"report recorded {want}", "the pairs table counterfactual_verify_checksums verified")
    expected: dict[Path, str] = {}
    for m in report["manifests"]:
        manifest = Path(m["manifest"])
        if sha256_file(manifest) != m["sha256"]:
            raise MismatchError(manifest, "sha256", "the manifest changed after it was verified",
                                f"the manifest with sha256 {m['sha256']}")
        expected.update({(manifest.parent / rel).resolve(): sha for sha, rel in parse_manifest(manifest)})
    images = sorted(set(pairs["source_path"]) | set(pairs["cf_path"]))
    for rel in images:
        path = resolve_path(Path(bundle_root), rel)
        sha = file_sha256(path)
        if expected.get(path.resolve()) != sha:
            raise MismatchError(path, "sha256", f"the bytes hash to {sha}, its manifest recorded "
                                f"{expected.get(path.resolve())}", "the image counterfactual_verify_checksums verified")
    return len(images)


# --------------------------------------------------------------------------------------
# counterfactual_qc
# --------------------------------------------------------------------------------------

def _planted(table: pd.DataFrame, truth_csv: Path) -> dict:
    """Confusion of QC outcome against the synthetic bundle's planted degradations."""
    truth = pd.read_csv(truth_csv, dtype={"pair_id": str})
    m = table[["pair_id", "qc_pass"]].merge(truth, on="pair_id", how="left", validate="one_to_one")
    if m["degraded"].isna().any():
        raise InputError(truth_csv, "pair_id", "a pair of the QC table has no truth row", "one row per pair")
    deg = m["degraded"].astype(int).to_numpy() == 1
    qc = m["qc_pass"].astype(bool).to_numpy()
    by_kind = {str(k): {"n": int(len(g)), "failed": int((~g["qc_pass"].astype(bool)).sum())}
               for k, g in m[deg].groupby("degradation")}
    return {"n_degraded": int(deg.sum()), "degraded_failed": int((deg & ~qc).sum()),
            "n_clean": int((~deg).sum()), "clean_passed": int((~deg & qc).sum()), "by_degradation": by_kind}


def run_qc(bundle_root: str | Path, pairs_csv: str | Path, checks_json: str | Path, out_table: str | Path,
           out_summary: str | Path, out_png: str | Path, lpips: str = "optional",
           thresholds: Mapping[str, float] | None = None, examples: int = 4, workers: int | None = None,
           published: bool = False, truth_csv: str | Path | None = None, sixteen_bit: str = "saturate") -> dict:
    """QC every pair of the verified bundle; write the QC table (CSV), the summary (JSON) and the
    figure (PNG). Boolean scope columns of ``pairs_csv`` (e.g. ``common-core-1000``) are carried
    into the table so the scorer can use them as a scope. ``published``: put the benchmark's
    published counts beside the observed ones (real data). ``truth_csv``: the synthetic bundle's
    planted degradations, compared with the QC outcome. ``sixteen_bit``: how 16-bit images are
    read (``saturate``, the released reading, or ``rescale``)."""
    report = require_verified(checks_json, bundle_root)
    thr = QCThresholds.from_any(thresholds)
    pairs = pd.read_csv(pairs_csv, dtype=str, keep_default_na=False)
    n_checked = recheck_bundle(report, pairs_csv, bundle_root, pairs)
    log.info("re-checked the pairs table and %d images against the verified manifests", n_checked)
    table = qc_pairs(bundle_root, pairs, policy=lpips, thresholds=thr, workers=workers, sixteen_bit=sixteen_bit)
    extra = [c for c in pairs.columns if c not in QC_COLUMNS and c not in ("mask_path",)]
    for c in extra:
        table[c] = pairs[c].to_numpy()
    with atomic_path(out_table) as tmp:
        table.to_csv(tmp, index=False)
    summary = qc_summary(table, published=published)
    summary["thresholds"] = {"ssim_min": thr.ssim_min, "edge_min": thr.edge_min, "lpips_max": thr.lpips_max}
    summary["lpips_status"] = {str(k): int(v) for k, v in table["lpips_status"].value_counts().items()}
    summary["gates"] = ["global SSIM", "edge preservation"] + {"off": [], "optional": ["LPIPS (when computed)"],
                                                                "required": ["LPIPS (required)"]}[lpips]
    summary["carried_columns"] = extra
    summary["sixteen_bit"] = sixteen_bit
    summary["ssim_windowed_mean"] = float(np.nanmean(table["ssim_windowed"])) if table["ssim_windowed"].notna().any() else None
    if truth_csv is not None and Path(truth_csv).is_file():
        summary["planted"] = _planted(table, Path(truth_csv))
    write_json(out_summary, summary)
    plot_qc(table, bundle_root, out_png, thresholds=thr, n_examples=examples, sixteen_bit=sixteen_bit)
    log.info("QC: %d/%d pairs pass (LPIPS policy %s: %s)", summary["n_pass"], summary["n_pairs"], lpips,
             ", ".join(summary["lpips_status"]))
    return summary


# --------------------------------------------------------------------------------------
# counterfactual_score
# --------------------------------------------------------------------------------------

def per_pair_table(score: Mapping[str, Any]) -> pd.DataFrame:
    """The usable (not FULL-refusal) pairs of a score, sorted by pair id: ``unit_id`` (pair id),
    ``cluster`` (source id), the 0/1 recommendation change, the label and recommendation
    Jaccards and the per-pair gap terms whose means are the stability gaps."""
    rows = [p for p in score["per_pair"] if not p["excluded"]]
    rows.sort(key=lambda p: p["pair_id"])
    change = np.array([1.0 if p["rec_changed"] else 0.0 for p in rows])
    jac = np.array([float(p["jaccard"]) for p in rows])
    rjac = np.array([float(p["rec_jaccard"]) for p in rows])
    return pd.DataFrame({
        "unit_id": [p["pair_id"] for p in rows],
        "cluster": [p["source_id"] for p in rows],
        "edit": [p["edit"] for p in rows],
        "rec_change": change.astype(int),
        "label_jaccard": jac,
        "rec_jaccard": rjac,
        "gap_exact": jac - (1.0 - change),
        "gap_graded": jac - rjac,
        "partial_refusal": [int("PARTIAL" in (p["refusal_src"], p["refusal_cf"])) for p in rows],
        "both_empty": [int(not p["labels_src"] and not p["labels_cf"]) for p in rows],
    }, columns=list(PER_PAIR_COLUMNS))


def build_metrics(score: Mapping[str, Any], units: pd.DataFrame, run: str, units_name: str, data_kind: str,
                  cluster_label: str = "source image", extra_details: Mapping[str, Any] | None = None) -> dict:
    """A ``metrics.json`` (schema ``medrepro-metrics-v1``) for one scored submission.

    ``mean:rec_change`` and ``mean:label_jaccard`` copy the score's endpoints exactly (estimate
    and CI); the gap metrics take the score's gaps as estimates and get CIs from the same
    frozen clustered bootstrap (same iterations and seed, the RNG restarted per metric)."""
    boot = score["bootstrap"]
    iterations = int(boot["iterations"])
    seed = int(boot["seed_per_endpoint"]["recommendation_change"])
    clusters = units["cluster"].astype(str).to_numpy()
    point = {"mean:gap_exact": score["gap_exact"], "mean:gap_graded": score["gap_graded"],
             "mean:rec_jaccard": score["mean_recommendation_jaccard"]}
    metrics = {}
    for name, (column, endpoint) in METRIC_SOURCES.items():
        if endpoint is not None:
            ep = score["endpoints"][endpoint]
            metrics[name] = {"estimate": ep["estimate"], "ci_low": ep["ci_low"], "ci_high": ep["ci_high"],
                             "n": int(ep["n_pairs"])}
        else:
            _est, lo, hi = clustered_bootstrap_ci(units[column].to_numpy(dtype=np.float64), clusters,
                                                  iterations=iterations, seed=seed)
            metrics[name] = {"estimate": float(point[name]), "ci_low": lo, "ci_high": hi, "n": int(len(units))}
    details = {
        "model": dict(score["model"]),
        "submission": score["submission"],
        "submission_scope": score["submission_scope"],
        "registry": score["registry"],
        "coverage": score["coverage"],
        "refusals": score["refusals"],
        "data_quality": score["data_quality"],
        "n_pairs_usable": score["n_pairs_usable"],
        "gaps": {"gap_exact": score["gap_exact"], "gap_graded": score["gap_graded"],
                 "mean_recommendation_jaccard": score["mean_recommendation_jaccard"]},
        "both_empty_labels": score["both_empty_labels"],
        "table_row": score["table_row"],
        "endpoints": {name: ep for name, (_c, ep) in METRIC_SOURCES.items() if ep},
        "n_clusters": int(np.unique(clusters).size),
    }
    details.update(extra_details or {})
    return {
        "schema": "medrepro-metrics-v1",
        "study": "counterfactual",
        "run": run,
        "seed": None,
        "split": None,
        "primary": "mean:rec_change",
        "metrics": metrics,
        "units": units_name,
        "selection": {"policy": "none", "test_guided": False, "step": None},
        "bootstrap": {"iterations": iterations, "seed": seed, "level": 0.95, "cluster": cluster_label,
                      "chunk": int(boot.get("chunk", 1024)),
                      "procedure": "source-clustered percentile bootstrap, numpy default_rng(seed) restarted per metric"},
        "data": {"kind": data_kind},
        "details": details,
    }


def score_model(submission: str | Path, qc_table: str | Path, checks_json: str | Path, out_score: str | Path,
                out_units: str | Path, out_metrics: str | Path, run: str, scope: str | None = None,
                allow_partial: bool = False, iterations: int = 10000, seed: int = 42, data_kind: str = "synthetic",
                cluster_label: str = "source image") -> dict:
    """Validate and score one submission against the QC table; write the score JSON, the
    per-pair CSV and ``metrics.json``. ``scope``: the scope every submission must declare
    (``None``: each its own). A simulated submission (``data_kind`` synthetic) is first cut
    to the pairs of its scope (module docstring). Returns the metrics dict."""
    checks = require_verified(checks_json)
    payload: Any = submission
    extra: dict[str, Any] = {}
    if data_kind == "synthetic":
        payload = load_submission(submission)
        if payload["scope"] != "toy":
            keep = set(scope_pairs(qc_table, payload["scope"])["pair_id"])
            n_all = len(payload["results"])
            payload = {**payload, "results": [r for r in payload["results"] if r["pair_id"] in keep]}
            extra["simulated_answers"] = {"n_written": n_all, "n_in_scope": len(payload["results"])}
    score = score_submission(payload, qc_table, scope=scope, allow_partial=allow_partial, iterations=iterations,
                             seed=seed, name=str(submission))
    write_score(score, out_score)
    units = per_pair_table(score)
    with atomic_path(out_units) as tmp:
        units.to_csv(tmp, index=False)
    metrics = build_metrics(score, units, run, Path(out_units).name, data_kind, cluster_label,
                            {"score": Path(out_score).name, "submission_sha256": sha256_file(submission),
                             "bundle_root": checks["bundle_root"], **extra})
    write_json(out_metrics, metrics)
    r = score["table_row"]
    log.info("%s: %d usable pairs, recommendation change %.3f %s, label consistency %.3f %s%s (registry %s)",
             run, r["n_pairs"], r["recommendation_change"], r["recommendation_change_ci"], r["label_consistency"],
             r["label_consistency_ci"], " PARTIAL" if r["partial"] else "", score["registry"]["sha256"][:12])
    return metrics
