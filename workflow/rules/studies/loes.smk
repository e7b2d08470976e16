# Loes-score regression from brain MRI: data -> MRI normalization -> train -> evaluate -> cards, audit.
# Paths and inputs come from plain functions in medrepro.studies.loes.layout.
from medrepro.studies.loes import layout as lol

LO = config["studies"].get("loes", {"enabled": False})
if LO.get("enabled", True):
    validate(LO, "../../schemas/studies/loes.schema.yaml")
    lol.check_config(config)
mw.register(lol.STUDY)
LO_DATA = LO.get("data", {})
LO_DIR = lol.study_dir(config)
LO_CARDS = lol.cards_dir(config)


localrules:
    loes_split,
    loes_card,
    loes_audit,


rule loes_synthesize:
    output:
        data=directory(f"{LO_DIR}/data/synthetic"),
        prov=f"{LO_DIR}/data/loes_synthesize.provenance.json",
    log:
        f"{R}/logs/loes/synthesize.log",
    conda:
        STUDY_CONDA_ENV
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        synthetic=LO_DATA.get("synthetic", {}),
        code=mw.rule_code("loes/synthesize.py"),
    script:
        "../../scripts/loes/synthesize.py"


rule loes_manifest:
    input:
        data=lambda w: (
            rules.loes_synthesize.output.data if lol.synthetic(config) else []
        ),
        csv=lambda w: [] if lol.synthetic(config) else lol.data_paths(config)["csv"],
    output:
        manifest=f"{LO_DIR}/data/manifest.json",
        prov=f"{LO_DIR}/data/loes_manifest.provenance.json",
    log:
        f"{R}/logs/loes/manifest.log",
    conda:
        STUDY_CONDA_ENV
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        paths=lambda w: lol.data_paths(config),
        code=mw.rule_code("loes/manifest.py"),
    script:
        "../../scripts/loes/manifest.py"


rule loes_split:
    input:
        manifest=rules.loes_manifest.output.manifest,
    output:
        split=f"{LO_DIR}/splits/{{split}}.json",
        prov=f"{LO_DIR}/splits/{{split}}.loes_split.provenance.json",
    log:
        f"{R}/logs/loes/split_{{split}}.log",
    conda:
        STUDY_CONDA_ENV
    params:
        split=lambda w: LO["splits"][w.split],
        code=mw.rule_code("loes/split.py"),
    script:
        "../../scripts/loes/split.py"


rule loes_nyul_fit:
    input:
        unpack(lambda w: lol.nyul_inputs(config, w.variant)),
    output:
        landmarks=f"{LO_DIR}/prep/{{variant}}.nyul_landmarks.json",
        prov=f"{LO_DIR}/prep/{{variant}}.loes_nyul_fit.provenance.json",
    log:
        f"{R}/logs/loes/nyul_fit_{{variant}}.log",
    conda:
        STUDY_CONDA_ENV
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        variant=lambda w: lol.norm_params(config, w.variant),
        code=mw.rule_code("loes/nyul_fit.py"),
    script:
        "../../scripts/loes/nyul_fit.py"


rule loes_normalize:
    input:
        unpack(lambda w: lol.normalize_inputs(config, w.variant)),
    output:
        prep=directory(f"{LO_DIR}/prep/{{variant}}"),
        png=report(
            f"{LO_DIR}/prep/{{variant}}.png",
            caption="../../report/loes/normalize.rst",
            category="loes",
        ),
        prov=f"{LO_DIR}/prep/{{variant}}.loes_normalize.provenance.json",
    log:
        f"{R}/logs/loes/normalize_{{variant}}.log",
    benchmark:
        f"{R}/benchmarks/loes/normalize_{{variant}}.tsv"
    conda:
        STUDY_CONDA_ENV
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        variant=lambda w: lol.norm_params(config, w.variant),
        code=mw.rule_code("loes/normalize.py"),
    script:
        "../../scripts/loes/normalize.py"


