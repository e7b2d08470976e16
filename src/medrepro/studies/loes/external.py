"""Predictions a lab already has, in its own CSV format (the input CSV plus a
``predicted_loes_score`` column), as a row of the loes leaderboard section: the study's importer
for :mod:`medrepro.external`. Rows with an empty prediction are not in that model's test set:
they are skipped and counted."""

from __future__ import annotations

from pathlib import Path

from medrepro.studies.loes.card import read_lab_predictions
from medrepro.studies.loes.metrics import evaluate_table


def import_predictions(source: Path, *, name: str, bootstrap: dict, descriptor: dict) -> dict:
    table, info = read_lab_predictions(Path(source))
    metrics = evaluate_table(table, int(bootstrap["iterations"]), int(bootstrap["seed"]))
    units = table[["unit_id", "cluster", "y_true", "y_pred"]]
    return {"metrics": metrics, "units": units, "format": "loes lab predictions CSV",
            "details": {"n_scans": int(len(table)), "n_subjects": int(table["cluster"].nunique()),
                        "skipped_empty": int(info.get("skipped_empty", 0))}}
