from medrepro import workflow as mw

R = config["results"]
# One environment for every rule (`--sdm conda`), pinned like pyproject.toml.
CONDA_ENV = "../../envs/medrepro.yaml"
STUDIES = mw.enabled_studies(config)

# Each study's .smk registers a function listing its metrics.json files, so the aggregation
# rules never name a study.
STUDY_METRICS = {}
# Extra per-study targets of `rule all` (figures for the report).
EXTRA_TARGETS = []


wildcard_constraints:
    seed=r"\d+",
    run=r"[A-Za-z0-9_]+",
    split=r"[A-Za-z0-9_]+",
    variant=r"[A-Za-z0-9_]+",
    study=r"[a-z]+",


def leaderboard_inputs():
    return [f"{R}/leaderboard.md"]


def study_metrics(wildcards):
    return STUDY_METRICS[wildcards.study]()
