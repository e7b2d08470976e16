# Scoliosis screening from gait: data -> skeleton maps / PAV -> train -> evaluate -> audit.
# Paths and inputs come from plain functions in medrepro.studies.scoliosis.layout.
from medrepro.studies.scoliosis import layout as scl

SC = config["studies"].get("scoliosis", {"enabled": False})
if SC.get("enabled", True):
    validate(SC, "../../schemas/studies/scoliosis.schema.yaml")
    scl.check_config(config)
mw.register(scl.STUDY)
SC_DATA = SC.get("data", {})
SC_DIR = scl.study_dir(config)


localrules:
    scoliosis_split,
    scoliosis_figure,
    scoliosis_audit,


rule scoliosis_synthesize:
    output:
        data=directory(f"{SC_DIR}/data/synthetic"),
        prov=f"{SC_DIR}/data/scoliosis_synthesize.provenance.json",
    log:
        f"{R}/logs/scoliosis/synthesize.log",
    conda:
        STUDY_CONDA_ENV
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        synthetic=SC_DATA.get("synthetic", {}),
        code=mw.rule_code("scoliosis/synthesize.py"),
    script:
        "../../scripts/scoliosis/synthesize.py"


rule scoliosis_manifest:
    input:
        data=lambda w: (
            rules.scoliosis_synthesize.output.data if scl.synthetic(config) else []
        ),
    output:
        manifest=f"{SC_DIR}/data/manifest.json",
        prov=f"{SC_DIR}/data/scoliosis_manifest.provenance.json",
    log:
        f"{R}/logs/scoliosis/manifest.log",
    conda:
        STUDY_CONDA_ENV
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        roots=lambda w: scl.data_roots(config),
        source=SC_DATA.get("source"),
        limits=SC_DATA.get("limits", {}),
        code=mw.rule_code("scoliosis/manifest.py"),
    script:
        "../../scripts/scoliosis/manifest.py"


rule scoliosis_split:
    input:
        manifest=rules.scoliosis_manifest.output.manifest,
        split_source=lambda w: scl.split_input(config, w.split),
    output:
        split=f"{SC_DIR}/splits/{{split}}.json",
        prov=f"{SC_DIR}/splits/{{split}}.scoliosis_split.provenance.json",
    log:
        f"{R}/logs/scoliosis/split_{{split}}.log",
    conda:
        STUDY_CONDA_ENV
    params:
        split_file=lambda w: scl.split_file(config, w.split),
        val_fraction=SC_DATA.get("val_fraction"),
        val_seed=SC_DATA.get("val_seed"),
        class_map=SC_DATA.get("class_map"),
        code=mw.rule_code("scoliosis/split.py"),
    script:
        "../../scripts/scoliosis/split.py"


rule scoliosis_skeleton_maps:
    input:
        manifest=rules.scoliosis_manifest.output.manifest,
    output:
        maps=directory(f"{SC_DIR}/prep/skeleton_maps/{{variant}}"),
        prov=f"{SC_DIR}/prep/skeleton_maps/{{variant}}.scoliosis_skeleton_maps.provenance.json",
    log:
        f"{R}/logs/scoliosis/skeleton_maps_{{variant}}.log",
    benchmark:
        f"{R}/benchmarks/scoliosis/skeleton_maps_{{variant}}.tsv"
    conda:
        STUDY_CONDA_ENV
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        variant=lambda w: SC["skeleton_maps"][w.variant],
        code=mw.rule_code("scoliosis/skeleton_maps.py"),
    script:
        "../../scripts/scoliosis/skeleton_maps.py"


rule scoliosis_pav:
    input:
        manifest=rules.scoliosis_manifest.output.manifest,
        split=f"{SC_DIR}/splits/{{split}}.json",
    output:
        pav=f"{SC_DIR}/prep/pav/{{split}}/pav.npz",
        stats=f"{SC_DIR}/prep/pav/{{split}}/minmax_train.json",
        prov=f"{SC_DIR}/prep/pav/{{split}}/scoliosis_pav.provenance.json",
    log:
        f"{R}/logs/scoliosis/pav_{{split}}.log",
    conda:
        STUDY_CONDA_ENV
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        code=mw.rule_code("scoliosis/pav.py"),
    script:
        "../../scripts/scoliosis/pav.py"


rule scoliosis_figure:
    input:
        manifest=rules.scoliosis_manifest.output.manifest,
    output:
        png=report(
            f"{SC_DIR}/figures/skeleton_maps.png",
            caption="../../report/scoliosis/skeleton_maps.rst",
            category="scoliosis",
        ),
        prov=f"{SC_DIR}/figures/scoliosis_figure.provenance.json",
    log:
        f"{R}/logs/scoliosis/figure.log",
    conda:
        STUDY_CONDA_ENV
    params:
        variant=lambda w: SC["skeleton_maps"][SC.get("figure_variant")],
        variant_name=SC.get("figure_variant"),
        code=mw.rule_code("scoliosis/figure.py"),
    script:
        "../../scripts/scoliosis/figure.py"


