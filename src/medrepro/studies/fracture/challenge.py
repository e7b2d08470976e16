"""A challenge leaderboard built from a folder of result files, by the rules of a real fracture
challenge leaderboard.

* Result files are the ``*metrics*.json`` files anywhere under the folder (sorted walk; symbolic
  links to folders are not followed); other files are ignored. A file's **run** is its folder's
  path relative to the folder (``dg_aug_seeds/seed_2025``), or its file stem when it sits
  directly in the folder (``nnunet_fold0_final_test_metrics``).
* A file whose relative path contains one of the exclude patterns (default
  :data:`DEFAULT_EXCLUDE`: ``presence_scan``, ``regression``, ``smoke``; substrings) is not
  comparable: it is left out, counted and listed.
* Metric keys sit at the top level or under ``metrics``; :data:`ALIASES` lists the accepted
  names of each column. A value is a number or an object ``{"estimate": x, "ci_low": .., "ci_high":
  ..}`` (medrepro's own metrics.json; the CI is kept); absent or null means not reported, and so
  does a NaN estimate (medrepro writes NaN for a metric undefined on its test set, e.g. ROC-AUC
  with one class). A file that is not valid JSON, or a metric that is not a number in [0, 1],
  stops the build with the file named.
* A run's row is its comparable file with the highest Dice_pos (a file without Dice_pos ranks
  below any with one; ties: the first by relative path). Rows are ranked by Dice_pos, highest
  first, runs without it last (ties: by run name).

Every number is as its file reports it: the table does not recompute anything, so the
convention of each column is the benchmark's (see :mod:`medrepro.studies.fracture.metrics`)
only as far as the files follow it; the Markdown says so.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
from pathlib import Path

import pandas as pd

from medrepro.errors import InputError
from medrepro.fsutil import atomic_path

__all__ = ["ALIASES", "COLUMNS", "DEFAULT_EXCLUDE", "METRICS", "build_challenge_table", "collect",
           "read_result_file", "render_markdown", "write_csv", "write_outputs"]

DEFAULT_EXCLUDE: tuple[str, ...] = ("presence_scan", "regression", "smoke")

METRICS: tuple[str, ...] = ("dice_pos", "iou_pos", "roc_auc", "ap", "precision_pos", "recall_pos")

ALIASES: dict[str, tuple[str, ...]] = {
    "dice_pos": ("dice_pos",),
    "iou_pos": ("iou_pos",),
    "roc_auc": ("roc_auc", "presence_roc_auc", "auc"),
    "ap": ("ap", "presence_ap", "average_precision"),
    "precision_pos": ("precision_pos",),
    "recall_pos": ("recall_pos",),
}
"""Accepted keys of each leaderboard column, in the order they are looked up."""

COLUMNS: tuple[str, ...] = ("rank", "run", *METRICS, "source")

LABELS = {"dice_pos": "Dice_pos", "iou_pos": "IoU_pos", "roc_auc": "ROC-AUC", "ap": "AP",
          "precision_pos": "precision_pos", "recall_pos": "recall_pos"}

MAX_FILE_BYTES = 16 * 1024 * 1024
"""Largest result file read (a metrics file is a few kB; this bounds the memory a file can take)."""

NO_PAIRED_CI = "no paired CI (the files carry no per-image values)"


# --- reading ---------------------------------------------------------------------------------------

def _number(path: Path, field: str, value, allow_none: bool = True) -> float | None:
    """A metric number in [0, 1]; None for null / NaN (not reported or undefined)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(path, field, f"{value!r} is not a number", "a number in [0, 1], or null")
    value = float(value)
    if math.isnan(value):
        return None
    if not 0.0 <= value <= 1.0:
        raise InputError(path, field, f"{value!r} is outside [0, 1]", "a number in [0, 1]")
    return value


def _metric_value(path: Path, field: str, value) -> float | dict | None:
    """A number, or ``{"estimate", "ci_low", "ci_high"}`` when the object carries both CI ends."""
    if isinstance(value, dict):
        if "estimate" not in value:
            raise InputError(path, field, f"an object without 'estimate' (keys {sorted(value)})",
                             'a number or {"estimate": x, "ci_low": .., "ci_high": ..}')
        estimate = _number(path, f"{field}.estimate", value["estimate"])
        if estimate is None:
            return None
        lo = _number(path, f"{field}.ci_low", value.get("ci_low"))
        hi = _number(path, f"{field}.ci_high", value.get("ci_high"))
        if lo is None or hi is None:
            return estimate
        if lo > hi:
            raise InputError(path, f"{field}.ci_low", f"{lo} is above ci_high {hi}", "ci_low <= ci_high")
        return {"estimate": estimate, "ci_low": lo, "ci_high": hi}
    return _number(path, field, value)


