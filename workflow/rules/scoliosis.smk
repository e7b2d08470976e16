# Scoliosis screening from gait: data -> skeleton maps / PAV -> train -> evaluate -> audit.
SC = config["studies"].get("scoliosis", {})
SC_DATA = SC.get("data", {})
SC_SYNTH = SC_DATA.get("source", "synthetic") == "synthetic"
SC_DIR = f"{R}/scoliosis"
STUDY_METRICS["scoliosis"] = lambda: [
    f"{SC_DIR}/runs/{run}/seed{seed}/metrics.json"
    for run, seed in mw.run_seeds(config, "scoliosis")
]
if "scoliosis" in STUDIES:
    EXTRA_TARGETS.append(f"{SC_DIR}/figures/skeleton_maps.png")


def sc_run(wildcards):
    return mw.run_cfg(config, "scoliosis", wildcards.run)


def sc_split_file(wildcards):
    name = SC_DATA["splits"][wildcards.split]
    if SC_SYNTH:
        return f"{SC_DIR}/data/synthetic/{name}"
    return str(Path(SC_DATA["real"]["split_dir"]) / name)


def sc_split_input(wildcards):
    """The split file itself for real data; the synthetic folder that holds it otherwise."""
    return f"{SC_DIR}/data/synthetic" if SC_SYNTH else sc_split_file(wildcards)


def sc_inputs_for(run, seed):
    rc = mw.run_cfg(config, "scoliosis", run)
    out = {
        "manifest": f"{SC_DIR}/data/manifest.json",
        "split": f"{SC_DIR}/splits/{rc['split']}.json",
    }
    variant = mw.variant_of(rc["input"])
    if variant:
        out["prep"] = f"{SC_DIR}/prep/skeleton_maps/{variant}"
    if rc["model"] == "drf":
        out["pav"] = f"{SC_DIR}/prep/pav/{rc['split']}/pav.npz"
    if rc.get("init_from"):
        seed = mw.init_seed(config, "scoliosis", run, seed)
        out["init"] = f"{SC_DIR}/runs/{rc['init_from']}/seed{seed}/checkpoint.pt"
    return out


def sc_train_inputs(wildcards):
    return sc_inputs_for(wildcards.run, int(wildcards.seed))


def sc_resource(key, default):
    def get(wildcards, attempt):
        value = sc_run(wildcards).get("resources", {}).get(key, default)
        return value * attempt if key in ("runtime", "mem_mb") else value

    return get


rule scoliosis_synthesize:
    output:
        data=directory(f"{SC_DIR}/data/synthetic"),
        prov=f"{SC_DIR}/data/scoliosis_synthesize.provenance.json",
    params:
        synthetic=SC_DATA.get("synthetic", {}),
        code=mw.rule_code("scoliosis_synthesize"),
    log:
        f"{R}/logs/scoliosis/synthesize.log",
    script:
        "../scripts/scoliosis_synthesize.py"


rule scoliosis_manifest:
    input:
        data=rules.scoliosis_synthesize.output.data if SC_SYNTH else [],
    output:
        manifest=f"{SC_DIR}/data/manifest.json",
        prov=f"{SC_DIR}/data/scoliosis_manifest.provenance.json",
    params:
        pose_root=(
            f"{SC_DIR}/data/synthetic/Scoliosis1K-pose-pkl"
            if SC_SYNTH
            else SC_DATA["real"]["pose_root"]
        ),
        sil_root=(
            f"{SC_DIR}/data/synthetic/Scoliosis1K-sil-pkl"
            if SC_SYNTH
            else SC_DATA["real"]["sil_root"]
        ),
        source=SC_DATA.get("source"),
        code=mw.rule_code("scoliosis_manifest"),
    log:
        f"{R}/logs/scoliosis/manifest.log",
    script:
        "../scripts/scoliosis_manifest.py"


rule scoliosis_split:
    input:
        manifest=rules.scoliosis_manifest.output.manifest,
        split_source=sc_split_input,
    output:
        split=f"{SC_DIR}/splits/{{split}}.json",
        prov=f"{SC_DIR}/splits/{{split}}.scoliosis_split.provenance.json",
    params:
        split_file=sc_split_file,
        val_fraction=SC_DATA.get("val_fraction"),
        val_seed=SC_DATA.get("val_seed"),
        class_map=SC_DATA.get("class_map"),
        code=mw.rule_code("scoliosis_split"),
    log:
        f"{R}/logs/scoliosis/split_{{split}}.log",
    script:
        "../scripts/scoliosis_split.py"


