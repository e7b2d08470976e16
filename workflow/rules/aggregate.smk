# Study-agnostic aggregation: reads the study registry (each study's .smk registers its
# contract), metrics.json files and each study's descriptor. Nothing here names a study.


import os

from medrepro.provenance import environment as _environment


localrules:
    study_summary,
    leaderboard,
    environment,
    external_import,
    crate,


rule environment:
    output:
        txt=f"{R}/environment.txt",
        prov=f"{R}/environment.provenance.json",
    log:
        f"{R}/logs/environment.log",
    conda:
        CONDA_ENV
    params:
        # the package set of the Python that runs snakemake: when it changes, this reruns (the
        # file itself lists the set of the Python the job ran in; with --sdm conda, the env's)
        sha256=_environment()["sha256"],
        code=mw.rule_code("environment.py"),
    script:
        "../scripts/environment.py"


# Results a lab made outside the pipeline (a study block's `external:` entries): the study's
# registered importer reads them; the row is marked external, with the file's sha256.
rule external_import:
    input:
        source=lambda w: mw.external_entries(config, w.study)[w.name]["path"],
    output:
        metrics=f"{R}/{{study}}/external/{{name}}/metrics.json",
        units=f"{R}/{{study}}/external/{{name}}/units.csv",
        prov=f"{R}/{{study}}/external/{{name}}/external_import.provenance.json",
    log:
        f"{R}/logs/{{study}}/external_{{name}}.log",
    conda:
        CONDA_ENV
    params:
        entry=lambda w: mw.external_entries(config, w.study)[w.name],
        importer=lambda w: mw.importer(w.study),
        descriptor=lambda w: mw.descriptor(config, w.study),
        bootstrap=config["bootstrap"],
        code=lambda w: mw.importer_code(w.study, "external_import.py"),
    script:
        "../scripts/external_import.py"


rule study_summary:
    input:
        metrics=lambda w: active_layouts()[w.study].metrics,
        schema="workflow/schemas/metrics.schema.json",
    output:
        csv=report(
            f"{R}/{{study}}/summary.csv",
            caption="../report/summary.rst",
            category="tables",
        ),
        png=report(
            f"{R}/{{study}}/figures/primary_metric.png",
            caption="../report/primary_metric.rst",
            category="figures",
        ),
        prov=f"{R}/{{study}}/study_summary.provenance.json",
    log:
        f"{R}/logs/{{study}}/summary.log",
    conda:
        CONDA_ENV
    params:
        descriptor=lambda w: mw.descriptor(config, w.study),
        code=mw.rule_code("study_summary.py"),
    script:
        "../scripts/study_summary.py"


# Per trained run x seed: its learning curve and its selected checkpoint's TEST figure (a
# confusion matrix, or predicted against true values), as the study's layout declares them. One
# job per study: its figures are listed when the rules are read, so each study with trained runs
# gets its own rule (study_figures_<study>), all running the same script.
for _study, _figs in {
    s: mw.training_figures(config, s, lay.training)
    for s, lay in active_layouts().items()
}.items():
    if not _figs:
        continue

    rule:
        name:
            f"study_figures_{_study}"
        input:
            logs=[f["log"] for f in _figs],
            metrics=[f["metrics"] for f in _figs],
            units=[f["units"] for f in _figs if f["units"]],
        output:
            curves=[
                report(
                    f["curve"],
                    caption="../report/learning_curve.rst",
                    category=_study,
                    subcategory=f["run"],
                    labels={"figure": "learning curve", "seed": str(f["seed"])},
                )
                for f in _figs
            ],
            tests=[
                report(
                    f["test_png"],
                    caption=f"../report/{f['test']['kind']}.rst",
                    category=_study,
                    subcategory=f["run"],
                    labels={
                        "figure": f"{f['test']['kind']} (test)",
                        "seed": str(f["seed"]),
                    },
                )
                for f in _figs
                if f["test_png"]
            ],
            prov=f"{R}/{_study}/figures/training/study_figures.provenance.json",
        log:
            f"{R}/logs/{_study}/figures.log",
        localrule: True
        conda:
            CONDA_ENV
        params:
            figures=_figs,
            descriptor=mw.descriptor(config, _study),
            code=mw.rule_code("study_figures.py"),
        script:
            "../scripts/study_figures.py"


rule leaderboard:
    input:
        summaries=lambda w: [f"{R}/{s}/summary.csv" for s in active_layouts()],
        metrics=lambda w: [m for lay in active_layouts().values() for m in lay.metrics],
        # the leaderboard links each study's audit note and report figures, so asking for
        # results/leaderboard.md builds everything
        audits=lambda w: [lay.audit for lay in active_layouts().values() if lay.audit],
        figures=lambda w: [t for lay in active_layouts().values() for t in lay.targets],
        sections=lambda w: [
            lay.section for lay in active_layouts().values() if lay.section
        ],
        environment=f"{R}/environment.txt",
    output:
        md=report(
            f"{R}/leaderboard.md",
            caption="../report/leaderboard.rst",
            category="leaderboard",
        ),
        prov=f"{R}/leaderboard.provenance.json",
    log:
        f"{R}/logs/leaderboard.log",
    conda:
        CONDA_ENV
    params:
        studies=lambda w: list(active_layouts()),
        section_of=lambda w: {
            s: lay.section for s, lay in active_layouts().items() if lay.section
        },
        descriptors=lambda w: {s: mw.descriptor(config, s) for s in active_layouts()},
        bootstrap=config["bootstrap"],
        title=config["leaderboard"]["title"],
        code=mw.rule_code("leaderboard.py"),
    script:
        "../scripts/leaderboard.py"


# The finished run as a Workflow Run RO-Crate (medrepro.crate): every job's provenance record
# as an action, the workflow definition copied in as the crate's main entity. It runs last,
# after the leaderboard and every other target of `rule all`. The workflow files are copied,
# not inputs: editing the tree after a run does not make the crate describe code that did not
# run (it is made again when the leaderboard is).
rule crate:
    input:
        leaderboard=f"{R}/leaderboard.md",
        # and whatever else `rule all` asks for: the crate is the run's last job
        targets=lambda w: [
            str(p)
            for p in rules.all.input
            if str(p) not in (f"{R}/leaderboard.md", f"{R}/ro-crate-metadata.json")
        ],
    output:
        metadata=f"{R}/ro-crate-metadata.json",
        workflow=directory(f"{R}/workflow-definition"),
        prov=f"{R}/crate.provenance.json",
    log:
        f"{R}/logs/crate.log",
    conda:
        CONDA_ENV
    params:
        # the config files this run was given (relative to the working directory)
        configfiles=[os.path.relpath(p) for p in workflow.configfiles],
        code=mw.rule_code("crate.py"),
    script:
        "../scripts/crate.py"