def read_result_file(path: str | Path) -> dict[str, float | dict]:
    """The leaderboard metrics a result file reports: ``{name: value}`` for the names of
    :data:`METRICS` it reports (a number, or ``{"estimate", "ci_low", "ci_high"}`` when the file
    carries a CI). Keys are looked up at the top level and under ``metrics``, by :data:`ALIASES`;
    two keys for one metric with different values are an error."""
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise InputError(path, "file", f"{size} bytes", f"a result file of at most {MAX_FILE_BYTES} bytes")
    try:
        doc = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise InputError(path, "JSON", f"not valid JSON ({e})", "a JSON object of metrics") from None
    if not isinstance(doc, dict):
        raise InputError(path, "JSON", f"a {type(doc).__name__} at the top level", "a JSON object of metrics")
    places = [("", doc)]
    nested = doc.get("metrics")
    if isinstance(nested, dict):
        places.append(("metrics.", nested))
    elif nested is not None and not isinstance(nested, dict):
        raise InputError(path, "metrics", f"a {type(nested).__name__}", "an object of metrics")
    out: dict[str, float | dict] = {}
    for name, keys in ALIASES.items():
        found: list[tuple[str, float | dict]] = []
        for prefix, place in places:
            for key in keys:
                if key in place:
                    value = _metric_value(path, prefix + key, place[key])
                    if value is not None:
                        found.append((prefix + key, value))
        if found:
            first_key, first = found[0]
            for key, value in found[1:]:
                if _estimate(value) != _estimate(first):
                    raise InputError(path, key, f"{_estimate(value)} differs from {first_key} = {_estimate(first)}",
                                     f"one value for {name}")
            out[name] = first
    return out


def _estimate(value: float | dict | None) -> float | None:
    return value["estimate"] if isinstance(value, dict) else value


def _walk(root: Path) -> tuple[list[Path], int]:
    """Files named ``*metrics*.json`` under ``root`` in sorted order, and the count of other files."""
    found, other = [], 0
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(".json") and "metrics" in name:
                found.append(Path(folder) / name)
            else:
                other += 1
    found.sort(key=lambda p: p.relative_to(root).as_posix())
    return found, other


def _run_name(rel: Path) -> str:
    return rel.stem if len(rel.parts) == 1 else rel.parent.as_posix()


def _check_patterns(exclude) -> tuple[str, ...]:
    patterns = tuple(exclude)
    for p in patterns:
        if not isinstance(p, str) or p == "":
            raise InputError(None, "--exclude", f"{p!r}", "non-empty substrings of result-file paths")
    return patterns


def collect(dir: str | Path, exclude=DEFAULT_EXCLUDE) -> tuple[list[dict], dict]:
    """The leaderboard's rows and what was read.

    Rows (ranked): ``{"rank", "run", "source" (relative to ``dir``), "metrics": {name: value},
    "files": number of comparable files of the run}``. Info: ``{"dir", "exclude", "found" (relative
    paths of the result files), "excluded" (those left out), "ignored" (count of other files),
    "comparable" (count)}``. Errors: ``dir`` not a folder, no comparable result file, a bad file."""
    root = Path(dir)
    if not root.is_dir():
        raise InputError(root, "DIR", "not a folder", "a folder of result files (*metrics*.json)")
    patterns = _check_patterns(exclude)
    paths, ignored = _walk(root)
    found, excluded = [], []
    by_run: dict[str, list[tuple[str, dict]]] = {}
    for path in paths:
        rel = path.relative_to(root)
        rel_s = rel.as_posix()
        found.append(rel_s)
        if any(p in rel_s for p in patterns):
            excluded.append(rel_s)
            continue
        by_run.setdefault(_run_name(rel), []).append((rel_s, read_result_file(path)))
    if not by_run:
        raise InputError(root, "result files",
                         f"no comparable *metrics*.json ({len(found)} found, "
                         f"{len(excluded)} left out by {list(patterns)})",
                         "at least one result file whose path matches no exclude pattern")
    rows = []
    for run, files in by_run.items():
        # highest dice_pos first; a file without it after every file with it; then by path
        source, metrics = min(files, key=lambda f: (_estimate(f[1].get("dice_pos")) is None,
                                                     -(_estimate(f[1].get("dice_pos")) or 0.0), f[0]))
        rows.append({"run": run, "source": source, "metrics": metrics, "files": len(files)})
    rows.sort(key=lambda r: (_estimate(r["metrics"].get("dice_pos")) is None,
                             -(_estimate(r["metrics"].get("dice_pos")) or 0.0), r["run"]))
    for i, row in enumerate(rows, 1):
        row["rank"] = i
    info = {"dir": str(root), "exclude": list(patterns), "found": found, "excluded": excluded,
            "ignored": ignored, "comparable": len(found) - len(excluded)}
    return rows, info


