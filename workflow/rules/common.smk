from medrepro import workflow as mw

R = config["results"]
# One environment for every rule (`--sdm conda`), pinned like pyproject.toml; the path is
# relative to the rules file that uses it.
CONDA_ENV = "../../envs/medrepro.yaml"
STUDY_CONDA_ENV = "../../../envs/medrepro.yaml"


wildcard_constraints:
    seed=r"\d+",
    run=r"[A-Za-z0-9_]+",
    split=r"[A-Za-z0-9_]+",
    variant=r"[A-Za-z0-9_]+",
    study=r"[a-z]+",


def active_layouts():
    """Layouts of the registered studies the config enables (read when the DAG is built, so
    the order of includes does not matter)."""
    return mw.layouts(config)
