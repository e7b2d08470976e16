"""Per-run report figures (medrepro.report.figures): learning curve from a training log, confusion
matrix and predicted-vs-true scatter from a per-unit table; byte-stable PNGs, clear errors."""

import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from medrepro import workflow as mw
from medrepro.errors import InputError
from medrepro.report import figures

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def write_log(path, lines):
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def synthetic_log(n=60, eval_every=10, resume_at=30):
    lines = []
    for step in range(1, n + 1):
        entry = {"step": step, "loss": 2.0 * 0.97 ** step + 0.05 * (step % 3), "ce": 1.0, "lr": 0.1}
        if step % eval_every == 0:
            entry["val"] = {"accuracy": step / n, "macro_f1": 0.5 * step / n}
        lines.append(entry)
        if step == resume_at:
            lines.append({"event": "resumed", "step": step})
    return lines


def write_metrics(path, step=40, policy="val", classes=None):
    m = {"schema": "medrepro-metrics-v1", "study": "demo", "run": "r1", "seed": 3, "primary": "macro_f1",
         "metrics": {"macro_f1": {"estimate": 0.5, "ci_low": 0.4, "ci_high": 0.6, "n": 30}},
         "units": "predictions.csv", "selection": {"policy": policy, "test_guided": False, "step": step},
         "bootstrap": {"iterations": 10, "seed": 0, "level": 0.95, "cluster": "unit"}}
    if classes is not None:
        m["details"] = {"classes": classes}
    path.write_text(json.dumps(m))
    return path


def write_units(path, y_true, y_pred, truth="y_true", pred="y_pred"):
    pd.DataFrame({"unit_id": [f"u{i:03d}" for i in range(len(y_true))], "cluster": range(len(y_true)),
                  truth: y_true, pred: y_pred}).to_csv(path, index=False)
    return path


def curve(tmp_path, log, name="curve.png", metric="macro_f1"):
    out = tmp_path / name
    figures.learning_curve(log, write_metrics(tmp_path / "metrics.json"), out, metric=metric, run="r1", seed=3)
    return out


def test_learning_curve_is_written_and_byte_stable(tmp_path):
    log = write_log(tmp_path / "train_log.jsonl", synthetic_log())
    a, b = curve(tmp_path, log, "a.png"), curve(tmp_path, log, "b.png")
    data = a.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 5_000
    assert data == b.read_bytes()
    assert b"matplotlib" not in data.lower()  # no software version in the PNG's text chunks
    assert not list(tmp_path.glob(".*.tmp"))


def test_train_log_is_read_with_evaluations_and_resumes(tmp_path):
    log = write_log(tmp_path / "train_log.jsonl", synthetic_log())
    tl = figures.read_train_log(log)
    assert tl.steps == list(range(1, 61)) and len(tl.loss) == 60
    assert [s for s, _ in tl.evals["val"]] == [10, 20, 30, 40, 50, 60]
    assert tl.resumed == [30]


def test_smoothing_is_a_trailing_mean():
    np.testing.assert_allclose(figures.smoothed([1.0, 3.0, 5.0, 7.0], 2), [1.0, 2.0, 4.0, 6.0])


def test_a_missing_log_names_the_file(tmp_path):
    with pytest.raises(InputError, match="nowhere.jsonl"):
        figures.read_train_log(tmp_path / "nowhere.jsonl")


def test_a_line_that_is_not_json_names_file_and_line(tmp_path):
    lines = synthetic_log(5)
    lines.insert(2, '{"step": 3, "loss": ')
    log = write_log(tmp_path / "train_log.jsonl", lines)
    with pytest.raises(InputError, match=r"train_log\.jsonl: line 3: not JSON") as err:
        figures.read_train_log(log)
    assert err.value.path == str(log)


def test_a_log_without_loss_entries_is_refused(tmp_path):
    log = write_log(tmp_path / "train_log.jsonl", [{"event": "resumed", "step": 0}])
    with pytest.raises(InputError, match=r"train_log\.jsonl: loss: no line has a loss"):
        figures.read_train_log(log)


def test_bad_entries_name_the_line_and_field(tmp_path):
    log = write_log(tmp_path / "a.jsonl", [{"step": 1, "loss": "high"}])
    with pytest.raises(InputError, match=r"a\.jsonl: line 1: loss"):
        figures.read_train_log(log)
    log = write_log(tmp_path / "b.jsonl", [{"step": 1, "loss": 1.0}, [1, 2]])
    with pytest.raises(InputError, match=r"b\.jsonl: line 2: a JSON list"):
        figures.read_train_log(log)
    log = write_log(tmp_path / "c.jsonl", [{"step": 1, "loss": 1.0, "val": {"accuracy": 0.5}}])
    with pytest.raises(InputError, match=r"c\.jsonl: step 1: val\.macro_f1"):
        curve(tmp_path, log)


