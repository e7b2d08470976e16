"""The ``medrepro`` command line.

Each study package may add subcommands (its :class:`~medrepro.workflow.Study` ``cli``
hook); each subcommand's ``run`` returns an exit status. Exit statuses: 0 success; 1 data that
differs from its record (a :class:`~medrepro.errors.MismatchError`: a checksum mismatch, a
results folder that does not verify); 2 bad input or usage (an
:class:`~medrepro.errors.InputError`, a missing or unreadable file, an argparse error); 3 an
internal error. Errors are reported as one line on stderr; ``--debug`` adds the traceback.

* ``medrepro verify [RESULTS]``: re-hash a results folder against its provenance records.
* ``medrepro crate [RESULTS] [--zip OUT.zip]``: write the folder's Workflow Run RO-Crate
  (``RESULTS/ro-crate-metadata.json``); ``--zip``: the crate with all its files as one archive.
* ``medrepro reproduce TARGET [--results R] [--scratch DIR] [--allow-dirty]``: run the chain
  behind a result again and compare the bytes (numbers, on another kind of machine).
* ``medrepro diff A B [--json OUT] [--md OUT]``: params and metrics that changed between two
  results folders (``PATH@REV``: the records committed at git revision REV), with the
  paired-bootstrap CI of each metric's change; Markdown on stdout. Exits 0 whatever differs.
"""

from __future__ import annotations

import argparse
import sys
import traceback

from medrepro.errors import InputError, MismatchError

EXIT_OK = 0
EXIT_MISMATCH = 1
EXIT_INPUT = 2
EXIT_INTERNAL = 3


def _register_verify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="re-hash a results folder against its provenance records")
    p.add_argument("results", nargs="?", default="results", help="results folder (default: results)")
    p.set_defaults(_run=_run_verify)


def _run_verify(args: argparse.Namespace) -> int:
    from medrepro.verify import format_report, verify_results

    report = verify_results(args.results)
    print(format_report(report))
    return EXIT_OK if report.clean else EXIT_MISMATCH


def _register_crate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("crate", help="write a results folder's Workflow Run RO-Crate (and a zip of it)")
    p.add_argument("results", nargs="?", default="results", help="results folder (default: results)")
    p.add_argument("--zip", default=None, help="also write the crate with all its files as this zip")
    p.add_argument("--workflow-root", default=None,
                   help="folder with the Snakefile to copy into a crate built here (default: the copy "
                        "already in RESULTS/workflow-definition, else the folder above RESULTS); a crate the "
                        "workflow wrote is kept as it is")
    p.set_defaults(_run=_run_crate)


def _run_crate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from medrepro.crate import METADATA, crate_results

    built = crate_results(args.results, workflow_root=args.workflow_root, zip_path=args.zip)
    metadata = Path(args.results) / METADATA
    print(f"{'wrote' if built else 'kept the workflow-made'} {metadata}" + (f"; wrote {args.zip}" if args.zip else ""))
    return EXIT_OK


def _register_reproduce(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reproduce", help="run the chain of jobs behind a result again and compare the bytes")
    p.add_argument("target", help="a file of the results folder (e.g. a metrics.json) or a lineage id")
    p.add_argument("--results", default="results", help="results folder (default: results)")
    p.add_argument("--scratch", default=None, help="folder to run in (kept); default: a temporary folder")
    p.add_argument("--allow-dirty", action="store_true",
                   help="records made from a tree with uncommitted changes: run the current tree instead")
    p.set_defaults(_run=_run_reproduce)


def _run_reproduce(args: argparse.Namespace) -> int:
    from medrepro.reproduce import format_result, reproduce

    result = reproduce(args.target, args.results, scratch=args.scratch, allow_dirty=args.allow_dirty)
    print(format_result(result))
    return EXIT_OK if result.ok else EXIT_MISMATCH


def _register_diff(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("diff", help="params and metrics that changed between two results folders, with paired CIs")
    p.add_argument("a", help="results folder, or PATH@REV: its records as committed at git revision REV")
    p.add_argument("b", help="results folder, or PATH@REV")
    p.add_argument("--json", default=None, help="write the comparison as JSON to this file")
    p.add_argument("--md", default=None, help="write the Markdown report to this file (also printed)")
    p.set_defaults(_run=_run_diff)


def _run_diff(args: argparse.Namespace) -> int:
    from medrepro.diff import parse_spec, to_markdown, write_diff

    check_distinct_paths({"A": parse_spec(args.a)[0], "B": parse_spec(args.b)[0]}, {"--json": args.json, "--md": args.md})
    report = write_diff(args.a, args.b, json_out=args.json, md_out=args.md)
    print(to_markdown(report), end="")
    return EXIT_OK


def check_distinct_paths(inputs: dict[str, object], outputs: dict[str, object]) -> None:
    """No output may overwrite an input or another output (``{flag: path}``; None: not given)."""
    from pathlib import Path

    seen: dict[Path, str] = {}
    for flag, path in [*inputs.items(), *outputs.items()]:
        if path is None:
            continue
        key = Path(path).resolve()
        if key in seen and flag in outputs:
            raise InputError(path, flag, f"is the same file as {seen[key]}", "an output path distinct from every input")
        seen[key] = flag


def check_bootstrap_args(iterations: int, seed: int) -> None:
    if iterations < 1:
        raise InputError(None, "--iterations", f"{iterations}", "a positive integer")
    if seed < 0:
        raise InputError(None, "--seed", f"{seed}", "an integer >= 0")


def build_parser() -> argparse.ArgumentParser:
    from medrepro.workflow import discover

    parser = argparse.ArgumentParser(prog="medrepro", description="Reproducibility pipeline for medical-imaging ML studies")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    parser.add_argument("--debug", action="store_true", help="print the traceback of an error")
    _register_verify(sub)
    _register_crate(sub)
    _register_reproduce(sub)
    _register_diff(sub)
    for study in discover().values():
        if study.cli is not None:
            study.cli(sub)
    return parser


def _one_line(msg: object) -> str:
    # no raw control or unpaired surrogate characters on the terminal
    return " ".join(str(msg).split()).encode("utf-8", "backslashreplace").decode("utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse already printed its usage message
        return int(e.code) if isinstance(e.code, int) else EXIT_INPUT
    try:
        return args._run(args)
    except MismatchError as e:
        _report(args, "checksum mismatch", e)
        return EXIT_MISMATCH
    except InputError as e:
        _report(args, "error", e)
        return EXIT_INPUT
    except (OSError, UnicodeError) as e:  # a file that cannot be read or written as asked
        _report(args, "error", e)
        return EXIT_INPUT
    except Exception as e:  # a bug: say so in one line, not as a traceback
        _report(args, f"internal error ({type(e).__name__})", e)
        return EXIT_INTERNAL


def _report(args: argparse.Namespace, what: str, e: BaseException) -> None:
    if args.debug:
        traceback.print_exception(e, file=sys.stderr)
    print(f"medrepro {args.command}: {what}: {_one_line(e)}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
