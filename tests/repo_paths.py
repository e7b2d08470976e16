"""Where the repository is, for tests in any folder (tests/ is on sys.path via conftest)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
