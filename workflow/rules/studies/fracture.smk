# Fracture segmentation and presence: data -> image/mask preparation -> train (thresholds chosen
# on validation) -> evaluate -> the challenge table, audit.
# Paths and inputs come from plain functions in medrepro.studies.fracture.layout.
from medrepro.studies.fracture import layout as frl

FR = config["studies"].get("fracture", {"enabled": False})
if FR.get("enabled", True):
    validate(FR, "../../schemas/studies/fracture.schema.yaml")
    frl.check_config(config)
mw.register(frl.STUDY)
FR_DATA = FR.get("data", {})
FR_DIR = frl.study_dir(config)


localrules:
    fracture_challenge,
    fracture_audit,


rule fracture_synthesize:
    output:
        data=directory(f"{FR_DIR}/data/synthetic"),
        prov=f"{FR_DIR}/data/fracture_synthesize.provenance.json",
    log:
        f"{R}/logs/fracture/synthesize.log",
    conda:
        STUDY_CONDA_ENV
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        synthetic=FR_DATA.get("synthetic", {}),
        code=mw.rule_code("fracture/synthesize.py"),
    script:
        "../../scripts/fracture/synthesize.py"


rule fracture_manifest:
    input:
        unpack(lambda w: frl.data_inputs(config)),
    output:
        manifest=f"{FR_DIR}/data/manifest.json",
        prov=f"{FR_DIR}/data/fracture_manifest.provenance.json",
    log:
        f"{R}/logs/fracture/manifest.log",
    conda:
        STUDY_CONDA_ENV
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        data=lambda w: frl.data_params(config),
        code=mw.rule_code("fracture/manifest.py"),
    script:
        "../../scripts/fracture/manifest.py"


rule fracture_prepare:
    input:
        manifest=rules.fracture_manifest.output.manifest,
    output:
        prep=directory(f"{FR_DIR}/prep/{{variant}}"),
        prov=f"{FR_DIR}/prep/{{variant}}.fracture_prepare.provenance.json",
    log:
        f"{R}/logs/fracture/prepare_{{variant}}.log",
    benchmark:
        f"{R}/benchmarks/fracture/prepare_{{variant}}.tsv"
    conda:
        STUDY_CONDA_ENV
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        variant=lambda w: FR["preprocessing"][w.variant],
        code=mw.rule_code("fracture/prepare.py"),
    script:
        "../../scripts/fracture/prepare.py"


rule fracture_train:
    input:
        unpack(lambda w: frl.run_inputs(config, w.run, int(w.seed))),
    output:
        checkpoint=f"{FR_DIR}/runs/{{run}}/seed{{seed}}/checkpoint.pt",
        log_jsonl=f"{FR_DIR}/runs/{{run}}/seed{{seed}}/train_log.jsonl",
        summary=f"{FR_DIR}/runs/{{run}}/seed{{seed}}/train_summary.json",
        prov=f"{FR_DIR}/runs/{{run}}/seed{{seed}}/fracture_train.provenance.json",
    log:
        f"{R}/logs/fracture/train_{{run}}_seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/fracture/train_{{run}}_seed{{seed}}.tsv"
    conda:
        STUDY_CONDA_ENV
    threads: 1
    resources:
        **mw.slurm_resources(config, "fracture", workflow),
        runtime=lambda w, attempt: mw.run_resource(
            config, "fracture", w.run, "runtime", 60, attempt
        ),
        mem_mb=lambda w, attempt: mw.run_resource(
            config, "fracture", w.run, "mem_mb", 4000, attempt
        ),
        gpu=lambda w: mw.run_resource(config, "fracture", w.run, "gpu", 0),
        cpus_per_gpu=lambda w: mw.run_resource(
            config, "fracture", w.run, "cpus_per_gpu", 2
        ),
    params:
        run=lambda w: mw.run_cfg(config, "fracture", w.run),
        descriptor=lambda w: mw.descriptor(config, "fracture"),
        code=lambda w: mw.model_code(config, "fracture", w.run, "fracture/train.py"),
    script:
        "../../scripts/fracture/train.py"


rule fracture_evaluate:
    input:
        unpack(lambda w: frl.run_inputs(config, w.run, int(w.seed))),
        checkpoint=rules.fracture_train.output.checkpoint,
    output:
        metrics=f"{FR_DIR}/runs/{{run}}/seed{{seed}}/metrics.json",
        per_image=f"{FR_DIR}/runs/{{run}}/seed{{seed}}/per_image.csv",
        prov=f"{FR_DIR}/runs/{{run}}/seed{{seed}}/fracture_evaluate.provenance.json",
    log:
        f"{R}/logs/fracture/evaluate_{{run}}_seed{{seed}}.log",
    conda:
        STUDY_CONDA_ENV
    threads: 1
    resources:
        **mw.slurm_resources(config, "fracture", workflow),
        runtime=lambda w, attempt: 30 * attempt,
        mem_mb=lambda w, attempt: 4000 * attempt,
        gpu=lambda w: mw.run_resource(config, "fracture", w.run, "gpu", 0),
        cpus_per_gpu=lambda w: mw.run_resource(
            config, "fracture", w.run, "cpus_per_gpu", 2
        ),
    params:
        run=lambda w: mw.run_cfg(config, "fracture", w.run),
        bootstrap=config["bootstrap"],
        data_kind=FR_DATA.get("source", "synthetic"),
        descriptor=lambda w: mw.descriptor(config, "fracture"),
        code=lambda w: mw.model_code(config, "fracture", w.run, "fracture/evaluate.py"),
    script:
        "../../scripts/fracture/evaluate.py"


rule fracture_challenge:
    input:
        unpack(lambda w: frl.challenge_inputs(config)),
    output:
        md=f"{FR_DIR}/challenge.md",
        csv=report(
            f"{FR_DIR}/challenge.csv",
            caption="../../report/fracture/challenge.rst",
            category="fracture",
        ),
        prov=f"{FR_DIR}/fracture_challenge.provenance.json",
    log:
        f"{R}/logs/fracture/challenge.log",
    conda:
        STUDY_CONDA_ENV
    params:
        reference=FR.get("reference"),
        exclude=FR.get("exclude"),
        bootstrap=config["bootstrap"],
        code=mw.rule_code("fracture/challenge.py"),
    script:
        "../../scripts/fracture/challenge.py"


rule fracture_audit:
    input:
        unpack(lambda w: frl.challenge_inputs(config)),
        claims="config/claims.yaml",
        challenge_csv=rules.fracture_challenge.output.csv,
    output:
        md=report(
            f"{R}/audit/fracture.md",
            caption="../../report/fracture/audit.rst",
            category="audit",
        ),
        prov=f"{R}/audit/fracture_audit.provenance.json",
    log:
        f"{R}/logs/fracture/audit.log",
    conda:
        STUDY_CONDA_ENV
    params:
        study_config=FR,
        descriptor=lambda w: mw.descriptor(config, "fracture"),
        code=mw.rule_code("fracture/audit.py"),
    script:
        "../../scripts/fracture/audit.py"
