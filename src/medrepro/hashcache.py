"""sha256 of files, computed once per file per change and shared by every job.

A cache entry is keyed by the file's absolute path and holds the file's size, mtime, ctime,
inode and device when it was hashed; any change to the file changes one of them (a write
updates mtime and ctime, a replacement changes the inode), so a stale entry is never used. The
bytes are always the file's own: no hash is taken from another job's record.

Entries live under ``$MEDREPRO_HASH_CACHE`` (default ``.medrepro/hash-cache`` in the working
directory, i.e. beside the Snakefile); set it to an empty string to disable the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from medrepro.fsutil import sha256_file, write_text

ENV = "MEDREPRO_HASH_CACHE"
DEFAULT_DIR = ".medrepro/hash-cache"


def cache_dir() -> Path | None:
    value = os.environ.get(ENV, DEFAULT_DIR)
    return Path(value) if value else None


def _stamp(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def file_sha256(path: str | Path) -> str:
    """sha256 of the file's bytes, from the cache when the file has not changed since."""
    path = Path(path)
    cdir = cache_dir()
    if cdir is None:
        return sha256_file(path)
    absolute = str(path.resolve())
    entry = cdir / (hashlib.sha256(absolute.encode()).hexdigest() + ".json")
    before = _stamp(path.stat())
    try:
        cached = json.loads(entry.read_text())
        if cached["path"] == absolute and cached["stamp"] == before:
            return cached["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    sha = sha256_file(path)
    if _stamp(path.stat()) == before:  # not written to while we read it
        try:
            write_text(entry, json.dumps({"path": absolute, "stamp": before, "sha256": sha}))
        except OSError:
            pass  # a read-only cache only costs speed
    return sha
