"""Loes readers: the scan CSV (each bad row named by file, line and column), NIfTI header checks
before any data is read, and the cohort manifest."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from medrepro.errors import InputError
from medrepro.studies.loes.data import (
    COLUMNS,
    DEFAULT_PATTERN,
    SPLIT_COLUMNS,
    load_volume,
    read_cohort,
    read_manifest,
    volume_array,
    write_manifest,
)
from medrepro.studies.loes.synthetic import SyntheticLoesParams, synthesize

HEADER = list(COLUMNS) + list(SPLIT_COLUMNS)


def _save(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), path)
    return path


def _image_path(image_dir: Path, subject: str, session: str) -> Path:
    return image_dir / DEFAULT_PATTERN.format(subject=subject, session=session)


def _cohort(tmp_path: Path, rows: list[list[str]], header: list[str] = HEADER,
            images: bool = True) -> tuple[Path, Path]:
    """Write a CSV (header + rows) and a small valid volume for every row; return (csv, image dir)."""
    image_dir = tmp_path / "images"
    image_dir.mkdir(exist_ok=True)
    csv_path = tmp_path / "scans.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    if images:
        for row in rows:
            path = _image_path(image_dir, row[0], row[1])
            if not path.exists():
                _save(path, np.ones((4, 5, 6), np.float32))
    return csv_path, image_dir


GOOD = [
    ["sub-01", "ses-01", "a", "0", "0", "1", "0"],
    ["sub-01", "ses-02", "a", "2.5", "1", "1", "0"],
    ["sub-02", "ses-01", "a", "34", "0", "0", "1"],
]


def _raises(csv_path: Path, image_dir: Path, *parts: str, **kwargs) -> str:
    with pytest.raises(InputError) as info:
        read_cohort(csv_path, image_dir, **kwargs)
    message = str(info.value)
    assert str(csv_path) in message
    for part in parts:
        assert part in message, (part, message)
    return message


# ---------------------------------------------------------------------------------------------
# Good path


@pytest.fixture(scope="module")
def synthetic_cohort(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("loes") / "data"
    synthesize(out, SyntheticLoesParams(n_subjects=6, shape=(16, 20, 16)))
    return out


def test_reads_a_synthetic_cohort(synthetic_cohort):
    cohort = read_cohort(synthetic_cohort / "loes.csv", synthetic_cohort / "images")
    with open(synthetic_cohort / "loes.csv", newline="") as f:
        raw = list(csv.DictReader(f))
    assert len(cohort) == len(raw) > 6
    assert list(cohort.columns) == ["subject", "session", "scan", "score", "gd", "training", "validation",
                                    "path", "unit_id"]
    assert cohort["score"].dtype == np.float64 and cohort["gd"].dtype.kind == "i"
    assert str(cohort["training"].dtype) == "Int64" and str(cohort["validation"].dtype) == "Int64"
    for rec, row in zip(cohort.itertuples(), raw):
        assert rec.subject == row["anonymized_subject_id"] and rec.session == row["anonymized_session_id"]
        assert rec.unit_id == f"{rec.subject}/{rec.session}/{row['scan']}"
        assert rec.score == float(row["loes-score"]) and rec.gd == int(row["Gd-enhanced"])
        assert rec.training == int(row["training"]) and rec.validation == int(row["validation"])
        name = f"{rec.subject}_{rec.session}_space-MNI_brain_mprage_RAVEL.nii.gz"
        assert Path(rec.path) == synthetic_cohort / "images" / name


def test_split_columns_are_optional(tmp_path):
    csv_path, image_dir = _cohort(tmp_path, [r[:5] for r in GOOD], header=list(COLUMNS))
    cohort = read_cohort(csv_path, image_dir)
    assert cohort["training"].isna().all() and cohort["validation"].isna().all()
    assert str(cohort["training"].dtype) == "Int64"
    assert cohort["score"].tolist() == [0.0, 2.5, 34.0]


def test_pattern_and_columns_in_any_order(tmp_path):
    header = ["scan", "Gd-enhanced", "loes-score", "anonymized_session_id", "anonymized_subject_id"]
    rows = [["t1", "1", "3", "ses-01", "sub-01"]]
    csv_path, image_dir = _cohort(tmp_path, rows, header=header, images=False)
    _save(image_dir / "sub-01-ses-01-t1.nii", np.ones((3, 3, 3), np.float32))
    cohort = read_cohort(csv_path, image_dir, pattern="{subject}-{session}-{scan}.nii")
    assert cohort.loc[0, "unit_id"] == "sub-01/ses-01/t1" and cohort.loc[0, "gd"] == 1
    assert cohort.loc[0, "path"] == str(image_dir / "sub-01-ses-01-t1.nii")


# ---------------------------------------------------------------------------------------------
# CSV errors: each names the file, the row as a line of the file (header = line 1), the column


def test_missing_column(tmp_path):
    header = [c for c in HEADER if c != "Gd-enhanced"]
    csv_path, image_dir = _cohort(tmp_path, [r[:4] + r[5:] for r in GOOD], header=header)
    _raises(csv_path, image_dir, "row 1", "missing column(s) Gd-enhanced", "expected columns anonymized_subject_id")


def test_non_numeric_score(tmp_path):
    rows = [r[:] for r in GOOD]
    rows[1][3] = "moderate"
    csv_path, image_dir = _cohort(tmp_path, rows)
    _raises(csv_path, image_dir, "row 3: loes-score", "'moderate' is not a number", "expected a number in [0, 34]")


@pytest.mark.parametrize("value", ["34.5", "-1", "nan"])
def test_score_outside_range(tmp_path, value):
    rows = [r[:] for r in GOOD]
    rows[2][3] = value
    csv_path, image_dir = _cohort(tmp_path, rows)
    _raises(csv_path, image_dir, "row 4: loes-score", f"'{value}' is outside [0, 34]",
            "expected a Loes score in [0, 34]")


def test_score_not_a_half_point(tmp_path):
    rows = [r[:] for r in GOOD]
    rows[0][3] = "2.3"
    csv_path, image_dir = _cohort(tmp_path, rows)
    _raises(csv_path, image_dir, "row 2: loes-score", "not a multiple of 0.5", "steps of 0.5")


@pytest.mark.parametrize("value", ["2", "yes", ""])
def test_gd_not_binary(tmp_path, value):
    rows = [r[:] for r in GOOD]
    rows[1][4] = value
    csv_path, image_dir = _cohort(tmp_path, rows)
    _raises(csv_path, image_dir, "row 3: Gd-enhanced", f"{value!r} is not 0 or 1", "(expected 0 or 1)")


@pytest.mark.parametrize("column", SPLIT_COLUMNS)
def test_split_column_not_binary(tmp_path, column):
    rows = [r[:] for r in GOOD]
    rows[2][HEADER.index(column)] = "0.5"
    csv_path, image_dir = _cohort(tmp_path, rows)
    _raises(csv_path, image_dir, f"row 4: {column}", "'0.5' is not 0 or 1", "(expected 0 or 1)")


def test_duplicate_scan_names_both_rows(tmp_path):
    rows = [r[:] for r in GOOD] + [["sub-01", "ses-02", "a", "3", "0", "1", "0"]]
    csv_path, image_dir = _cohort(tmp_path, rows)
    _raises(csv_path, image_dir, "rows 3 and 5: scan", "sub-01/ses-02/a", "listed twice", "expected each scan once")


def test_row_numbers_are_file_lines(tmp_path):
    csv_path, image_dir = _cohort(tmp_path, GOOD)
    lines = csv_path.read_text().splitlines()
    lines.insert(2, "")  # a blank line: the third data row is now on line 5
    lines[4] = lines[4].replace(",34,", ",40,")
    csv_path.write_text("\n".join(lines) + "\n")
    _raises(csv_path, image_dir, "row 5: loes-score", "'40' is outside")


def test_wrong_number_of_fields(tmp_path):
    csv_path, image_dir = _cohort(tmp_path, GOOD)
    with open(csv_path, "a") as f:
        f.write("sub-03,ses-01,a,1\n")
    _raises(csv_path, image_dir, "row 5", "4 fields", "expected 7 fields")


def test_empty_csv(tmp_path):
    csv_path = tmp_path / "scans.csv"
    csv_path.write_text("")
    _raises(csv_path, tmp_path, "row 1: header", "empty file", "expected a header with columns")


def test_header_only_csv(tmp_path):
    csv_path, image_dir = _cohort(tmp_path, [])
    _raises(csv_path, image_dir, "row 2", "no scans", "expected one row per scan")


def test_missing_nifti(tmp_path):
    csv_path, image_dir = _cohort(tmp_path, GOOD)
    missing = _image_path(image_dir, "sub-01", "ses-02")
    missing.unlink()
    for check in (True, False):
        _raises(csv_path, image_dir, "row 3: image", f"{missing} not found", DEFAULT_PATTERN, check_images=check)


# ---------------------------------------------------------------------------------------------
# Image errors (check_images): the CSV row and the NIfTI file are both named


def _replace_image(tmp_path: Path, write) -> tuple[Path, Path, Path]:
    csv_path, image_dir = _cohort(tmp_path, GOOD)
    path = _image_path(image_dir, "sub-02", "ses-01")
    path.unlink()
    write(path)
    return csv_path, image_dir, path


def test_unreadable_nifti(tmp_path):
    csv_path, image_dir, path = _replace_image(tmp_path, lambda p: p.write_bytes(b"not a nifti file" * 8))
    _raises(csv_path, image_dir, f"row 4: image {path}", "not a readable NIfTI file", "expected a NIfTI-1/2 file")
    assert len(read_cohort(csv_path, image_dir, check_images=False)) == 3  # existence only


def test_truncated_gzip(tmp_path):
    whole = gzip.compress(nib.Nifti1Image(np.ones((20, 20, 20), np.float32), np.eye(4)).to_bytes(), mtime=0)
    csv_path, image_dir, path = _replace_image(tmp_path, lambda p: p.write_bytes(whole[: len(whole) // 2]))
    _raises(csv_path, image_dir, f"row 4: image {path}", "readable")


def test_4d_volume_with_trailing_one(tmp_path):
    csv_path, image_dir, path = _replace_image(tmp_path, lambda p: _save(p, np.ones((4, 5, 6, 1), np.float32)))
    _raises(csv_path, image_dir, f"row 4: image {path}", "4D volume of shape (4, 5, 6, 1)", "expected a 3D volume")


def test_empty_volume(tmp_path):
    csv_path, image_dir, path = _replace_image(tmp_path, lambda p: _save(p, np.ones((4, 0, 6), np.float32)))
    _raises(csv_path, image_dir, f"row 4: image {path}", "zero-size dimension", "every dimension >= 1")


def test_nan_voxels(tmp_path):
    data = np.ones((4, 5, 6), np.float32)
    data[1, 2, 3] = data[0, 0, 0] = np.nan
    data[3, 4, 5] = np.inf
    csv_path, image_dir, path = _replace_image(tmp_path, lambda p: _save(p, data))
    _raises(csv_path, image_dir, f"row 4: image {path}", "2 NaN and 1 infinite voxels", "finite voxel values")


# ---------------------------------------------------------------------------------------------
# load_volume


def _huge_header_file(path: Path, shape: tuple[int, ...]) -> Path:
    header = nib.Nifti1Header()
    header.set_data_dtype(np.float32)
    header.set_data_shape(shape)
    path.write_bytes(header.binaryblock + b"\0" * 4 + b"\0" * 64)  # 352-byte header, 16 voxels of data
    return path


def test_huge_header_refused_before_reading(tmp_path, monkeypatch):
    path = _huge_header_file(tmp_path / "huge.nii", (2048, 2048, 2048))  # 32 GiB of float32 claimed

    def no_read(*args, **kwargs):
        raise AssertionError("voxel data was read")

    monkeypatch.setattr(nib.arrayproxy.ArrayProxy, "__array__", no_read)
    monkeypatch.setattr(nib.arrayproxy.ArrayProxy, "get_unscaled", no_read)
    tracemalloc.start()
    try:
        with pytest.raises(InputError) as info:
            load_volume(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(path) in str(info.value)
    assert f"holds {2048**3} voxels" in str(info.value) and f"at most {512**3} voxels" in str(info.value)
    assert peak < 16 * 2**20


def test_max_voxels_bound_is_inclusive(tmp_path):
    path = _save(tmp_path / "v.nii.gz", np.ones((4, 5, 6), np.float32))
    assert load_volume(path, max_voxels=120).shape == (4, 5, 6)
    with pytest.raises(InputError, match="at most 119 voxels"):
        load_volume(path, max_voxels=119)


def test_load_volume_float32_with_scaling(tmp_path):
    raw = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    img = nib.Nifti1Image(raw, np.diag([2.0, 3.0, 4.0, 1.0]))
    img.header.set_slope_inter(0.5, 10.0)
    path = tmp_path / "s.nii.gz"
    nib.save(img, path)
    out = load_volume(path)
    data = volume_array(out)
    assert data.dtype == np.float32 and isinstance(out, nib.Nifti1Image)
    np.testing.assert_allclose(data, raw * 0.5 + 10.0)
    np.testing.assert_array_equal(out.affine, np.diag([2.0, 3.0, 4.0, 1.0]))
    assert out.get_data_dtype() == np.float32


def test_load_volume_truncated_data(tmp_path):
    noise = np.random.default_rng(0).normal(size=(20, 20, 20)).astype(np.float32)  # compresses poorly
    whole = gzip.compress(nib.Nifti1Image(noise, np.eye(4)).to_bytes(), mtime=0)
    path = tmp_path / "cut.nii.gz"
    path.write_bytes(whole[: int(len(whole) * 0.7)])  # the header survives, the voxels do not
    assert nib.load(path).shape == (20, 20, 20)
    with pytest.raises(InputError) as info:
        load_volume(path)
    assert str(path) in str(info.value) and "voxel data not readable" in str(info.value)


def test_load_volume_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_volume(tmp_path / "nope.nii.gz")


def test_singular_affine_refused(tmp_path):
    img = nib.Nifti1Image(np.ones((3, 3, 3), np.float32), None)
    img.header.set_sform(np.diag([1.0, 0.0, 1.0, 1.0]), code=1)  # a voxel axis of length 0
    path = tmp_path / "flat.nii"
    nib.save(img, path)
    with pytest.raises(InputError, match="invertible"):
        load_volume(path)


# ---------------------------------------------------------------------------------------------
# Manifest


def test_manifest(tmp_path):
    csv_path, image_dir = _cohort(tmp_path, GOOD)
    lps = np.diag([-2.0, -2.0, 3.0, 1.0])
    _save(_image_path(image_dir, "sub-01", "ses-01"), np.zeros((6, 7, 8), np.float32), lps)
    cohort = read_cohort(csv_path, image_dir).iloc[::-1]  # any row order: the manifest sorts
    manifest = write_manifest(cohort, tmp_path / "out" / "manifest.json")
    assert read_manifest(tmp_path / "out" / "manifest.json") == json.loads(json.dumps(manifest))
    assert manifest["schema"] == "medrepro-loes-manifest-v1"
    assert manifest["n_scans"] == 3 and manifest["n_subjects"] == 2
    scans = manifest["scans"]
    assert [s["unit_id"] for s in scans] == ["sub-01/ses-01/a", "sub-01/ses-02/a", "sub-02/ses-01/a"]
    first = scans[0]
    assert first["sha256"] == hashlib.sha256(Path(first["path"]).read_bytes()).hexdigest()
    assert first["shape"] == [6, 7, 8] and first["zooms"] == [2.0, 2.0, 3.0] and first["orientation"] == "LPS"
    assert scans[1]["orientation"] == "RAS" and scans[1]["score"] == 2.5 and scans[1]["gd"] == 1
    assert scans[2]["training"] == 0 and scans[2]["validation"] == 1

    unhashed = write_manifest(read_cohort(csv_path, image_dir, check_images=False).assign(training=pd.NA),
                              tmp_path / "m2.json", hash_files=False)
    assert all(s["sha256"] is None and s["training"] is None for s in unhashed["scans"])


def test_read_manifest_refuses_other_schema(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"schema": "something-else", "scans": [], "n_scans": 0}))
    with pytest.raises(InputError, match="medrepro-loes-manifest-v1"):
        read_manifest(path)
