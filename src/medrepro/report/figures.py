"""Per-run report figures: the learning curve of a run x seed (from its ``train_log.jsonl``) and
its selected checkpoint's predictions on TEST (a confusion matrix, or predicted against true
values for a regression), from the per-unit table its evaluation wrote.

Nothing here names a study: a study declares its runs and how to draw their test predictions
in its layout (:class:`medrepro.workflow.TrainingRun`). The PNGs carry no software version or
time, so equal inputs give equal bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from medrepro.errors import InputError
from medrepro.fsutil import atomic_path
from medrepro.report.summary import read_metrics

DPI = 100
#: PNG text chunks matplotlib would write (its version): left out so the bytes depend on the plot only
PNG_METADATA = {"Software": None}


@dataclass
class TrainLog:
    """What a ``train_log.jsonl`` holds: loss per step, evaluations per eval step (split ->
    list of (step, metrics)) and the steps a resumed job continued from."""

    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    evals: dict[str, list[tuple[int, dict]]] = field(default_factory=dict)
    resumed: list[int] = field(default_factory=list)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_train_log(path: Path) -> TrainLog:
    """Parse a training log; a bad line is an :class:`InputError` naming the file and line."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise InputError(path, "train_log.jsonl", f"cannot be read ({e.strerror})", "the run's training log") from None
    out = TrainLog()
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"line {n}"
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(path, where, f"not JSON ({e.msg})", "one JSON object per line") from None
        if not isinstance(entry, dict):
            raise InputError(path, where, f"a JSON {type(entry).__name__}", "one JSON object per line")
        if not isinstance(entry.get("step"), int) or isinstance(entry.get("step"), bool):
            raise InputError(path, f"{where}: step", f"{entry.get('step')!r}", "an integer step")
        step = entry["step"]
        if entry.get("event") == "resumed":
            out.resumed.append(step)
            continue
        if "loss" not in entry:
            continue
        if not _number(entry["loss"]):
            raise InputError(path, f"{where}: loss", f"{entry['loss']!r}", "a number")
        out.steps.append(step)
        out.loss.append(float(entry["loss"]))
        for split in ("val", "test"):
            if split in entry:
                if not isinstance(entry[split], dict):
                    raise InputError(path, f"{where}: {split}", f"{entry[split]!r}"[:60], "an object of metrics")
                out.evals.setdefault(split, []).append((step, entry[split]))
    if not out.loss:
        raise InputError(path, "loss", "no line has a loss", "one line per training step with step and loss")
    return out


def smoothed(values: list[float], window: int) -> np.ndarray:
    """Trailing mean over the last ``window`` values (fewer at the start)."""
    x = np.asarray(values, dtype=np.float64)
    csum = np.concatenate([[0.0], np.cumsum(x)])
    idx = np.arange(1, len(x) + 1)
    lo = np.maximum(0, idx - window)
    return (csum[idx] - csum[lo]) / (idx - lo)


def smoothing_window(n: int) -> int:
    return max(1, min(50, n // 10))


def _new_figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI)


def _save(fig, out_png: Path, **margins) -> None:
    """Fixed margins (no tight layout: it draws the figure once more, for each figure)."""
    fig.subplots_adjust(**margins)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata=PNG_METADATA)


def _selected_step(metrics: dict) -> int | None:
    return (metrics.get("selection") or {}).get("step")


