"""Synthetic bundle and simulated submissions, including CI coverage of the true rate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medrepro.studies.counterfactual.checksums import verify_manifest
from medrepro.studies.counterfactual.qc import qc_pairs
from medrepro.studies.counterfactual.score import load_submission, score_submission
from medrepro.studies.counterfactual import synthetic as syn
from medrepro.studies.counterfactual.synthetic import (
    DEFAULT_MODELS,
    EDITS,
    generate_bundle,
    generate_submissions,
    make_counterfactual,
    make_source,
)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn")
    return generate_bundle(root, n_sources=10, size=64, degraded_fraction=0.25, seed=11)


def test_bundle_layout_and_manifest(bundle):
    root = bundle["root"]
    pairs = pd.read_csv(bundle["pairs_csv"])
    assert list(pairs.columns) == ["pair_id", "source_id", "edit", "source_path", "cf_path", "mask_path"]
    assert len(pairs) == 40 and set(pairs["edit"]) == set(EDITS)
    assert (pairs["pair_id"] == pairs["source_id"] + "__" + pairs["edit"]).all()
    r = pairs.iloc[5]
    assert r["cf_path"] == f"counterfactuals/{r['edit']}/{r['pair_id']}.png"
    assert r["source_path"] == f"sources/{r['source_id']}.png" and r["mask_path"] == f"masks/{r['source_id']}.png"
    s = verify_manifest(bundle["manifest"])
    assert s["n_files"] == 10 * 2 + 40 + 2
    with Image.open(f"{root}/{r['mask_path']}") as im:
        mask = np.asarray(im)
    assert set(np.unique(mask)) <= {0, 255} and mask.any()
    with Image.open(f"{root}/{r['source_path']}") as im:
        assert im.size == (64, 64) and im.mode == "L"
    truth = pd.read_csv(bundle["truth_csv"])
    assert truth["degraded"].sum() == bundle["n_degraded"] == 10
    assert set(truth.loc[truth["degraded"] == 1, "degradation"]) <= {"noise", "shift", "blur_noise"}


def test_bundle_is_deterministic(bundle, tmp_path):
    again = generate_bundle(tmp_path / "b", n_sources=10, size=64, degraded_fraction=0.25, seed=11)
    assert Path(again["manifest"]).read_text() == Path(bundle["manifest"]).read_text()


def test_blending_formula():
    rng = np.random.default_rng(0)
    src, mask = make_source(rng, 48)
    assert src.min() >= 0 and src.max() <= 1 and mask.dtype == bool and mask.any() and not mask.all()
    cf_raw = make_counterfactual(src, mask, "elderly_female", np.random.default_rng(1), b=0.0)
    out = make_counterfactual(src, mask, "elderly_female", np.random.default_rng(1))
    m = mask.astype(float)
    np.testing.assert_allclose(out, cf_raw * (1 - m * 0.7) + src * (m * 0.7), atol=1e-15)
    assert np.allclose(out[~mask], cf_raw[~mask]) and not np.allclose(out, src)
    edits = [make_counterfactual(src, mask, e, np.random.default_rng(1)) for e in EDITS]
    assert all(not np.allclose(edits[0], e) for e in edits[1:])  # the perturbation differs by edit


@pytest.mark.parametrize("size", [64, 128])
def test_degraded_edits_fail_and_clean_ones_pass(tmp_path, size):
    info = generate_bundle(tmp_path, n_sources=6, size=size, degraded_fraction=0.3, seed=size)
    t = qc_pairs(info["root"], info["pairs_csv"], policy="off")
    truth = pd.read_csv(info["truth_csv"]).set_index("pair_id").loc[t["pair_id"]]
    assert (t["qc_pass"].to_numpy() == (truth["degraded"].to_numpy() == 0)).all()


def test_generate_submissions_valid_and_readable(bundle, tmp_path):
    paths = generate_submissions(tmp_path / "subs", bundle["pairs_csv"], seed=3)
    assert len(paths) == len(DEFAULT_MODELS) >= 3
    rates = sorted(m["rec_change_rate"] for m in DEFAULT_MODELS.values())
    assert all(b - a >= 0.2 for a, b in zip(rates, rates[1:]))  # clearly different models
    truth = json.loads((tmp_path / "subs" / "truth.json").read_text())
    assert set(truth["models"]) == set(DEFAULT_MODELS)
    for p in paths:
        sub = load_submission(p)
        assert len(sub["results"]) == 40 and sub["scope"] == "qc-passed"
        assert all(r["source_id"] == r["pair_id"].rpartition("__")[0] for r in sub["results"])
    again = generate_submissions(tmp_path / "subs2", bundle["pairs_csv"], seed=3)
    assert [p.read_text() for p in paths] == [p.read_text() for p in again]


def test_rendered_reports_parse_back():
    # the generator checks every report it writes; exercise many draws of each refusal class
    rng = np.random.default_rng(0)
    for refusal in ("GENUINE", "PARTIAL", "FULL"):
        for _ in range(200):
            labels, recs = syn._draw_labels(rng), syn._draw_recs(rng)
            syn._self_check(syn.render_report(labels, recs, refusal, rng), labels, recs, refusal)


def test_ci_covers_true_rec_change_rate():
    """For 20 seeds, the 95 % clustered-bootstrap CI of the recommendation change rate covers
    the generator's true rate (the configured per-pair probability; refusals are independent of
    the change draw, so it is also the expected rate of the usable pairs). Sources carry
    heterogeneous rates (Beta, kappa=4), so the pairs of a source are correlated."""
    rate = 0.35
    model = {"m": {"rec_change_rate": rate, "label_flip_rate": 0.3, "refusal_full_rate": 0.05,
                   "refusal_partial_rate": 0.05}}
    pairs = pd.DataFrame({"source_id": [f"S{i:04d}" for i in range(120) for _ in EDITS]})
    pairs["pair_id"] = pairs["source_id"] + "__" + np.tile(EDITS, 120)
    table = pairs.assign(qc_pass=True)
    covered, widths = 0, []
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        for seed in range(20):
            (path,) = generate_submissions(d, pairs, models=model, seed=seed, source_heterogeneity=4.0)
            s = score_submission(path, table, iterations=1000, seed=42)
            ep = s["endpoints"]["recommendation_change"]
            covered += ep["ci_low"] <= rate <= ep["ci_high"]
            widths.append(ep["ci_high"] - ep["ci_low"])
    assert covered >= 17, covered
    assert 0.05 < np.mean(widths) < 0.2


def test_configured_rates_come_back_through_the_frozen_parsers(tmp_path):
    """Every simulated report is written in the frozen registry's vocabulary, so the scorer
    counts exactly the changes, refusals and partial refusals the generator drew."""
    pairs = pd.DataFrame({"source_id": [f"S{i:04d}" for i in range(150) for _ in EDITS]})
    pairs["pair_id"] = pairs["source_id"] + "__" + np.tile(EDITS, 150)
    table = pairs.assign(qc_pass=True)
    paths = generate_submissions(tmp_path, pairs, seed=5)
    truth = json.loads((tmp_path / "truth.json").read_text())["models"]
    for path in paths:
        s = score_submission(path, table, iterations=200)
        t = truth[s["model"]["name"]]
        assert s["n_pairs_usable"] == t["n_usable_pairs"]
        assert s["endpoints"]["recommendation_change"]["estimate"] == t["n_changed_usable"] / t["n_usable_pairs"]
        assert s["endpoints"]["recommendation_change"]["estimate"] == t["realised_change_fraction_usable"]
        assert s["refusals"]["source"]["FULL"] == t["n_full_refusals"]["source"]
        assert s["refusals"]["counterfactual"]["FULL"] == t["n_full_refusals"]["counterfactual"]
        assert s["refusals"]["partial_pairs_kept"] == t["n_partial_pairs_kept"]
        ep = s["endpoints"]["recommendation_change"]
        assert abs(ep["estimate"] - t["true_rec_change_rate"]) < 0.08  # 600 pairs: the configured rate comes back


def test_pipeline_cuts_simulated_answers_to_the_scope_and_real_submissions_are_strict(tmp_path):
    from medrepro.errors import InputError
    from medrepro.studies.counterfactual.pipeline import run_qc, score_model, synthesize, verify_bundle

    b, subs = tmp_path / "bundle", tmp_path / "subs"
    model = {"m": {"rec_change_rate": 0.3}}
    synthesize(b, subs, {"n_sources": 6, "size": 64, "degraded_fraction": 0.25, "seed": 2}, model, scope=None)
    verify_bundle([b / "SHA256SUMS.txt"], b, b / "pairs.csv", tmp_path / "checks.json")
    qc = run_qc(b, b / "pairs.csv", tmp_path / "checks.json", tmp_path / "qc.csv", tmp_path / "qc.json",
                tmp_path / "qc.png", lpips="off")
    out = {k: tmp_path / f"{k}.out" for k in ("score", "units", "metrics")}
    args = (subs / "m.json", tmp_path / "qc.csv", tmp_path / "checks.json", out["score"], out["units"], out["metrics"])
    met = score_model(*args, run="m", iterations=100)
    assert met["details"]["simulated_answers"] == {"n_written": 24, "n_in_scope": qc["n_pass"]} and qc["n_pass"] < 24
    assert met["details"]["registry"]["sha256"] == json.loads(out["score"].read_text())["registry"]["sha256"]
    with pytest.raises(InputError, match="outside scope 'qc-passed'"):  # a real submission is scored as it is
        score_model(*args, run="m", iterations=100, data_kind="real")
    with pytest.raises(InputError, match="declares 'qc-passed'"):
        score_model(*args, run="m", iterations=100, scope="common-core-1000")
