"""The fracture study's ``medrepro`` subcommand.

* ``medrepro challenge-leaderboard DIR [--reference RUN] [--exclude PATTERN ...] --output TABLE.md
  [--csv TABLE.csv]``: the challenge leaderboard of the ``*metrics*.json`` result files under
  DIR (one row per run, ranked by Dice_pos; see :mod:`medrepro.studies.fracture.challenge`).
  ``--exclude`` given replaces the default patterns (``presence_scan regression smoke``);
  ``--exclude`` with no pattern leaves nothing out (it takes every word up to the next option, so
  give DIR before it).

Exit statuses are :func:`medrepro.cli.main`'s (0 success, 2 bad input or usage, 3 an internal error).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from medrepro.cli import EXIT_OK, check_distinct_paths


def _register_leaderboard(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from medrepro.studies.fracture.challenge import DEFAULT_EXCLUDE

    p = sub.add_parser("challenge-leaderboard",
                       help="leaderboard of a folder of fracture result files (*metrics*.json), ranked by Dice_pos")
    p.add_argument("dir", metavar="DIR", help="folder searched for *metrics*.json result files")
    p.add_argument("--reference", default=None, metavar="RUN",
                   help="run to report the top run's delta against (a run name as in the table)")
    p.add_argument("--exclude", nargs="*", action="extend", default=None, metavar="PATTERN",
                   help="substrings of a result file's relative path that make it not comparable; given, they "
                        f"replace the default ({' '.join(DEFAULT_EXCLUDE)})")
    p.add_argument("--output", required=True, metavar="TABLE.md", help="leaderboard (Markdown) to write")
    p.add_argument("--csv", default=None, metavar="TABLE.csv", help="leaderboard (CSV) to write")
    return p


def _run_leaderboard(args: argparse.Namespace) -> int:
    from medrepro.studies.fracture.challenge import DEFAULT_EXCLUDE, collect, render_markdown, write_outputs

    exclude = DEFAULT_EXCLUDE if args.exclude is None else tuple(args.exclude)
    rows, info = collect(args.dir, exclude)
    root = Path(args.dir)
    check_distinct_paths({f"DIR ({rel})": root / rel for rel in info["found"]},
                         {"--output": args.output, "--csv": args.csv})
    text = render_markdown(rows, info, args.reference)
    write_outputs(rows, text, args.output, args.csv)
    top = rows[0]
    dice = top["metrics"].get("dice_pos")
    dice = dice["estimate"] if isinstance(dice, dict) else dice
    shown = "-" if dice is None else f"{dice:.4f}"
    outputs = args.output + (f", {args.csv}" if args.csv else "")
    print(f"{len(rows)} run(s) from {info['comparable']} comparable result file(s) ({len(info['excluded'])} left out); "
          f"top Dice_pos {shown} ({top['run']}) -> {outputs}")
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    """Add this study's subcommands; each parser's ``_run`` returns an exit status."""
    _register_leaderboard(sub).set_defaults(_run=_run_leaderboard)
