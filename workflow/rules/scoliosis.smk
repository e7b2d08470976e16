# Scoliosis screening from gait: data -> skeleton maps / PAV -> train -> evaluate -> audit.
# Paths and resources come from plain functions in medrepro.workflow (tested without Snakemake).
SC = config["studies"].get("scoliosis", {})
SC_DATA = SC.get("data", {})
SC_DIR = mw.sc_dir(config)
STUDY_METRICS["scoliosis"] = lambda: mw.sc_audit_inputs(config)["metrics"]
if "scoliosis" in STUDIES:
    SC_ROOTS = mw.sc_data_roots(config)
    EXTRA_TARGETS.append(f"{SC_DIR}/figures/skeleton_maps.png")


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
        CONDA_ENV
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        synthetic=SC_DATA.get("synthetic", {}),
        code=mw.rule_code("scoliosis_synthesize"),
    script:
        "../scripts/scoliosis_synthesize.py"


rule scoliosis_manifest:
    input:
        data=rules.scoliosis_synthesize.output.data if mw.sc_synthetic(config) else [],
    output:
        manifest=f"{SC_DIR}/data/manifest.json",
        prov=f"{SC_DIR}/data/scoliosis_manifest.provenance.json",
    log:
        f"{R}/logs/scoliosis/manifest.log",
    conda:
        CONDA_ENV
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        roots=lambda w: SC_ROOTS,
        source=SC_DATA.get("source"),
        code=mw.rule_code("scoliosis_manifest"),
    script:
        "../scripts/scoliosis_manifest.py"


rule scoliosis_split:
    input:
        manifest=rules.scoliosis_manifest.output.manifest,
        split_source=lambda w: mw.sc_split_input(config, w.split),
    output:
        split=f"{SC_DIR}/splits/{{split}}.json",
        prov=f"{SC_DIR}/splits/{{split}}.scoliosis_split.provenance.json",
    log:
        f"{R}/logs/scoliosis/split_{{split}}.log",
    conda:
        CONDA_ENV
    params:
        split_file=lambda w: mw.sc_split_file(config, w.split),
        val_fraction=SC_DATA.get("val_fraction"),
        val_seed=SC_DATA.get("val_seed"),
        class_map=SC_DATA.get("class_map"),
        code=mw.rule_code("scoliosis_split"),
    script:
        "../scripts/scoliosis_split.py"


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
        CONDA_ENV
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        variant=lambda w: SC["skeleton_maps"][w.variant],
        code=mw.rule_code("scoliosis_skeleton_maps"),
    script:
        "../scripts/scoliosis_skeleton_maps.py"


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
        CONDA_ENV
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        code=mw.rule_code("scoliosis_pav"),
    script:
        "../scripts/scoliosis_pav.py"


rule scoliosis_figure:
    input:
        manifest=rules.scoliosis_manifest.output.manifest,
    output:
        png=report(
            f"{SC_DIR}/figures/skeleton_maps.png",
            caption="../report/skeleton_maps.rst",
            category="scoliosis",
        ),
        prov=f"{SC_DIR}/figures/scoliosis_figure.provenance.json",
    log:
        f"{R}/logs/scoliosis/figure.log",
    conda:
        CONDA_ENV
    params:
        variant=lambda w: SC["skeleton_maps"][SC.get("figure_variant")],
        variant_name=SC.get("figure_variant"),
        code=mw.rule_code("scoliosis_figure"),
    script:
        "../scripts/scoliosis_figure.py"


rule scoliosis_train:
    input:
        unpack(lambda w: mw.sc_inputs(config, w.run, int(w.seed))),
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
        CONDA_ENV
    threads: 1
    resources:
        runtime=lambda w, attempt: mw.sc_resource(config, w.run, "runtime", 60, attempt),
        mem_mb=lambda w, attempt: mw.sc_resource(config, w.run, "mem_mb", 4000, attempt),
        gpu=lambda w: mw.sc_resource(config, w.run, "gpu", 0),
        cpus_per_gpu=lambda w: mw.sc_resource(config, w.run, "cpus_per_gpu", 2),
    params:
        run=lambda w: mw.run_cfg(config, "scoliosis", w.run),
        code=lambda w: mw.train_code(config, "scoliosis", w.run),
    script:
        "../scripts/scoliosis_train.py"


rule scoliosis_evaluate:
    input:
        unpack(lambda w: mw.sc_inputs(config, w.run, int(w.seed))),
        checkpoint=rules.scoliosis_train.output.checkpoint,
        summary=rules.scoliosis_train.output.summary,
    output:
        metrics=f"{SC_DIR}/runs/{{run}}/seed{{seed}}/metrics.json",
        predictions=f"{SC_DIR}/runs/{{run}}/seed{{seed}}/predictions.csv",
        prov=f"{SC_DIR}/runs/{{run}}/seed{{seed}}/scoliosis_evaluate.provenance.json",
    log:
        f"{R}/logs/scoliosis/evaluate_{{run}}_seed{{seed}}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=lambda w, attempt: 30 * attempt,
        mem_mb=lambda w, attempt: 4000 * attempt,
        gpu=lambda w: mw.sc_resource(config, w.run, "gpu", 0),
        cpus_per_gpu=lambda w: mw.sc_resource(config, w.run, "cpus_per_gpu", 2),
    params:
        run=lambda w: mw.run_cfg(config, "scoliosis", w.run),
        bootstrap=config["bootstrap"],
        data_kind=SC_DATA.get("source"),
        code=lambda w: mw.train_code(config, "scoliosis", w.run),
    script:
        "../scripts/scoliosis_evaluate.py"


rule scoliosis_resume_check:
    input:
        unpack(lambda w: mw.sc_inputs(config, SC["resume_check"]["run"], 0)),
    output:
        result=f"{SC_DIR}/checks/resume.json",
        prov=f"{SC_DIR}/checks/scoliosis_resume_check.provenance.json",
    log:
        f"{R}/logs/scoliosis/resume_check.log",
    conda:
        CONDA_ENV
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        run=lambda w: mw.run_cfg(config, "scoliosis", SC["resume_check"]["run"]),
        check=SC.get("resume_check", {}),
        code=mw.rule_code("scoliosis_resume_check"),
    script:
        "../scripts/scoliosis_resume_check.py"


rule scoliosis_audit:
    input:
        **mw.sc_audit_inputs(config),
        resume=rules.scoliosis_resume_check.output.result,
        claims="config/claims.yaml",
        summary_csv=f"{SC_DIR}/summary.csv",
    output:
        md=report(
            f"{R}/audit/scoliosis.md",
            caption="../report/audit.rst",
            category="audit",
        ),
        prov=f"{R}/audit/scoliosis_audit.provenance.json",
    log:
        f"{R}/logs/scoliosis/audit.log",
    conda:
        CONDA_ENV
    params:
        study_config=SC,
        bootstrap=config["bootstrap"],
        code=mw.rule_code("scoliosis_audit"),
    script:
        "../scripts/scoliosis_audit.py"