# --- rendering --------------------------------------------------------------------------------------

def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def _cell(value: float | dict | None) -> str:
    if isinstance(value, dict):
        return f"{value['estimate']:.4f} [{value['ci_low']:.4f}, {value['ci_high']:.4f}]"
    return _fmt(value)


def _md_text(s: str) -> str:
    """A run name or path as table text: pipes escaped, no line breaks."""
    return " ".join(str(s).split()).replace("|", "\\|")


def _best_lines(rows: list[dict]) -> list[str]:
    lines = []
    for name in METRICS:
        values = [(r["run"], _estimate(r["metrics"].get(name))) for r in rows]
        values = [(run, v) for run, v in values if v is not None]
        if not values:
            lines.append(f"- {LABELS[name]}: not reported by any run")
            continue
        top = max(v for _, v in values)
        runs = [run for run, v in values if v == top]
        lines.append(f"- {LABELS[name]}: {', '.join(f'`{_md_text(r)}`' for r in runs)} ({top:.4f})")
    return lines


def _delta_lines(top: dict, ref: dict, paired: dict | None, iterations: int, seed: int) -> list[str]:
    lines = []
    for name in METRICS:
        a, b = top["metrics"].get(name), ref["metrics"].get(name)
        ea, eb = _estimate(a), _estimate(b)
        if ea is None or eb is None:
            missing = " and ".join(f"`{_md_text(r['run'])}`" for r, v in ((top, ea), (ref, eb)) if v is None)
            lines.append(f"- {LABELS[name]}: not compared ({missing} did not report it)")
            continue
        d = ea - eb
        rel = f"{d / eb * 100:+.1f}% relative" if eb != 0 else "relative change undefined (reference value 0)"
        line = f"- {LABELS[name]}: {ea:.4f} vs {eb:.4f}: {d:+.4f} absolute, {rel}"
        if isinstance(a, dict) and isinstance(b, dict):
            line += f"; each file's 95% CI: {_cell(a).split(' ', 1)[1]} vs {_cell(b).split(' ', 1)[1]}"
        if name == "dice_pos" and paired and top["run"] in paired and ref["run"] in paired:
            from medrepro.studies.fracture.metrics import paired_difference

            p = paired_difference(paired[top["run"]], paired[ref["run"]], "dice_pos", iterations, seed)
            line += (f"; paired bootstrap 95% CI of the difference [{_fmt(_nan_none(p['ci_low']))}, "
                     f"{_fmt(_nan_none(p['ci_high']))}] on the {p['n_images']} images both runs were tested on "
                     f"({p['n_positive']} with a fracture; difference there {p['estimate']:+.4f})")
        else:
            line += f"; {NO_PAIRED_CI}"
        lines.append(line)
    return lines


def _nan_none(x: float) -> float | None:
    return None if x is None or math.isnan(x) else x


def _find_run(rows: list[dict], reference: str, where) -> dict:
    for r in rows:
        if r["run"] == reference:
            return r
    raise InputError(where, "--reference", f"run {reference!r} is not in the leaderboard",
                     f"one of {[r['run'] for r in rows]}")