rule loes_train:
    input:
        unpack(lambda w: lol.run_inputs(config, w.run, int(w.seed))),
    output:
        checkpoint=f"{LO_DIR}/runs/{{run}}/seed{{seed}}/checkpoint.pt",
        log_jsonl=f"{LO_DIR}/runs/{{run}}/seed{{seed}}/train_log.jsonl",
        summary=f"{LO_DIR}/runs/{{run}}/seed{{seed}}/train_summary.json",
        prov=f"{LO_DIR}/runs/{{run}}/seed{{seed}}/loes_train.provenance.json",
    log:
        f"{R}/logs/loes/train_{{run}}_seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/loes/train_{{run}}_seed{{seed}}.tsv"
    conda:
        STUDY_CONDA_ENV
    threads: 1
    resources:
        **mw.slurm_resources(config, "loes", workflow),
        runtime=lambda w, attempt: mw.run_resource(
            config, "loes", w.run, "runtime", 60, attempt
        ),
        mem_mb=lambda w, attempt: mw.run_resource(
            config, "loes", w.run, "mem_mb", 4000, attempt
        ),
        gpu=lambda w: mw.run_resource(config, "loes", w.run, "gpu", 0),
        cpus_per_gpu=lambda w: mw.run_resource(config, "loes", w.run, "cpus_per_gpu", 2),
    params:
        run=lambda w: mw.run_cfg(config, "loes", w.run),
        descriptor=lambda w: mw.descriptor(config, "loes"),
        code=lambda w: mw.model_code(config, "loes", w.run, "loes/train.py"),
    script:
        "../../scripts/loes/train.py"


rule loes_evaluate:
    input:
        unpack(lambda w: lol.run_inputs(config, w.run, int(w.seed))),
        checkpoint=rules.loes_train.output.checkpoint,
        summary=rules.loes_train.output.summary,
    output:
        metrics=f"{LO_DIR}/runs/{{run}}/seed{{seed}}/metrics.json",
        predictions=f"{LO_DIR}/runs/{{run}}/seed{{seed}}/predictions.csv",
        lab_csv=f"{LO_DIR}/runs/{{run}}/seed{{seed}}/predictions_lab.csv",
        prov=f"{LO_DIR}/runs/{{run}}/seed{{seed}}/loes_evaluate.provenance.json",
    log:
        f"{R}/logs/loes/evaluate_{{run}}_seed{{seed}}.log",
    conda:
        STUDY_CONDA_ENV
    threads: 1
    resources:
        **mw.slurm_resources(config, "loes", workflow),
        runtime=lambda w, attempt: 30 * attempt,
        mem_mb=lambda w, attempt: 4000 * attempt,
        gpu=lambda w: mw.run_resource(config, "loes", w.run, "gpu", 0),
        cpus_per_gpu=lambda w: mw.run_resource(config, "loes", w.run, "cpus_per_gpu", 2),
    params:
        run=lambda w: mw.run_cfg(config, "loes", w.run),
        bootstrap=config["bootstrap"],
        data_kind=LO_DATA.get("source", "synthetic"),
        descriptor=lambda w: mw.descriptor(config, "loes"),
        code=lambda w: mw.model_code(config, "loes", w.run, "loes/evaluate.py"),
    script:
        "../../scripts/loes/evaluate.py"


rule loes_card:
    input:
        unpack(lambda w: lol.card_inputs(config, w.run)),
    output:
        md=report(
            f"{LO_CARDS}/{{run}}.md",
            caption="../../report/loes/card.rst",
            category="loes",
        ),
        json=f"{LO_CARDS}/{{run}}.json",
        scatter=f"{LO_CARDS}/{{run}}_predicted_vs_true.png",
        residuals=f"{LO_CARDS}/{{run}}_residuals_by_range.png",
        prov=f"{LO_CARDS}/{{run}}.loes_card.provenance.json",
    log:
        f"{R}/logs/loes/card_{{run}}.log",
    conda:
        STUDY_CONDA_ENV
    params:
        run=lambda w: mw.run_cfg(config, "loes", w.run),
        bootstrap=config["bootstrap"],
        data_kind=LO_DATA.get("source", "synthetic"),
        code=mw.rule_code("loes/card.py"),
    script:
        "../../scripts/loes/card.py"


rule loes_audit:
    input:
        unpack(lambda w: lol.audit_inputs(config)),
        claims="config/claims.yaml",
        summary_csv=f"{LO_DIR}/summary.csv",
    output:
        md=report(
            f"{R}/audit/loes.md",
            caption="../../report/loes/audit.rst",
            category="audit",
        ),
        prov=f"{R}/audit/loes_audit.provenance.json",
    log:
        f"{R}/logs/loes/audit.log",
    conda:
        STUDY_CONDA_ENV
    params:
        study_config=LO,
        descriptor=lambda w: mw.descriptor(config, "loes"),
        bootstrap=config["bootstrap"],
        code=mw.rule_code("loes/audit.py"),
    script:
        "../../scripts/loes/audit.py"