def learning_curve(log: Path, metrics: Path, out_png: Path, *, metric: str, run: str, seed: int) -> TrainLog:
    """Training loss per step (raw and a trailing mean) and ``metric`` on the validation split
    per eval step (and on test where training logged it) on a second axis; the step of the
    checkpoint the evaluation in ``metrics`` used and each resume are marked."""
    tl = read_train_log(log)
    m = read_metrics(metrics)
    for split, points in tl.evals.items():
        for step, values in points:
            if not _number(values.get(metric)):
                raise InputError(log, f"step {step}: {split}.{metric}", f"{values.get(metric)!r}",
                                 f"the selection metric {metric!r} at every evaluation")
    from matplotlib.ticker import MaxNLocator

    fig = _new_figure(7.5, 5.0)
    ax = fig.subplots()
    window = smoothing_window(len(tl.loss))
    ax.plot(tl.steps, tl.loss, color="C0", alpha=0.35, lw=0.8, label="training loss")
    if window > 1:
        ax.plot(tl.steps, smoothed(tl.loss, window), color="C0", lw=1.6, label=f"training loss, mean of last {window}")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    handles, labels = ax.get_legend_handles_labels()
    if tl.evals:
        ax2 = ax.twinx()
        styles = {"val": ("C1", "-", "validation"), "test": ("C3", "--", "test (logged in training)")}
        for split, points in tl.evals.items():
            color, ls, name = styles[split]
            ax2.plot([s for s, _ in points], [v[metric] for _, v in points], color=color, ls=ls, marker="o", ms=4,
                     label=f"{metric}, {name}")
        ax2.set_ylabel(metric)
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    step = _selected_step(m)
    if step is not None:
        policy = m["selection"]["policy"]
        handles.append(ax.axvline(step, color="k", ls="--", lw=1))
        labels.append(f"selected checkpoint: step {step} ({policy})")
    for i, s in enumerate(tl.resumed):
        line = ax.axvline(s, color="grey", ls=":", lw=1.2)
        if i == 0:
            handles.append(line)
            labels.append("resumed")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=8, frameon=False)
    ax.set_title(f"{run}, seed {seed}: learning curve")
    _save(fig, out_png, left=0.1, right=0.88, top=0.93, bottom=0.26)
    return tl


def _units(path: Path, columns: list[str]) -> pd.DataFrame:
    path = Path(path)
    try:
        table = pd.read_csv(path)
    except FileNotFoundError:
        raise InputError(path, "units", "no such file", "the per-unit table of the evaluation") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise InputError(path, "units", f"not a CSV table ({str(e).splitlines()[0]})", "a CSV with a header") from None
    for c in columns:
        if c not in table.columns:
            raise InputError(path, c, "no such column", f"a column {c!r} (columns: {list(table.columns)})")
        if not pd.api.types.is_numeric_dtype(table[c]) or table[c].isna().any():
            raise InputError(path, c, "non-numeric or empty values", "a number in every row")
    if table.empty:
        raise InputError(path, "units", "no rows", "one row per test unit")
    return table


def confusion_counts(units: Path, *, truth: str, pred: str, n_classes: int) -> np.ndarray:
    """Counts (true class x predicted class) from the per-unit table's class-index columns."""
    from sklearn.metrics import confusion_matrix

    table = _units(units, [truth, pred])
    for c in (truth, pred):
        v = table[c].to_numpy()
        bad = (v != np.round(v)) | (v < 0) | (v >= n_classes)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InputError(units, f"row {row + 1}: {c}", f"{v[row]!r}", f"a class index in 0..{n_classes - 1}")
    return confusion_matrix(table[truth].astype(int), table[pred].astype(int), labels=list(range(n_classes)))


def class_names(classes: list[str], metrics_path: Path, metrics: dict) -> list[str]:
    """The declared class names, or else the ``details.classes`` of the run's metrics.json."""
    if classes:
        return list(classes)
    found = (metrics.get("details") or {}).get("classes")
    if not isinstance(found, list) or len(found) < 2 or not all(isinstance(c, str) for c in found):
        raise InputError(metrics_path, "details.classes", f"{found!r}"[:60], "the class names in label order")
    return found


