# Counterfactual sensitivity of report models: (synthesize) -> verify checksums -> QC -> score
# each submission -> audit. No training: each report model's metrics.json feeds the same
# study-agnostic aggregation as the training studies.
from medrepro.counterfactual.pipeline import workflow_layout

CF = config["studies"].get("counterfactual", {})
CF_DATA = CF.get("data", {})
CF_QC = CF.get("qc", {})
CF_SCORING = CF.get("scoring", {})
CFL = workflow_layout(CF, R)
CF_DIR = CFL["dir"]

STUDY_METRICS["counterfactual"] = lambda: [
    f"{CF_DIR}/models/{model}/metrics.json" for model in CFL["models"]
]
if "counterfactual" in STUDIES:
    if CFL["problems"]:
        raise ValueError("studies.counterfactual: " + "; ".join(CFL["problems"]))
    EXTRA_TARGETS.append(f"{CF_DIR}/figures/qc.png")


localrules:
    cf_verify_checksums,
    cf_score,
    cf_audit,


rule cf_synthesize:
    output:
        **CFL["synthetic_outputs"],
        bundle=directory(f"{CF_DIR}/data/bundle"),
        truth=f"{CF_DIR}/data/submissions/truth.json",
        prov=f"{CF_DIR}/data/cf_synthesize.provenance.json",
    log:
        f"{R}/logs/counterfactual/synthesize.log",
    conda:
        CONDA_ENV
    params:
        synthetic=CF_DATA.get("synthetic", {}),
        models=CF.get("models", {}),
        scope=CF_SCORING.get("scope", "qc-passed"),
        code=mw.rule_code("cf_synthesize"),
    script:
        "../scripts/cf_synthesize.py"


rule cf_verify_checksums:
    input:
        **CFL["bundle_input"],
    output:
        report=f"{CF_DIR}/checks/checksums.json",
        prov=f"{CF_DIR}/checks/cf_verify_checksums.provenance.json",
    log:
        f"{R}/logs/counterfactual/verify_checksums.log",
    conda:
        CONDA_ENV
    params:
        bundle_root=lambda w: CFL["bundle"],
        manifests=CFL["manifests"],
        pairs_csv=CFL["pairs_csv"],
        data_kind=CFL["data_kind"],
        code=mw.rule_code("cf_verify_checksums"),
    script:
        "../scripts/cf_verify_checksums.py"


rule cf_qc:
    input:
        checks=rules.cf_verify_checksums.output.report,
    output:
        table=f"{CF_DIR}/qc/qc_table.csv",
        summary=f"{CF_DIR}/qc/qc_summary.json",
        png=report(
            f"{CF_DIR}/figures/qc.png",
            caption="../report/counterfactual_qc.rst",
            category="counterfactual",
        ),
        prov=f"{CF_DIR}/qc/cf_qc.provenance.json",
    log:
        f"{R}/logs/counterfactual/qc.log",
    benchmark:
        f"{R}/benchmarks/counterfactual/qc.tsv"
    conda:
        CONDA_ENV
    threads: 2
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        bundle_root=CFL["bundle"],
        pairs_csv=CFL["pairs_csv"],
        truth_csv=CFL["truth_csv"],
        published=not CFL["synthetic"],
        lpips=CFL["lpips"],
        thresholds=CF_QC.get("thresholds", {}),
        examples=CF_QC.get("examples", 4),
        code=mw.rule_code("cf_qc"),
    script:
        "../scripts/cf_qc.py"


rule cf_score:
    input:
        checks=rules.cf_verify_checksums.output.report,
        qc_table=rules.cf_qc.output.table,
        submission=lambda w: CFL["submission"][w.model],
    output:
        score=f"{CF_DIR}/models/{{model}}/score.json",
        units=f"{CF_DIR}/models/{{model}}/per_pair.csv",
        metrics=f"{CF_DIR}/models/{{model}}/metrics.json",
        prov=f"{CF_DIR}/models/{{model}}/cf_score.provenance.json",
    log:
        f"{R}/logs/counterfactual/score_{{model}}.log",
    benchmark:
        f"{R}/benchmarks/counterfactual/score_{{model}}.tsv"
    wildcard_constraints:
        model=r"[A-Za-z0-9_.-]+",
    conda:
        CONDA_ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        scope=CF_SCORING.get("scope", "qc-passed"),
        allow_partial=CF_SCORING.get("allow_partial", False),
        iterations=CF_SCORING.get("iterations", 10000),
        seed=CF_SCORING.get("seed", 42),
        data_kind=CFL["data_kind"],
        cluster=CF.get("descriptor", {}).get("unit", "source image"),
        code=mw.rule_code("cf_score"),
    script:
        "../scripts/cf_score.py"


rule cf_audit:
    input:
        checks=rules.cf_verify_checksums.output.report,
        qc_summary=rules.cf_qc.output.summary,
        scores=lambda w: [f"{CF_DIR}/models/{m}/score.json" for m in CFL["models"]],
        metrics=lambda w: STUDY_METRICS["counterfactual"](),
        summary_csv=f"{CF_DIR}/summary.csv",
        truth=CFL["truth_json"],
        claims="config/claims.yaml",
    output:
        md=report(
            f"{R}/audit/counterfactual.md",
            caption="../report/audit_counterfactual.rst",
            category="audit",
        ),
        prov=f"{R}/audit/cf_audit.provenance.json",
    log:
        f"{R}/logs/counterfactual/audit.log",
    conda:
        CONDA_ENV
    params:
        study_config=CF,
        lpips=CFL["lpips"],
        code=mw.rule_code("cf_audit"),
    script:
        "../scripts/cf_audit.py"
