"""The Loes model card: metrics with subject-bootstrap 95% CIs, error by score range, figures,
and the paired comparison against a previous model on the scans both were tested on.

Input is the reference lab's predictions CSV (one row per scan: ``anonymized_subject_id,
anonymized_session_id, scan, loes-score, Gd-enhanced``, optional ``training`` / ``validation``,
and ``predicted_loes_score``; a row with an empty prediction is not in that model's test set).
Output is a Markdown card (``workflow/templates/loes/model_card.md.j2``) and its JSON
(``medrepro-loes-card-v1``). The text states what the intervals support and nothing more.
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from medrepro.errors import InputError
from medrepro.fsutil import atomic_path
from medrepro.metrics.regression import REGRESSION, SCORE_RANGES
from medrepro.report.render import render
from medrepro.studies.loes.metrics import LEVEL, evaluate_table, n_scans, n_subjects, paired_comparison

__all__ = ["CARD_SCHEMA", "FIGURES", "LAB_COLUMNS", "PREDICTION_COLUMN", "build_card", "plot_predicted_vs_true",
           "plot_residuals_by_range", "read_lab_predictions", "render_card", "write_card"]

CARD_SCHEMA = "medrepro-loes-card-v1"
LAB_COLUMNS = ("anonymized_subject_id", "anonymized_session_id", "scan", "loes-score", "Gd-enhanced")
PREDICTION_COLUMN = "predicted_loes_score"
LOES_MAX = 34.0
FIGURES = {"predicted_vs_true": "predicted_vs_true.png", "residuals_by_range": "residuals_by_range.png"}
"""Figure key -> file name the command line writes into ``--figures DIR``."""

LABELS = {
    "rmse": "RMSE", "standardized_rmse": "standardized RMSE (RMSE / SD of true scores)", "mae": "MAE",
    "r2": "R^2 (1 - SSE/SST)", "pearson_r": "Pearson r", "pearson_p": "Pearson p-value",
    "spearman_rho": "Spearman rho", "spearman_p": "Spearman p-value",
    "mae_0_5": "MAE, true score 0-5 (0 <= score < 5)", "mae_5_10": "MAE, true score 5-10 (5 <= score < 10)",
    "mae_10_plus": "MAE, true score 10+ (score >= 10)",
}
CONFIG_FIELDS = (
    ("run", "run"), ("model", "model"), ("scheduler", "scheduler"), ("epochs", "epochs"), ("lr", "learning rate"),
    ("data", "data"), ("lineage_id", "lineage id"), ("provenance", "provenance"),
    ("predictions", "predictions file"), ("previous_predictions", "previous model's predictions file"),
)
#: Shown only when the card's meta has them (the pipeline's cards do; a card of a lab's CSV may not).
EXTRA_CONFIG_FIELDS = (
    ("seed", "training seed"), ("input", "normalization variant"), ("split", "split"), ("loss", "loss"),
    ("optimizer", "optimizer"), ("max_lr", "OneCycleLR max_lr"), ("pct_start", "OneCycleLR pct_start"),
    ("batch_size", "batch size"), ("total_steps", "steps (batches per epoch x epochs)"), ("channels", "channels"),
    ("width", "width multiplier"), ("selection", "checkpoint selection"), ("test_guided", "test-guided"),
    ("device", "device"), ("compare_to", "compared to run"),
)


# --- reading ---------------------------------------------------------------------------------

def _number(text: str, path: Path, row: int, column: str, what: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not math.isfinite(v):
        raise InputError(path, f"row {row}: {column}", f"{text!r} is not a number", what)
    return v


def read_lab_predictions(csv_path: str | Path) -> tuple[pd.DataFrame, dict]:
    """Read the reference lab's predictions CSV into a per-unit table.

    Returns ``(table, info)``: table columns ``unit_id`` (``subject/session/scan``), ``cluster``
    (the subject), ``y_true``, ``y_pred``, ``gd`` (0/1), one row per scan with a prediction;
    ``table.attrs`` and ``info`` hold ``path``, ``n_rows`` (data rows in the file),
    ``skipped_empty`` (rows with an empty prediction: not in this model's test set), ``n_scans``,
    ``n_subjects``. Rows are numbered as in a spreadsheet (the header is row 1). Errors name the
    file, row and column: a missing column, an empty id, a prediction or true score that is not
    a number, a true score outside [0, 34], a Gd-enhanced value other than 0/1, a scan listed twice,
    fewer than 3 scans with a prediction, or true scores that are all the same (their SD is 0,
    so the standardized RMSE is undefined)."""
    path = Path(csv_path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except FileNotFoundError:
        raise InputError(path, "predictions", "file not found", "a predictions CSV") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as e:
        raise InputError(path, "predictions", f"not a CSV table ({' '.join(str(e).split())})",
                         f"a header with {list(LAB_COLUMNS) + [PREDICTION_COLUMN]}") from None
    df.columns = [c.strip() for c in df.columns]
    missing = [c for c in (*LAB_COLUMNS, PREDICTION_COLUMN) if c not in df.columns]
    if missing:
        raise InputError(path, f"column {missing[0]!r}", "missing",
                         f"columns {list(LAB_COLUMNS) + [PREDICTION_COLUMN]}")
    df = df.fillna("")  # a short row's missing fields
    rows, seen, skipped = [], {}, 0
    for i, rec in enumerate(df.to_dict("records")):
        row = i + 2  # the header is row 1
        pred_text = rec[PREDICTION_COLUMN].strip()
        if pred_text == "":
            skipped += 1
            continue
        ids = []
        for c in LAB_COLUMNS[:3]:
            v = rec[c].strip()
            if not v:
                raise InputError(path, f"row {row}: {c}", "empty", "a non-empty id")
            ids.append(v)
        unit = "/".join(ids)
        if unit in seen:
            raise InputError(path, f"row {row}: {', '.join(LAB_COLUMNS[:3])}",
                             f"scan {unit!r} is also on row {seen[unit]}", "one row per scan")
        seen[unit] = row
        y_pred = _number(rec[PREDICTION_COLUMN].strip(), path, row, PREDICTION_COLUMN, "a predicted Loes score")
        y_true = _number(rec["loes-score"].strip(), path, row, "loes-score", "a Loes score in [0, 34]")
        if not 0.0 <= y_true <= LOES_MAX:
            raise InputError(path, f"row {row}: loes-score", f"{y_true:g} is out of range", "a Loes score in [0, 34]")
        gd = _number(rec["Gd-enhanced"].strip(), path, row, "Gd-enhanced", "0 or 1")
        if gd not in (0.0, 1.0):
            raise InputError(path, f"row {row}: Gd-enhanced", f"{rec['Gd-enhanced']!r}", "0 or 1")
        rows.append({"unit_id": unit, "cluster": ids[0], "y_true": y_true, "y_pred": y_pred, "gd": int(gd)})
    if not rows:
        raise InputError(path, PREDICTION_COLUMN, f"no row has a prediction ({skipped} empty)",
                         "the test scans' predicted Loes scores")
    if len(rows) < 3:
        raise InputError(path, PREDICTION_COLUMN, f"only {len(rows)} row(s) have a prediction",
                         "at least 3 test scans (Pearson's p-value has n - 2 degrees of freedom)")
    table = pd.DataFrame(rows, columns=["unit_id", "cluster", "y_true", "y_pred", "gd"])
    if table["y_true"].nunique() == 1:
        raise InputError(path, "loes-score",
                         f"all {len(table)} scans with a prediction have the true score {table['y_true'].iloc[0]:g} "
                         "(SD 0: the standardized RMSE is undefined)", "at least two different true scores")
    info = {"path": str(path), "n_rows": int(len(df)), "skipped_empty": skipped,
            "n_scans": n_scans(table), "n_subjects": n_subjects(table)}
    table.attrs.update(info)
    return table, info


# --- the card --------------------------------------------------------------------------------

def _finite_or_none(x):
    """NaN and infinities as None (JSON null), recursively."""
    if isinstance(x, dict):
        return {k: _finite_or_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite_or_none(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def _model_block(table: pd.DataFrame, iterations: int, seed: int) -> dict:
    block = {"metrics": evaluate_table(table, iterations, seed, LEVEL),
             "n_scans": n_scans(table), "n_subjects": n_subjects(table)}
    if "skipped_empty" in table.attrs:
        block["skipped_empty"] = int(table.attrs["skipped_empty"])
    return block


def build_card(table: pd.DataFrame, previous: pd.DataFrame | None = None, *, iterations: int = 1000, seed: int = 0,
               meta: dict | None = None) -> dict:
    """The card as a JSON-ready dict (schema ``medrepro-loes-card-v1``).

    ``metrics``: every regression metric of ``table`` with its subject-bootstrap 95% CI and ``n``
    (scans); ``n_scans``, ``n_subjects``; ``skipped_empty`` when the table came from
    :func:`read_lab_predictions` (its ``attrs``). ``previous``: the same block for the previous
    model's table, or None. ``comparison``: :func:`~medrepro.studies.loes.metrics.paired_comparison`
    of the two on their shared scans, or None. ``bootstrap``: iterations, seed, level, unit.
    ``meta``: configuration facts to print (run, model, scheduler, epochs, lr, data, lineage_id,
    provenance, ...). Undefined numbers are None."""
    card = {"schema": CARD_SCHEMA, **_model_block(table, iterations, seed)}
    card["previous"] = _model_block(previous, iterations, seed) if previous is not None else None
    card["comparison"] = (paired_comparison(table, previous, iterations, seed, LEVEL,
                                            current_path=table.attrs.get("path"),
                                            previous_path=previous.attrs.get("path"))
                          if previous is not None else None)
    card["bootstrap"] = {"iterations": int(iterations), "seed": int(seed), "level": LEVEL, "unit": "subject"}
    card["meta"] = dict(meta or {})
    return _finite_or_none(card)


def _fmt(v: float | None, name: str = "", digits: int = 3) -> str:
    if v is None:
        return "undefined"
    if name.endswith("_p"):
        return f"{v:.2e}"
    return f"{v:.{digits}f}"


def _ci(m: dict, name: str = "") -> str:
    return f"[{_fmt(m['ci_low'], name)}, {_fmt(m['ci_high'], name)}]"


def _signed(v: float | None) -> str:
    return "undefined" if v is None else f"{v:+.3f}"


def _below_zero(d: dict) -> bool:
    return d["ci_high"] is not None and d["ci_high"] < 0.0


def _above_zero(d: dict) -> bool:
    return d["ci_low"] is not None and d["ci_low"] > 0.0


def _comparison_text(card: dict) -> dict | None:
    c = card["comparison"]
    if c is None:
        return None
    s, r = c["standardized_rmse_diff"], c["pearson_r_diff"]
    s_text = f"{_signed(s['estimate'])} [{_signed(s['ci_low'])}, {_signed(s['ci_high'])}]"
    r_text = f"{_signed(r['estimate'])} [{_signed(r['ci_low'])}, {_signed(r['ci_high'])}]"
    head = (f"On the {c['n_scans']} scans of {c['n_subjects']} subjects both models were tested on, the difference "
            f"(current minus previous) in standardized RMSE is {s_text} and in Pearson r is {r_text}")
    s_low, s_high = _below_zero(s), _above_zero(s)  # the current model's standardized RMSE lower / higher
    r_high, r_low = _above_zero(r), _below_zero(r)  # its Pearson r higher / lower
    if c["verdict"] in ("better", "worse"):
        current = c["verdict"] == "better"
        parts = [text for on, text in [(s_low if current else s_high, "a lower standardized RMSE"),
                                       (r_high if current else r_low, "a higher Pearson r")] if on]
        model = "current" if current else "previous"
        tail = f"these data support {' and '.join(parts)} for the {model} model on these scans"
        tail += "." if len(parts) == 2 else "; the other interval includes 0."
    elif (s_low or r_high) and (s_high or r_low):
        tail = "the two intervals exclude 0 in opposite directions: these data do not distinguish the two models."
    else:
        tail = "these data do not distinguish the two models."
    overlap = None
    prev = card["previous"]
    if c["n_scans"] < card["n_scans"] or c["n_scans"] < prev["n_scans"]:
        overlap = (f"The current model was tested on {card['n_scans']} scans and the previous one on {prev['n_scans']}; "
                   f"the comparison uses only the {c['n_scans']} scans both were tested on. The metrics of each model "
                   "above are on its own test set.")
    return {"standardized_rmse": s_text, "pearson_r": r_text, "verdict": c["verdict"],
            "n_scans": c["n_scans"], "n_subjects": c["n_subjects"], "sentence": f"{head}: {tail}", "overlap": overlap}


def _metric_rows(metrics: dict, names) -> list[dict]:
    return [{"label": LABELS[n], "estimate": _fmt(metrics[n]["estimate"], n), "ci": _ci(metrics[n], n),
             "n": metrics[n]["n"]} for n in names if n in metrics]


def render_card(card: dict, figures: dict[str, str] | None = None, template_dir: Path | None = None) -> str:
    """The card's Markdown: configuration (what ``meta`` has, "-" otherwise), metrics with CIs,
    error by score range, figures (``{key: relative path}``, keys of :data:`FIGURES`),
    the paired comparison, notes."""
    meta = card.get("meta") or {}
    config = []
    fields = list(CONFIG_FIELDS) + [(k, label) for k, label in EXTRA_CONFIG_FIELDS if meta.get(k) not in (None, "")]
    for key, label in fields:
        value = " ".join(str(meta[key]).split()).replace("|", "\\|") if meta.get(key) not in (None, "") else "-"
        config.append((label, f"[{value}]({value})" if key == "provenance" and value != "-" else value))
    core = [n for n in REGRESSION if n not in SCORE_RANGES and n in card["metrics"]]  # JSON sorts the keys
    ranges = list(SCORE_RANGES)
    prev = card["previous"]
    titles = {"predicted_vs_true": "Predicted vs true Loes score (dashed: identity line)",
              "residuals_by_range": "Residual (predicted - true) by range of the true score"}
    figs = [{"title": titles.get(k, k), "path": str(v).replace("\\", "/")} for k, v in (figures or {}).items()]
    return render(
        "loes/model_card.md.j2", template_dir,
        card=card, config=config,
        metric_rows=_metric_rows(card["metrics"], core),
        range_rows=_metric_rows(card["metrics"], ranges),
        missing_ranges=[LABELS[n] for n in ranges if n not in card["metrics"]],
        previous_rows=_metric_rows(prev["metrics"], core + ranges) if prev else None,
        comparison=_comparison_text(card),
        figures=figs,
        level_pct=int(round(card["bootstrap"]["level"] * 100)),
    )


def write_card(card: dict, out_md: str | Path, out_json: str | Path, figures: dict[str, str] | None = None) -> None:
    """Write the Markdown and the JSON: both or neither (each renamed into place only once both
    are complete). JSON: sorted keys, indent 2, no NaN (undefined numbers are null)."""
    text = render_card(card, figures)
    data = json.dumps(_finite_or_none(card), indent=2, sort_keys=True, allow_nan=False) + "\n"
    with contextlib.ExitStack() as stack:
        stack.enter_context(atomic_path(out_md)).write_text(text, encoding="utf-8")
        stack.enter_context(atomic_path(out_json)).write_text(data, encoding="utf-8")


# --- figures ---------------------------------------------------------------------------------

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out_png: str | Path) -> None:
    plt = _pyplot()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)


def plot_predicted_vs_true(table: pd.DataFrame, out_png: str | Path) -> None:
    """Scatter of predicted against true Loes score, one point per scan, with the identity line."""
    plt = _pyplot()
    t, p = table["y_true"].to_numpy(float), table["y_pred"].to_numpy(float)
    lo, hi = float(min(t.min(), p.min(), 0.0)), float(max(t.max(), p.max())) + 1.0
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([lo, hi], [lo, hi], ls="--", color="grey", lw=1, label="identity (predicted = true)")
    ax.scatter(t, p, s=18, alpha=0.7, color="C0", label=f"{len(t)} scans, {n_subjects(table)} subjects")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal")
    ax.set_xlabel("true Loes score")
    ax.set_ylabel("predicted Loes score")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    _save(fig, out_png)


def plot_residuals_by_range(table: pd.DataFrame, out_png: str | Path) -> None:
    """Box plot (with the points) of residuals, predicted minus true, per range of the TRUE
    score: 0-5, 5-10, 10+."""
    plt = _pyplot()
    t, p = table["y_true"].to_numpy(float), table["y_pred"].to_numpy(float)
    labels, groups = [], []
    for name, (lo, hi) in SCORE_RANGES.items():
        m = (t >= lo) & (t < hi)
        labels.append(f"{lo:g}-{hi:g}\n(n={int(m.sum())})" if np.isfinite(hi) else f"{lo:g}+\n(n={int(m.sum())})")
        groups.append(p[m] - t[m])
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.axhline(0.0, color="grey", lw=1, ls="--")
    filled = [i for i, g in enumerate(groups, start=1) if len(g)]
    ax.boxplot([groups[i - 1] for i in filled], positions=filled, showfliers=False)
    for i, g in enumerate(groups, start=1):
        if len(g):
            jitter = np.linspace(-0.15, 0.15, len(g)) if len(g) > 1 else np.zeros(1)
            ax.scatter(i + jitter, g, s=10, alpha=0.6, color="C0")
    ax.set_xticks(range(1, len(labels) + 1), labels)
    ax.set_xlabel("true Loes score range")
    ax.set_ylabel("residual (predicted - true)")
    fig.tight_layout()
    _save(fig, out_png)
