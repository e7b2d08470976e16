"""Fixtures of the scoliosis study's tests."""

import numpy as np
import pytest


@pytest.fixture
def npy_pose_loader(monkeypatch):
    """Let rasterizer / PAV tests keep their hand-made poses as .npy files: load_pose reads
    them with numpy instead of the Scoliosis1K pickle reader."""
    import medrepro.studies.scoliosis.data as mod

    monkeypatch.setattr(mod, "load_pose", lambda path, sha256=None: np.load(path))