def render_markdown(rows: list[dict], info: dict, reference: str | None = None,
                    paired: dict[str, pd.DataFrame] | None = None, iterations: int = 1000, seed: int = 0) -> str:
    """The leaderboard as Markdown: how it was built, the table, and the analysis (the highest
    value of each metric; the top run's delta against ``reference``, absolute and relative).
    ``paired`` (optional, run -> per-image table of :mod:`~medrepro.studies.fracture.metrics`)
    gives the paired bootstrap CI of the Dice_pos difference (``iterations``, ``seed``) when it
    holds both runs; otherwise no difference CI is claimed. An unknown reference is an error."""
    ref_row = _find_run(rows, reference, info.get("dir")) if reference is not None else None
    excluded = info.get("excluded", [])
    out = ["# Challenge leaderboard", "",
           f"Result files (`*metrics*.json`) under `{_md_text(info['dir'])}`: {len(info['found'])} found, "
           f"{info['comparable']} comparable, {len(excluded)} left out as not comparable (path contains "
           f"{', '.join(f'`{p}`' for p in info['exclude']) or 'no pattern'}); one row per run: its comparable file "
           f"with the highest Dice_pos.", ""]
    if excluded:
        out += ["Left out:", "", *(f"- `{_md_text(p)}`" for p in excluded), ""]
    out += ["Numbers are as each file reports them (not recomputed). Dice_pos, IoU_pos: benchmark convention "
            "(per-image Dice / IoU smoothed by 1e-6, mean over the test images with a fracture); precision_pos, "
            "recall_pos: benchmark convention (pixels pooled over all test images, negatives included); "
            "ROC-AUC, AP: image-level presence. `-`: not reported. Where a file carries a 95% CI it is shown "
            "in brackets.", ""]
    out.append("| " + " | ".join(["rank", "run", *(LABELS[m] for m in METRICS), "source"]) + " |")
    out.append("|" + "|".join(["---:", "---", *(["---:"] * len(METRICS)), "---"]) + "|")
    for r in rows:
        cells = [str(r["rank"]), _md_text(r["run"]), *(_cell(r["metrics"].get(m)) for m in METRICS),
                 f"`{_md_text(r['source'])}`"]
        out.append("| " + " | ".join(cells) + " |")
    out += ["", "## Analysis", "", "Highest value per metric:", "", *_best_lines(rows), ""]
    top = rows[0]
    if ref_row is None:
        out.append("No reference run given: no delta reported.")
    elif ref_row is top:
        out.append(f"The top run by Dice_pos is the reference run `{_md_text(top['run'])}`: no delta.")
    else:
        out += [f"Top run `{_md_text(top['run'])}` minus reference run `{_md_text(ref_row['run'])}` "
                f"(relative = difference / reference value):", "",
                *_delta_lines(top, ref_row, paired, iterations, seed)]
    return "\n".join(out) + "\n"


def _csv_value(value: float | dict | None) -> str:
    x = _estimate(value)
    return "-" if x is None else repr(float(x))


def write_csv(rows: list[dict], path: str | Path) -> None:
    """The table as CSV: columns :data:`COLUMNS`, estimates unrounded, ``-`` when not reported."""
    with atomic_path(path) as tmp:
        _write_csv_to(rows, tmp)


def _write_csv_to(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(COLUMNS)
        for r in rows:
            w.writerow([r["rank"], r["run"], *(_csv_value(r["metrics"].get(m)) for m in METRICS), r["source"]])


def write_outputs(rows: list[dict], text: str, out_md: str | Path | None, out_csv: str | Path | None = None) -> None:
    """Write the Markdown ``text`` and the CSV of ``rows``: both files or neither (each is
    written to a temporary file; they are renamed into place once both are written)."""
    with contextlib.ExitStack() as stack:
        if out_csv is not None:
            _write_csv_to(rows, stack.enter_context(atomic_path(out_csv)))
        if out_md is not None:
            stack.enter_context(atomic_path(out_md)).write_text(text, encoding="utf-8")


def build_challenge_table(dir: str | Path, reference: str | None = None, exclude=DEFAULT_EXCLUDE,
                          out_md: str | Path | None = None, out_csv: str | Path | None = None,
                          paired: dict[str, pd.DataFrame] | None = None, iterations: int = 1000,
                          seed: int = 0) -> dict:
    """Collect, render and write the leaderboard (Markdown to ``out_md``, CSV to ``out_csv`` when
    given). Returns ``{"rows", "info", "markdown"}``. Nothing is written when an input is bad."""
    rows, info = collect(dir, exclude)
    text = render_markdown(rows, info, reference, paired, iterations, seed)
    write_outputs(rows, text, out_md, out_csv)
    return {"rows": rows, "info": info, "markdown": text}
