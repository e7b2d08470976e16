"""`medrepro loes-card` end to end on constructed predictions CSVs in the reference lab's format."""

from __future__ import annotations

import argparse
import csv
import json
import re

import numpy as np
import pytest

from medrepro.cli import main as medrepro_main
from medrepro.studies.loes import cli as loes_cli
from medrepro.studies.loes.card import build_card, read_lab_predictions, render_card
from medrepro.studies.loes.metrics import evaluate_table, paired_comparison

HEADER = ["anonymized_subject_id", "anonymized_session_id", "scan", "loes-score", "Gd-enhanced", "training",
          "validation", "predicted_loes_score"]
PRAISE = ["excellent", "outstanding", "superb", "remarkable", "impressive", "exceptional", "clinical-grade",
          "clinically", "state-of-the-art", "strong", "robust", "great", "perfect", "accurate", "reliable",
          "significant", "grade", "best"]


def _rows(noise: float, seed: int, n_subj: int = 12, n_train: int = 4) -> list[list[str]]:
    """Two sessions per subject; the first ``n_train`` subjects are training rows (empty
    prediction); true scores fixed, predictions with noise ``noise``."""
    rng = np.random.default_rng(0)
    y = np.clip(np.round(rng.gamma(1.5, 3.0, (n_subj, 2)) * 2) / 2, 0, 34)
    noise_rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_subj):
        for k in range(2):
            train = s < n_train
            pred = "" if train else f"{y[s, k] + noise_rng.normal(0, noise):.3f}"
            rows.append([f"sub-{s:02d}", f"ses-{k:02d}", "mprage", f"{y[s, k]:g}", str(int(rng.random() < 0.3)),
                         str(int(train)), "0", pred])
    return rows


def _write(path, rows, header=HEADER):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture
def csvs(tmp_path):
    cur = _write(tmp_path / "current.csv", _rows(0.8, 1))
    prev_rows = _rows(3.0, 2)
    prev_rows[10][-1] = ""  # the previous model was not tested on one of the current model's scans
    prev = _write(tmp_path / "previous.csv", prev_rows)
    return cur, prev


def _run(args, capsys):
    rc = medrepro_main(args)  # the real command line: the study registers loes-card through its contract
    out, err = capsys.readouterr()
    return rc, out, err


def test_reader(csvs):
    table, info = read_lab_predictions(csvs[0])
    assert list(table.columns) == ["unit_id", "cluster", "y_true", "y_pred", "gd"]
    assert info["skipped_empty"] == 8 and info["n_scans"] == 16 and info["n_subjects"] == 8 and info["n_rows"] == 24
    assert table["unit_id"].iloc[0] == "sub-04/ses-00/mprage" and table["cluster"].iloc[0] == "sub-04"
    assert table.attrs["skipped_empty"] == 8


def test_card_end_to_end_without_previous(csvs, tmp_path, capsys):
    out_md, out_json = tmp_path / "out" / "card.md", tmp_path / "out" / "card.json"
    rc, out, err = _run(["loes-card", str(csvs[0]), "--output", str(out_md), "--json", str(out_json),
                         "--iterations", "200", "--seed", "3"], capsys)
    assert rc == 0, err
    assert out.count("\n") == 1 and out.startswith("16 scans of 8 subjects: standardized RMSE")
    card = json.loads(out_json.read_text())
    assert set(card) == {"schema", "metrics", "n_scans", "n_subjects", "skipped_empty", "previous", "comparison",
                         "bootstrap", "meta"}
    assert card["schema"] == "medrepro-loes-card-v1"
    assert card["previous"] is None and card["comparison"] is None
    assert card["bootstrap"] == {"iterations": 200, "seed": 3, "level": 0.95, "unit": "subject"}
    assert (card["n_scans"], card["n_subjects"], card["skipped_empty"]) == (16, 8, 8)
    table, _ = read_lab_predictions(csvs[0])
    expected = evaluate_table(table, iterations=200, seed=3)
    assert set(card["metrics"]) == set(expected)
    for name, v in expected.items():
        for k in ("estimate", "ci_low", "ci_high"):
            assert card["metrics"][name][k] == pytest.approx(v[k], rel=1e-12), (name, k)
    text = out_md.read_text()
    assert "No previous model was given" in text
    assert render_card(card) == text  # the JSON alone renders the same card
    s = expected["standardized_rmse"]
    assert f"| {s['estimate']:.3f} | [{s['ci_low']:.3f}, {s['ci_high']:.3f}] | 16 |" in text


