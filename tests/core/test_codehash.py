"""Code params derived from the scripts' static imports (no hand-kept module table)."""

import re

import pytest

from medrepro import codehash
from medrepro import workflow as mw

from repo_paths import REPO


def _rules():
    """(rule, script, code-param script) for every rule of every rules file."""
    out = []
    for smk in sorted((REPO / "workflow/rules").rglob("*.smk")):
        for block in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            name = block.split(":", 1)[0]
            script = re.search(r'script:\s*"(?:\.\./)+scripts/([^"]+)"', block)
            param = re.search(r"code=(.*?)\n    script:", block, re.S)
            code = re.search(r'"([\w/]+\.py)"', param.group(1)) if param else None
            if script:
                out.append((name, script.group(1), code.group(1) if code else None))
    return out


def test_every_rule_hashes_its_own_script():
    rules = _rules()
    assert len(rules) >= 15
    for name, script, code in rules:
        assert code == script, f"rule {name}: script {script} but code param for {code}"
        assert (REPO / "workflow/scripts" / script).is_file()


def test_rule_names_follow_one_convention():
    names = [name for name, _, _ in _rules()]
    studies = set(mw.discover())
    for name in names:
        assert name in ("study_summary", "leaderboard", "environment", "external_import", "crate") or name.split("_")[0] in studies, name


def test_closure_follows_imports_transitively_and_stops_at_the_registry():
    train = mw.rule_code("scoliosis/train.py")["modules"]
    assert "medrepro.studies.scoliosis.trainer" in train  # imported by run.py, not by the script
    assert "medrepro.train.loop" in train and "medrepro.train.device" in train
    assert "medrepro.studies.scoliosis" in train and "medrepro" in train  # enclosing packages
    assert not any(".models." in m for m in train)  # models are loaded by name
    pav = mw.rule_code("scoliosis/pav.py")["modules"]
    assert not any("skeleton_maps" in m for m in pav)
    assert "medrepro.studies.scoliosis.data" in pav


def test_model_code_adds_exactly_the_models_of_the_init_chain():
    config = {"studies": {"s": {"runs": {
        "a": {"model": "drf", "seeds": [0]},
        "b": {"model": "sconet", "init_from": "a", "seeds": [0]},
        "c": {"model": "sconet", "seeds": [0]}}}}}
    import medrepro.studies.scoliosis  # noqa: F401  registers the models

    c = mw.model_code(config, "s", "c", "scoliosis/train.py")["modules"]
    b = mw.model_code(config, "s", "b", "scoliosis/train.py")["modules"]
    assert "medrepro.studies.scoliosis.models.sconet" in c and "medrepro.studies.scoliosis.models.drf" not in c
    assert "medrepro.studies.scoliosis.models.drf" in b


def test_templates_are_found_from_the_source_and_hashed():
    code = mw.rule_code("leaderboard.py")
    assert code["templates"] == ["leaderboard.md.j2"]
    assert mw.rule_code("study_summary.py")["templates"] == []
    assert "scoliosis/audit.md.j2" in mw.rule_code("scoliosis/audit.py")["templates"]


def test_hash_changes_with_a_module_or_a_template(tmp_path):
    template_dir = tmp_path / "t"
    template_dir.mkdir()
    (template_dir / "leaderboard.md.j2").write_text("a")
    base = codehash.files_hash(["medrepro.fsutil"], ["leaderboard.md.j2"], template_dir)
    assert base == codehash.files_hash(["medrepro.fsutil"], ["leaderboard.md.j2"], template_dir)
    (template_dir / "leaderboard.md.j2").write_text("b")
    assert base != codehash.files_hash(["medrepro.fsutil"], ["leaderboard.md.j2"], template_dir)
    assert base != codehash.files_hash(["medrepro.errors"], ["leaderboard.md.j2"], template_dir)


def test_relative_and_function_level_imports_are_followed(tmp_path):
    script = tmp_path / "s.py"
    script.write_text("def f():\n    from medrepro.report import claims\n    import medrepro.metrics.bootstrap\n")
    mods = codehash.closure([], script)
    assert "medrepro.report.claims" in mods and "medrepro.metrics.bootstrap" in mods
    assert "medrepro.errors" in mods  # claims imports it
    assert "medrepro.report" in mods  # its package


def test_a_missing_module_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        codehash.closure(["medrepro.no_such_module"])
