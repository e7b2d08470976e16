"""The counterfactual study's ``medrepro`` subcommands.

* ``medrepro verify-checksums MANIFEST [--root DIR]``
* ``medrepro score --submission FILE --pairs QC_TABLE --output FILE [--per-pair-csv FILE]
  [--iterations N] [--seed S] [--allow-partial] [--scope S]``
"""

from __future__ import annotations

import argparse
import contextlib

from medrepro.cli import check_bootstrap_args, check_distinct_paths
from medrepro.fsutil import atomic_path
from medrepro.studies.counterfactual.checksums import verify_manifest
from medrepro.studies.counterfactual.score import score_submission, write_per_pair_csv, write_score

EXIT_OK = 0


def _register_verify(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("verify-checksums", help="verify a SHA256SUMS manifest of the artifact bundle")
    p.add_argument("manifest", help="path to SHA256SUMS.txt")
    p.add_argument("--root", default=None, help="folder the paths are relative to (default: the manifest's folder)")
    return p


def _run_verify(args: argparse.Namespace) -> int:
    s = verify_manifest(args.manifest, args.root)
    print(f"OK {s['n_files']} files ({s['n_bytes']} bytes) match {s['manifest']}")
    return EXIT_OK


def _register_score(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("score", help="score a counterfactual-benchmark submission")
    p.add_argument("--submission", required=True, help="submission JSON (spinefairbench-submission-v1)")
    p.add_argument("--pairs", required=True, help="QC table CSV (pair_id, source_id, edit, qc_pass, ...)")
    p.add_argument("--output", required=True, help="score JSON to write")
    p.add_argument("--per-pair-csv", default=None, help="also write unit_id,cluster,rec_change,label_jaccard")
    p.add_argument("--iterations", type=int, default=10000, help="bootstrap iterations (default 10000)")
    p.add_argument("--seed", type=int, default=42, help="bootstrap seed, restarted per endpoint (default 42)")
    p.add_argument("--scope", default=None,
                   help="the scope the submission must declare (default: the submission's own); a different "
                        "declared scope is an error, not an override")
    p.add_argument("--allow-partial", action="store_true", help="score a submission that does not cover the scope")
    return p


def _check_paths(args: argparse.Namespace) -> None:
    check_distinct_paths({"--submission": args.submission, "--pairs": args.pairs},
                         {"--output": args.output, "--per-pair-csv": args.per_pair_csv})


def _run_score(args: argparse.Namespace) -> int:
    check_bootstrap_args(args.iterations, args.seed)
    _check_paths(args)
    s = score_submission(args.submission, args.pairs, scope=args.scope, allow_partial=args.allow_partial,
                         iterations=args.iterations, seed=args.seed)
    # both outputs or neither: each is written to a temporary file, renamed only when both are done
    with contextlib.ExitStack() as stack:
        write_score(s, stack.enter_context(atomic_path(args.output)))
        if args.per_pair_csv:
            write_per_pair_csv(s, stack.enter_context(atomic_path(args.per_pair_csv)))
    r = s["table_row"]
    lo, hi = r["recommendation_change_ci"]
    clo, chi = r["label_consistency_ci"]
    partial = " PARTIAL" if r["partial"] else ""
    print(f"{r['model']}: {r['n_pairs']} usable pairs, recommendation change {r['recommendation_change']:.3f} "
          f"[{lo:.3f}, {hi:.3f}], label consistency {r['label_consistency']:.3f} [{clo:.3f}, {chi:.3f}]"
          f"{partial} -> {args.output}")
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    """Add this study's subcommands; each parser's ``_run`` returns an exit status."""
    _register_verify(sub).set_defaults(_run=_run_verify)
    _register_score(sub).set_defaults(_run=_run_score)
