"""The results folder as a Workflow Run RO-Crate: the profiles' MUST rules, offline, on a small
recorded run; hashes checked against the bytes; a zip that holds everything it lists."""

import json
import socket
import zipfile

import pytest

from medrepro.cli import main
from medrepro.crate import METADATA, WORKFLOW_DIR, build_crate, crate_results, must_violations, write_zip
from medrepro.errors import InputError, MismatchError
from medrepro.provenance import Recorder, path_sha256

PROFILES = ["https://w3id.org/ro/wfrun/process/0.5", "https://w3id.org/ro/wfrun/workflow/0.5",
            "https://w3id.org/ro/wfrun/provenance/0.5", "https://w3id.org/workflowhub/workflow-ro-crate/1.0"]


@pytest.fixture
def run(tmp_path, monkeypatch):
    """A workflow tree and its results: raw data (outside the tree) and the claims file ->
    prepare (a file and a folder) -> leaderboard, two recorded jobs."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "Snakefile").write_text('include: "workflow/rules/common.smk"\n')
    (tmp_path / "workflow/rules").mkdir(parents=True)
    (tmp_path / "workflow/rules/common.smk").write_text("R = 'results'\n")
    (tmp_path / "config").mkdir()
    (tmp_path / "config/config.yaml").write_text("results: results\n")
    (tmp_path / "config/claims.yaml").write_text("claims: []\n")
    raw = tmp_path.parent / f"{tmp_path.name}-raw.csv"  # a file of no tree: not packaged
    raw.write_text("id,value\n1,2\n")
    prep = tmp_path / "results/toy/prep"
    (prep / "maps").mkdir(parents=True)
    (prep / "table.csv").write_text("id,value\n1,4\n")
    (prep / "maps/a.txt").write_text("map a")
    Recorder("toy_prepare", {"split": "train"}, {"scale": 2, "code": {"modules": ["medrepro"]}},
             [str(raw), "config/claims.yaml"], ["results/toy/prep/table.csv", "results/toy/prep/maps"]
             ).finish("results/toy/prep/toy_prepare.provenance.json")
    (tmp_path / "results/leaderboard.md").write_text("# leaderboard\n")
    Recorder("leaderboard", {}, {"title": "toy"}, ["results/toy/prep/table.csv"], ["results/leaderboard.md"]
             ).finish("results/leaderboard.provenance.json")
    return tmp_path


def _build(run, **kw):
    return build_crate(run / "results", workflow_root=run, configfiles=["config/config.yaml"], **kw)


def _graph(metadata):
    return {e["@id"]: e for e in metadata["@graph"]}


def _ids(value):
    return [v["@id"] for v in (value if isinstance(value, list) else [value])]


def test_the_crate_keeps_the_must_rules(run):
    metadata = _build(run)
    assert must_violations(metadata, run / "results") == []
    assert json.loads((run / "results" / METADATA).read_text()) == metadata


def test_ro_crate_root_and_descriptor(run):
    g = _graph(_build(run))
    desc = g[METADATA]
    assert desc["@type"] == "CreativeWork" and desc["about"] == {"@id": "./"}
    assert {"@id": "https://w3id.org/ro/crate/1.1"} in desc["conformsTo"]
    root = g["./"]
    assert root["@type"] == "Dataset"
    assert root["name"] and root["description"] and root["license"] == {"@id": "https://spdx.org/licenses/MIT"}
    # the publication date is the end of the last job (so a rebuild gives the same bytes)
    ends = [json.loads(p.read_text())["end"] for p in (run / "results").rglob("*.provenance.json")]
    assert root["datePublished"] == max(ends)
    for uri in PROFILES:  # Process / Workflow / Provenance Run Crate, Workflow RO-Crate
        assert {"@id": uri} in root["conformsTo"] and g[uri]["@type"] == "CreativeWork"


def test_data_entities_are_in_the_crate_or_absolute_uris(run):
    g = _graph(_build(run))
    parts = set(_ids(g["./"]["hasPart"]))
    for i, e in g.items():
        types = set(e["@type"]) if isinstance(e["@type"], list) else {e["@type"]}
        if i in ("./", METADATA) or not types & {"File", "Dataset"}:
            continue
        assert i in parts
        assert i.startswith("file://") or (run / "results" / i).exists(), i
    raw = [i for i in g if i.startswith("file://")]
    assert len(raw) == 1 and raw[0].endswith("-raw.csv")
    # an input from the workflow tree points at its copy in the crate
    assert f"{WORKFLOW_DIR}/config/claims.yaml" in g
    assert g["toy/prep/maps/"]["@type"] == "Dataset"


def test_the_snakefile_is_the_main_workflow(run):
    g = _graph(_build(run))
    main_id = g["./"]["mainEntity"]["@id"]
    assert main_id == f"{WORKFLOW_DIR}/Snakefile" and (run / "results" / main_id).is_file()
    wf = g[main_id]
    assert {"File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"} <= set(wf["@type"])
    lang = g[wf["programmingLanguage"]["@id"]]
    assert lang["@type"] == "ComputerLanguage" and lang["name"] == "Snakemake"
    assert wf["sha256"] == path_sha256(run / "Snakefile")
    assert (run / "results" / WORKFLOW_DIR / "workflow/rules/common.smk").read_text() == "R = 'results'\n"


def test_one_create_action_per_job_from_its_record(run):
    g = _graph(_build(run))
    prov = run / "results/toy/prep/toy_prepare.provenance.json"
    rec = json.loads(prov.read_text())
    (action,) = [e for e in g.values() if e["@type"] == "CreateAction" and e.get("instrument") == {"@id": "#rule-toy_prepare"}]
    assert action["startTime"] == rec["start"] and action["endTime"] == rec["end"]
    assert action["@id"] in _ids(g["./"]["mentions"])
    results = {i: g[i] for i in _ids(action["result"])}
    for out in rec["outputs"]:
        rel = out["path"].removeprefix("results/") + ("/" if "files" in out else "")
        assert results[rel]["sha256"] == out["sha256"] and results[rel]["contentSize"] == str(out["size"])
    objects = [g[i] for i in _ids(action["object"])]
    values = {e["name"]: e["value"] for e in objects if e["@type"] == "PropertyValue"}
    assert values == {"scale": 2, "code": json.dumps({"modules": ["medrepro"]}, sort_keys=True)}
    files = [e for e in objects if e["@type"] == "File"]
    assert {f["sha256"] for f in files} == {i["sha256"] for i in rec["inputs"]}
    # the record itself is in the crate, about its action
    assert g["toy/prep/toy_prepare.provenance.json"]["about"] == {"@id": action["@id"]}


def test_steps_control_actions_and_the_run(run):
    g = _graph(_build(run))
    wf = g[f"{WORKFLOW_DIR}/Snakefile"]
    assert _ids(wf["hasPart"]) == ["#rule-leaderboard", "#rule-toy_prepare"]
    steps = [g[s] for s in _ids(wf["step"])]
    assert [s["workExample"]["@id"] for s in steps] == ["#rule-toy_prepare", "#rule-leaderboard"]
    assert steps[0]["position"] < steps[1]["position"]  # the leaderboard reads the table
    for s in steps:
        (control,) = [e for e in g.values() if e["@type"] == "ControlAction" and e["instrument"] == {"@id": s["@id"]}]
        assert all(g[o]["@type"] == "CreateAction" for o in _ids(control["object"]))
    run_action = g["#run"]
    assert run_action["instrument"] == {"@id": wf["@id"]}
    assert _ids(run_action["object"]) == [f"{WORKFLOW_DIR}/config/config.yaml"]
    assert _ids(run_action["result"]) == ["leaderboard.md"]
    engine = [e for e in g.values() if e["@type"] == "OrganizeAction"]
    assert len(engine) == 1 and engine[0]["result"] == {"@id": "#run"}


def test_the_checks_catch_a_broken_crate(run):
    metadata = _build(run)
    g = _graph(metadata)
    del g["./"]["license"]
    g[f"{WORKFLOW_DIR}/Snakefile"]["@type"] = ["File", "SoftwareSourceCode"]
    (control,) = [e for e in metadata["@graph"] if e["@id"] == "#control-leaderboard"]
    control["object"] = {"@id": "#step-leaderboard"}
    found = "\n".join(must_violations(metadata, run / "results"))
    assert "root data entity must have license" in found
    assert "main workflow must be File, SoftwareSourceCode, ComputationalWorkflow" in found
    assert "ControlAction #control-leaderboard must have the tool runs as object" in found
    (run / "results/leaderboard.md").unlink()
    assert any("data entity leaderboard.md is not in the crate" in v for v in must_violations(metadata, run / "results"))


def test_bytes_that_differ_from_their_record_are_refused(run):
    (run / "results/toy/prep/table.csv").write_text("id,value\n1,5\n")
    with pytest.raises(MismatchError, match="results/toy/prep/table.csv"):
        _build(run)
    assert not (run / "results" / METADATA).exists()


def test_a_changed_file_inside_a_folder_output_is_refused(run):
    (run / "results/toy/prep/maps/a.txt").write_text("zeroed")
    with pytest.raises(MismatchError, match="results/toy/prep/maps"):
        _build(run)


def test_building_twice_gives_the_same_bytes_and_verify_still_passes(run):
    _build(run)
    first = (run / "results" / METADATA).read_bytes()
    build_crate(run / "results", configfiles=["config/config.yaml"])  # from the copy already there
    assert (run / "results" / METADATA).read_bytes() == first
    assert main(["verify", str(run / "results")]) == 0


def test_nothing_is_fetched_from_the_network(run, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the crate must be built offline")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    _build(run, zip_path=run / "out.zip")
    assert json.loads((run / "results" / METADATA).read_text())["@context"][0] == "https://w3id.org/ro/crate/1.1/context"


def test_the_zip_is_self_contained(run, tmp_path_factory):
    from rocrate.rocrate import ROCrate

    out = tmp_path_factory.mktemp("zip") / "run.crate.zip"
    metadata = _build(run, zip_path=out)
    names = set(zipfile.ZipFile(out).namelist())
    assert METADATA in names
    for i, e in _graph(metadata).items():
        types = set(e["@type"]) if isinstance(e["@type"], list) else {e["@type"]}
        if "File" in types and not i.startswith("file://") and i != METADATA:
            assert i in names, i
    assert "toy/prep/maps/a.txt" in names and f"{WORKFLOW_DIR}/Snakefile" in names
    crate = ROCrate(out)
    assert crate.mainEntity.id == f"{WORKFLOW_DIR}/Snakefile"
    for e in crate.data_entities:
        if not e.id.startswith("file://"):
            assert (crate.source / e.id).exists(), e.id
    with zipfile.ZipFile(out) as z:
        unpacked = json.loads(z.read(METADATA))
    assert must_violations(unpacked, crate.source) == []


def test_the_zip_may_not_be_written_into_the_crate(run):
    _build(run)
    with pytest.raises(InputError, match="inside the crate"):
        write_zip(run / "results", run / "results/run.zip")


def test_the_command_line(run, capsys):
    assert main(["crate", str(run / "results"), "--zip", str(run / "run.zip")]) == 0
    assert "wrote" in capsys.readouterr().out
    assert (run / "results" / METADATA).is_file() and zipfile.is_zipfile(run / "run.zip")
    (run / "results/leaderboard.md").write_text("edited\n")
    assert main(["crate", str(run / "results")]) == 1  # a checksum mismatch
    assert "results/leaderboard.md" in capsys.readouterr().err


def test_a_crate_the_workflow_made_is_kept_and_zipped(run, capsys):
    """The `crate` job's output has a record: the command line zips it and does not rewrite it."""
    _build(run)
    Recorder("crate", {}, {"configfiles": ["config/config.yaml"]}, ["results/leaderboard.md"],
             [f"results/{METADATA}", f"results/{WORKFLOW_DIR}"]).finish("results/crate.provenance.json")
    before = (run / "results" / METADATA).read_bytes()
    assert crate_results(run / "results", zip_path=run / "run.zip") is False
    assert (run / "results" / METADATA).read_bytes() == before and zipfile.is_zipfile(run / "run.zip")
    names = zipfile.ZipFile(run / "run.zip").namelist()
    assert "crate.provenance.json" not in names  # the crate's own record is not part of it
    assert main(["verify", str(run / "results")]) == 0
    # a rebuild from the record's config files gives the same bytes
    build_crate(run / "results")
    assert (run / "results" / METADATA).read_bytes() == before
    capsys.readouterr()
    (run / "results" / METADATA).write_text(before.decode().replace("toy_prepare", "toy_other"))
    assert main(["crate", str(run / "results"), "--zip", str(run / "again.zip")]) == 1
    assert METADATA in capsys.readouterr().err and not (run / "again.zip").exists()
