"""Ranking, paired-bootstrap ties and claim verdicts on hand-made per-unit tables."""

import numpy as np
import pandas as pd

from medrepro.report.claims import best_match, verdict
from medrepro.report.summary import rank_study

DESC = {"primary": "macro_f1", "higher_is_better": True, "columns": ["accuracy", "macro_f1"]}


def _run(tmp_path, name, correct_share, seed, n=150):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    pred = np.where(rng.random(n) < correct_share, y, (y + 1) % 3)
    ids = [f"{i:05d}" for i in range(n)]
    path = tmp_path / f"{name}_{seed}.csv"
    pd.DataFrame({"unit_id": ids, "cluster": ids, "y_true": y, "y_pred": pred}).to_csv(path, index=False)
    return {"run": name, "seed": seed, "split": "112", "data": "synthetic", "selection": "val",
            "test_guided": False, "macro_f1": 0.0, "lineage_id": "ab" * 32, "provenance": None,
            "units_path": str(path)}


def test_clear_gap_is_not_a_tie_and_small_gap_is(tmp_path):
    rows = [_run(tmp_path, "good", 0.9, s) for s in (0, 1)]
    rows += [_run(tmp_path, "bad", 0.5, s) for s in (0, 1)]
    rows += [_run(tmp_path, "good_too", 0.9, s) for s in (2, 3)]
    ranked = rank_study(pd.DataFrame(rows), DESC, 500, 0)
    by = {r["run"]: r for r in ranked}
    assert ranked[0]["run"] in ("good", "good_too") and ranked[0]["vs_leader"] == "leader"
    assert by["bad"]["vs_leader"] == "worse by" and by["bad"]["diff"][1] > 0
    other_good = "good_too" if ranked[0]["run"] == "good" else "good"
    assert by[other_good]["vs_leader"] == "tied"
    lo, hi = by["bad"]["ci"]["macro_f1"]
    assert lo < by["bad"]["point"]["macro_f1"] < hi


def test_lower_is_better_reports_a_positive_gap(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for name, rate in (("low", 0.1), ("high", 0.6)):
        path = tmp_path / f"{name}.csv"
        pd.DataFrame({"unit_id": [f"p{i}" for i in range(300)], "cluster": [f"s{i // 3}" for i in range(300)],
                      "rec_change": (rng.random(300) < rate).astype(int)}).to_csv(path, index=False)
        rows.append({"run": name, "seed": None, "split": None, "data": "synthetic", "selection": "none",
                     "test_guided": False, "mean:rec_change": rate, "lineage_id": None, "provenance": None,
                     "units_path": str(path)})
    desc = {"primary": "mean:rec_change", "higher_is_better": False, "columns": ["mean:rec_change"]}
    ranked = rank_study(pd.DataFrame(rows), desc, 500, 42)
    assert [r["run"] for r in ranked] == ["low", "high"]
    assert ranked[1]["vs_leader"] == "worse by" and ranked[1]["diff"][0] > 0.3


def test_claim_verdicts():
    claim = {"dataset": "Scoliosis1K", "split": "112", "unit": "percent", "metrics": {"macro_f1": 70.0},
             "match": {"model": "drf"}}
    row = {"run": "drf_112", "split": "112", "ci": {"macro_f1": (0.65, 0.75)}}
    assert verdict(claim, row, "macro_f1", "synthetic")[0] == "not comparable"
    assert verdict(claim, row, "macro_f1", "real")[0] == "reproduced"
    assert verdict(claim, {**row, "ci": {"macro_f1": (0.5, 0.6)}}, "macro_f1", "real")[0] == "not reproduced"
    assert verdict(claim, {**row, "split": "118"}, "macro_f1", "real")[0] == "not comparable"
    assert verdict(claim, None, "macro_f1", "real")[0] == "not comparable"
    ranked = [{"run": "sconet_112"}, {"run": "drf_112"}]
    assert best_match(claim, ranked, {"sconet_112": {"model": "sconet"}, "drf_112": {"model": "drf"}})["run"] == "drf_112"
