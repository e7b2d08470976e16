"""SHA-256 manifests (``SHA256SUMS.txt``) for the counterfactual artifact bundle.

Manifest format (the ``sha256sum`` format, as frozen by the benchmark)::

    <64 hex digits><space><space or *><relative path>

The pipeline verifies the bundle with :func:`verify_manifest` before anything reads it.

Lines are split as the benchmark's released verifier splits them: the manifest is UTF-8 text
cut with ``str.splitlines``, so LF, CRLF and CR-only line endings all work, and so do the
other separators ``str.splitlines`` knows (vertical tab, form feed, U+001C-U+001E, U+0085,
U+2028, U+2029): a name containing one of them is cut in two and its second half is a
malformed line, so such a name is rejected. Each violation below is a :class:`ManifestError`
(a subclass of :class:`~medrepro.errors.InputError`) naming the manifest and the line number:

* a line must match the format above in full; the hex digest may be upper or lower case (it
  is compared in lower case); a line that is empty or only whitespace is skipped;
* the path must be relative: no leading ``/``;
* no ``..`` component (``a/../b`` is rejected, not normalised);
* no backslash (Windows separators are ambiguous across platforms);
* no colon (``C:foo``, alternate data streams, URLs);
* no empty component (``a//b``, a trailing ``/``) and no ``.`` component;
* no NUL character (the released verifier crashes on one; here it is a clean error);
* no two entries whose paths are equal or differ only in case (``str.casefold``; the bundle
  must unpack identically on case-insensitive file systems);
* the manifest must be UTF-8 (the released verifier crashes on other bytes; here it is a
  clean error) and list at least one file.

A file that is missing, or whose SHA-256 differs from the manifest, raises
:class:`ChecksumMismatchError` naming the file, the line and both hashes (expected vs
actual; ``actual`` is ``<missing>`` for a missing file). All entries are checked before the
error is raised so one run reports every bad file.
"""

from __future__ import annotations

import re
from pathlib import Path

from medrepro.errors import InputError, MismatchError
from medrepro.fsutil import sha256_file, write_text

__all__ = [
    "ManifestError",
    "ChecksumMismatchError",
    "parse_manifest",
    "verify_manifest",
    "write_manifest",
    "check_relpath",
]

_LINE_RE = re.compile(r"(?P<sha>[0-9a-fA-F]{64}) (?P<mode>[ *])(?P<path>.+)")


class ManifestError(InputError):
    """A malformed or unsafe manifest (names the manifest and the line)."""


class ChecksumMismatchError(MismatchError):
    """Files listed in a manifest are missing or have a different SHA-256.

    ``failures`` is a list of ``(line_no, relpath, expected, actual)``.
    """

    def __init__(self, manifest: str | Path, failures: list[tuple[int, str, str, str]]):
        self.failures = failures
        line_no, rel, exp, act = failures[0]
        more = f"; and {len(failures) - 1} more file(s) failed" if len(failures) > 1 else ""
        problem = f"{rel}: checksum mismatch: expected {exp}, actual {act}{more}"
        super().__init__(manifest, f"line {line_no}", problem)


def check_relpath(rel: str) -> str | None:
    """Return why ``rel`` is not an acceptable manifest path, or ``None`` if it is."""
    if rel.startswith("/"):
        return "absolute path"
    if "\\" in rel:
        return "backslash in path"
    if ":" in rel:
        return "colon in path"
    parts = rel.split("/")
    if ".." in parts:
        return "'..' component in path"
    if "." in parts:
        return "'.' component in path"
    if any(p == "" for p in parts):
        return "empty path component"
    if "\x00" in rel:
        return "NUL character in path"
    if len(("x" + rel + "x").splitlines()) > 1:
        return "line separator in path"
    return None


def parse_manifest(path: str | Path) -> list[tuple[str, str]]:
    """Parse and validate a manifest; return ``[(sha256 lower-case hex, relpath), ...]``."""
    return [(sha, rel) for _line, sha, rel in _parse(Path(path))]


