# Counterfactual sensitivity of report models: (synthesize) -> verify checksums -> QC -> score
# each submission -> audit. No training: each report model's metrics.json feeds the same
# study-agnostic aggregation as the training studies.
from medrepro.studies.counterfactual import layout as cfl
from medrepro.studies.counterfactual.parse import REGISTRY_SHA256 as CF_REGISTRY_SHA256

CF = config["studies"].get("counterfactual", {"enabled": False})
if CF.get("enabled", True):
    validate(CF, "../../schemas/studies/counterfactual.schema.yaml")
mw.register(cfl.STUDY)
CF_DATA = CF.get("data", {})
CF_QC = CF.get("qc", {})
CF_SCORING = CF.get("scoring", {})
CFL = cfl.paths(CF, R)
CF_DIR = CFL["dir"]
if CF.get("enabled", True) and CFL["problems"]:
    raise ValueError("studies.counterfactual: " + "; ".join(CFL["problems"]))


localrules:
    counterfactual_verify_checksums,
    counterfactual_score,
    counterfactual_audit,


rule counterfactual_synthesize:
    output:
        **CFL["synthetic_outputs"],
        bundle=directory(f"{CF_DIR}/data/bundle"),
        truth=f"{CF_DIR}/data/submissions/truth.json",
        prov=f"{CF_DIR}/data/counterfactual_synthesize.provenance.json",
    log:
        f"{R}/logs/counterfactual/synthesize.log",
    conda:
        STUDY_CONDA_ENV
    params:
        synthetic=CF_DATA.get("synthetic", {}),
        models=CF.get("models", {}),
        scope=CF_SCORING.get("scope") or "qc-passed",
        registry=CF_REGISTRY_SHA256,
        code=mw.rule_code("counterfactual/synthesize.py"),
    script:
        "../../scripts/counterfactual/synthesize.py"


rule counterfactual_verify_checksums:
    input:
        **CFL["bundle_input"],
    output:
        report=f"{CF_DIR}/checks/checksums.json",
        prov=f"{CF_DIR}/checks/counterfactual_verify_checksums.provenance.json",
    log:
        f"{R}/logs/counterfactual/verify_checksums.log",
    conda:
        STUDY_CONDA_ENV
    params:
        bundle_root=lambda w: CFL["bundle"],
        manifests=CFL["manifests"],
        pairs_csv=CFL["pairs_csv"],
        data_kind=CFL["data_kind"],
        code=mw.rule_code("counterfactual/verify_checksums.py"),
    script:
        "../../scripts/counterfactual/verify_checksums.py"


rule counterfactual_qc:
    input:
        checks=rules.counterfactual_verify_checksums.output.report,
    output:
        table=f"{CF_DIR}/qc/qc_table.csv",
        summary=f"{CF_DIR}/qc/qc_summary.json",
        png=report(
            f"{CF_DIR}/figures/qc.png",
            caption="../../report/counterfactual/qc.rst",
            category="counterfactual",
        ),
        prov=f"{CF_DIR}/qc/counterfactual_qc.provenance.json",
    log:
        f"{R}/logs/counterfactual/qc.log",
    benchmark:
        f"{R}/benchmarks/counterfactual/qc.tsv"
    conda:
        STUDY_CONDA_ENV
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
        sixteen_bit=CF_QC.get("sixteen_bit", "saturate"),
        code=mw.rule_code("counterfactual/qc.py"),
    script:
        "../../scripts/counterfactual/qc.py"


rule counterfactual_score:
    input:
        checks=rules.counterfactual_verify_checksums.output.report,
        qc_table=rules.counterfactual_qc.output.table,
        submission=lambda w: CFL["submission"][w.model],
    output:
        score=f"{CF_DIR}/models/{{model}}/score.json",
        units=f"{CF_DIR}/models/{{model}}/per_pair.csv",
        metrics=f"{CF_DIR}/models/{{model}}/metrics.json",
        prov=f"{CF_DIR}/models/{{model}}/counterfactual_score.provenance.json",
    log:
        f"{R}/logs/counterfactual/score_{{model}}.log",
    benchmark:
        f"{R}/benchmarks/counterfactual/score_{{model}}.tsv"
    wildcard_constraints:
        model=r"[A-Za-z0-9_.-]+",
    conda:
        STUDY_CONDA_ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        scope=CF_SCORING.get("scope"),
        allow_partial=CF_SCORING.get("allow_partial", False),
        iterations=CF_SCORING.get("iterations", 10000),
        seed=CF_SCORING.get("seed", 42),
        data_kind=CFL["data_kind"],
        cluster=lambda w: mw.descriptor(config, "counterfactual")["unit"],
        # the frozen registry is data, not code: a change of it reruns the scoring
        registry=CF_REGISTRY_SHA256,
        code=mw.rule_code("counterfactual/score.py"),
    script:
        "../../scripts/counterfactual/score.py"


rule counterfactual_audit:
    input:
        checks=rules.counterfactual_verify_checksums.output.report,
        qc_summary=rules.counterfactual_qc.output.summary,
        scores=lambda w: [f"{CF_DIR}/models/{m}/score.json" for m in CFL["models"]],
        metrics=lambda w: cfl.layout(config, R).metrics,
        summary_csv=f"{CF_DIR}/summary.csv",
        truth=CFL["truth_json"],
        claims="config/claims.yaml",
    output:
        md=report(
            f"{R}/audit/counterfactual.md",
            caption="../../report/counterfactual/audit.rst",
            category="audit",
        ),
        prov=f"{R}/audit/counterfactual_audit.provenance.json",
    log:
        f"{R}/logs/counterfactual/audit.log",
    conda:
        STUDY_CONDA_ENV
    params:
        study_config=CF,
        descriptor=lambda w: mw.descriptor(config, "counterfactual"),
        lpips=CFL["lpips"],
        code=mw.rule_code("counterfactual/audit.py"),
    script:
        "../../scripts/counterfactual/audit.py"
