"""The QC job re-checks what it reads: a bundle changed after verification fails it, naming the
file, before any QC output is written."""

import pytest

from medrepro.errors import MismatchError
from medrepro.studies.counterfactual.pipeline import run_qc, synthesize, verify_bundle


@pytest.fixture
def verified(tmp_path):
    b = tmp_path / "bundle"
    synthesize(b, tmp_path / "subs", {"n_sources": 4, "size": 48, "degraded_fraction": 0.25, "seed": 3},
               {"m": {"rec_change_rate": 0.3}}, scope=None)
    verify_bundle([b / "SHA256SUMS.txt"], b, b / "pairs.csv", tmp_path / "checks.json")
    return b, tmp_path


def _qc(b, tmp):
    return run_qc(b, b / "pairs.csv", tmp / "checks.json", tmp / "qc.csv", tmp / "qc.json", tmp / "qc.png", lpips="off")


def test_an_untouched_bundle_passes(verified):
    b, tmp = verified
    assert _qc(b, tmp)["n_pairs"] == 16


def test_an_image_replaced_after_verification_fails_qc(verified):
    b, tmp = verified
    image = sorted((b / "counterfactuals").rglob("*.png"))[0]
    source = sorted((b / "sources").rglob("*.png"))[0]
    image.write_bytes(source.read_bytes())  # a perfect "counterfactual": SSIM would be 1.0
    with pytest.raises(MismatchError, match=rf"{image.name}: sha256: .*its manifest recorded"):
        _qc(b, tmp)
    assert not (tmp / "qc.csv").exists() and not (tmp / "qc.json").exists()


def test_a_pairs_table_changed_after_verification_fails_qc(verified):
    b, tmp = verified
    with open(b / "pairs.csv", "a") as f:
        f.write("\n")
    with pytest.raises(MismatchError, match="pairs.csv: sha256: .*verification report recorded"):
        _qc(b, tmp)