def test_card_with_previous_and_figures(csvs, tmp_path, capsys):
    out_md, out_json = tmp_path / "cards" / "card.md", tmp_path / "cards" / "card.json"
    figs = tmp_path / "figs"
    rc, out, err = _run(["loes-card", str(csvs[0]), "--previous", str(csvs[1]), "--output", str(out_md),
                         "--json", str(out_json), "--iterations", "300", "--figures", str(figs)], capsys)
    assert rc == 0, err
    card = json.loads(out_json.read_text())
    cur, _ = read_lab_predictions(csvs[0])
    prev, _ = read_lab_predictions(csvs[1])
    want = paired_comparison(cur, prev, iterations=300, seed=0)
    c = card["comparison"]
    assert set(c) == {"standardized_rmse_diff", "pearson_r_diff", "verdict", "n_scans", "n_subjects"}
    assert (c["n_scans"], c["n_subjects"]) == (15, 8) and c["verdict"] == want["verdict"] == "better"
    assert c["standardized_rmse_diff"]["ci_high"] == pytest.approx(want["standardized_rmse_diff"]["ci_high"])
    assert card["previous"]["skipped_empty"] == 9 and card["previous"]["n_scans"] == 15
    assert card["meta"]["previous_predictions"] == str(csvs[1])
    text = out_md.read_text()
    assert "On the 15 scans of 8 subjects both models were tested on" in text and "Verdict: **better**" in text
    assert "the comparison uses only the 15 scans both were tested on" in text
    for name in ("predicted_vs_true.png", "residuals_by_range.png"):
        png = figs / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"](../figs/{name})" in text
    assert "vs previous: better" in out


def test_outputs_are_deterministic(csvs, tmp_path, capsys):
    outs = []
    for k in range(2):
        md, js, figs = tmp_path / f"{k}.md", tmp_path / f"{k}.json", tmp_path / f"f{k}"
        assert _run(["loes-card", str(csvs[0]), "--previous", str(csvs[1]), "--output", str(md), "--json", str(js),
                     "--iterations", "100", "--figures", str(figs)], capsys)[0] == 0
        outs.append((md.read_text().replace(f"f{k}/", "F/"), js.read_bytes(),
                     (figs / "predicted_vs_true.png").read_bytes(), (figs / "residuals_by_range.png").read_bytes()))
    assert outs[0] == outs[1]


def test_no_praise_words_and_the_sd_note(csvs):
    cur, _ = read_lab_predictions(csvs[0])
    prev, _ = read_lab_predictions(csvs[1])
    for previous in (None, prev, cur.copy()):
        text = render_card(build_card(cur, previous, iterations=100, seed=0, meta={"run": "model20", "epochs": 256}))
        words = set(re.findall(r"[a-z][a-z-]*", text.lower()))
        assert not words & set(PRAISE), words & set(PRAISE)
        assert text.isascii()  # no emoji
        assert "divides by the standard\n  deviation of the predictions instead" in text
        assert "sample standard deviation (ddof 1) of the TRUE" in text
        assert "bootstrap intervals\n  describe resampling variability only" in text
        assert "| run | model20 |" in text and "| epochs | 256 |" in text and "| scheduler | - |" in text
    same = render_card(build_card(cur, cur.copy(), iterations=100, seed=0))
    assert "these data do not distinguish the two models." in same and "Verdict: **not distinguishable**" in same


def _bad(tmp_path, mutate, header=HEADER):
    rows = _rows(1.0, 1)
    mutate(rows)
    return _write(tmp_path / "bad.csv", rows, header)


