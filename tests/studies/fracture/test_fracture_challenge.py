"""The challenge leaderboard from a folder of result files: which files count, which file is a
run's row, the table and CSV, the analysis lines, bad files, and the command line."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import medrepro.cli
from medrepro.errors import InputError
from medrepro.studies.fracture import cli as fracture_cli
from medrepro.studies.fracture.challenge import (COLUMNS, DEFAULT_EXCLUDE, build_challenge_table, collect,
                                                 read_result_file, render_markdown, write_csv)

TOP = "dg_aug_seeds/seed_2025"
REF = "nnunet_fold0_final_test_metrics"


def _write(root: Path, rel: str, obj) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj), encoding="utf-8")
    return path


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    _write(root, f"{TOP}/final_test_metrics.json",
           {"dice_pos": 0.3837, "iou_pos": 0.2901, "presence_roc_auc": 0.8866, "presence_ap": 0.7234,
            "precision_pos": 0.41, "recall_pos": 0.37})
    _write(root, f"{TOP}/epoch10_test_metrics.json", {"dice_pos": 0.35, "roc_auc": 0.99})  # lower Dice: not the row
    _write(root, "dg_aug_seeds/seed_2026/metrics.json",  # medrepro's own format: nested, with CIs
           {"schema": "medrepro-metrics-v1", "run": "x",
            "metrics": {"dice_pos": {"estimate": 0.30, "ci_low": 0.25, "ci_high": 0.35, "n": 40},
                        "roc_auc": {"estimate": 0.80, "ci_low": 0.7, "ci_high": 0.9, "n": 100},
                        "ap": None, "iou_pos": {"estimate": float("nan"), "ci_low": None, "ci_high": None}}})
    _write(root, f"{REF}.json", {"dice_pos": 0.1068, "auc": 0.6849, "average_precision": None, "iou_pos": 0.07})
    _write(root, "cls_only/metrics.json", {"roc_auc": 0.9, "ap": 0.8})  # no Dice_pos: ranked last
    _write(root, "tie/b_metrics.json", {"dice_pos": 0.2, "ap": 0.1})
    _write(root, "tie/a_metrics.json", {"dice_pos": 0.2, "ap": 0.2})
    # not comparable (default exclude list)
    _write(root, "presence_scan/metrics.json", {"dice_pos": 0.95})
    _write(root, "unet_regression_metrics.json", {"dice_pos": 0.96})
    _write(root, "runs/smoke_test/final_metrics.json", {"dice_pos": 0.97})
    # not result files
    _write(root, f"{TOP}/config.json", {"dice_pos": 0.99})
    _write(root, "notes.txt", "dice_pos 0.99")
    _write(root, "metrics.csv", "dice_pos\n0.99\n")
    return root


def test_rows_runs_and_choice(folder: Path):
    rows, info = collect(folder)
    assert [(r["rank"], r["run"]) for r in rows] == [
        (1, TOP), (2, "dg_aug_seeds/seed_2026"), (3, "tie"), (4, REF), (5, "cls_only")]
    by_run = {r["run"]: r for r in rows}
    assert by_run[TOP]["source"] == f"{TOP}/final_test_metrics.json" and by_run[TOP]["files"] == 2
    assert by_run["tie"]["source"] == "tie/a_metrics.json"  # equal Dice_pos: first by path
    assert by_run[REF]["source"] == f"{REF}.json"
    assert by_run[TOP]["metrics"]["roc_auc"] == 0.8866 and by_run[TOP]["metrics"]["ap"] == 0.7234  # aliases
    assert by_run[REF]["metrics"] == {"dice_pos": 0.1068, "iou_pos": 0.07, "roc_auc": 0.6849}  # null: not reported
    nested = by_run["dg_aug_seeds/seed_2026"]["metrics"]
    assert nested == {"dice_pos": {"estimate": 0.30, "ci_low": 0.25, "ci_high": 0.35},
                      "roc_auc": {"estimate": 0.80, "ci_low": 0.7, "ci_high": 0.9}}
    assert info["excluded"] == ["presence_scan/metrics.json", "runs/smoke_test/final_metrics.json",
                                "unet_regression_metrics.json"]
    assert len(info["found"]) == 10 and info["comparable"] == 7 and info["ignored"] == 3
    assert info["exclude"] == list(DEFAULT_EXCLUDE)


def test_markdown_table_and_analysis(folder: Path):
    rows, info = collect(folder)
    md = render_markdown(rows, info, reference=REF)
    assert ("| 1 | dg_aug_seeds/seed_2025 | 0.3837 | 0.2901 | 0.8866 | 0.7234 | 0.4100 | 0.3700 | "
            "`dg_aug_seeds/seed_2025/final_test_metrics.json` |") in md
    assert ("| 2 | dg_aug_seeds/seed_2026 | 0.3000 [0.2500, 0.3500] | - | 0.8000 [0.7000, 0.9000] | - | - | - | "
            "`dg_aug_seeds/seed_2026/metrics.json` |") in md
    assert "| 5 | cls_only | - | - | 0.9000 | 0.8000 | - | - | `cls_only/metrics.json` |" in md
    assert "10 found, 7 comparable, 3 left out" in md and "- `unet_regression_metrics.json`" in md
    assert "benchmark convention" in md
    assert "- Dice_pos: `dg_aug_seeds/seed_2025` (0.3837)" in md
    assert "- ROC-AUC: `cls_only` (0.9000)" in md
    assert "- AP: `cls_only` (0.8000)" in md
    # 0.3837 - 0.1068 = 0.2769; 0.2769 / 0.1068 = 259.27%
    assert ("- Dice_pos: 0.3837 vs 0.1068: +0.2769 absolute, +259.3% relative; "
            "no paired CI (the files carry no per-image values)") in md
    assert "- ROC-AUC: 0.8866 vs 0.6849: +0.2017 absolute, +29.4% relative" in md  # 0.2017 / 0.6849 = 29.45%
    assert f"- AP: not compared (`{REF}` did not report it)" in md
    assert "No reference run given" in render_markdown(rows, info)
    with pytest.raises(InputError, match="--reference"):
        render_markdown(rows, info, reference="nnunet")


def test_delta_with_cis_is_not_called_a_paired_ci(tmp_path: Path):
    root = tmp_path / "r"
    _write(root, "a/metrics.json", {"metrics": {"dice_pos": {"estimate": 0.4, "ci_low": 0.3, "ci_high": 0.5}}})
    _write(root, "b/metrics.json", {"metrics": {"dice_pos": {"estimate": 0.2, "ci_low": 0.1, "ci_high": 0.3}}})
    rows, info = collect(root)
    md = render_markdown(rows, info, reference="b")
    assert ("- Dice_pos: 0.4000 vs 0.2000: +0.2000 absolute, +100.0% relative; each file's 95% CI: "
            "[0.3000, 0.5000] vs [0.1000, 0.3000]; no paired CI (the files carry no per-image values)") in md
    assert "The top run by Dice_pos is the reference run `a`" in render_markdown(rows, info, reference="a")


def test_paired_hook_gives_a_paired_ci(tmp_path: Path):
    root = tmp_path / "r"
    _write(root, "a/metrics.json", {"dice_pos": 0.9})
    _write(root, "b/metrics.json", {"dice_pos": 0.1})
    t = np.array([0, 4, 3, 0, 5, 2])
    ids = [f"im{k}" for k in range(len(t))]
    perfect = pd.DataFrame({"image_id": ids, "tp": t, "fp": 0, "fn": 0, "p": t, "t": t})
    empty = pd.DataFrame({"image_id": ids, "tp": 0, "fp": 0, "fn": t, "p": 0, "t": t})
    rows, info = collect(root)
    md = render_markdown(rows, info, reference="b", paired={"a": perfect, "b": empty}, iterations=200, seed=0)
    # Dice_pos 1 vs (1e-6 / (t + 1e-6)) on each image with a fracture: the difference is 1 - O(1e-6)
    assert ("paired bootstrap 95% CI of the difference [1.0000, 1.0000] on the 6 images both runs were "
            "tested on (4 with a fracture; difference there +1.0000)") in md
    assert "no paired CI" not in md


def test_csv_columns_exactly(folder: Path, tmp_path: Path):
    rows, _ = collect(folder)
    out = tmp_path / "t.csv"
    write_csv(rows, out)
    with open(out, newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == list(COLUMNS) == ["rank", "run", "dice_pos", "iou_pos", "roc_auc", "ap", "precision_pos",
                                         "recall_pos", "source"]
    assert table[1] == ["1", TOP, "0.3837", "0.2901", "0.8866", "0.7234", "0.41", "0.37",
                        f"{TOP}/final_test_metrics.json"]
    assert table[2] == ["2", "dg_aug_seeds/seed_2026", "0.3", "-", "0.8", "-", "-", "-",
                        "dg_aug_seeds/seed_2026/metrics.json"]
    assert table[4] == ["4", REF, "0.1068", "0.07", "0.6849", "-", "-", "-", f"{REF}.json"]
    assert len(table) == 6


@pytest.mark.parametrize("content, field", [
    ("{not json", "JSON"),
    ({"dice_pos": 1.2}, "dice_pos"),
    ({"metrics": {"presence_ap": -0.1}}, "metrics.presence_ap"),
    ({"dice_pos": "0.3"}, "dice_pos"),
    ({"dice_pos": {"estimate": 0.3, "ci_low": 0.2, "ci_high": 1.5}}, "dice_pos.ci_high"),
    ([0.3], "JSON"),
])
def test_bad_file_names_the_file(tmp_path: Path, content, field):
    root = tmp_path / "r"
    _write(root, "good/metrics.json", {"dice_pos": 0.3})
    bad = _write(root, "bad/final_metrics.json", content)
    with pytest.raises(InputError) as e:
        collect(root)
    assert str(bad) in str(e.value) and f": {field}" in str(e.value)


def test_alias_conflict_and_read_result_file(tmp_path: Path):
    p = _write(tmp_path, "m_metrics.json", {"auc": 0.7, "metrics": {"roc_auc": 0.8}})
    with pytest.raises(InputError, match="differs"):
        read_result_file(p)
    p = _write(tmp_path, "n_metrics.json", {"auc": 0.7, "metrics": {"roc_auc": 0.7, "dice_pos": 0}})
    assert read_result_file(p) == {"dice_pos": 0.0, "roc_auc": 0.7}


def _main(monkeypatch, argv: list[str]) -> int:
    """medrepro.cli.main with this study's subcommand registered (the study's layout wires it)."""
    def build_parser() -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(prog="medrepro")
        sub = parser.add_subparsers(dest="command", metavar="COMMAND")
        sub.required = True
        parser.add_argument("--debug", action="store_true")
        fracture_cli.register(sub)
        return parser

    monkeypatch.setattr(medrepro.cli, "build_parser", build_parser)
    return medrepro.cli.main(argv)


def test_command_line(folder: Path, tmp_path: Path, monkeypatch, capsys):
    md, out_csv = tmp_path / "out" / "t.md", tmp_path / "out" / "t.csv"
    rc = _main(monkeypatch, ["challenge-leaderboard", str(folder), "--reference", REF, "--output", str(md),
                             "--csv", str(out_csv)])
    assert rc == 0, capsys.readouterr().err
    text = md.read_text()
    assert text == build_challenge_table(folder, REF)["markdown"]  # same bytes as the library call
    assert "+259.3% relative" in text and out_csv.read_text().startswith(",".join(COLUMNS) + "\n")
    assert "5 run(s) from 7 comparable result file(s) (3 left out)" in capsys.readouterr().out
    # --exclude replaces the default list
    rc = _main(monkeypatch, ["challenge-leaderboard", str(folder), "--output", str(md), "--exclude", "smoke"])
    assert rc == 0
    assert "| 1 | unet_regression_metrics |" in md.read_text() and "| 2 | presence_scan |" in md.read_text()
    rc = _main(monkeypatch, ["challenge-leaderboard", str(folder), "--output", str(md), "--exclude"])
    assert rc == 0 and "| 1 | runs/smoke_test |" in md.read_text() and "0 left out" in md.read_text()


def test_command_line_errors_exit_2(folder: Path, tmp_path: Path, monkeypatch, capsys):
    md = tmp_path / "t.md"
    assert _main(monkeypatch, ["challenge-leaderboard", str(folder), "--reference", "nnunet", "--output", str(md)]) == 2
    assert "--reference" in capsys.readouterr().err and not md.exists()
    bad = _write(folder, "broken/metrics.json", "{")
    assert _main(monkeypatch, ["challenge-leaderboard", str(folder), "--output", str(md)]) == 2
    assert str(bad) in capsys.readouterr().err and not md.exists()
    bad.unlink()
    assert _main(monkeypatch, ["challenge-leaderboard", str(tmp_path / "none"), "--output", str(md)]) == 2
    assert _main(monkeypatch, ["challenge-leaderboard", str(folder), "--output", str(md), "--csv", str(md)]) == 2
    # an output that is one of the result files read
    target = folder / REF
    assert _main(monkeypatch, ["challenge-leaderboard", str(folder), "--output", f"{target}.json"]) == 2
    assert json.loads(Path(f"{target}.json").read_text())["dice_pos"] == 0.1068
    empty = tmp_path / "empty"
    _write(empty, "smoke/metrics.json", {"dice_pos": 0.5})
    assert _main(monkeypatch, ["challenge-leaderboard", str(empty), "--output", str(md)]) == 2
    assert "no comparable" in capsys.readouterr().err
    assert not md.exists()
