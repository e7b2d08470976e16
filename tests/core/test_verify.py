"""`medrepro verify` re-hashes a results folder against its records and follows the lineage."""

import json

import pytest

from medrepro.cli import main
from medrepro.errors import InputError
from medrepro.provenance import Recorder
from medrepro.verify import format_report, verify_results


@pytest.fixture
def results(tmp_path, monkeypatch):
    """raw (outside results) -> prep -> metrics.json, as two recorded jobs."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "raw.txt").write_text("raw data")
    prep = tmp_path / "results/study/prep.txt"
    prep.parent.mkdir(parents=True)
    prep.write_text("prepared")
    Recorder("prep", {}, {}, ["raw.txt"], ["results/study/prep.txt"]).finish(
        "results/study/prep.provenance.json")
    metrics = tmp_path / "results/study/run/metrics.json"
    metrics.parent.mkdir()
    metrics.write_text(json.dumps({"study": "toy", "run": "r1", "seed": 3}))
    Recorder("evaluate", {}, {}, ["results/study/prep.txt"], ["results/study/run/metrics.json"]).finish(
        "results/study/run/evaluate.provenance.json")
    return tmp_path / "results"


def test_a_clean_folder_verifies(results, capsys):
    report = verify_results(results)
    assert report.clean and report.records == 2
    assert main(["verify", str(results)]) == 0
    assert "OK" in capsys.readouterr().out


def test_a_changed_output_is_reported_with_what_depends_on_it(results, capsys):
    (results / "study/prep.txt").write_text("zeroed")
    report = verify_results(results)
    (diff,) = [d for d in report.differences if d.kind == "bytes"]
    assert diff.path == "results/study/prep.txt"
    assert diff.dependents == ["results/study/run/evaluate.provenance.json"]
    assert diff.rows == ["toy / r1 / seed 3"]
    assert main(["verify", str(results)]) == 1
    out = capsys.readouterr().out
    assert "DIFFERS results/study/prep.txt" in out and "toy / r1 / seed 3" in out


def test_a_record_whose_input_hash_differs_from_its_producer_breaks_the_chain(results):
    prov = results / "study/run/evaluate.provenance.json"
    rec = json.loads(prov.read_text())
    rec["inputs"][0]["sha256"] = "0" * 64
    prov.write_text(json.dumps(rec))
    kinds = {d.kind for d in verify_results(results).differences}
    assert kinds == {"lineage"}


def test_raw_inputs_are_checked_when_present(results):
    (results.parent / "raw.txt").write_text("other raw data")
    assert [d.path for d in verify_results(results).differences] == ["raw.txt"]
    (results.parent / "raw.txt").unlink()
    report = verify_results(results)
    assert report.clean and report.not_present == ["raw.txt"]
    assert "not present" in format_report(report)


def test_a_deleted_output_and_a_moved_folder(results, tmp_path):
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    (results).rename(moved / "results")
    assert verify_results(moved / "results").clean  # records are relative to the folder's parent
    (moved / "results/study/run/metrics.json").unlink()
    assert [d.kind for d in verify_results(moved / "results").differences] == ["missing"]


def test_bad_input_exits_2(tmp_path, capsys):
    with pytest.raises(InputError, match="no .*provenance"):
        verify_results(tmp_path)
    assert main(["verify", str(tmp_path)]) == 2
    (tmp_path / "x.provenance.json").write_text("{")
    assert main(["verify", str(tmp_path)]) == 2
    assert "unreadable" in capsys.readouterr().err