def test_confusion_counts_match_an_independent_count(tmp_path):
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 3, 200), rng.integers(0, 3, 200)
    units = write_units(tmp_path / "predictions.csv", y_true, y_pred)
    metrics = write_metrics(tmp_path / "metrics.json", classes=["a", "b", "c"])
    counts = figures.confusion_figure(units, metrics, tmp_path / "cm.png", truth="y_true", pred="y_pred", classes=[],
                                      run="r1", seed=3)
    pairs = Counter(zip(y_true.tolist(), y_pred.tolist()))
    assert counts.tolist() == [[pairs[(i, j)] for j in range(3)] for i in range(3)]
    assert counts.sum() == 200
    first = (tmp_path / "cm.png").read_bytes()
    assert first.startswith(PNG_SIGNATURE)
    figures.confusion_figure(units, metrics, tmp_path / "cm.png", truth="y_true", pred="y_pred", classes=[],
                             run="r1", seed=3)
    assert (tmp_path / "cm.png").read_bytes() == first


def test_confusion_with_declared_classes_and_other_columns(tmp_path):
    units = write_units(tmp_path / "per_unit.csv", [0, 0, 1, 1, 1], [0, 1, 1, 1, 0], truth="label", pred="called")
    metrics = write_metrics(tmp_path / "metrics.json")  # no details.classes: the declared names are used
    counts = figures.confusion_figure(units, metrics, tmp_path / "cm.png", truth="label", pred="called",
                                      classes=["absent", "present"], run="r1", seed=3, what="call at threshold")
    assert counts.tolist() == [[1, 1], [1, 2]]
    # a class never predicted or never true still gets its row and column
    units = write_units(tmp_path / "one.csv", [1, 1], [1, 1])
    counts = figures.confusion_counts(units, truth="y_true", pred="y_pred", n_classes=3)
    assert counts.tolist() == [[0, 0, 0], [0, 2, 0], [0, 0, 0]]


def test_confusion_refuses_bad_tables(tmp_path):
    metrics = write_metrics(tmp_path / "metrics.json")
    units = write_units(tmp_path / "u.csv", [0, 1], [0, 1])
    with pytest.raises(InputError, match=r"metrics\.json: details\.classes"):
        figures.confusion_figure(units, metrics, tmp_path / "cm.png", truth="y_true", pred="y_pred", classes=[],
                                 run="r1", seed=3)
    with pytest.raises(InputError, match=r"u\.csv: label: no such column"):
        figures.confusion_counts(units, truth="label", pred="y_pred", n_classes=2)
    bad = write_units(tmp_path / "bad.csv", [0, 5], [0, 1])
    with pytest.raises(InputError, match=r"bad\.csv: row 2: y_true"):
        figures.confusion_counts(bad, truth="y_true", pred="y_pred", n_classes=2)
    with pytest.raises(InputError, match=r"absent\.csv: units: no such file"):
        figures.confusion_counts(tmp_path / "absent.csv", truth="y_true", pred="y_pred", n_classes=2)
    assert not (tmp_path / "cm.png").exists()


def test_scatter_of_predicted_against_true(tmp_path):
    units = write_units(tmp_path / "predictions.csv", [0.0, 2.5, 7.0, 11.0], [1.0, 2.0, 8.5, 9.0])
    metrics = write_metrics(tmp_path / "metrics.json")
    out = tmp_path / "scatter.png"
    figures.scatter_figure(units, metrics, out, truth="y_true", pred="y_pred", run="r1", seed=3, what="score")
    assert out.read_bytes().startswith(PNG_SIGNATURE)


def test_a_layout_declares_runs_and_gets_their_figures_as_targets(tmp_path):
    """The shared plumbing: a study's declared runs -> figure paths in its targets -> one call
    of write_study_figures draws them all."""
    run_dir = tmp_path / "res" / "demo" / "runs" / "r1" / "seed3"
    run_dir.mkdir(parents=True)
    write_log(run_dir / "train_log.jsonl", synthetic_log())
    write_metrics(run_dir / "metrics.json", classes=["a", "b"])
    write_units(run_dir / "predictions.csv", [0, 1, 1], [0, 1, 0])
    plot = mw.PredictionPlot("confusion")
    runs = [mw.TrainingRun("r1", 3, log=str(run_dir / "train_log.jsonl"), metrics=str(run_dir / "metrics.json"),
                           units=str(run_dir / "predictions.csv"), test=plot),
            mw.TrainingRun("r2", 0, log=str(run_dir / "train_log.jsonl"), metrics=str(run_dir / "metrics.json"))]
    config = {"results": str(tmp_path / "res"), "studies": {"demo": {}}}
    saved = mw._REGISTRY.copy()
    try:
        mw._REGISTRY.clear()
        mw.register(mw.Study("demo", {"primary": "macro_f1"},
                             lambda cfg, res: mw.Layout([f"{res}/demo/x.json"], targets=["t"], training=runs)))
        lay = mw.layouts(config)["demo"]
    finally:
        mw._REGISTRY.clear()
        mw._REGISTRY.update(saved)
    figs = mw.training_figures(config, "demo", lay.training)
    base = tmp_path / "res" / "demo" / "figures" / "training"
    assert lay.targets == ["t", str(base / "r1.seed3.learning_curve.png"), str(base / "r1.seed3.confusion.png"),
                           str(base / "r2.seed0.learning_curve.png")]
    assert figs[1]["test"] is None and figs[1]["test_png"] is None
    figures.write_study_figures(json.loads(json.dumps(figs)), metric="macro_f1")
    assert sorted(p.name for p in base.iterdir()) == ["r1.seed3.confusion.png", "r1.seed3.learning_curve.png",
                                                      "r2.seed0.learning_curve.png"]
    with pytest.raises(ValueError, match="kind"):
        mw.PredictionPlot("histogram")
