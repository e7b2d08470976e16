"""`medrepro diff`: params and metrics that changed between two results folders."""

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from medrepro import diff
from medrepro.cli import EXIT_INPUT, EXIT_OK, main
from medrepro.errors import InputError

ITERATIONS, SEED = 200, 0
UNITS = [f"u{i:02d}" for i in range(30)]
TRUTH = [i % 3 for i in range(30)]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def accuracy(y_true, y_pred) -> float:
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def write_run(results: Path, run: str, lr: float, preds: list[int], units: list[str] = UNITS,
              seed: int = 0, raw: str = "raw-v1") -> None:
    """One toy run x seed: a prep job, a training job and an evaluation job with their records."""
    prep = results / "toy" / "prep" / "v1"
    prep.mkdir(parents=True, exist_ok=True)
    data_sha = sha(raw + "-prepared")
    (prep / "toy_prep.provenance.json").write_text(json.dumps({
        "rule": "toy_prep", "wildcards": {"variant": "v1"}, "params": {"variant": {"sigma": 8.0}},
        "inputs": [{"path": "/data/raw.bin", "sha256": sha(raw), "lineage_id": sha(raw)}],
        "outputs": [{"path": "results/toy/prep/v1/data.npz", "sha256": data_sha, "lineage_id": sha("prep" + raw)}],
        "lineage_id": sha("prep" + raw)}))
    d = results / "toy" / "runs" / run / f"seed{seed}"
    d.mkdir(parents=True, exist_ok=True)
    rel = f"results/toy/runs/{run}/seed{seed}"
    config = {"model": "net", "lr": lr, "optimizer": "sgd"}
    ckpt = sha(f"{run}{lr}{raw}{seed}")
    train_lineage = sha("train" + ckpt)
    wildcards = {"run": run, "seed": str(seed)}
    (d / "toy_train.provenance.json").write_text(json.dumps({
        "rule": "toy_train", "wildcards": wildcards, "params": {"run": config, "code": {"sha256": sha("code")}},
        "inputs": [{"path": "results/toy/prep/v1/data.npz", "sha256": data_sha, "lineage_id": sha("prep" + raw)}],
        "outputs": [{"path": f"{rel}/checkpoint.pt", "sha256": ckpt, "lineage_id": train_lineage}],
        "lineage_id": train_lineage}))
    table = "unit_id,cluster,y_true,y_pred\n" + "".join(
        f"{u},{u},{t},{p}\n" for u, t, p in zip(units, TRUTH, preds))
    (d / "predictions.csv").write_text(table)
    acc = accuracy(TRUTH[: len(preds)], preds)
    metrics = {"schema": "medrepro-metrics-v1", "study": "toy", "run": run, "seed": seed, "split": "s",
               "primary": "accuracy",
               "metrics": {"accuracy": {"estimate": acc, "ci_low": acc - 0.1, "ci_high": acc + 0.1, "n": len(preds)},
                           "extra_score": {"estimate": 1.0, "ci_low": 1.0, "ci_high": 1.0, "n": len(preds)}},
               "units": "predictions.csv", "selection": {"policy": "val", "test_guided": False},
               "bootstrap": {"iterations": ITERATIONS, "seed": SEED, "level": 0.95, "cluster": "unit"}}
    (d / "metrics.json").write_text(json.dumps(metrics))
    eval_lineage = sha("eval" + train_lineage)
    (d / "toy_evaluate.provenance.json").write_text(json.dumps({
        "rule": "toy_evaluate", "wildcards": wildcards, "params": {"run": config, "code": {"sha256": sha("code")}},
        "inputs": [{"path": f"{rel}/checkpoint.pt", "sha256": ckpt, "lineage_id": train_lineage}],
        "outputs": [{"path": f"{rel}/metrics.json", "sha256": sha(json.dumps(metrics)), "lineage_id": eval_lineage},
                    {"path": f"{rel}/predictions.csv", "sha256": sha(table), "lineage_id": eval_lineage}],
        "lineage_id": eval_lineage}))


WRONG_HALF = [t if i % 2 else (t + 1) % 3 for i, t in enumerate(TRUTH)]  # 15 of 30 right
ONE_MORE = [t if (i % 2 or i == 0) else (t + 1) % 3 for i, t in enumerate(TRUTH)]  # 16 of 30 right


