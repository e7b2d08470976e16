"""`medrepro reproduce`: which jobs a result depends on, how targets are named, how numbers are
compared on another kind of machine (the end-to-end run is in tests/workflow)."""

import json

import pytest

from medrepro.errors import InputError
from medrepro.provenance import Recorder
from medrepro.reproduce import _close, _find_target, _numeric_equal, chain_of
from medrepro.verify import _load_records


@pytest.fixture
def records(tmp_path, monkeypatch):
    """raw -> a -> b -> c, and a side branch a -> d."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "raw.txt").write_text("raw")
    res = tmp_path / "results"
    res.mkdir()
    steps = [("a", ["raw.txt"]), ("b", ["results/a.txt"]), ("c", ["results/b.txt", "raw.txt"]), ("d", ["results/a.txt"])]
    for name, inputs in steps:
        (res / f"{name}.txt").write_text(name)
        Recorder(name, {}, {}, inputs, [f"results/{name}.txt"]).finish(res / f"{name}.provenance.json")
    return res, _load_records(res)


def test_the_chain_is_the_target_and_everything_upstream_producers_first(records):
    res, recs = records
    target = _find_target("results/c.txt", recs, res.parent)
    assert [r["rule"] for _, r in chain_of(target, recs)] == ["a", "b", "c"]


def test_targets_by_path_or_lineage_prefix(records):
    res, recs = records
    c = next(r for r in recs.values() if r["rule"] == "c")
    assert _find_target(c["lineage_id"][:12], recs, res.parent)[1]["rule"] == "c"
    assert _find_target(str(res / "c.txt"), recs, res.parent)[1]["rule"] == "c"
    with pytest.raises(InputError, match="no output and no lineage id"):
        _find_target("results/zz.txt", recs, res.parent)
    with pytest.raises(InputError, match="no output and no lineage id"):
        _find_target("abc", recs, res.parent)  # too short to be a lineage prefix


def test_numbers_are_compared_within_tolerance(tmp_path):
    assert _close({"a": [1.0, "x", None, True]}, {"a": [1.0 + 1e-9, "x", None, True]})
    assert not _close({"a": 1.0}, {"a": 1.001})
    assert not _close({"a": 1.0}, {"b": 1.0})
    assert not _close([1, 2], [1, 2, 3])
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"f1": 0.8123456789}))
    b.write_text(json.dumps({"f1": 0.8123456790}))
    assert _numeric_equal(a, b)
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("unit,score\nx,0.5\n")
    b.write_text("unit,score\nx,0.6\n")
    assert not _numeric_equal(a, b)


def test_records_without_the_job_or_from_a_dirty_tree_are_refused(records):
    from medrepro.reproduce import reproduce

    res, recs = records
    with pytest.raises(InputError, match="extra.job: no named inputs and outputs recorded"):
        reproduce("results/c.txt", res)
    for prov, rec in recs.items():
        rec["extra"]["job"] = {"input": {}, "output": {}, "log": [], "threads": 1}
        rec["code"]["commit"], rec["code"]["dirty"] = "0" * 40, True
        prov.write_text(json.dumps(rec))
    with pytest.raises(InputError, match="code.dirty: .*uncommitted changes"):
        reproduce("results/c.txt", res)
    recs = _load_records(res)
    first = next(iter(recs))
    rec = recs[first]
    rec["code"]["commit"] = "1" * 40
    first.write_text(json.dumps(rec))
    with pytest.raises(InputError, match="code.commit: the chain's records name commits"):
        reproduce("results/c.txt", res)
