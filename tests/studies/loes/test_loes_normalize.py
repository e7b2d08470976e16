"""MRI normalization of the loes study: geometry (RAS, world coordinates through resample and
crop/pad), deterministic valid NIfTI output, z-score, Nyul against TorchIO, the TRAIN-only
landmark rule, N4, and the figure. Volumes are tiny and built here with nibabel."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from skimage.filters import threshold_otsu

from medrepro.errors import InputError
from medrepro.studies.loes import normalize as N
from medrepro.studies.loes.normalize import NormParams

RNG = np.random.default_rng(20240611)
# The 11 percentiles {1, 10, ..., 90, 99} sit at these positions of TorchIO's 13
# (it also trains on 25 and 75 and drops them when applying).
TIO_USED = [0, 1, 2, 4, 5, 6, 7, 8, 10, 11, 12]


def head(shape=(20, 24, 20), seed=0, marker=None) -> np.ndarray:
    """A two-tissue ellipsoid 'head' on a zero background, float32."""
    rng = np.random.default_rng(seed)
    g = np.indices(shape).astype(float)
    c = [(s - 1) / 2 for s in shape]
    r = np.sqrt(sum(((g[i] - c[i]) / (0.4 * shape[i])) ** 2 for i in range(3)))
    x = np.where(r < 1, 60.0, 0.0) + np.where(r < 0.55, 40.0, 0.0)
    x += (r < 1) * rng.gamma(4.0, 2.0, size=shape)
    if marker is not None:
        x[marker] = 1000.0
    return x.astype(np.float32)


def save(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(data.astype(np.float32), affine), str(path))
    return path


def manifest(tmp_path: Path, paths: dict[str, Path], name: str = "manifest.json") -> Path:
    scans = [{"unit_id": f"{u}/ses-01/{u}_ses-01", "subject": u, "scan": f"{u}_ses-01", "path": str(p)}
             for u, p in paths.items()]
    out = tmp_path / name
    out.write_text(json.dumps({"scans": scans}))
    return out


def uid(subject: str) -> str:
    return f"{subject}/ses-01/{subject}_ses-01"


def world(affine: np.ndarray, ijk) -> np.ndarray:
    return affine[:3, :3] @ np.asarray(ijk, dtype=float) + affine[:3, 3]


# The same world image stored three ways: RAS, LPS (axes 0 and 1 flipped) and with permuted axes.
RAS = np.array([[2.0, 0, 0, -19.0], [0, 2.0, 0, -23.0], [0, 0, 2.0, -17.0], [0, 0, 0, 1]])


def three_storages(data: np.ndarray):
    n0, n1, _ = data.shape
    flip = np.array([[-1, 0, 0, n0 - 1], [0, -1, 0, n1 - 1], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=float)
    perm = np.zeros((4, 4))
    perm[:3, :3] = [[0, 1, 0], [0, 0, 1], [1, 0, 0]]  # stored index (k, i, j) -> RAS index (i, j, k)
    perm[3, 3] = 1
    return {"ras": (data, RAS), "lps": (data[::-1, ::-1, :], RAS @ flip), "perm": (data.transpose(2, 0, 1), RAS @ perm)}


# ------------------------------------------------------------------------------------- params

def test_params_from_dict_checks_keys_and_values():
    p = NormParams.from_dict({"spacing": 4, "shape": [40, 48, 40], "intensity": "nyul"})
    assert p.spacing == (4.0, 4.0, 4.0) and p.shape == (40, 48, 40)
    assert set(NormParams.meaning) == set(p.record())
    with pytest.raises(InputError, match="spacng: unknown key"):
        NormParams.from_dict({"spacng": 4}, source="config.yaml")
    with pytest.raises(InputError, match="intensity: bad value"):
        NormParams.from_dict({"intensity": "minmax"})
    with pytest.raises(InputError, match="percentiles"):
        NormParams.from_dict({"percentiles": [50, 10]})


# ----------------------------------------------------------------------------------- geometry

def test_storages_give_ras_and_the_same_world_image(tmp_path):
    marker = (6, 15, 12)
    data = head(marker=marker)
    storages = three_storages(data)
    assert [N.orientation(a) for _, a in storages.values()] == ["RAS", "LPS", "SRA"]
    marker_world = world(RAS, marker)
    params = NormParams(shape=(16, 20, 18), intensity="none")
    outs = {}
    for name, (d, a) in storages.items():
        img = N.load_nifti(save(tmp_path / f"{name}.nii.gz", d, a))
        can, ref = N.to_canonical(img), nib.as_closest_canonical(nib.Nifti1Image(d, a))
        np.testing.assert_array_equal(np.asarray(can.dataobj), np.asarray(ref.dataobj))
        np.testing.assert_allclose(can.affine, ref.affine, atol=1e-12)
        out = N.normalize_image(img, params)
        assert N.orientation(out.affine) == "RAS"
        o = np.asarray(out.dataobj)
        peak = np.unravel_index(np.argmax(o), o.shape)
        np.testing.assert_allclose(world(out.affine, peak), marker_world, atol=1e-9)
        outs[name] = (o, out.affine)
    for name in ("lps", "perm"):
        np.testing.assert_array_equal(outs[name][0], outs["ras"][0])
        np.testing.assert_allclose(outs[name][1], outs["ras"][1], atol=1e-12)


def test_marker_keeps_world_position_through_resample_and_crop(tmp_path):
    """A smooth blob's intensity centroid (world mm) is unchanged by 2 -> 4 mm resampling and
    crop/pad, whatever the storage orientation."""
    shape = (24, 28, 24)
    data = np.zeros(shape)
    g = np.indices(shape).astype(float)
    data[4:20, 4:24, 4:20] = 10.0  # foreground box
    centre = np.array([8.3, 17.6, 13.2])  # blob centre in RAS voxel units
    blob = 500.0 * np.exp(-((g - centre[:, None, None, None]) ** 2).sum(0) / (2 * 2.0**2))
    data = (data + blob).astype(np.float32)
    expected = world(RAS, centre)
    params = NormParams(spacing=(4.0, 4.0, 4.0), shape=(10, 12, 14), intensity="none")
    for name, (d, a) in three_storages(data).items():
        out = N.normalize_image(N.load_nifti(save(tmp_path / f"{name}.nii.gz", d, a)), params)
        o = np.asarray(out.dataobj, dtype=float)
        w = np.clip(o - 10.0, 0, None)
        ijk = (np.indices(o.shape).reshape(3, -1) * w.ravel()).sum(1) / w.sum()
        assert N.orientation(out.affine) == "RAS"
        np.testing.assert_allclose(np.sqrt((out.affine[:3, :3] ** 2).sum(0)), 4.0)
        np.testing.assert_allclose(world(out.affine, ijk), expected, atol=0.3)


def test_resample_reproduces_a_linear_world_function():
    """Trilinear interpolation is exact on a linear function of world position: every output
    voxel must hold f(its own world position); the grid keeps the field-of-view centre."""
    shape = (21, 16, 19)
    affine = np.array([[-2.0, 0, 0, 30.0], [0, -3.0, 0, 40.0], [0, 0, 2.5, -20.0], [0, 0, 0, 1]])
    coef, const = np.array([0.7, -1.3, 2.1]), 5.0
    xyz = np.einsum("ij,j...->i...", affine[:3, :3], np.indices(shape).astype(float)) + affine[:3, 3, None, None, None]
    data = (np.einsum("i,i...->...", coef, xyz) + const).astype(np.float32)
    img = N.to_canonical(nib.Nifti1Image(data, affine))
    out = N.resample(img, (4.0, 4.0, 4.0))
    assert out.shape == (10, 12, 11)  # floor(21*2/4), floor(16*3/4), floor(19*2.5/4)
    o_xyz = np.einsum("ij,j...->i...", out.affine[:3, :3], np.indices(out.shape).astype(float)) \
        + out.affine[:3, 3, None, None, None]
    np.testing.assert_allclose(np.asarray(out.dataobj), np.einsum("i,i...->...", coef, o_xyz) + const, atol=1e-3)
    np.testing.assert_allclose(world(out.affine, (np.array(out.shape) - 1) / 2),
                               world(affine, (np.array(shape) - 1) / 2), atol=1e-9)


def test_crop_or_pad_centres_on_the_foreground_box():
    data = np.arange(10 * 12 * 8, dtype=np.float32).reshape(10, 12, 8) + 1
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [5.0, -7.0, 3.0]
    mask = np.zeros(data.shape, bool)
    mask[2:7, 3:5, 1:8] = True  # box lo (2, 3, 1), hi (7, 5, 8)
    out = N.crop_or_pad(nib.Nifti1Image(data, affine), (3, 6, 10), mask)
    # start = lo + floor((hi - lo - target) / 2)
    start = np.array([2 + (5 - 3) // 2, 3 + (2 - 6) // 2, 1 + (7 - 10) // 2])
    assert tuple(start) == (3, 1, -1)
    o = np.asarray(out.dataobj)
    np.testing.assert_array_equal(o[:, :, 1:9], data[3:6, 1:7, 0:8])
    assert (o[:, :, 0] == 0).all() and (o[:, :, 9] == 0).all()
    np.testing.assert_allclose(world(out.affine, (0, 0, 1)), world(affine, (3, 1, 0)))


def test_resample_and_crop_or_pad_match_torchio():
    """Same grid as tio.Resample (SimpleITK) and same window as tio.CropOrPad(mask_name=...),
    for odd / even boxes and targets, with crop and pad."""
    tio = pytest.importorskip("torchio")
    import torch

    rng = np.random.default_rng(3)
    affine = np.array([[3.5, 0, 0, -60.0], [0, 4.0, 0, -80.0], [0, 0, 4.5, -50.0], [0, 0, 0, 1]])
    data = rng.normal(size=(20, 22, 18)).astype(np.float32)
    ours = N.resample(nib.Nifti1Image(data, affine), (4.0, 4.0, 4.0))
    theirs = tio.Resample(4.0)(tio.ScalarImage(tensor=torch.as_tensor(data[None]), affine=affine))
    np.testing.assert_allclose(ours.affine, theirs.affine, atol=1e-9)
    np.testing.assert_allclose(np.asarray(ours.dataobj), theirs.data[0].numpy(), atol=1e-5)
    for lo, hi, target in [((2, 3, 1), (7, 5, 8), (3, 6, 10)), ((0, 4, 5), (20, 9, 6), (16, 7, 4)),
                           ((5, 5, 5), (6, 6, 6), (9, 8, 24))]:
        mask = np.zeros(data.shape, bool)
        mask[tuple(slice(a, b) for a, b in zip(lo, hi))] = True
        got = N.crop_or_pad(nib.Nifti1Image(data, affine), target, mask)
        subject = tio.Subject(mri=tio.ScalarImage(tensor=torch.as_tensor(data[None]), affine=affine),
                              fg=tio.LabelMap(tensor=torch.as_tensor(mask[None].astype(np.uint8)), affine=affine))
        want = tio.CropOrPad(target, mask_name="fg")(subject)["mri"]
        np.testing.assert_array_equal(np.asarray(got.dataobj), want.data[0].numpy())
        np.testing.assert_allclose(got.affine, want.affine, atol=1e-9)


# ------------------------------------------------------------------------------ output files

def test_outputs_are_valid_ras_nifti_and_byte_identical(tmp_path):
    paths = {}
    for s, (name, (d, a)) in zip(("sub-01", "sub-02", "sub-03"), three_storages(head(seed=3)).items()):
        paths[s] = save(tmp_path / f"{name}.nii.gz", d * (1 + 0.1 * len(paths)), a)
    m = manifest(tmp_path, paths)
    params = NormParams(spacing=(3.0, 3.0, 3.0), shape=(14, 16, 14))
    runs = []
    for r, workers in (("a", 1), ("b", 2)):  # the bytes depend neither on the run nor on the threads
        index = N.normalize_variant(m, params, tmp_path / r / "prep", tmp_path / r / "fig.png", workers=workers)
        runs.append(tmp_path / r)
    files = sorted(p.name for p in (runs[0] / "prep").iterdir())
    assert files == ["index.json", "sub-01_ses-01.nii.gz", "sub-02_ses-01.nii.gz", "sub-03_ses-01.nii.gz"]
    for f in files:
        assert (runs[0] / "prep" / f).read_bytes() == (runs[1] / "prep" / f).read_bytes(), f
    assert (runs[0] / "fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a second run into an existing folder replaces it whole
    N.normalize_variant(m, params, runs[0] / "prep", None)
    assert sorted(p.name for p in (runs[0] / "prep").iterdir()) == files
    assert [p.name for p in runs[0].iterdir() if p.name.startswith(".")] == []
    doc = json.loads((runs[0] / "prep" / "index.json").read_text())
    assert doc["schema"] == "medrepro-loes-prep-v1" and doc == json.loads(json.dumps(index))
    assert [doc["scans"][uid(s)]["orientation_in"] for s in paths] == ["RAS", "LPS", "SRA"]
    expected_affine = None
    for s in paths:
        e = doc["scans"][uid(s)]
        img = nib.load(str(runs[0] / "prep" / e["file"]))
        assert img.get_data_dtype() == np.float32 and img.shape == (14, 16, 14) == tuple(e["shape"])
        assert nib.aff2axcodes(img.affine) == ("R", "A", "S") and e["orientation_out"] == "RAS"
        assert int(img.header["sform_code"]) > 0 and int(img.header["qform_code"]) > 0
        np.testing.assert_allclose(img.header.get_qform(), img.affine, atol=1e-5)
        np.testing.assert_allclose(img.header.get_zooms(), (3.0, 3.0, 3.0))
        d = np.asarray(img.dataobj, dtype=np.float64)
        assert abs(d.mean()) < 1e-5 and abs(d.std() - 1) < 1e-5  # whole-volume z-score
        assert abs(e["mean"] - d.mean()) < 1e-9 and abs(e["std"] - d.std()) < 1e-9
        if expected_affine is None:
            expected_affine = img.affine
        np.testing.assert_allclose(img.affine, expected_affine, atol=1e-5)  # same world grid for all three


def test_output_names_stay_unique():
    scans = [{"unit_id": "sub-1/ses-1/mprage", "scan": "mprage"}, {"unit_id": "sub-2/ses-1/mprage", "scan": "mprage"}]
    assert N.output_names(scans) == {"sub-1/ses-1/mprage": "sub-1__ses-1__mprage.nii.gz",
                                     "sub-2/ses-1/mprage": "sub-2__ses-1__mprage.nii.gz"}
    assert N.output_names(scans[:1]) == {"sub-1/ses-1/mprage": "mprage.nii.gz"}


# ------------------------------------------------------------------------------------ z-score

def test_zscore_volume_and_foreground_match_hand_computation(tmp_path):
    data = head(seed=5)
    mask = data > threshold_otsu(data.ravel())
    v = data.astype(np.float64)
    np.testing.assert_allclose(N.zscore(data), (v - v.mean()) / v.std(), atol=1e-5)
    fg = v[mask]
    np.testing.assert_allclose(N.zscore(data, mask), (v - fg.mean()) / np.sqrt(((fg - fg.mean()) ** 2).mean()),
                               atol=1e-5)
    # through the variant, on the foreground
    m = manifest(tmp_path, {"sub-01": save(tmp_path / "a.nii.gz", data, RAS)})
    N.normalize_variant(m, NormParams(zscore_on="foreground"), tmp_path / "prep", None)
    out = np.asarray(nib.load(str(tmp_path / "prep" / "sub-01_ses-01.nii.gz")).dataobj, dtype=np.float64)
    assert abs(out[mask].mean()) < 1e-5 and abs(out[mask].std() - 1) < 1e-5
    assert out[~mask].mean() < -1.0  # background well below the foreground mean


def test_constant_volume_is_an_error_naming_the_file(tmp_path):
    p = save(tmp_path / "flat_scan.nii.gz", np.full((8, 9, 10), 7.0), RAS)
    m = manifest(tmp_path, {"sub-01": save(tmp_path / "ok.nii.gz", head(), RAS), "sub-02": p})
    with pytest.raises(InputError, match=r"flat_scan\.nii\.gz: intensity: constant volume"):
        N.normalize_variant(m, NormParams(), tmp_path / "prep", tmp_path / "f.png")
    assert not (tmp_path / "prep").exists() and not (tmp_path / "f.png").exists()
    assert [q.name for q in tmp_path.iterdir() if q.name.startswith(".")] == []
    with pytest.raises(InputError, match="flat_scan.nii.gz"):
        N.zscore(np.full((4, 4, 4), 3.0, np.float32), None, p)


# --------------------------------------------------------------------------------------- Nyul

def test_nyul_matches_torchio_histogram_standardization(tmp_path):
    tio = pytest.importorskip("torchio")
    images, masks, ipaths, mpaths = [], [], [], []
    for i in range(4):
        d = head((18, 20, 16), seed=10 + i) * RNG.uniform(0.5, 2.0) + RNG.uniform(0, 30) * (head((18, 20, 16)) > 0)
        d = d.astype(np.float32)
        mk = d > threshold_otsu(d.ravel())
        images.append(d)
        masks.append(mk)
        ipaths.append(save(tmp_path / f"img{i}.nii.gz", d, RAS))
        mpaths.append(save(tmp_path / f"mask{i}.nii.gz", mk.astype(np.float32), RAS))
    tio_landmarks = tio.HistogramStandardization.train(ipaths[:3], mask_path=mpaths[:3], progress=False)
    ours = N.fit_nyul(images[:3], masks[:3])
    np.testing.assert_allclose(ours, tio_landmarks[TIO_USED], rtol=1e-6, atol=1e-4)
    assert ours[0] == 0.0 and ours[-1] == 100.0
    transform = tio.HistogramStandardization({"mri": tio_landmarks}, masking_method="fg")
    for i in range(4):
        subject = tio.Subject(mri=tio.ScalarImage(ipaths[i]), fg=tio.LabelMap(mpaths[i]))
        expected = transform(subject)["mri"].data[0].numpy()
        got = N.apply_nyul(images[i], masks[i], ours)
        assert (images[i] < np.percentile(images[i][masks[i]], 1)).any()  # extrapolation exercised
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=2e-3)


def test_nyul_landmarks_by_hand():
    a = np.arange(101, dtype=np.float32)  # percentile p of 0..100 is p
    b = 2 * a + 10  # same histogram shape, other scale: maps to the same standard scale
    lm = N.fit_nyul([a, b], None, (0, 25, 50, 100), (0, 100))
    np.testing.assert_allclose(lm, [0, 25, 50, 100])
    np.testing.assert_allclose(N.apply_nyul(b, None, lm, (0, 25, 50, 100)), a, atol=1e-4)
    # outside the mask's first / last percentile: the first / last segment extended
    c = np.concatenate([a, [150.0, -10.0]]).astype(np.float32)
    lm2 = np.array([0.0, 10.0, 20.0, 100.0])
    got = N.apply_nyul(c, (c >= 0) & (c <= 100), lm2, (0, 25, 50, 100))
    np.testing.assert_allclose(got[[25, 75, 100]], [10.0, 60.0, 100.0], atol=1e-4)
    assert abs(got[-2] - (100 + (100 - 20) / 50 * 50)) < 1e-3
    assert abs(got[-1] - (0 + 10 / 25 * -10)) < 1e-4


def _nyul_case(tmp_path: Path, name: str, test_seeds: tuple[int, int], train_seed: int = 3):
    d = tmp_path / name
    d.mkdir()
    paths = {}
    for s, seed in (("sub-01", 1), ("sub-02", 2), ("sub-03", train_seed)):
        paths[s] = save(d / f"{s}.nii.gz", head(seed=seed), RAS)
    for s, seed in zip(("sub-04", "sub-05"), test_seeds):
        paths[s] = save(d / f"{s}.nii.gz", head(seed=seed) ** 1.3, RAS)
    m = manifest(d, paths)
    split = d / "split.json"
    split.write_text(json.dumps({"train": [uid("sub-02"), uid("sub-01"), uid("sub-03")], "val": [],
                                 "test": [uid("sub-04"), uid("sub-05")]}))
    params = NormParams(spacing=(3.0, 3.0, 3.0), shape=(14, 16, 14), intensity="nyul")
    return N.fit_nyul_landmarks(m, split, params, d / "landmarks.json"), m, params


def test_nyul_landmarks_come_from_train_only(tmp_path):
    """Fails if TEST volumes move the landmarks; changing one TRAIN volume must move them."""
    a, _, _ = _nyul_case(tmp_path, "a", (4, 5))
    b, _, _ = _nyul_case(tmp_path, "b", (40, 50))  # other test volumes
    c, _, _ = _nyul_case(tmp_path, "c", (4, 5), train_seed=30)  # one train volume changed
    assert a["fitted_on"] == sorted(uid(s) for s in ("sub-01", "sub-02", "sub-03")) and a["n_images"] == 3
    assert a["landmarks"] == b["landmarks"]
    assert (tmp_path / "a" / "landmarks.json").read_bytes() == (tmp_path / "b" / "landmarks.json").read_bytes()
    assert np.abs(np.subtract(a["landmarks"], c["landmarks"])).max() > 1e-3
    assert json.loads((tmp_path / "a" / "landmarks.json").read_text())["schema"] == "medrepro-loes-nyul-v1"


def test_nyul_variant_needs_matching_landmarks(tmp_path):
    doc, m, params = _nyul_case(tmp_path, "a", (4, 5))
    with pytest.raises(InputError, match="nyul without landmarks_json"):
        N.normalize_variant(m, params, tmp_path / "prep", tmp_path / "f.png")
    other = NormParams(spacing=(2.0, 2.0, 2.0), shape=(14, 16, 14), intensity="nyul")
    with pytest.raises(InputError, match=r"landmarks.json: params.spacing"):
        N.normalize_variant(m, other, tmp_path / "prep", tmp_path / "f.png", tmp_path / "a" / "landmarks.json")
    index = N.normalize_variant(m, params, tmp_path / "prep", None, tmp_path / "a" / "landmarks.json")
    assert len(index["landmarks_sha256"]) == 64 and len(index["scans"]) == 5
    leaky = tmp_path / "a" / "leaky.json"
    leaky.write_text(json.dumps({"train": [uid("sub-01"), uid("sub-04")], "test": [uid("sub-04")]}))
    with pytest.raises(InputError, match="leaky.json: train: units also in val/test"):
        N.fit_nyul_landmarks(m, leaky, params, tmp_path / "lm.json")


# ----------------------------------------------------------------------------------------- N4

def test_n4_reduces_a_planted_bias_field():
    """A smooth multiplicative field on a two-tissue sphere: the white-matter coefficient of
    variation must drop well below its biased value, the same on a second run."""
    pytest.importorskip("SimpleITK")
    shape = (24, 24, 24)
    c = (shape[0] - 1) / 2
    g = np.indices(shape).astype(float)
    r = np.sqrt(((g - c) ** 2).sum(0)) / (0.44 * shape[0])
    wm = r < 0.6
    rng = np.random.default_rng(7)
    clean = np.where(r < 1, 70.0, 0.0) + np.where(wm, 30.0, 0.0) + (r < 1) * rng.normal(0, 1.0, shape)
    bias = np.exp(0.35 * (g[0] - c) / c + 0.2 * ((g[1] - c) / c) ** 2)
    data = (clean * bias).astype(np.float32)
    img = nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0]))
    mask = data > threshold_otsu(data.ravel())

    def cv(x):
        return x[wm].std() / x[wm].mean()

    out = np.asarray(N.n4_correct(img, mask, shrink=2).dataobj)
    assert cv(data) > 0.05 and cv(out) < 0.3 * cv(data), (cv(data), cv(out))
    np.testing.assert_array_equal(out, np.asarray(N.n4_correct(img, mask, shrink=2).dataobj))


def test_n4_without_simpleitk_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "SimpleITK", None)
    m = manifest(tmp_path, {"sub-01": save(tmp_path / "a.nii.gz", head(), RAS)})
    with pytest.raises(InputError, match=r"n4: true needs SimpleITK: pip install 'medrepro\[n4\]'") as err:
        N.normalize_variant(m, NormParams(n4=True), tmp_path / "prep", tmp_path / "f.png")
    assert isinstance(err.value, N.MissingExtra)
    assert not (tmp_path / "prep").exists()
