# Study-agnostic aggregation: reads metrics.json files and each study's descriptor.


localrules:
    study_summary,
    leaderboard,


rule study_summary:
    input:
        metrics=study_metrics,
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
        descriptor=lambda w: config["studies"][w.study]["descriptor"],
        code=mw.rule_code("study_summary"),
    script:
        "../scripts/study_summary.py"


rule leaderboard:
    input:
        summaries=expand(f"{R}/{{study}}/summary.csv", study=STUDIES),
        metrics=[m for study in STUDIES for m in STUDY_METRICS[study]()],
        # the leaderboard links each study's audit note and report figures, so asking for
        # results/leaderboard.md builds everything
        audits=expand(f"{R}/audit/{{study}}.md", study=STUDIES),
        figures=EXTRA_TARGETS,
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
        studies=STUDIES,
        descriptors={s: config["studies"][s]["descriptor"] for s in STUDIES},
        bootstrap=config["bootstrap"],
        title=config["leaderboard"]["title"],
        code=mw.rule_code("leaderboard"),
    script:
        "../scripts/leaderboard.py"
