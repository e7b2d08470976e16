"""The shared import of results made outside the pipeline: metrics.json in the one schema,
marked external with the sha256 of the bytes read; config entries checked; a row without
per-unit values ranked from its own CIs."""

import json
import sys
import textwrap

import jsonschema
import pandas as pd
import pytest

from medrepro import workflow as mw
from medrepro.errors import InputError
from medrepro.external import import_external
from medrepro.fsutil import sha256_file
from medrepro.report.summary import rank_study, write_study_summary
from repo_paths import REPO

DESC = {"primary": "m", "higher_is_better": True, "columns": ["m"], "unit": "case"}
BOOT = {"iterations": 100, "seed": 0}


@pytest.fixture
def importer(tmp_path, monkeypatch):
    (tmp_path / "fake_importer.py").write_text(textwrap.dedent('''
        from pathlib import Path
        import pandas as pd

        def read(source, *, name, bootstrap, descriptor):
            value = float(Path(source).read_text())
            return {"metrics": {"m": {"estimate": value, "ci_low": value - 0.1, "ci_high": value + 0.1, "n": 3}},
                    "units": None, "format": "one number", "details": {"name": name}}

        def tamper(source, *, name, bootstrap, descriptor):
            Path(source).write_text("0.1")
            return read(source, name=name, bootstrap=bootstrap, descriptor=descriptor)

        def no_primary(source, *, name, bootstrap, descriptor):
            return {"metrics": {"other": {"estimate": 1.0, "ci_low": 1.0, "ci_high": 1.0, "n": 1}}, "units": None}
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "fake_importer"
    sys.modules.pop("fake_importer", None)


def test_an_external_file_becomes_a_metrics_record_with_its_hash(tmp_path, importer):
    src = tmp_path / "result.txt"
    src.write_text("0.7")
    out = tmp_path / "out"
    m = import_external("s", "lab", src, f"{importer}:read", out / "metrics.json", out / "units.csv", BOOT, DESC)
    schema = json.loads((REPO / "workflow/schemas/metrics.schema.json").read_text())
    jsonschema.validate(json.loads((out / "metrics.json").read_text()), schema)
    assert m["external"]["sha256"] == sha256_file(src) and m["selection"]["policy"] == "none"
    assert m["run"] == "lab" and m["seed"] is None and m["data"]["kind"] == "real"
    # a row without per-unit values is ranked from the CIs it brings, and not paired
    other = tmp_path / "other"
    src2 = tmp_path / "r2.txt"
    src2.write_text("0.5")
    import_external("s", "lab2", src2, f"{importer}:read", other / "metrics.json", other / "units.csv", BOOT, DESC)
    df = write_study_summary([out / "metrics.json", other / "metrics.json"], DESC, tmp_path / "sum.csv",
                             tmp_path / "sum.png")
    rows = rank_study(pd.read_csv(tmp_path / "sum.csv"), DESC, 100, 0)
    assert [r["run"] for r in rows] == ["lab", "lab2"]
    assert rows[0]["ci"]["m"] == pytest.approx((0.6, 0.8)) and rows[0]["external"] == sha256_file(src)
    assert rows[1]["vs_leader"].startswith("not paired")
    assert len(df) == 2


def test_a_folder_is_hashed_file_by_file(tmp_path, importer):
    folder = tmp_path / "folder"
    (folder / "a").mkdir(parents=True)
    (folder / "a" / "x.json").write_text("{}")
    (tmp_path / "v.txt").write_text("0.3")

    def read_folder(source, **kw):
        return {"metrics": {"m": {"estimate": 0.3, "ci_low": 0.2, "ci_high": 0.4, "n": 1}}, "units": None}

    import importlib

    importlib.import_module(importer).read_folder = read_folder
    m = import_external("s", "f", folder, f"{importer}:read_folder", tmp_path / "o/metrics.json",
                        tmp_path / "o/units.csv", BOOT, DESC)
    assert m["external"]["files"] == {"a/x.json": sha256_file(folder / "a" / "x.json")}


def test_a_source_that_changes_while_read_or_lacks_the_primary_is_refused(tmp_path, importer):
    src = tmp_path / "r.txt"
    src.write_text("0.7")
    with pytest.raises(InputError, match="changed while it was read"):
        import_external("s", "x", src, f"{importer}:tamper", tmp_path / "o/metrics.json", tmp_path / "o/u.csv",
                        BOOT, DESC)
    assert not (tmp_path / "o/metrics.json").exists()
    with pytest.raises(InputError, match="not reported"):
        import_external("s", "x", src, f"{importer}:no_primary", tmp_path / "p/metrics.json", tmp_path / "p/u.csv",
                        BOOT, DESC)
    assert not (tmp_path / "p/metrics.json").exists()
    with pytest.raises(InputError, match="no such file"):
        import_external("s", "x", tmp_path / "missing.csv", f"{importer}:read", tmp_path / "q/metrics.json",
                        tmp_path / "q/u.csv", BOOT, DESC)


def test_config_entries_are_checked():
    saved = mw._REGISTRY.copy()
    try:
        mw._REGISTRY.clear()
        mw.register(mw.Study("a", DESC, lambda c, r: mw.Layout([f"{r}/a/run/metrics.json"]), importer="m:f"))
        mw.register(mw.Study("b", DESC, lambda c, r: mw.Layout([])))
        config = {"results": "res", "studies": {"a": {"runs": {"r1": {}}, "external": {"lab": "x.csv",
                                                                                     "lab2": {"path": "y", "data": "synthetic"}}}}}
        assert mw.external_entries(config, "a") == {"lab": {"path": "x.csv", "data": "real"},
                                                   "lab2": {"path": "y", "data": "synthetic"}}
        assert mw.layouts(config)["a"].metrics == ["res/a/run/metrics.json", "res/a/external/lab/metrics.json",
                                                   "res/a/external/lab2/metrics.json"]
        config["studies"]["a"]["external"] = {"r1": "x.csv"}
        with pytest.raises(ValueError, match="a run has this name too"):
            mw.external_entries(config, "a")
        config["studies"]["a"]["external"] = {"bad name": "x.csv"}
        with pytest.raises(ValueError, match="plain identifiers"):
            mw.external_entries(config, "a")
        with pytest.raises(ValueError, match="takes no results from outside"):
            mw.external_entries({"studies": {"b": {"external": {"x": "y"}}}}, "b")
    finally:
        mw._REGISTRY.clear()
        mw._REGISTRY.update(saved)