@pytest.fixture
def pair(tmp_path):
    a, b = tmp_path / "a" / "results", tmp_path / "b" / "results"
    for root, lr, preds in ((a, 0.1, WRONG_HALF), (b, 0.01, TRUTH)):
        write_run(root, "r1", lr, preds)
        write_run(root, "r2", 0.1, WRONG_HALF)
    return a, b


def run_of(report: dict, run: str) -> dict:
    return next(r for r in report["runs"] if r["run"] == run)


def metric_of(entry: dict, name: str) -> dict:
    return next(m for m in entry["metrics"] if m["name"] == name)


def test_a_changed_learning_rate_is_reported_for_that_run_only(pair):
    report = diff.diff_results(str(pair[0]), str(pair[1]))
    r1, r2 = run_of(report, "r1"), run_of(report, "r2")
    assert r1["params"] == [{"key": "run.lr", "change": "changed", "a": 0.1, "b": 0.01,
                             "records": ["toy_evaluate[run=r1,seed=0]", "toy_train[run=r1,seed=0]"]}]
    assert r1["upstream_params"] == []
    assert r2["params"] == [] and r2["records"] == [] and r2["summary"] == "records identical"
    assert {d["record"] for d in r1["records"]} == {"toy_evaluate[run=r1,seed=0]", "toy_train[run=r1,seed=0]"}
    assert report["counts"] == {"in both": 2, "only in A": 0, "only in B": 0, "changed_params": 1, "changed_metrics": 1}


def test_the_delta_ci_equals_an_independent_paired_bootstrap(pair):
    m = metric_of(run_of(diff.diff_results(str(pair[0]), str(pair[1])), "r1"), "accuracy")
    assert m["delta"] == pytest.approx(1.0 - 0.5)
    # by hand: clusters are the units in sorted order, one draw of (B, K) from default_rng(seed)
    order = np.argsort(UNITS)
    right_a = (np.asarray(WRONG_HALF) == np.asarray(TRUTH))[order].astype(float)
    right_b = np.ones(len(UNITS))
    idx = np.random.default_rng(SEED).integers(0, len(UNITS), size=(ITERATIONS, len(UNITS)))
    lo, hi = np.percentile(right_b[idx].mean(axis=1) - right_a[idx].mean(axis=1), [2.5, 97.5])
    assert (m["ci_low"], m["ci_high"]) == (pytest.approx(lo), pytest.approx(hi))
    assert m["verdict"] == "changed" and m["n_units"] == 30 and m["primary"]
    assert m["a"]["estimate"] == 0.5 and m["b"]["estimate"] == 1.0