def confusion_figure(units: Path, metrics: Path, out_png: Path, *, truth: str, pred: str, classes: list[str],
                     run: str, seed: int, what: str = "") -> np.ndarray:
    """Confusion matrix on TEST of the checkpoint the evaluation in ``metrics`` used: counts
    and row-normalised (each true class's share of its predictions). Returns the counts."""
    m = read_metrics(metrics)
    names = class_names(classes, metrics, m)
    counts = confusion_counts(units, truth=truth, pred=pred, n_classes=len(names))
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros(counts.shape, dtype=np.float64), where=rows > 0)
    k = len(names)
    size = 2.2 + 0.7 * k
    fig = _new_figure(2 * size + 0.8, size + 0.9)
    axes = fig.subplots(1, 2)
    panels = ((axes[0], counts, counts / max(int(counts.max()), 1), "d", "counts"),
              (axes[1], share, share, ".2f", "row-normalised (share of each true class)"))
    for ax, values, shade, fmt, name in panels:
        ax.imshow(shade, cmap="Blues", vmin=0, vmax=1)
        for i in range(k):
            for j in range(k):
                ax.text(j, i, format(values[i, j], fmt), ha="center", va="center", fontsize=9,
                        color="white" if shade[i, j] > 0.5 else "black")
        ax.set_xticks(range(k), names, rotation=30, ha="right")
        ax.set_yticks(range(k), names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(name, fontsize=10)
    step = _selected_step(m)
    at = f", selected checkpoint (step {step})" if step is not None else ""
    title = f"{run}, seed {seed}: confusion matrix on TEST{at}, n = {int(counts.sum())}"
    fig.suptitle(title + (f"\npredicted: {what}" if what else ""), fontsize=10)
    _save(fig, out_png, left=0.15, right=0.98, top=0.82, bottom=0.22, wspace=0.5)
    return counts


def scatter_figure(units: Path, metrics: Path, out_png: Path, *, truth: str, pred: str, run: str, seed: int,
                   what: str = "") -> None:
    """Predicted against true value on TEST of the checkpoint the evaluation in ``metrics``
    used, with the identity line."""
    m = read_metrics(metrics)
    table = _units(units, [truth, pred])
    y, p = table[truth].to_numpy(float), table[pred].to_numpy(float)
    lo, hi = float(min(y.min(), p.min())), float(max(y.max(), p.max()))
    pad = 0.05 * (hi - lo) if hi > lo else 1.0
    fig = _new_figure(4.8, 4.6)
    ax = fig.subplots()
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="grey", ls="--", lw=1, label="predicted = true")
    ax.scatter(y, p, s=18, color="C0", label=f"test units (n = {len(y)})")
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel(f"true {what}".strip())
    ax.set_ylabel(f"predicted {what}".strip())
    ax.legend(loc="upper left", fontsize=8)
    step = _selected_step(m)
    at = f"\nselected checkpoint (step {step})" if step is not None else ""
    ax.set_title(f"{run}, seed {seed}: predicted vs true on TEST{at}", fontsize=10)
    _save(fig, out_png, left=0.14, right=0.96, top=0.88, bottom=0.12)


def write_study_figures(figures: list[dict], metric: str) -> None:
    """Every figure of :func:`medrepro.workflow.training_figures`: a learning curve per run x
    seed of ``metric`` (the study's selection metric), and its TEST figure where declared."""
    for f in figures:
        learning_curve(Path(f["log"]), Path(f["metrics"]), Path(f["curve"]), metric=metric, run=f["run"],
                       seed=int(f["seed"]))
        test = f.get("test")
        if not test:
            continue
        args = dict(truth=test["truth"], pred=test["pred"], run=f["run"], seed=int(f["seed"]), what=test["what"])
        if test["kind"] == "confusion":
            confusion_figure(Path(f["units"]), Path(f["metrics"]), Path(f["test_png"]), classes=test["classes"], **args)
        elif test["kind"] == "scatter":
            scatter_figure(Path(f["units"]), Path(f["metrics"]), Path(f["test_png"]), **args)
        else:
            raise ValueError(f"{f['run']} seed {f['seed']}: test figure kind {test['kind']!r}")
