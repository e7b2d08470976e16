"""The loes study's ``medrepro`` subcommand.

* ``medrepro loes-card PREDICTIONS.csv [--previous PREVIOUS.csv] --output CARD.md --json CARD.json
  [--iterations N] [--seed S] [--figures DIR]``: the model card of a predictions CSV in the
  reference lab's format, with subject-bootstrap CIs, and the paired comparison with a previous
  model's predictions on the scans both were tested on.

Exit statuses are :func:`medrepro.cli.main`'s (0 success, 2 bad input or usage, 3 an internal error).
"""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path

from medrepro.cli import EXIT_OK, check_bootstrap_args, check_distinct_paths
from medrepro.fsutil import atomic_path, sha256_file


def _register_card(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("loes-card", help="model card of Loes-score predictions (CIs by bootstrap over subjects)")
    p.add_argument("predictions", help="predictions CSV (anonymized_subject_id, anonymized_session_id, scan, "
                                       "loes-score, Gd-enhanced, predicted_loes_score)")
    p.add_argument("--previous", default=None, help="the previous model's predictions CSV, for a paired comparison")
    p.add_argument("--output", required=True, help="model card (Markdown) to write")
    p.add_argument("--json", required=True, help="model card (JSON) to write")
    p.add_argument("--iterations", type=int, default=1000, help="bootstrap iterations (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--figures", default=None,
                   help="folder for the two figures (linked from the card by a path relative to it)")
    return p


def _figure_paths(args: argparse.Namespace) -> dict[str, Path]:
    from medrepro.studies.loes.card import FIGURES

    if args.figures is None:
        return {}
    return {key: Path(args.figures) / name for key, name in FIGURES.items()}


def _check_paths(args: argparse.Namespace, figures: dict[str, Path]) -> None:
    check_distinct_paths({"PREDICTIONS": args.predictions, "--previous": args.previous},
                         {"--output": args.output, "--json": args.json,
                          **{f"--figures ({p.name})": p for p in figures.values()}})


def _run_card(args: argparse.Namespace) -> int:
    from medrepro.studies.loes.card import (build_card, plot_predicted_vs_true, plot_residuals_by_range,
                                            read_lab_predictions, write_card)

    check_bootstrap_args(args.iterations, args.seed)
    figures = _figure_paths(args)
    _check_paths(args, figures)
    table, _ = read_lab_predictions(args.predictions)
    previous = read_lab_predictions(args.previous)[0] if args.previous else None
    meta = {"predictions": str(args.predictions), "predictions_sha256": sha256_file(args.predictions)}
    if args.previous:
        meta.update({"previous_predictions": str(args.previous), "previous_predictions_sha256": sha256_file(args.previous)})
    card = build_card(table, previous, iterations=args.iterations, seed=args.seed, meta=meta)
    card_dir = Path(args.output).resolve().parent
    links = {key: Path(os.path.relpath(p.resolve(), card_dir)).as_posix() for key, p in figures.items()}
    # every output or none: a figure is renamed into place only once the card is written
    with contextlib.ExitStack() as stack:
        if figures:
            plot_predicted_vs_true(table, stack.enter_context(atomic_path(figures["predicted_vs_true"])))
            plot_residuals_by_range(table, stack.enter_context(atomic_path(figures["residuals_by_range"])))
        write_card(card, args.output, args.json, links or None)
    m = card["metrics"]

    def ci(name: str) -> str:
        v = [m[name][k] for k in ("estimate", "ci_low", "ci_high")]
        a, lo, hi = ("undefined" if x is None else f"{x:.3f}" for x in v)
        return f"{a} [{lo}, {hi}]"

    tail = f"; vs previous: {card['comparison']['verdict']}" if card["comparison"] else ""
    print(f"{card['n_scans']} scans of {card['n_subjects']} subjects: standardized RMSE {ci('standardized_rmse')}, "
          f"Pearson r {ci('pearson_r')}{tail} -> {args.output}")
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    """Add this study's subcommands; each parser's ``_run`` returns an exit status."""
    _register_card(sub).set_defaults(_run=_run_card)