def test_verdict_not_distinguishable_when_the_ci_holds_zero(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_run(a, "r1", 0.1, WRONG_HALF)
    write_run(b, "r1", 0.1, ONE_MORE)
    m = metric_of(run_of(diff.diff_results(str(a), str(b)), "r1"), "accuracy")
    assert m["delta"] == pytest.approx(1 / 30)
    assert m["ci_low"] <= 0.0 <= m["ci_high"]
    assert m["verdict"] == "not distinguishable"


def test_a_metric_not_computable_from_units_has_no_ci(pair):
    m = metric_of(run_of(diff.diff_results(str(pair[0]), str(pair[1])), "r1"), "extra_score")
    assert m["verdict"] == "not paired" and m["ci_low"] is None and "not computable" in m["reason"]
    assert m["delta"] == 0.0


def test_runs_on_one_side_only_are_listed(pair):
    write_run(pair[0], "only_a", 0.1, TRUTH)
    write_run(pair[1], "only_b", 0.1, TRUTH)
    report = diff.diff_results(str(pair[0]), str(pair[1]))
    assert run_of(report, "only_a")["status"] == "only in A"
    assert run_of(report, "only_b")["status"] == "only in B"
    assert run_of(report, "only_a")["metrics"] == []
    md = diff.to_markdown(report)
    assert "| toy | only_a | 0 | only in A |" in md and "| toy | only_b | 0 | only in B |" in md


def test_other_test_units_are_not_paired(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_run(a, "r1", 0.1, WRONG_HALF)
    write_run(b, "r1", 0.1, TRUTH, units=[f"v{i:02d}" for i in range(30)])
    m = metric_of(run_of(diff.diff_results(str(a), str(b)), "r1"), "accuracy")
    assert m["verdict"] == "not paired" and m["ci_low"] is None and m["ci_high"] is None
    assert m["reason"] == "other test units (30 only in A, 30 only in B, 0 shared)"
    assert m["delta"] == pytest.approx(0.5)


def test_a_missing_per_unit_table_is_not_paired(pair):
    (pair[1] / "toy" / "runs" / "r1" / "seed0" / "predictions.csv").unlink()
    m = metric_of(run_of(diff.diff_results(str(pair[0]), str(pair[1])), "r1"), "accuracy")
    assert m["verdict"] == "not paired" and m["reason"] == "no per-unit table in B"


def test_same_params_other_data_is_said(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_run(a, "r1", 0.1, WRONG_HALF)
    write_run(b, "r1", 0.1, WRONG_HALF, raw="raw-v2")
    r1 = run_of(diff.diff_results(str(a), str(b)), "r1")
    assert r1["params"] == [] and r1["upstream_params"] == []
    assert r1["summary"] == "same params and code, different data"
    prep = next(d for d in r1["records"] if d["record"] == "toy_prep[variant=v1]")
    assert prep["scope"] == "upstream" and prep["inputs_changed"] == ["/data/raw.bin"]
    assert "same params and code, different inputs" in prep["causes"]
    assert any("outside the results folder differs: /data/raw.bin" in c for c in prep["causes"])


def test_upstream_params_are_reported_with_their_job(pair):
    prov = pair[1] / "toy" / "prep" / "v1" / "toy_prep.provenance.json"
    rec = json.loads(prov.read_text())
    rec["params"]["variant"]["sigma"] = 4.0
    rec["lineage_id"] = sha("other")
    prov.write_text(json.dumps(rec))
    r2 = run_of(diff.diff_results(str(pair[0]), str(pair[1])), "r2")
    assert r2["params"] == []
    assert r2["upstream_params"] == [{"key": "variant.sigma", "change": "changed", "a": 8.0, "b": 4.0,
                                      "record": "toy_prep[variant=v1]"}]


def test_diff_params_added_removed_changed():
    out = diff.diff_params({"a": {"x": 1, "y": [1, 2]}, "gone": 1, "code": {"sha256": "1"}},
                           {"a": {"x": 2, "y": [1, 2]}, "new": {"z": None}, "code": {"sha256": "2"}})
    assert out == [{"key": "a.x", "change": "changed", "a": 1, "b": 2},
                   {"key": "gone", "change": "removed", "a": 1, "b": None},
                   {"key": "new.z", "change": "added", "a": None, "b": None}]


def test_json_and_markdown_outputs(pair, tmp_path, capsys):
    j, md = tmp_path / "out" / "diff.json", tmp_path / "out" / "diff.md"
    assert main(["diff", str(pair[0]), str(pair[1]), "--json", str(j), "--md", str(md)]) == EXIT_OK
    report = json.loads(j.read_text())
    assert report["schema"] == "medrepro-diff-v1" and report["level"] == 0.95
    assert report["a"] == {"spec": str(pair[0]), "path": str(pair[0]), "revision": None}
    assert sorted(run_of(report, "r1")) == ["bootstrap", "metrics", "params", "records", "run", "seed", "status",
                                            "study", "summary", "upstream_params"]
    text = md.read_text()
    assert capsys.readouterr().out == text
    assert "| toy | r1 | 0 | run.lr | changed | 0.1 | 0.01 |" in text
    m = metric_of(run_of(report, "r1"), "accuracy")
    assert (f"| toy | r1 | 0 | accuracy (primary) | 0.5000 [0.4000, 0.6000] | 1.0000 [0.9000, 1.1000] | "
            f"+0.5000 [{m['ci_low']:+.4f}, {m['ci_high']:+.4f}] | changed |") in text
    assert "| toy | r2 | 0 | run.lr" not in text


# --- git revisions -----------------------------------------------------------------------------
def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "commit.gpgsign=false",
                           *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path, monkeypatch):
    root = tmp_path / "lab"
    root.mkdir()
    git(root, "init", "-q")
    write_run(root / "results", "r1", 0.1, WRONG_HALF)
    write_run(root / "results", "r2", 0.1, WRONG_HALF)
    (root / "results" / "toy" / "runs" / "r1" / "seed0" / "checkpoint.pt").write_text("weights, not committed")
    git(root, "add", "results/")
    git(root, "rm", "-q", "--cached", "results/toy/runs/r1/seed0/checkpoint.pt")
    git(root, "commit", "-q", "-m", "records")
    monkeypatch.chdir(root)
    return root


def test_a_git_revision_of_the_same_folder(repo, monkeypatch):
    shutil.rmtree(repo / "results" / "toy" / "runs" / "r1")
    write_run(repo / "results", "r1", 0.01, TRUTH)
    head = git(repo, "rev-parse", "HEAD").strip()
    report = diff.diff_results("results@HEAD", "results")
    assert report["a"] == {"spec": "results@HEAD", "path": "results", "revision": head}
    r1 = run_of(report, "r1")
    assert [(p["key"], p["a"], p["b"]) for p in r1["params"]] == [("run.lr", 0.1, 0.01)]
    assert metric_of(r1, "accuracy")["verdict"] == "changed"
    assert run_of(report, "r2")["params"] == []
    assert f"`results` at git revision `{head[:12]}`" in diff.to_markdown(report)
    # from a subfolder too: the path is taken relative to the working directory
    (repo / "sub").mkdir()
    monkeypatch.chdir(repo / "sub")
    assert diff.diff_results("../results@HEAD", "../results")["a"]["revision"] == head


def test_a_git_revision_without_the_records_is_a_clear_error(repo):
    git(repo, "rm", "-q", "-r", "--cached", "results")
    git(repo, "commit", "-q", "-m", "untrack")
    with pytest.raises(InputError, match=r"HEAD:results: provenance: no \*\.provenance\.json committed"):
        diff.diff_results("results@HEAD", "results")
    with pytest.raises(InputError, match="'nosuchrev' is not a commit"):
        diff.diff_results("results@nosuchrev", "results")
    assert diff.diff_results("results@HEAD~1", "results")["runs"][0]["status"] == "in both"


def test_a_bad_file_at_a_revision_is_named_by_revision_and_path(repo):
    path = repo / "results" / "toy" / "runs" / "r2" / "seed0" / "metrics.json"
    m = json.loads(path.read_text())
    del m["primary"]
    path.write_text(json.dumps(m))
    git(repo, "commit", "-q", "-am", "broken")
    head = git(repo, "rev-parse", "HEAD").strip()
    with pytest.raises(InputError) as e:
        diff.diff_results("results@HEAD", "results")
    assert e.value.path == f"{head[:12]}:results/toy/runs/r2/seed0/metrics.json"


# --- bad input ----------------------------------------------------------------------------------
def test_bad_input_names_the_file_and_field(pair, capsys):
    mpath = pair[1] / "toy" / "runs" / "r1" / "seed0" / "metrics.json"
    m = json.loads(mpath.read_text())
    del m["primary"]
    mpath.write_text(json.dumps(m))
    with pytest.raises(InputError) as e:
        diff.diff_results(str(pair[0]), str(pair[1]))
    assert e.value.path == str(mpath) and "primary" in str(e.value)

    prov = pair[0] / "toy" / "runs" / "r2" / "seed0" / "toy_train.provenance.json"
    rec = json.loads(prov.read_text())
    del rec["rule"]
    prov.write_text(json.dumps(rec))
    with pytest.raises(InputError) as e:
        diff.diff_results(str(pair[0]), str(pair[0]))
    assert e.value.path == str(prov) and e.value.field == "rule"

    prov.write_text("{not json")
    assert main(["diff", str(pair[0]), str(pair[0])]) == EXIT_INPUT
    err = capsys.readouterr().err
    assert err.startswith("medrepro diff: error: ") and str(prov) in err

    assert main(["diff", str(pair[0] / "nope"), str(pair[1])]) == EXIT_INPUT
    assert "nope: results: not a folder" in capsys.readouterr().err


def test_an_output_over_an_input_is_refused(pair, capsys):
    assert main(["diff", str(pair[0]), str(pair[1]), "--json", str(pair[1])]) == EXIT_INPUT
    assert "--json" in capsys.readouterr().err


def test_the_json_form_is_strict_json():
    text = diff.to_json({"x": float("nan"), "y": [float("inf"), 1.5], "z": {"w": None}})
    assert json.loads(text) == {"x": None, "y": [None, 1.5], "z": {"w": None}}
