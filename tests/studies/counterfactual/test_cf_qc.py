"""Counterfactual QC: global SSIM, edge preservation, windowed SSIM, LPIPS policy, tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import ndimage
from skimage.metrics import structural_similarity

from medrepro.studies.counterfactual.qc import table as qc_table
from medrepro.studies.counterfactual.qc import (
    C1,
    C2,
    QC_COLUMNS,
    dilate3x3,
    edge_map,
    edge_preservation,
    global_ssim,
    plot_qc,
    qc_pairs,
    qc_summary,
    load_gray01,
    load_resized_gray01,
    resize_to,
    to_gray01,
    windowed_ssim,
    windowed_ssim_batch,
)
from medrepro.errors import InputError
from medrepro.studies.counterfactual.synthetic import generate_bundle


# ---------------------------------------------------------------- to_gray01

def test_to_gray01_dtypes():
    assert to_gray01(np.array([[0, 255]], dtype=np.uint8)).tolist() == [[0.0, 1.0]]
    assert to_gray01(np.array([[True, False]])).tolist() == [[1.0, 0.0]]
    assert to_gray01(np.array([[-0.5, 0.25, 2.0]])).tolist() == [[0.0, 0.25, 1.0]]
    rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    assert (to_gray01(rgb) == np.float32(76) / np.float32(255)).all()  # Pillow "L": 255 * 299 / 1000 -> 76
    rgba = np.dstack([rgb, np.full((2, 2), 7, np.uint8)])
    assert (to_gray01(rgba) == to_gray01(rgb)).all()  # alpha ignored
    assert to_gray01(np.zeros((3, 4, 1))).shape == (3, 4)
    # 16-bit values saturate like a 16-bit PNG read by the released QC; rescale reads them
    assert (to_gray01(np.array([[0, 200, 1000, 65535]], dtype=np.uint16)) * 255).round().tolist() == [[0, 200, 255, 255]]
    assert np.allclose(to_gray01(np.array([[0, 32896, 65535]], dtype=np.uint16), sixteen_bit="rescale"),
                       [[0.0, 128 / 255, 1.0]])
    with pytest.raises(InputError):
        to_gray01(np.zeros((2, 2, 2, 2)))
    with pytest.raises(InputError, match="sixteen_bit"):
        to_gray01(np.zeros((2, 2), np.uint16), sixteen_bit="exact")


def test_images_load_as_the_released_qc_loads_them(tmp_path):
    a8 = np.array([[0, 128, 255]], dtype=np.uint8)
    Image.fromarray(a8).save(tmp_path / "a8.png")
    got = load_gray01(tmp_path / "a8.png")
    assert got.dtype == np.float32 and (got == a8.astype(np.float32) / 255.0).all()
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]], dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    assert (load_gray01(tmp_path / "rgb.png") * 255).round().tolist() == [[76, 150, 29, 18]]  # convert("L")
    a16 = np.array([[0, 100, 255, 256, 1000, 65535]], dtype=np.uint16)
    Image.fromarray(a16).save(tmp_path / "a16.png")
    assert (load_gray01(tmp_path / "a16.png") * 255).round().tolist() == [[0, 100, 255, 255, 255, 255]]  # saturated
    assert (load_gray01(tmp_path / "a16.png", "rescale") * 255).round().tolist() == [[0, 0, 1, 1, 4, 255]]
    big = Image.fromarray(np.arange(0, 240, 2, dtype=np.uint8).reshape(10, 12))
    big.save(tmp_path / "big.png")
    want = np.asarray(big.resize((5, 4), Image.Resampling.BICUBIC), dtype=np.float32) / 255.0
    assert (load_resized_gray01(tmp_path / "big.png", (4, 5)) == want).all()  # 8-bit, Pillow's default filter
    assert (load_resized_gray01(tmp_path / "big.png", (10, 12)) == load_gray01(tmp_path / "big.png")).all()
    assert (resize_to(load_gray01(tmp_path / "big.png"), (4, 5)) == want).all()
    with pytest.raises(InputError, match="file not found"):
        to_gray01(tmp_path / "missing.png")


def _ref_images(tmp_path):
    rng = np.random.default_rng(0)
    src = ndimage.gaussian_filter(rng.random((40, 40)), 3)
    src = (src - src.min()) / (src.max() - src.min())
    Image.fromarray((src * 255).round().astype(np.uint8)).save(tmp_path / "s.png")
    Image.fromarray((src * 255).round().astype(np.uint8)).resize((80, 80), Image.Resampling.BILINEAR).save(tmp_path / "c.png")
    rgb = np.dstack([src, src**2, 1 - src])
    Image.fromarray((rgb * 255).round().astype(np.uint8)).resize((52, 61)).save(tmp_path / "c_rgb.png")
    Image.fromarray((src * 60000).round().astype(np.uint16)).save(tmp_path / "s16.png")
    Image.fromarray((np.clip(src + 0.02, 0, 1) * 60000).round().astype(np.uint16)).save(tmp_path / "c16.png")
    return [
        {"pair_id": f"s__{e}", "source_id": "s", "edit": e, "source_path": sp, "cf_path": cp}
        for e, sp, cp in (("young_male", "s.png", "c.png"), ("young_female", "s.png", "c_rgb.png"),
                          ("elderly_male", "s16.png", "c16.png"))
    ]


def test_qc_values_equal_the_released_qc(tmp_path):
    """SSIM and edge preservation of the released QC (``compute_qc``) on the same files:
    a counterfactual twice the source's size, an RGB one of another size and a 16-bit pair
    (saturated, as released)."""
    t = qc_pairs(tmp_path, _ref_images(tmp_path), policy="off")
    assert t["ssim"].tolist() == [0.9998894266230135, 0.9120667845353989, 0.588208738271772]
    assert t["edge_preservation"].tolist() == [1.0, 0.8909090909090909, 0.0]
    rescaled = qc_pairs(tmp_path, _ref_images(tmp_path), policy="off", sixteen_bit="rescale")
    assert rescaled["ssim"].iloc[2] > 0.9 and rescaled["ssim"].iloc[0] == t["ssim"].iloc[0]


# ---------------------------------------------------------------- global SSIM

def _ssim_by_hand(a, b):
    ma, mb = a.mean(), b.mean()
    va, vb = ((a - ma) ** 2).mean(), ((b - mb) ** 2).mean()
    cov = ((a - ma) * (b - mb)).mean()
    return ((2 * ma * mb + C1) * (2 * cov + C2)) / ((ma**2 + mb**2 + C1) * (va + vb + C2))


def test_global_ssim_formula_and_identity():
    rng = np.random.default_rng(0)
    a = rng.random((20, 30))
    b = np.clip(a * 0.8 + rng.normal(0, 0.1, a.shape), 0, 1)
    assert global_ssim(a, a) == pytest.approx(1.0, abs=1e-15)
    assert global_ssim(a, b) == pytest.approx(_ssim_by_hand(a, b), abs=1e-14)
    # constant images: the luminance term only
    c, d = np.full((5, 5), 0.5), np.full((5, 5), 0.6)
    assert global_ssim(c, d) == pytest.approx((2 * 0.3 + C1) / (0.61 + C1), abs=1e-14)
    assert C1 == 0.01**2 and C2 == 0.03**2


@pytest.mark.parametrize("side", [31, 63])
def test_global_ssim_matches_skimage_full_window(side):
    """skimage with one uniform window as large as the (odd, square) image, population
    covariance and data_range 1: after cropping the window radius only the central pixel is
    left, whose window is exactly the whole image -> the global SSIM."""
    rng = np.random.default_rng(side)
    a = rng.random((side, side))
    b = np.clip(0.9 * a + 0.05 + rng.normal(0, 0.15, a.shape), 0, 1)
    ref = structural_similarity(a, b, win_size=side, gaussian_weights=False, use_sample_covariance=False,
                                data_range=1.0)
    assert global_ssim(a, b) == pytest.approx(ref, abs=1e-12)  # observed ~1e-15


def test_global_ssim_shape_mismatch():
    with pytest.raises(InputError, match="resize"):
        global_ssim(np.zeros((4, 4)), np.zeros((4, 5)))


# ---------------------------------------------------------------- edges

def test_edge_map_vertical_step():
    a = np.zeros((10, 10))
    a[:, 5:] = 1.0
    e = edge_map(a)
    # gx = a[:, c+1] - a[:, c-1] is 1 at columns 4 and 5; magnitude mean 0.2, std 0.4
    expected = np.zeros((10, 10), bool)
    expected[:, 4:6] = True
    assert (e == expected).all()


def test_edge_map_borders_are_zero():
    a = np.zeros((8, 8))
    a[:, 1:] = 1.0  # the step sits next to the left border: gx[:, 0] is a border, stays 0
    e = edge_map(a)
    assert e[:, 1].all() and not e[:, 0].any() and not e[:, 2:].any()
    b = np.zeros((8, 8))
    b[1:, :] = 1.0
    eb = edge_map(b)
    assert eb[1, :].all() and not eb[0, :].any() and not eb[2:, :].any()


def test_edge_threshold_floor():
    a = np.zeros((8, 8))
    a[:, 4:] = 1e-9  # magnitude 1e-9 < 1e-6 floor: no edges
    assert not edge_map(a).any()
    assert not edge_map(np.full((8, 8), 0.3)).any()


def test_dilate3x3_against_scipy():
    rng = np.random.default_rng(1)
    e = rng.random((3, 17, 23)) > 0.93
    for k in range(3):
        ref = ndimage.binary_dilation(e[k], structure=np.ones((3, 3), bool))
        assert (dilate3x3(e[k]) == ref).all()
    assert (dilate3x3(e) == np.stack([ndimage.binary_dilation(x, np.ones((3, 3))) for x in e])).all()


def test_edge_preservation_hand_made():
    a = np.zeros((12, 12))
    a[:, 6:] = 1.0
    assert edge_preservation(a, a) == 1.0
    assert edge_preservation(a, np.roll(a, 1, axis=1)) == 1.0  # within the 3x3 dilation
    b = np.zeros((12, 12))
    b[:, 9:] = 1.0  # edges at columns 8, 9 vs source 5, 6: dilated 7..10 -> no overlap
    assert edge_preservation(a, b) == 0.0
    c = np.zeros((12, 12))
    c[:, 7:] = 1.0  # edges 6, 7, dilated 5..8: both source columns 5, 6 covered
    assert edge_preservation(a, c) == 1.0
    d = np.zeros((12, 12))
    d[:, 8:] = 1.0  # edges 7, 8, dilated 6..9: source column 6 covered, 5 not
    assert edge_preservation(a, d) == 0.5
    blank = np.full((12, 12), 0.4)
    assert edge_preservation(blank, a) == 1.0  # no source edges -> 1.0 (frozen quirk)
    assert edge_preservation(a, blank) == 0.0


def _edge_pres_scipy(src, cf):
    def emap(x):
        k = np.array([-1.0, 0.0, 1.0])
        gx = ndimage.correlate1d(x, k, axis=1, mode="constant")
        gy = ndimage.correlate1d(x, k, axis=0, mode="constant")
        gx[:, [0, -1]] = 0
        gy[[0, -1], :] = 0
        m = np.hypot(gx, gy)
        return m > max(m.mean() + m.std(), 1e-6)

    es, ec = emap(src), ndimage.binary_dilation(emap(cf), structure=np.ones((3, 3)))
    return 1.0 if es.sum() == 0 else (es & ec).sum() / es.sum()


def test_edge_preservation_matches_straightforward_scipy_version():
    rng = np.random.default_rng(2)
    for _ in range(5):
        a = ndimage.gaussian_filter(rng.random((40, 50)), 2)
        b = np.clip(a + rng.normal(0, 0.02, a.shape), 0, 1)
        assert edge_preservation(a, b) == pytest.approx(_edge_pres_scipy(a, b), abs=1e-15)


def test_windowed_ssim_batch_equals_skimage():
    rng = np.random.default_rng(3)
    a = ndimage.gaussian_filter(rng.random((48, 40)), 1.5)
    cfs = np.clip(a[None] + rng.normal(0, 0.05, (3, 48, 40)), 0, 1)
    got = windowed_ssim_batch(a, cfs)
    for k in range(3):
        assert got[k] == pytest.approx(structural_similarity(a, cfs[k], data_range=1.0), abs=1e-12)
        assert windowed_ssim(a, cfs[k]) == structural_similarity(a, cfs[k], data_range=1.0)


# ---------------------------------------------------------------- qc_pairs

@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundle")
    info = generate_bundle(root, n_sources=6, size=64, degraded_fraction=0.25, seed=5)
    return info


def test_qc_pairs_table_and_degraded_fail(tiny_bundle):
    t = qc_pairs(tiny_bundle["root"], tiny_bundle["pairs_csv"], policy="off", workers=2)
    assert list(t.columns) == QC_COLUMNS and len(t) == 24
    pairs = pd.read_csv(tiny_bundle["pairs_csv"])
    assert t["pair_id"].tolist() == pairs["pair_id"].tolist()
    truth = pd.read_csv(tiny_bundle["truth_csv"]).set_index("pair_id").loc[t["pair_id"]]
    assert (t["qc_pass"].to_numpy() == (truth["degraded"].to_numpy() == 0)).all()
    assert t["lpips"].isna().all() and t["pass_lpips"].isna().all() and (t["lpips_status"] == "off").all()
    assert (t["qc_pass"] == (t["pass_ssim"] & t["pass_edge"])).all()
    # same numbers as the per-pair functions
    r = t.iloc[0]
    s = to_gray01(f"{tiny_bundle['root']}/{r['source_path']}")
    c = to_gray01(f"{tiny_bundle['root']}/{r['cf_path']}")
    assert r["ssim"] == pytest.approx(global_ssim(s, c), abs=1e-14)
    assert r["edge_preservation"] == pytest.approx(edge_preservation(s, c), abs=1e-14)
    assert r["ssim_windowed"] == pytest.approx(windowed_ssim(s, c), abs=1e-12)
    # single-threaded gives the same table
    t1 = qc_pairs(tiny_bundle["root"], tiny_bundle["pairs_csv"], policy="off", workers=1)
    pd.testing.assert_frame_equal(t, t1)


def test_lpips_policy_optional_and_required_without_lpips(tiny_bundle, monkeypatch):
    monkeypatch.setattr(qc_table, "make_lpips_fn", lambda: (None, "unavailable: no lpips here"))
    opt = qc_pairs(tiny_bundle["root"], tiny_bundle["pairs_csv"], policy="optional")
    off = qc_pairs(tiny_bundle["root"], tiny_bundle["pairs_csv"], policy="off")
    assert (opt["lpips_status"] == "unavailable: no lpips here").all()
    assert opt["pass_lpips"].isna().all()
    assert (opt["qc_pass"] == off["qc_pass"]).all() and (opt["lpips_policy"] == "optional").all()
    req = qc_pairs(tiny_bundle["root"], tiny_bundle["pairs_csv"], policy="required")
    assert not req["qc_pass"].any()  # as the reference: every pair fails
    assert (req["pass_lpips"] == False).all()  # noqa: E712
    assert req["qc_fail_reason"].str.contains("lpips unavailable (required)", regex=False).all()
    assert req["lpips_status"].str.startswith("unavailable (required)").all()


def test_lpips_gates_when_computed(tiny_bundle):
    def fake(src, cfs):
        return np.array([0.1, 0.5, 0.1, 0.5][: len(cfs)])

    t = qc_pairs(tiny_bundle["root"], tiny_bundle["pairs_csv"], policy="optional", lpips_fn=fake)
    assert (t["lpips_status"] == "computed").all()
    assert (t["pass_lpips"].to_numpy(dtype=bool) == (t["lpips"] <= 0.40).to_numpy()).all()
    assert (t["qc_pass"] == (t["pass_ssim"] & t["pass_edge"] & (t["lpips"] <= 0.4))).all()
    assert t.loc[t["lpips"] > 0.4, "qc_fail_reason"].str.contains("lpips>0.4").all()
    t2 = qc_pairs(tiny_bundle["root"], tiny_bundle["pairs_csv"], policy="required", lpips_fn=fake,
                  thresholds={"lpips_max": 0.6})
    assert t2["pass_lpips"].to_numpy(dtype=bool).all()


def test_thresholds_are_parameters(tiny_bundle):
    t = qc_pairs(tiny_bundle["root"], tiny_bundle["pairs_csv"], policy="off", thresholds={"edge_min": 1.01})
    assert not t["pass_edge"].any() and not t["qc_pass"].any()
    with pytest.raises(InputError, match="unknown key"):
        qc_pairs(tiny_bundle["root"], tiny_bundle["pairs_csv"], policy="off", thresholds={"ssim": 0.5})
    with pytest.raises(InputError, match="unknown policy"):
        qc_pairs(tiny_bundle["root"], tiny_bundle["pairs_csv"], policy="maybe")


def test_counterfactual_resized_to_source(tmp_path):
    rng = np.random.default_rng(0)
    src = ndimage.gaussian_filter(rng.random((40, 40)), 3)
    src = (src - src.min()) / (src.max() - src.min())
    Image.fromarray((src * 255).round().astype(np.uint8)).save(tmp_path / "s.png")
    big = Image.fromarray((src * 255).round().astype(np.uint8)).resize((80, 80), Image.Resampling.BILINEAR)
    big.save(tmp_path / "c.png")
    pairs = [{"pair_id": "s__e", "source_id": "s", "edit": "e", "source_path": "s.png", "cf_path": "c.png"}]
    t = qc_pairs(tmp_path, pairs, policy="off")
    assert t.loc[0, "ssim"] > 0.97 and t.loc[0, "qc_pass"]


def test_missing_image_names_pair(tiny_bundle, tmp_path):
    pairs = pd.read_csv(tiny_bundle["pairs_csv"]).head(2)
    pairs.loc[1, "cf_path"] = "counterfactuals/none.png"
    with pytest.raises(InputError, match=r"pair_id='S00000__young_male'\)\.cf_path.*not found"):
        qc_pairs(tiny_bundle["root"], pairs, policy="off")
    with pytest.raises(InputError, match="missing"):
        qc_pairs(tiny_bundle["root"], pairs.drop(columns=["edit"]), policy="off")


def test_qc_summary_and_plot(tiny_bundle, tmp_path):
    t = qc_pairs(tiny_bundle["root"], tiny_bundle["pairs_csv"], policy="off")
    s = qc_summary(t, published=True)
    assert s["n_pairs"] == 24 and s["n_pass"] == int(t["qc_pass"].sum())
    assert s["n_sources"] == 6
    assert s["n_sources_with_pass"] == t.groupby("source_id")["qc_pass"].any().sum()
    assert set(s["by_edit"]) == {"young_female", "young_male", "elderly_female", "elderly_male"}
    assert sum(v["n"] for v in s["by_edit"].values()) == 24
    assert s["comparison"]["qc_passed_pairs"] == {"observed": s["n_pass"], "published": 11795}
    assert s["comparison"]["filtered_sources"]["published"] == 2987
    assert s["comparison"]["sources_with_qc_pass"]["published"] == 2950
    assert "comparison" not in qc_summary(t)
    # from CSV, as the pipeline reads it
    t.to_csv(tmp_path / "qc.csv", index=False)
    s2 = qc_summary(tmp_path / "qc.csv")
    assert s2["n_pass"] == s["n_pass"] and s2["pass_rate_edge"] == s["pass_rate_edge"]
    out = plot_qc(tmp_path / "qc.csv", tiny_bundle["root"], tmp_path / "fig" / "qc.png")
    assert out.stat().st_size > 1000
    with Image.open(out) as im:
        assert im.format == "PNG"
    assert [p.name for p in out.parent.iterdir()] == ["qc.png"]