rule scoliosis_train:
    input:
        unpack(lambda w: scl.run_inputs(config, w.run, int(w.seed))),
    output:
        checkpoint=f"{SC_DIR}/runs/{{run}}/seed{{seed}}/checkpoint.pt",
        log_jsonl=f"{SC_DIR}/runs/{{run}}/seed{{seed}}/train_log.jsonl",
        summary=f"{SC_DIR}/runs/{{run}}/seed{{seed}}/train_summary.json",
        prov=f"{SC_DIR}/runs/{{run}}/seed{{seed}}/scoliosis_train.provenance.json",
    log:
        f"{R}/logs/scoliosis/train_{{run}}_seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/scoliosis/train_{{run}}_seed{{seed}}.tsv"
    conda:
        STUDY_CONDA_ENV
    threads: 1
    resources:
        **mw.slurm_resources(config, "scoliosis", workflow),
        runtime=lambda w, attempt: mw.run_resource(
            config, "scoliosis", w.run, "runtime", 60, attempt
        ),
        mem_mb=lambda w, attempt: mw.run_resource(
            config, "scoliosis", w.run, "mem_mb", 4000, attempt
        ),
        gpu=lambda w: mw.run_resource(config, "scoliosis", w.run, "gpu", 0),
        cpus_per_gpu=lambda w: mw.run_resource(
            config, "scoliosis", w.run, "cpus_per_gpu", 2
        ),
    params:
        run=lambda w: mw.run_cfg(config, "scoliosis", w.run),
        descriptor=lambda w: mw.descriptor(config, "scoliosis"),
        code=lambda w: mw.model_code(config, "scoliosis", w.run, "scoliosis/train.py"),
    script:
        "../../scripts/scoliosis/train.py"


rule scoliosis_evaluate:
    input:
        unpack(lambda w: scl.run_inputs(config, w.run, int(w.seed))),
        checkpoint=rules.scoliosis_train.output.checkpoint,
        summary=rules.scoliosis_train.output.summary,
    output:
        metrics=f"{SC_DIR}/runs/{{run}}/seed{{seed}}/metrics.json",
        predictions=f"{SC_DIR}/runs/{{run}}/seed{{seed}}/predictions.csv",
        prov=f"{SC_DIR}/runs/{{run}}/seed{{seed}}/scoliosis_evaluate.provenance.json",
    log:
        f"{R}/logs/scoliosis/evaluate_{{run}}_seed{{seed}}.log",
    conda:
        STUDY_CONDA_ENV
    threads: 1
    resources:
        **mw.slurm_resources(config, "scoliosis", workflow),
        runtime=lambda w, attempt: 30 * attempt,
        mem_mb=lambda w, attempt: 4000 * attempt,
        gpu=lambda w: mw.run_resource(config, "scoliosis", w.run, "gpu", 0),
        cpus_per_gpu=lambda w: mw.run_resource(
            config, "scoliosis", w.run, "cpus_per_gpu", 2
        ),
    params:
        run=lambda w: mw.run_cfg(config, "scoliosis", w.run),
        bootstrap=config["bootstrap"],
        data_kind=SC_DATA.get("source"),
        descriptor=lambda w: mw.descriptor(config, "scoliosis"),
        code=lambda w: mw.model_code(
            config, "scoliosis", w.run, "scoliosis/evaluate.py"
        ),
    script:
        "../../scripts/scoliosis/evaluate.py"


rule scoliosis_resume_check:
    input:
        unpack(lambda w: scl.run_inputs(config, SC["resume_check"]["run"], 0)),
    output:
        result=f"{SC_DIR}/checks/resume.json",
        prov=f"{SC_DIR}/checks/scoliosis_resume_check.provenance.json",
    log:
        f"{R}/logs/scoliosis/resume_check.log",
    conda:
        STUDY_CONDA_ENV
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        run=lambda w: mw.run_cfg(config, "scoliosis", SC["resume_check"]["run"]),
        check=SC.get("resume_check", {}),
        descriptor=lambda w: mw.descriptor(config, "scoliosis"),
        code=lambda w: mw.model_code(
            config, "scoliosis", SC["resume_check"]["run"], "scoliosis/resume_check.py"
        ),
    script:
        "../../scripts/scoliosis/resume_check.py"


rule scoliosis_audit:
    input:
        unpack(lambda w: scl.audit_inputs(config)),
        resume=rules.scoliosis_resume_check.output.result,
        claims="config/claims.yaml",
        summary_csv=f"{SC_DIR}/summary.csv",
    output:
        md=report(
            f"{R}/audit/scoliosis.md",
            caption="../../report/scoliosis/audit.rst",
            category="audit",
        ),
        prov=f"{R}/audit/scoliosis_audit.provenance.json",
    log:
        f"{R}/logs/scoliosis/audit.log",
    conda:
        STUDY_CONDA_ENV
    params:
        study_config=SC,
        descriptor=lambda w: mw.descriptor(config, "scoliosis"),
        bootstrap=config["bootstrap"],
        code=mw.rule_code("scoliosis/audit.py"),
    script:
        "../../scripts/scoliosis/audit.py"
