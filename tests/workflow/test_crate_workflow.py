"""The tiny run's Workflow Run RO-Crate: made by the workflow's last job, it keeps the profiles'
MUST rules, describes every job by its record with the bytes on disk, and packs into a zip."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from medrepro.crate import METADATA, WORKFLOW_DIR, build_crate, main_snakefile, must_violations
from medrepro.provenance import path_sha256
from workflow_utils import recorded_outputs

pytestmark = pytest.mark.workflow
MEDREPRO = str(Path(sys.executable).parent / "medrepro")


@pytest.fixture(scope="module")
def crate(tiny_local_results):
    results = tiny_local_results.workdir / "results"
    metadata = json.loads((results / METADATA).read_text())
    return results, metadata, {e["@id"]: e for e in metadata["@graph"]}


def _ids(value) -> list[str]:
    return [v["@id"] for v in (value if isinstance(value, list) else [value])]


def _records(results: Path) -> dict[Path, dict]:
    return {p: json.loads(p.read_text()) for p in sorted(results.rglob("*.provenance.json"))}


def test_the_crate_keeps_the_must_rules(crate):
    results, metadata, _ = crate
    assert must_violations(metadata, results) == []


def test_the_crate_job_ran_last(crate):
    results, _, _ = crate
    records = _records(results)
    own = records.pop(results / "crate.provenance.json")
    assert own["rule"] == "crate" and [o["path"] for o in own["outputs"]] == [
        f"results/{METADATA}", f"results/{WORKFLOW_DIR}"]
    assert own["start"] >= max(r["end"] for r in records.values())
    assert "results/leaderboard.md" in [i["path"] for i in own["inputs"]]
    assert own["params"]["configfiles"] and all(not Path(c).is_absolute() for c in own["params"]["configfiles"])


def test_every_job_is_an_action_with_its_records_hashes_and_the_bytes_on_disk(crate):
    results, _, g = crate
    records = {p: r for p, r in _records(results).items() if r["rule"] != "crate"}
    actions = {e["@id"]: e for e in g.values() if e["@type"] == "CreateAction" and e["@id"] != "#run"}
    assert len(actions) == len(records) > 10
    by_record = {g[p.relative_to(results).as_posix()]["about"]["@id"]: r for p, r in records.items()}
    assert set(by_record) == set(actions)
    for aid, rec in by_record.items():
        action = actions[aid]
        assert action["instrument"] == {"@id": f"#rule-{rec['rule']}"}
        assert action["startTime"] == rec["start"] and action["endTime"] == rec["end"]
        outs = [g[i] for i in _ids(action["result"])]
        assert sorted(o["sha256"] for o in outs) == sorted(o["sha256"] for o in rec["outputs"])
        for o in outs:  # the hash the crate holds is the one of the bytes there
            assert path_sha256(results / o["@id"].rstrip("/"), cached=False) == o["sha256"], o["@id"]
        values = {g[i]["name"] for i in _ids(action["object"]) if g[i]["@type"] == "PropertyValue"}
        assert values == set(rec["params"])


def test_the_snakefile_the_steps_and_the_run(crate, tiny_local_results):
    results, _, g = crate
    root = g["./"]
    wf = g[root["mainEntity"]["@id"]]
    snakefile = main_snakefile(tiny_local_results.workdir)
    assert wf["@id"] == f"{WORKFLOW_DIR}/{snakefile}"
    assert (results / wf["@id"]).read_bytes() == (tiny_local_results.workdir / snakefile).read_bytes()
    assert g[wf["programmingLanguage"]["@id"]]["name"] == "Snakemake"
    rules = {r["rule"] for r in _records(results).values()} - {"crate"}
    assert set(_ids(wf["hasPart"])) == {f"#rule-{r}" for r in rules}
    assert {g[s]["workExample"]["@id"] for s in _ids(wf["step"])} == {f"#rule-{r}" for r in rules}
    controls = [e for e in g.values() if e["@type"] == "ControlAction"]
    assert len(controls) == len(rules)
    run = g["#run"]
    assert _ids(run["result"]) == ["leaderboard.md"] and run["instrument"] == {"@id": wf["@id"]}
    assert _ids(run["object"]) and all(o.startswith(f"{WORKFLOW_DIR}/config/") for o in _ids(run["object"]))
    assert root["license"] and root["datePublished"]


def test_the_run_still_verifies(tiny_local_results):
    proc = subprocess.run([MEDREPRO, "verify", "results"], cwd=tiny_local_results.workdir, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and "OK: every file matches its record" in proc.stdout, proc.stdout + proc.stderr


def test_recorded_outputs_leave_the_crate_out(tiny_local_results):
    out = recorded_outputs(tiny_local_results.workdir)
    assert f"results/{METADATA}" not in out and f"results/{WORKFLOW_DIR}" in out


def test_the_command_line_zips_the_crate_and_a_rebuild_gives_the_same_bytes(tiny_local_results, tmp_path):
    from rocrate.rocrate import ROCrate

    copy = tmp_path / "wd"
    shutil.copytree(tiny_local_results.workdir / "results", copy / "results")
    before = (copy / "results" / METADATA).read_bytes()
    out = tmp_path / "run.crate.zip"
    proc = subprocess.run([MEDREPRO, "crate", "results", "--zip", str(out)], cwd=copy, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0 and "kept the workflow-made" in proc.stdout, proc.stdout + proc.stderr
    assert (copy / "results" / METADATA).read_bytes() == before
    zipped = ROCrate(out)
    assert zipped.mainEntity.id.startswith(f"{WORKFLOW_DIR}/")
    assert (Path(zipped.source) / zipped.mainEntity.id).is_file()
    unpacked = json.loads((Path(zipped.source) / METADATA).read_text())
    assert must_violations(unpacked, zipped.source) == []
    assert (Path(zipped.source) / "leaderboard.md").read_bytes() == (copy / "results/leaderboard.md").read_bytes()
    # the crate is a function of the folder
    build_crate(copy / "results")
    assert (copy / "results" / METADATA).read_bytes() == before


def test_roc_validator_when_installed(crate):
    """An extra check where roc-validator is installed (it may need the network): never required."""
    services = pytest.importorskip("rocrate_validator.services")
    models = pytest.importorskip("rocrate_validator.models")
    results, _, _ = crate
    settings = services.ValidationSettings(rocrate_uri=str(results), profile_identifier="provenance-run-crate-0.5",
                                           requirement_severity=models.Severity.REQUIRED)
    try:
        result = services.validate(settings)
    except Exception as e:  # no network, or a profile this version lacks
        pytest.skip(f"roc-validator could not run here: {type(e).__name__}: {e}")
    assert not result.has_issues(), [f"{i.check.identifier}: {i.message}" for i in result.get_issues()]
