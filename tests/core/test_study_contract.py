"""A study is one package, one rules file, one schema and a config block; shared code never
names a study, and the registry (not the order of includes) tells the aggregation what exists."""

import re
import subprocess

import pytest
import yaml

from medrepro import workflow as mw

from repo_paths import REPO


STUDIES = sorted(mw.discover())

# Everything outside a study's own places that the workflow runs or imports.
SHARED = [
    "workflow/Snakefile", "Makefile", ".ci/run", "pyproject.toml", "envs", "profiles",
    "workflow/rules/common.smk", "workflow/rules/aggregate.smk",
    "workflow/scripts/*.py", "workflow/templates/*.j2", "workflow/schemas/*.yaml", "workflow/schemas/*.json",
    "workflow/report/*.rst", "src/medrepro/*.py", "src/medrepro/metrics", "src/medrepro/report",
    "src/medrepro/train", "src/medrepro/studies/__init__.py",
]


def own_places(study: str) -> list[str]:
    """The places a study touches (README, "Adding a study")."""
    return [
        f"src/medrepro/studies/{study}/",
        f"workflow/rules/studies/{study}.smk",
        f"workflow/schemas/studies/{study}.schema.yaml",
        f"workflow/scripts/{study}/", f"workflow/templates/{study}/", f"workflow/report/{study}/",
        f"tests/studies/{study}/",
        # its config block: studies.<study> in config/config.yaml, its claims in config/claims.yaml,
        # real-data templates under config/real/ (each switches the other studies off)
        "config/",
    ]


def tracked(*pathspecs: str) -> list[str]:
    specs = [f":(glob){p}" if "*" in p else p for p in pathspecs]
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", *specs],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [p for p in out.splitlines() if (REPO / p).is_file()]


def names(path: str, study: str) -> bool:
    return re.search(rf"\b{study}\b", (REPO / path).read_text(errors="replace"), re.I) is not None


def test_the_known_studies_are_discovered():
    assert {"scoliosis", "counterfactual"} <= set(STUDIES)
    for name, study in mw.discover().items():
        assert study.name == name
        assert {"primary", "higher_is_better", "columns", "unit"} <= set(study.descriptor)


@pytest.mark.parametrize("study", STUDIES)
def test_shared_code_never_names_a_study(study):
    offenders = [p for p in tracked(*SHARED) if names(p, study)]
    assert not offenders, f"shared files name the study {study!r}: {offenders}"


def test_the_naming_check_catches_a_study_name(tmp_path):
    """The check above can fail: a shared module that mentions a study is caught."""
    probe = REPO / "src/medrepro/report/_probe_naming.py"
    probe.write_text(f'"""see the {STUDIES[0]} study"""\n')
    try:
        assert probe.relative_to(REPO).as_posix() in [p for p in tracked(*SHARED) if names(p, STUDIES[0])]
    finally:
        probe.unlink()


#: Where a study's name is also a word of another study's domain, not a reference to the study:
#: the counterfactual benchmark's label registry has a "fracture" finding.
WORD_NOT_STUDY = {"fracture": ["src/medrepro/studies/counterfactual/", "tests/studies/counterfactual/",
                               "workflow/templates/counterfactual/"]}


@pytest.mark.parametrize("study", STUDIES)
def test_a_study_lives_in_its_own_places(study):
    """Every file that names the study is in one of its places, or is documentation, the
    end-to-end workflow tests or the tiny test config (which run every study)."""
    allowed = own_places(study) + ["README.md", "tests/workflow/", ".test/", "bench/", "tests/slurm/",
                                   # these two check the real studies' registration and code params
                                   "tests/core/test_study_contract.py", "tests/core/test_codehash.py",
                                   *WORD_NOT_STUDY.get(study, [])]
    stray = [p for p in tracked() if names(p, study) and not any(p == a or p.startswith(a) for a in allowed)]
    assert not stray, f"files outside {study!r}'s places name it: {stray}"
    assert (REPO / f"src/medrepro/studies/{study}/layout.py").is_file()
    assert (REPO / f"workflow/rules/studies/{study}.smk").is_file()
    assert (REPO / f"workflow/schemas/studies/{study}.schema.yaml").is_file()
    assert (REPO / f"tests/studies/{study}").is_dir()
    assert study in yaml.safe_load((REPO / "config/config.yaml").read_text())["studies"]


def test_readme_lists_the_places_of_a_study():
    text = (REPO / "README.md").read_text()
    section = text.split("## Adding a study", 1)[1].split("\n## ", 1)[0]
    items = re.findall(r"^\d+\. ", section, re.M)
    assert 1 <= len(items) <= 6
    for place in ("src/medrepro/studies/<study>/", "workflow/rules/studies/<study>.smk",
                  "workflow/schemas/studies/<study>.schema.yaml", "tests/studies/<study>/", "studies.<study>"):
        assert place in section, place


def test_registry_drives_the_aggregation_whatever_the_order():
    config = {"results": "res", "studies": {"b": {}, "a": {"enabled": False}, "c": {}}}
    saved = mw._REGISTRY.copy()
    try:
        mw._REGISTRY.clear()
        for name in ("c", "a", "b"):
            mw.register(mw.Study(name, {"primary": "m"}, lambda cfg, res, n=name: mw.Layout([f"{res}/{n}.json"])))
        assert list(mw.layouts(config)) == ["b", "c"]  # config order, enabled only
        assert mw.layouts(config)["c"].metrics == ["res/c.json"] and mw.layouts(config)["c"].audit is None
        config["studies"]["d"] = {}
        with pytest.raises(ValueError, match=r"\['d'\].*no study package"):
            mw.layouts(config)
        with pytest.raises(ValueError, match="twice"):
            mw.register(mw.Study("b", {}, lambda c, r: mw.Layout([])))
    finally:
        mw._REGISTRY.clear()
        mw._REGISTRY.update(saved)


def test_descriptor_keys_in_the_config_override_the_study_package():
    study = mw.discover()[STUDIES[0]]
    saved = mw._REGISTRY.copy()
    try:
        mw.register(study)
        config = {"studies": {study.name: {"descriptor": {"title": "other"}}}}
        d = mw.descriptor(config, study.name)
        assert d["title"] == "other" and d["primary"] == study.descriptor["primary"]
    finally:
        mw._REGISTRY.clear()
        mw._REGISTRY.update(saved)