rule scoliosis_skeleton_maps:
    input:
        manifest=rules.scoliosis_manifest.output.manifest,
    output:
        maps=directory(f"{SC_DIR}/prep/skeleton_maps/{{variant}}"),
        prov=f"{SC_DIR}/prep/skeleton_maps/{{variant}}.scoliosis_skeleton_maps.provenance.json",
    params:
        variant=lambda w: SC["skeleton_maps"][w.variant],
        code=mw.rule_code("scoliosis_skeleton_maps"),
    log:
        f"{R}/logs/scoliosis/skeleton_maps_{{variant}}.log",
    benchmark:
        f"{R}/benchmarks/scoliosis/skeleton_maps_{{variant}}.tsv"
    resources:
        mem_mb=4000,
        runtime=60,
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
    params:
        code=mw.rule_code("scoliosis_pav"),
    log:
        f"{R}/logs/scoliosis/pav_{{split}}.log",
    resources:
        mem_mb=2000,
        runtime=30,
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
    params:
        variant=lambda w: SC["skeleton_maps"][SC.get("figure_variant")],
        variant_name=SC.get("figure_variant"),
        code=mw.rule_code("scoliosis_figure"),
    log:
        f"{R}/logs/scoliosis/figure.log",
    script:
        "../scripts/scoliosis_figure.py"


rule scoliosis_train:
    input:
        unpack(sc_train_inputs),
    output:
        checkpoint=f"{SC_DIR}/runs/{{run}}/seed{{seed}}/checkpoint.pt",
        log_jsonl=f"{SC_DIR}/runs/{{run}}/seed{{seed}}/train_log.jsonl",
        summary=f"{SC_DIR}/runs/{{run}}/seed{{seed}}/train_summary.json",
        prov=f"{SC_DIR}/runs/{{run}}/seed{{seed}}/scoliosis_train.provenance.json",
    params:
        run=lambda w: sc_run(w),
        code=lambda w: mw.train_code(config, "scoliosis", w.run),
    log:
        f"{R}/logs/scoliosis/train_{{run}}_seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/scoliosis/train_{{run}}_seed{{seed}}.tsv"
    threads: 1
    resources:
        runtime=sc_resource("runtime", 60),
        mem_mb=sc_resource("mem_mb", 4000),
        gpu=sc_resource("gpu", 0),
        cpus_per_gpu=sc_resource("cpus_per_gpu", 2),
    script:
        "../scripts/scoliosis_train.py"


rule scoliosis_evaluate:
    input:
        unpack(sc_train_inputs),
        checkpoint=rules.scoliosis_train.output.checkpoint,
        summary=rules.scoliosis_train.output.summary,
    output:
        metrics=f"{SC_DIR}/runs/{{run}}/seed{{seed}}/metrics.json",
        predictions=f"{SC_DIR}/runs/{{run}}/seed{{seed}}/predictions.csv",
        prov=f"{SC_DIR}/runs/{{run}}/seed{{seed}}/scoliosis_evaluate.provenance.json",
    params:
        run=lambda w: sc_run(w),
        bootstrap=config["bootstrap"],
        data_kind=SC_DATA.get("source"),
        code=lambda w: mw.train_code(config, "scoliosis", w.run),
    log:
        f"{R}/logs/scoliosis/evaluate_{{run}}_seed{{seed}}.log",
    threads: 1
    resources:
        runtime=lambda w, attempt: 30 * attempt,
        mem_mb=lambda w, attempt: 4000 * attempt,
        gpu=sc_resource("gpu", 0),
        cpus_per_gpu=sc_resource("cpus_per_gpu", 2),
    script:
        "../scripts/scoliosis_evaluate.py"


rule scoliosis_resume_check:
    input:
        unpack(lambda w: sc_inputs_for(SC["resume_check"]["run"], 0)),
    output:
        result=f"{SC_DIR}/checks/resume.json",
        prov=f"{SC_DIR}/checks/scoliosis_resume_check.provenance.json",
    params:
        run=lambda w: mw.run_cfg(config, "scoliosis", SC["resume_check"]["run"]),
        check=SC.get("resume_check", {}),
        code=mw.rule_code("scoliosis_resume_check"),
    log:
        f"{R}/logs/scoliosis/resume_check.log",
    script:
        "../scripts/scoliosis_resume_check.py"


rule scoliosis_audit:
    input:
        metrics=lambda w: STUDY_METRICS["scoliosis"](),
        summaries=lambda w: [
            f"{SC_DIR}/runs/{run}/seed{seed}/train_summary.json"
            for run, seed in mw.run_seeds(config, "scoliosis")
        ],
        splits=lambda w: sorted(
            {
                f"{SC_DIR}/splits/{mw.run_cfg(config, 'scoliosis', r)['split']}.json"
                for r in SC["runs"]
            }
        ),
        pav_stats=lambda w: sorted(
            {
                f"{SC_DIR}/prep/pav/{mw.run_cfg(config, 'scoliosis', r)['split']}/minmax_train.json"
                for r in SC["runs"]
                if mw.run_cfg(config, "scoliosis", r)["model"] == "drf"
            }
        ),
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
    params:
        study_config=SC,
        code=mw.rule_code("scoliosis_audit"),
    log:
        f"{R}/logs/scoliosis/audit.log",
    script:
        "../scripts/scoliosis_audit.py"
