"""Untrusted and changed inputs of the scoliosis study: bounded pickles, files checked against
the manifest, checkpoints checked against the run they are evaluated for, plan-time config
checks."""

import copy
import pickle

import numpy as np
import pytest
import torch

import medrepro.studies.scoliosis  # noqa: F401  registers the models
from medrepro import workflow as mw
from medrepro.errors import InputError, MismatchError
from medrepro.safe_pickle import loads_array
from medrepro.studies.scoliosis import layout as scl
from medrepro.studies.scoliosis.data import Limits, build_manifest, load_pose, load_silhouette
from medrepro.studies.scoliosis.evaluate import load_checkpoint
from medrepro.studies.scoliosis.synthetic import SyntheticScoliosisParams, generate_scoliosis1k
from medrepro.train.registry import build_model


class _Declares:
    """A pickle that asks numpy for a huge array without carrying its data."""

    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


@pytest.mark.parametrize("payload", [
    _Declares(np.ndarray, ((2_000_000, 17, 3),)),
    _Declares(np._core.multiarray._reconstruct, (np.ndarray, (100_000_000, 17, 3), b"b")),
])
def test_a_pickle_declaring_a_huge_array_is_refused_before_allocation(payload):
    data = pickle.dumps(payload, protocol=4)
    assert len(data) < 100
    with pytest.raises(InputError, match=r"evil.pkl: pickle: declares an array of shape"):
        loads_array(data, "evil.pkl", max_bytes=50_000_000)


def test_frame_and_byte_limits_of_sequence_files(tmp_path):
    path = tmp_path / "p.pkl"
    path.write_bytes(pickle.dumps(np.zeros((50, 17, 3), np.float32)))
    assert load_pose(path).shape == (50, 17, 3)
    from medrepro.studies.scoliosis.data import _pose_from_bytes

    with pytest.raises(InputError, match="50 frames.*at most 10"):
        _pose_from_bytes(path.read_bytes(), path, Limits(max_frames=10))
    with pytest.raises(InputError, match="at most 100 bytes"):
        _pose_from_bytes(path.read_bytes(), path, Limits(max_bytes=100))


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("sc")
    generate_scoliosis1k(root / "data", SyntheticScoliosisParams(n_positive=3, n_neutral=3, n_negative=9,
                                                                 test_per_class=1, frames_min=8, frames_max=10))
    manifest = build_manifest(root / "data/Scoliosis1K-pose-pkl", root / "data/Scoliosis1K-sil-pkl",
                              root / "manifest.json")
    return root, manifest


def test_a_file_changed_after_the_manifest_fails_its_reader(tree, tmp_path):
    root, manifest = tree
    entry = manifest["sequences"][0]
    path = root / "data/Scoliosis1K-pose-pkl" / entry["pose"]
    original = path.read_bytes()
    assert load_pose(path, sha256=entry["pose_sha256"]).shape[0] == entry["frames"]
    try:
        pose = load_pose(path)
        pose[0, 0, 0] += 1.0
        path.write_bytes(pickle.dumps(pose))
        with pytest.raises(MismatchError, match=rf"{entry['pose']}: sha256: .*the manifest recorded"):
            load_pose(path, sha256=entry["pose_sha256"])
    finally:
        path.write_bytes(original)
    sil = root / "data/Scoliosis1K-sil-pkl" / entry["sil"]
    with pytest.raises(MismatchError):
        load_silhouette(sil, sha256="0" * 64)


def test_skeleton_maps_and_pav_check_the_manifest(tree, tmp_path):
    from medrepro.studies.scoliosis.pav import build_pav
    from medrepro.studies.scoliosis.skeleton_maps import SkeletonMapParams, build_skeleton_maps

    root, manifest = tree
    entry = manifest["sequences"][-1]
    path = root / "data/Scoliosis1K-pose-pkl" / entry["pose"]
    original = path.read_bytes()
    pose = load_pose(path)
    path.write_bytes(pickle.dumps(pose * 1.01))
    try:
        with pytest.raises(MismatchError, match=entry["pose"]):
            build_skeleton_maps(root / "manifest.json", tmp_path / "maps", SkeletonMapParams())
        assert not (tmp_path / "maps").exists()
        split = tmp_path / "split.json"
        split.write_text('{"train": [], "val": [], "test": []}')
        with pytest.raises(MismatchError, match=entry["pose"]):
            build_pav(root / "manifest.json", split, tmp_path / "pav.npz", tmp_path / "stats.json")
    finally:
        path.write_bytes(original)