BAD = {
    "missing column": (lambda r: None, [h for h in HEADER if h != "loes-score"], "column 'loes-score'"),
    "missing prediction column": (lambda r: None, HEADER[:-1], "predicted_loes_score"),
    "non-numeric prediction": (lambda r: r[9].__setitem__(-1, "abc"), HEADER, "row 11: predicted_loes_score"),
    "non-numeric truth": (lambda r: r[9].__setitem__(3, "n/a"), HEADER, "row 11: loes-score"),
    "truth out of range": (lambda r: r[9].__setitem__(3, "40"), HEADER, "row 11: loes-score"),
    "bad gd": (lambda r: r[9].__setitem__(4, "yes"), HEADER, "row 11: Gd-enhanced"),
    "duplicate unit": (lambda r: r.__setitem__(12, list(r[11])), HEADER, "also on row 13"),
    "no predictions": (lambda r: [x.__setitem__(-1, "") for x in r], HEADER, "no row has a prediction"),
    "constant truth": (lambda r: [x.__setitem__(3, "2") for x in r], HEADER, "SD 0"),
    "empty id": (lambda r: r[9].__setitem__(0, ""), HEADER, "row 11: anonymized_subject_id"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_exits_2_naming_the_file(case, tmp_path, capsys):
    mutate, header, needle = BAD[case]
    bad = _bad(tmp_path, mutate, header)
    md, js = tmp_path / "card.md", tmp_path / "card.json"
    rc, out, err = _run(["loes-card", str(bad), "--output", str(md), "--json", str(js), "--iterations", "20"], capsys)
    assert rc == 2, (case, err)
    assert str(bad) in err and needle in err and err.count("\n") == 1 and "Traceback" not in err
    assert not md.exists() and not js.exists()
    # the same file as --previous is named too
    good = _write(tmp_path / "good.csv", _rows(1.0, 1))
    rc, _, err = _run(["loes-card", str(good), "--previous", str(bad), "--output", str(md), "--json", str(js),
                       "--iterations", "20"], capsys)
    assert rc == 2 and str(bad) in err and not md.exists()


def test_other_bad_invocations(csvs, tmp_path, capsys):
    cur, prev = csvs
    md, js = tmp_path / "card.md", tmp_path / "card.json"
    cases = [
        (["loes-card", str(tmp_path / "missing.csv"), "--output", str(md), "--json", str(js)], "missing.csv"),
        (["loes-card", str(cur), "--output", str(cur), "--json", str(js)], "current.csv"),
        (["loes-card", str(cur), "--previous", str(prev), "--output", str(md), "--json", str(prev)], "previous.csv"),
        (["loes-card", str(cur), "--output", str(md), "--json", str(md)], "card.md"),
        (["loes-card", str(cur), "--output", str(md), "--json", str(js), "--iterations", "0"], "--iterations"),
        (["loes-card", str(cur), "--output", str(md), "--json", str(js), "--seed", "-1"], "--seed"),
        (["loes-card", str(cur), "--output", str(md)], "--json"),  # argparse usage error
    ]
    for argv, needle in cases:
        rc, _, err = _run(argv, capsys)
        assert rc == 2 and needle in err, (argv, err)
        assert not md.exists() and not js.exists()
    assert cur.read_text().startswith("anonymized_subject_id")
    # a previous model tested on other scans only
    other = _write(tmp_path / "other.csv", [[f"x{r[0]}", *r[1:]] for r in _rows(1.0, 1)])
    rc, _, err = _run(["loes-card", str(cur), "--previous", str(other), "--output", str(md), "--json", str(js),
                       "--iterations", "20"], capsys)
    assert rc == 2 and "other.csv" in err and "no scan in common" in err and not md.exists()


def test_register_adds_the_subcommand():
    parser = argparse.ArgumentParser(prog="medrepro")
    sub = parser.add_subparsers(dest="command")
    loes_cli.register(sub)
    args = parser.parse_args(["loes-card", "p.csv", "--output", "c.md", "--json", "c.json"])
    assert args.iterations == 1000 and args.seed == 0 and args.previous is None and args.figures is None
    assert callable(args._run)


def test_comparison_sentences_follow_the_intervals(csvs):
    cur, _ = read_lab_predictions(csvs[0])
    card = build_card(cur, cur.copy(), iterations=50, seed=0)

    def sentence(s_ci, r_ci, word):
        card["comparison"].update({"verdict": word,
                                   "standardized_rmse_diff": {"estimate": sum(s_ci) / 2, "ci_low": s_ci[0], "ci_high": s_ci[1]},
                                   "pearson_r_diff": {"estimate": sum(r_ci) / 2, "ci_low": r_ci[0], "ci_high": r_ci[1]}})
        return next(line for line in render_card(card).splitlines() if line.startswith("On the 16 scans of 8 subjects"))

    assert sentence((-0.2, -0.1), (-0.1, 0.1), "better").endswith(
        "is +0.000 [-0.100, +0.100]: these data support a lower standardized RMSE for the current model on these "
        "scans; the other interval includes 0.")
    assert sentence((-0.1, 0.2), (-0.3, -0.1), "worse").endswith(
        "these data support a higher Pearson r for the previous model on these scans; the other interval includes 0.")
    assert sentence((-0.2, -0.1), (-0.3, -0.1), "not distinguishable").endswith(
        "the two intervals exclude 0 in opposite directions: these data do not distinguish the two models.")


def test_constant_predictions_give_undefined_correlations(csvs, tmp_path, capsys):
    rows = _rows(1.0, 1)
    for r in rows:
        if r[-1]:
            r[-1] = "3.5"
    flat = _write(tmp_path / "flat.csv", rows)
    md, js = tmp_path / "card.md", tmp_path / "card.json"
    rc, out, err = _run(["loes-card", str(flat), "--previous", str(csvs[0]), "--output", str(md), "--json", str(js),
                         "--iterations", "50"], capsys)
    assert rc == 0, err
    card = json.loads(js.read_text())  # strict JSON: undefined numbers are null, not NaN
    assert card["metrics"]["pearson_r"] == {"estimate": None, "ci_low": None, "ci_high": None, "n": 16}
    assert card["comparison"]["pearson_r_diff"]["estimate"] is None
    assert card["metrics"]["rmse"]["estimate"] == pytest.approx(
        np.sqrt(np.mean((read_lab_predictions(flat)[0]["y_true"] - 3.5) ** 2)))
    assert "| Pearson r | undefined | [undefined, undefined] | 16 |" in md.read_text()
    assert "Pearson r undefined [undefined, undefined]" in out