def _parse(path: Path) -> list[tuple[int, str, str]]:
    """``[(line number, sha256, relpath), ...]`` of a valid manifest (module docstring)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ManifestError(path, "manifest", "file not found", "an existing SHA256SUMS file") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ManifestError(path, "manifest", f"not UTF-8 ({e.reason} at byte {e.start})", "UTF-8 text") from None

    entries: list[tuple[int, str, str]] = []
    seen: dict[str, tuple[int, str]] = {}
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        m = _LINE_RE.fullmatch(line)
        if m is None:
            raise ManifestError(
                path, f"line {line_no}", f"malformed line {line[:80]!r}",
                "'<64 hex digits><space><space or *><relative path>'",
            )
        rel = m.group("path")
        why = check_relpath(rel)
        if why is not None:
            raise ManifestError(path, f"line {line_no}", f"{why}: {rel!r}", "a relative path inside the bundle")
        key = rel.casefold()
        if key in seen:
            other_line, other = seen[key]
            kind = "duplicate path" if other == rel else "paths differ only in case"
            raise ManifestError(
                path, f"line {line_no}", f"{kind}: {rel!r} vs {other!r} (line {other_line})",
                "each path listed once, case-insensitively unique",
            )
        seen[key] = (line_no, rel)
        entries.append((line_no, m.group("sha").lower(), rel))
    if not entries:
        raise ManifestError(path, "manifest", "empty manifest", "at least one '<sha256>  <path>' line")
    return entries


def verify_manifest(path: str | Path, root: str | Path | None = None) -> dict:
    """Verify every file listed in the manifest ``path``.

    Files are resolved relative to ``root`` (default: the manifest's folder). A path that
    resolves outside ``root`` (through a symlink) is refused. Returns a summary
    ``{"manifest", "root", "n_files", "n_bytes", "ok": True}``; raises
    :class:`ChecksumMismatchError` if any file is missing or differs.
    """
    path = Path(path)
    entries = _parse(path)
    root = Path(root) if root is not None else path.parent
    root_resolved = root.resolve()
    failures: list[tuple[int, str, str, str]] = []
    n_bytes = 0
    for line_no, sha, rel in entries:
        f = root / rel
        try:
            resolved = f.resolve()
        except OSError:
            resolved = f
        if resolved != root_resolved and root_resolved not in resolved.parents:
            raise ManifestError(path, f"line {line_no}", f"{rel!r} resolves outside the bundle ({resolved})",
                                "a file inside the bundle")
        if not f.is_file():
            failures.append((line_no, rel, sha, "<missing>"))
            continue
        actual = sha256_file(f)
        n_bytes += f.stat().st_size
        if actual != sha:
            failures.append((line_no, rel, sha, actual))
    if failures:
        raise ChecksumMismatchError(path, failures)
    return {"manifest": str(path), "root": str(root), "n_files": len(entries), "n_bytes": n_bytes, "ok": True}


def write_manifest(root: str | Path, relpaths: list[str] | None = None,
                   manifest_name: str = "SHA256SUMS.txt") -> Path:
    """Write ``root/manifest_name`` listing ``relpaths`` (default: every file under ``root``
    except the manifest itself), sorted, in the ``<sha>  <path>`` text-mode format. Atomic."""
    root = Path(root)
    if relpaths is None:
        relpaths = [p.relative_to(root).as_posix() for p in root.rglob("*")
                    if p.is_file() and p.name != manifest_name and not p.name.startswith(".")]
    lines = []
    for rel in sorted(relpaths):
        why = check_relpath(rel)
        if why is not None:
            raise InputError(root / manifest_name, rel, why, "a relative path inside the bundle")
        lines.append(f"{sha256_file(root / rel)}  {rel}")
    if not lines:
        raise InputError(root / manifest_name, "manifest", "no files to list", "at least one file")
    out = root / manifest_name
    write_text(out, "\n".join(lines) + "\n")
    return out
