"""The `medrepro` command line: exit codes and one-line messages."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from medrepro.cli import main
from medrepro.studies.counterfactual.checksums import write_manifest
from medrepro.studies.counterfactual.synthetic import generate_submissions

EDITS = ["young_female", "young_male", "elderly_female", "elderly_male"]


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.txt").write_text("x")
    (tmp_path / "b" / "y.txt").write_text("y")
    return tmp_path / "b", write_manifest(tmp_path / "b")


@pytest.fixture
def scored_inputs(tmp_path):
    qc = pd.DataFrame({"source_id": [f"S{i}" for i in range(30) for _ in EDITS]})
    qc["edit"] = EDITS * 30
    qc["pair_id"] = qc["source_id"] + "__" + qc["edit"]
    qc["qc_pass"] = True
    qc.loc[3, "qc_pass"] = False
    qc.to_csv(tmp_path / "qc.csv", index=False)
    (sub,) = generate_submissions(tmp_path / "subs", qc[qc["qc_pass"]],
                                  models={"cli-model": {"rec_change_rate": 0.3, "label_flip_rate": 0.2,
                                                        "refusal_full_rate": 0.0, "refusal_partial_rate": 0.0}})
    return tmp_path / "qc.csv", sub


def test_verify_ok(bundle, capsys):
    _, m = bundle
    assert main(["verify-checksums", str(m)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK 2 files") and out.count("\n") == 1


def test_verify_mismatch_exit_1_one_line(bundle, capsys):
    root, m = bundle
    (root / "y.txt").write_text("tampered")
    assert main(["verify-checksums", str(m)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "y.txt" in err and "expected" in err and "actual" in err
    assert "Traceback" not in err


def test_verify_bad_manifest_exit_2(tmp_path, capsys):
    m = tmp_path / "SHA256SUMS.txt"
    m.write_text("not a manifest line\n")
    assert main(["verify-checksums", str(m)]) == 2
    err = capsys.readouterr().err
    assert "line 1" in err and err.count("\n") == 1
    assert main(["verify-checksums", str(tmp_path / "missing.txt")]) == 2


def test_score_ok(scored_inputs, tmp_path, capsys):
    qc, sub = scored_inputs
    out = tmp_path / "res" / "score.json"
    pp = tmp_path / "res" / "per_pair.csv"
    rc = main(["score", "--submission", str(sub), "--pairs", str(qc), "--output", str(out),
               "--iterations", "200", "--seed", "7", "--per-pair-csv", str(pp)])
    assert rc == 0
    line = capsys.readouterr().out
    assert line.count("\n") == 1 and line.startswith("cli-model: 119 usable pairs, recommendation change")
    s = json.loads(out.read_text())
    assert s["endpoints"]["recommendation_change"]["seed"] == 7
    assert s["endpoints"]["recommendation_change"]["iterations"] == 200
    assert len(pd.read_csv(pp)) == 119


def test_score_bad_input_exit_2(scored_inputs, tmp_path, capsys):
    qc, sub = scored_inputs
    obj = json.loads(sub.read_text())
    obj["results"][1]["source_report"] = ""
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(obj))
    rc = main(["score", "--submission", str(bad), "--pairs", str(qc), "--output", str(tmp_path / "o.json")])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "results[1]" in err and "source_report" in err and str(bad) in err
    assert not (tmp_path / "o.json").exists()


def test_score_partial_needs_flag(scored_inputs, tmp_path, capsys):
    qc, sub = scored_inputs
    obj = json.loads(sub.read_text())
    obj["results"] = obj["results"][:-5]
    part = tmp_path / "part.json"
    part.write_text(json.dumps(obj))
    args = ["score", "--submission", str(part), "--pairs", str(qc), "--output", str(tmp_path / "o.json"),
            "--iterations", "100"]
    assert main(args) == 2
    assert "missing" in capsys.readouterr().err
    assert main(args + ["--allow-partial"]) == 0
    assert "PARTIAL" in capsys.readouterr().out
    assert main(args + ["--scope", "nonexistent"]) == 2


def test_usage_errors(capsys):
    assert main([]) == 2
    assert main(["score", "--submission", "x"]) == 2
    assert main(["--help"]) == 0
    capsys.readouterr()


def test_console_entry_point_no_traceback(tmp_path):
    m = tmp_path / "SHA256SUMS.txt"
    m.write_text("")
    r = subprocess.run([sys.executable, "-c", "import sys; from medrepro.cli import main; sys.exit(main())",
                        "verify-checksums", str(m)], capture_output=True, text=True)
    assert r.returncode == 2 and "empty manifest" in r.stderr and "Traceback" not in r.stderr


def test_score_scope_must_agree_with_the_submission(scored_inputs, tmp_path, capsys):
    qc, sub = scored_inputs
    base = ["score", "--submission", str(sub), "--pairs", str(qc), "--output", str(tmp_path / "o.json"),
            "--iterations", "50"]
    assert main(base + ["--scope", "qc-passed"]) == 0
    capsys.readouterr()
    assert main(base + ["--scope", "toy"]) == 2  # the released CLI would override; here it is an error
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "declares 'qc-passed'" in err and "'toy'" in err


@pytest.mark.parametrize("which", ["submission", "pairs", "per-pair"])
def test_an_output_equal_to_an_input_is_refused(scored_inputs, tmp_path, capsys, which):
    qc, sub = scored_inputs
    before = (sub.read_bytes(), qc.read_bytes())
    out = {"submission": sub, "pairs": qc, "per-pair": tmp_path / "pp.csv"}[which]
    args = ["score", "--submission", str(sub), "--pairs", str(qc), "--output", str(out), "--iterations", "50"]
    if which == "per-pair":
        args += ["--per-pair-csv", str(out)]
    assert main(args) == 2
    assert "same file as" in capsys.readouterr().err
    assert (sub.read_bytes(), qc.read_bytes()) == before


def test_outputs_are_written_together_or_not_at_all(scored_inputs, tmp_path, capsys):
    qc, sub = scored_inputs
    out = tmp_path / "score.json"
    (tmp_path / "pp.csv").mkdir()  # the per-pair CSV cannot be written there
    rc = main(["score", "--submission", str(sub), "--pairs", str(qc), "--output", str(out), "--iterations", "50",
               "--per-pair-csv", str(tmp_path / "pp.csv")])
    assert rc == 2 and not out.exists()
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_negative_seed_is_bad_input(scored_inputs, tmp_path, capsys):
    qc, sub = scored_inputs
    rc = main(["score", "--submission", str(sub), "--pairs", str(qc), "--output", str(tmp_path / "o.json"),
               "--seed", "-1"])
    assert rc == 2 and "--seed" in capsys.readouterr().err