def _checkpoint(tmp_path, **meta):
    model = build_model("sconet", in_channels=2, n_classes=3, width=0.0625)
    base = {"model": "sconet", "in_channels": 2, "n_classes": 3, "width": 0.0625, "run": "a", "input": "x",
            "split": "112", "config_fingerprint": "f"}
    path = tmp_path / "c.pt"
    torch.save({"state_dict": model.state_dict(), "meta": {**base, **meta}}, path)
    return path


@pytest.mark.parametrize("meta,field", [({"width": 64}, "meta.width"), ({"in_channels": 300}, "meta.in_channels"),
                                        ({"n_classes": 10**6}, "meta.n_classes"), ({"model": "resnet"}, "meta.model")])
def test_a_checkpoint_asking_for_a_huge_or_unknown_model_is_refused(tmp_path, meta, field):
    with pytest.raises(InputError, match=rf"c.pt: {field}:"):
        load_checkpoint(_checkpoint(tmp_path, **meta))


def test_a_checkpoint_of_another_run_is_refused(tmp_path):
    path = _checkpoint(tmp_path)
    load_checkpoint(path, {"run": "a", "model": "sconet"})
    with pytest.raises(InputError, match=r"meta.run: 'a' \(expected 'b'"):
        load_checkpoint(path, {"run": "b"})
    with pytest.raises(InputError, match="meta.config_fingerprint"):
        load_checkpoint(path, {"config_fingerprint": "other"})


def _config(**runs):
    cfg = {"results": "r", "studies": {"scoliosis": {
        "data": {"splits": {"112": "a.json"}}, "skeleton_maps": {"body": {}},
        "train_defaults": {}, "runs": {
            "a": {"model": "sconet", "input": "skeleton_maps.body", "split": "112", "seeds": [0]}}}}}
    cfg["studies"]["scoliosis"]["runs"].update(copy.deepcopy(runs))
    return cfg


@pytest.mark.parametrize("runs,needle", [
    ({"b": {"model": "sconet", "input": "silhouette", "split": "112", "seeds": [0], "init_from": "a"}},
     "runs.b.init_from: run 'a' has input"),
    ({"b": {"model": "drf", "input": "skeleton_maps.body", "split": "112", "seeds": [0], "init_from": "a"}},
     "runs.b.init_from: run 'a' has model"),
    ({"b": {"model": "sconet", "input": "skeleton_maps.body", "split": "112", "seeds": [0], "init_from": "c"},
      "c": {"model": "sconet", "input": "skeleton_maps.body", "split": "112", "seeds": [0], "init_from": "b"}},
     "init_from: cycle b -> c -> b"),
    ({"b/c": {"model": "sconet", "input": "silhouette", "split": "112", "seeds": [0]}}, "plain identifiers"),
    ({"b": {"model": "sconet", "input": "silhouette", "split": "999", "seeds": [0]}}, "runs.b.split: no split '999'"),
    ({"b": {"model": "sconet", "input": "silhouette", "split": "112", "seeds": [0, 0]}}, "runs.b.seeds: duplicate"),
    ({"b": {"model": "sconet", "input": "skeleton_maps.nope", "split": "112", "seeds": [0]}}, "variant 'nope'"),
    ({"b": {"model": "sconet", "input": "silhouette", "split": "112", "seeds": [0], "init_from": "zz"}},
     "no run named 'zz'"),
])
def test_config_mistakes_are_caught_at_plan_time_naming_the_key(runs, needle):
    with pytest.raises((ValueError, KeyError), match=needle):
        scl.check_config(_config(**runs))


def test_a_good_config_passes():
    scl.check_config(_config(b={"model": "sconet", "input": "skeleton_maps.body", "split": "112", "seeds": [0, 1],
                                "init_from": "a"}))
    assert mw.init_chain(_config(), "scoliosis", "a")[0]["model"] == "sconet"
