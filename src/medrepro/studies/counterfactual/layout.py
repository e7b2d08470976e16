"""The counterfactual study's contract and the paths and names of its rules."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

from medrepro import workflow as mw

NAME = "counterfactual"
DESCRIPTOR = {
    "title": "Demographic sensitivity of radiology-report models (counterfactual spine radiographs)",
    "primary": "mean:rec_change",
    "higher_is_better": False,
    # recommendation change, diagnostic-label consistency, stability gaps (exact, graded)
    "columns": ["mean:rec_change", "mean:label_jaccard", "mean:gap_exact", "mean:gap_graded"],
    "unit": "source image",
    # the benchmark's frozen bootstrap, so the leaderboard CI equals the benchmark CI
    "bootstrap": {"iterations": 10000, "seed": 42},
}


def paths(study: Mapping[str, Any], results: str) -> dict:
    """Paths and names the counterfactual rules need, from the study's config block.

    ``models``: the report models to score (``models`` keys on synthetic data, the keys of
    ``data.real.submissions`` on real data); ``submission``: model -> submission file;
    ``synthetic_outputs``: one named output per simulated submission (for
    ``counterfactual_synthesize``);
    ``bundle_input``: what Snakemake tracks of the bundle (the synthetic folder, or the real
    manifests and pairs table); ``problems``: config errors to raise when the study is enabled.
    """
    data = study.get("data", {}) or {}
    real = data.get("real", {}) or {}
    synthetic = data.get("source", "synthetic") == "synthetic"
    out_dir = f"{results}/{NAME}"
    subs_dir = f"{out_dir}/data/submissions"
    sim_models = list(study.get("models", {}) or {})
    if synthetic:
        bundle = f"{out_dir}/data/bundle"
        models = sim_models
        submission = {m: f"{subs_dir}/{m}.json" for m in models}
        manifests = [f"{bundle}/SHA256SUMS.txt"]
        pairs_csv = f"{bundle}/pairs.csv"
        bundle_input = {"bundle": bundle}
    else:
        bundle = real.get("bundle_root")
        models = list(real.get("submissions", {}) or {})
        submission = {m: str(p) for m, p in (real.get("submissions", {}) or {}).items()}
        manifests = [str(Path(bundle) / m) for m in real.get("manifests", []) or []] if bundle else []
        pairs_csv = real.get("pairs_csv")
        bundle_input = {"manifests": manifests, "pairs_csv": pairs_csv or []}
    problems = []
    if not models:
        problems.append("no report model to score (set `models` for synthetic data or "
                        "`data.real.submissions` for real data)")
    if not synthetic:
        missing = [k for k in ("bundle_root", "pairs_csv", "manifests") if not real.get(k)]
        if missing:
            problems.append(f"data.real: {', '.join(missing)} not set (expected the bundle folder, its pairs "
                            "table and its SHA256SUMS manifests)")
    lpips = (study.get("qc", {}) or {}).get("lpips", "optional")
    return {
        "dir": out_dir,
        "synthetic": synthetic,
        "data_kind": "synthetic" if synthetic else "real",
        "bundle": bundle,
        "submissions_dir": subs_dir,
        "models": models,
        "submission": submission,
        "synthetic_outputs": {f"submission_{re.sub(r'[^A-Za-z0-9_]', '_', m)}": f"{subs_dir}/{m}.json"
                              for m in sim_models},
        "manifests": manifests,
        "pairs_csv": pairs_csv,
        "truth_csv": f"{bundle}/truth.csv" if synthetic else None,
        "truth_json": f"{subs_dir}/truth.json" if synthetic else [],
        "bundle_input": bundle_input,
        # YAML reads an unquoted `off` as false
        "lpips": lpips if lpips else "off",
        "problems": problems,
    }


def layout(config: dict, results: str) -> mw.Layout:
    p = paths(mw.study_cfg(config, NAME), results)
    return mw.Layout(metrics=[f"{p['dir']}/models/{m}/metrics.json" for m in p["models"]],
                     targets=[f"{p['dir']}/figures/qc.png"], audit=f"{results}/audit/{NAME}.md")


def _cli(subparsers):
    from medrepro.studies.counterfactual.cli import register

    return register(subparsers)


STUDY = mw.Study(name=NAME, descriptor=DESCRIPTOR, layout=layout, cli=_cli)
