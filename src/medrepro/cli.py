"""The ``medrepro`` command line.

Each study package may add subcommands (its :class:`~medrepro.workflow.Study` ``cli``
hook); each subcommand's ``run`` returns an exit status. Exit statuses: 0 success; 1 data that
differs from its record (a :class:`~medrepro.errors.MismatchError`, e.g. a checksum mismatch);
2 bad input or usage (an :class:`~medrepro.errors.InputError`, a missing file, an argparse
error). Errors are reported as one line on stderr, never as a traceback.
"""

from __future__ import annotations

import argparse
import sys

from medrepro.errors import InputError, MismatchError

EXIT_OK = 0
EXIT_MISMATCH = 1
EXIT_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    from medrepro.workflow import discover

    parser = argparse.ArgumentParser(prog="medrepro", description="Reproducibility pipeline for medical-imaging ML studies")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for study in discover().values():
        if study.cli is not None:
            study.cli(sub)
    return parser


def _one_line(msg: object) -> str:
    return " ".join(str(msg).split())


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse already printed its usage message
        return int(e.code) if isinstance(e.code, int) else EXIT_INPUT
    try:
        return args._run(args)
    except MismatchError as e:
        print(f"medrepro {args.command}: checksum mismatch: {_one_line(e)}", file=sys.stderr)
        return EXIT_MISMATCH
    except InputError as e:
        print(f"medrepro {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_INPUT
    except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
        print(f"medrepro {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
