"""Run the released OpenGait heatmap pretreatment as an oracle (never imported by medrepro).

``load_released(root)`` imports ``datasets/pretreatment_heatmap.py`` from a checkout of
ShiqiYu/OpenGait (the revision medrepro's ``opengait`` preset matches is
``medrepro.studies.scoliosis.skeleton_maps.params.OPENGAIT_COMMIT``), builds its transform with
``configs/skeletongait/pretreatment_heatmap.yaml`` (the one its Scoliosis1K instructions use)
and returns ``pose (T, 17, 3) -> (T, 2, 64, 64) uint8``.

The released module needs opencv (``opencv-python-headless``), matplotlib, scikit-learn, yaml,
tqdm and torch; it imports torchvision only for ``transforms.Compose``, so where torchvision is
not installed a stand-in ``Compose`` is put in its place (nothing else of torchvision is used).
These are not medrepro dependencies: install them next to a checkout, e.g.

    git clone https://github.com/ShiqiYu/OpenGait /tmp/OpenGait
    pip install --target /tmp/og-deps opencv-python-headless==4.10.0.84 tqdm
    PYTHONPATH=/tmp/og-deps .venv/bin/python bench/rasterize.py --opengait /tmp/OpenGait
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path
from typing import Callable

import numpy as np
import yaml


def _compose_stand_in() -> None:
    try:
        import torchvision.transforms  # noqa: F401
        return
    except ImportError:
        pass

    class Compose:
        def __init__(self, transforms):
            self.transforms = list(transforms)

        def __call__(self, x):
            for t in self.transforms:
                x = t(x)
            return x

    pkg = types.ModuleType("torchvision")
    sub = types.ModuleType("torchvision.transforms")
    sub.Compose = Compose
    pkg.transforms = sub
    sys.modules["torchvision"], sys.modules["torchvision.transforms"] = pkg, sub


def load_released(root: str | Path) -> Callable[[np.ndarray], np.ndarray]:
    """The released pretreatment's transform, configured as for Scoliosis1K."""
    root = Path(root)
    script = root / "datasets" / "pretreatment_heatmap.py"
    cfg_path = root / "configs" / "skeletongait" / "pretreatment_heatmap.yaml"
    for path in (script, cfg_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not found (expected a checkout of ShiqiYu/OpenGait)")
    _compose_stand_in()
    spec = importlib.util.spec_from_file_location("opengait_pretreatment_heatmap", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg = mod.replace_variables(cfg, cfg)
    transform = mod.GenerateHeatmapTransform(**cfg)

    def run(pose: np.ndarray) -> np.ndarray:
        return transform(np.array(pose, copy=True))

    return run
