# Study-agnostic aggregation: reads the study registry (each study's .smk registers its
# contract), metrics.json files and each study's descriptor. Nothing here names a study.


from medrepro.provenance import environment as _environment


localrules:
    study_summary,
    leaderboard,
    environment,
    external_import,


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
