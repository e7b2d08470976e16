"""Manifest parsing and verification (SHA256SUMS.txt)."""

from __future__ import annotations

import hashlib
import os

import pytest

from medrepro.studies.counterfactual.checksums import (
    ChecksumMismatchError,
    ManifestError,
    parse_manifest,
    verify_manifest,
    write_manifest,
)
from medrepro.errors import InputError

SHA_A = hashlib.sha256(b"alpha\n").hexdigest()


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / "a.png").write_bytes(b"alpha\n")
    (tmp_path / "sources" / "b.png").write_bytes(b"beta\n")
    (tmp_path / "pairs.csv").write_bytes(b"pair_id\n")
    return tmp_path


def _manifest(tmp_path, text, name="SHA256SUMS.txt"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_write_and_verify_roundtrip(bundle):
    m = write_manifest(bundle)
    lines = m.read_text().splitlines()
    assert [ln.split("  ", 1)[1] for ln in lines] == ["pairs.csv", "sources/a.png", "sources/b.png"]
    s = verify_manifest(m)
    assert s["ok"] is True and s["n_files"] == 3 and s["n_bytes"] == 6 + 5 + 8
    assert not [p for p in bundle.iterdir() if p.name.startswith(".")]  # no temp file left


def test_parse_accepts_binary_marker_uppercase_hex_crlf_and_blank_lines(tmp_path):
    text = f"{SHA_A.upper()} *sources/a.png\r\n\n{SHA_A}  x/y z.png\n"
    assert parse_manifest(_manifest(tmp_path, text)) == [(SHA_A, "sources/a.png"), (SHA_A, "x/y z.png")]


@pytest.mark.parametrize(
    "path, why",
    [
        ("/etc/passwd", "absolute path"),
        ("sources/../../etc/passwd", "'..' component"),
        ("..", "'..' component"),
        ("sources\\a.png", "backslash"),
        ("C:/a.png", "colon"),
        ("sources/a.png:stream", "colon"),
        ("sources//a.png", "empty path component"),
        ("sources/./a.png", "'.' component"),
    ],
)
def test_rejects_unsafe_paths(tmp_path, path, why):
    p = _manifest(tmp_path, f"{SHA_A}  ok.png\n{SHA_A}  {path}\n")
    with pytest.raises(ManifestError) as ei:
        parse_manifest(p)
    msg = str(ei.value)
    assert str(p) in msg and "line 2" in msg and why in msg
    assert isinstance(ei.value, InputError)


def test_rejects_paths_differing_only_in_case(tmp_path):
    p = _manifest(tmp_path, f"{SHA_A}  Sources/A.png\n{SHA_A}  sources/a.png\n")
    with pytest.raises(ManifestError, match=r"line 2: paths differ only in case.*line 1"):
        parse_manifest(p)


def test_rejects_duplicate_path(tmp_path):
    p = _manifest(tmp_path, f"{SHA_A}  a.png\n{SHA_A}  a.png\n")
    with pytest.raises(ManifestError, match="duplicate path"):
        parse_manifest(p)


@pytest.mark.parametrize(
    "line",
    [
        f"{SHA_A[:-1]}  a.png",  # 63 hex
        f"{SHA_A}0  a.png",  # 65 hex
        f"{SHA_A} a.png",  # one space
        f"{SHA_A}\ta.png",  # tab
        f"{SHA_A}  ",  # no path
        f"{'g' * 64}  a.png",  # not hex
        "a.png",
        f"# comment {SHA_A}",
    ],
)
def test_rejects_malformed_lines(tmp_path, line):
    p = _manifest(tmp_path, f"{SHA_A}  ok.png\n{line}\n")
    with pytest.raises(ManifestError, match=r"line 2: malformed line"):
        parse_manifest(p)


@pytest.mark.parametrize("text", ["", "\n\n", "   \n"])
def test_rejects_empty_manifest(tmp_path, text):
    p = _manifest(tmp_path, text)
    with pytest.raises(ManifestError, match="empty manifest"):
        parse_manifest(p)


def test_missing_manifest_is_input_error(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        parse_manifest(tmp_path / "nope.txt")


def test_tampered_file_names_file_and_both_hashes(bundle):
    m = write_manifest(bundle)
    (bundle / "sources" / "b.png").write_bytes(b"BETA\n")
    with pytest.raises(ChecksumMismatchError) as ei:
        verify_manifest(m)
    msg = str(ei.value)
    assert "sources/b.png" in msg and str(m) in msg and "line 3" in msg
    assert hashlib.sha256(b"beta\n").hexdigest() in msg  # expected
    assert hashlib.sha256(b"BETA\n").hexdigest() in msg  # actual
    assert msg.index("expected") < msg.index("actual")
    assert len(ei.value.failures) == 1


def test_missing_file_and_several_failures_reported(bundle):
    m = write_manifest(bundle)
    (bundle / "sources" / "a.png").unlink()
    (bundle / "pairs.csv").write_bytes(b"x")
    with pytest.raises(ChecksumMismatchError) as ei:
        verify_manifest(m)
    fails = {f[1]: f[3] for f in ei.value.failures}
    assert fails["sources/a.png"] == "<missing>"
    assert fails["pairs.csv"] == hashlib.sha256(b"x").hexdigest()
    assert "1 more file(s) failed" in str(ei.value)


def test_explicit_root(bundle, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("m")
    sha = hashlib.sha256(b"alpha\n").hexdigest()
    m = _manifest(elsewhere, f"{sha}  sources/a.png\n")
    assert verify_manifest(m, root=bundle)["n_files"] == 1
    with pytest.raises(ChecksumMismatchError):
        verify_manifest(m)


@pytest.mark.skipif(os.name == "nt", reason="symlinks")
def test_symlink_escaping_bundle_is_refused(bundle, tmp_path_factory):
    outside = tmp_path_factory.mktemp("out") / "secret"
    outside.write_bytes(b"alpha\n")
    (bundle / "link.png").symlink_to(outside)
    m = _manifest(bundle, f"{SHA_A}  link.png\n")
    with pytest.raises(ManifestError, match="outside the bundle"):
        verify_manifest(m)


# ---------------------------------------------------------------- line splitting as released

def test_cr_only_line_endings_are_accepted(tmp_path):
    (tmp_path / "a.png").write_bytes(b"alpha\n")
    (tmp_path / "b.png").write_bytes(b"alpha\n")
    m = tmp_path / "SHA256SUMS.txt"
    m.write_bytes(f"{SHA_A}  a.png\r{SHA_A}  b.png\r".encode())
    assert parse_manifest(m) == [(SHA_A, "a.png"), (SHA_A, "b.png")]
    assert verify_manifest(m)["n_files"] == 2


@pytest.mark.parametrize("sep", ["\u2028", "\u2029", "\x85", "\x0c", "\x0b", "\x1c", "\x1e"])
def test_names_with_a_line_separator_are_rejected(tmp_path, sep):
    """The released verifier cuts lines with str.splitlines: the name's second half is a
    malformed line of its own."""
    p = tmp_path / "SHA256SUMS.txt"
    p.write_bytes(f"{SHA_A}  ok.png\n{SHA_A}  a{sep}b.png\n".encode())
    with pytest.raises(ManifestError, match=r"line 3: malformed line 'b.png'"):
        parse_manifest(p)


def test_write_manifest_refuses_unlistable_names(tmp_path):
    (tmp_path / "a\x0cb.png").write_bytes(b"x")
    with pytest.raises(InputError, match="line separator"):
        write_manifest(tmp_path)


def test_nul_and_non_utf8_are_clean_errors(tmp_path):
    p = tmp_path / "SHA256SUMS.txt"
    p.write_bytes(f"{SHA_A}  a\x00b.png\n".encode())
    with pytest.raises(ManifestError, match="line 1: NUL character in path"):
        parse_manifest(p)
    p.write_bytes(f"{SHA_A}  caf\xe9.png\n".encode("latin-1"))
    with pytest.raises(ManifestError, match="not UTF-8"):
        parse_manifest(p)


def test_byte_order_mark_makes_the_first_line_malformed(tmp_path):
    p = _manifest(tmp_path, f"\ufeff{SHA_A}  a.png\n")
    with pytest.raises(ManifestError, match="line 1: malformed line"):
        parse_manifest(p)
