"""Benchmark: loes MRI normalization, ``normalize_variant`` vs a per-volume TorchIO reference.

Both read the same synthetic NIfTI volumes (``--n`` volumes of 40 x 48 x 40 at 3.5 x 4.0 x 4.5 mm,
stored LPS, a two-tissue head with noise and a smooth bias), reorient them to RAS, resample to
4 mm, crop / pad to 40 x 48 x 40 around the Otsu foreground, normalize the intensities and write
one .nii.gz per volume. The reference is the straightforward way with TorchIO, one volume at a
time: ``tio.ToCanonical``, ``tio.Resample(4)``, ``tio.CropOrPad(shape, mask_name=...)`` on an
Otsu ``LabelMap``, then ``tio.ZNormalization`` (whole volume) or
``tio.HistogramStandardization`` (landmarks from ``HistogramStandardization.train`` on the
spatially preprocessed TRAIN volumes, written to a temporary folder first, as ``train`` reads
paths). The medrepro side of the Nyul variant includes ``fit_nyul_landmarks``. medrepro is timed
with and without its before/after figure (the rule always draws one; the reference draws none),
in one thread, and once more with ``--workers`` threads (``normalize_variant(workers=...)``). The
reference runs as TorchIO runs it: one volume at a time, SimpleITK and torch with their default
thread counts.
Prints volumes/s of each, the speed-up medrepro / reference (reference time over medrepro
time) and the largest difference between the two outputs (the z-score one is TorchIO's ddof-1
standard deviation against medrepro's ddof 0, a factor 1 + 7e-6 here).

    .venv/bin/python bench/normalize.py [--n 40] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from skimage.filters import threshold_otsu

from medrepro.studies.loes.normalize import NormParams, fit_nyul_landmarks, normalize_variant

SHAPE = (40, 48, 40)
SPACING_IN = (3.5, 4.0, 4.5)  # exact in float32: both sides get the same grid (see resample)


def synthesize(root: Path, n: int, seed: int = 0) -> tuple[Path, Path, list[dict]]:
    """``n`` LPS-stored volumes, their manifest and an 80/20 split; returns (manifest, split, scans)."""
    rng = np.random.default_rng(seed)
    g = np.indices(SHAPE).astype(float)
    c = np.array([(s - 1) / 2 for s in SHAPE])
    scans = []
    for i in range(n):
        shift = rng.uniform(-3, 3, size=3)
        r = np.sqrt(sum(((g[k] - c[k] - shift[k]) / (0.36 * SHAPE[k])) ** 2 for k in range(3)))
        data = np.where(r < 1, 60.0, 0.0) + np.where(r < 0.55, 35.0, 0.0) + (r < 1) * rng.gamma(4, 2, SHAPE)
        data *= np.exp(0.2 * (g[0] - c[0]) / c[0])
        n0, n1, _ = SHAPE
        affine = np.array([[-SPACING_IN[0], 0, 0, 70.0], [0, -SPACING_IN[1], 0, 90.0],
                           [0, 0, SPACING_IN[2], -80.0], [0, 0, 0, 1]])
        subject = f"sub-{i:03d}"
        path = root / "raw" / f"{subject}_ses-01.nii.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(data.astype(np.float32), affine), str(path))
        scans.append({"unit_id": f"{subject}/ses-01/{subject}_ses-01", "subject": subject,
                      "scan": f"{subject}_ses-01", "path": str(path)})
    manifest = root / "manifest.json"
    manifest.write_text(json.dumps({"scans": scans}))
    n_train = max(1, int(0.8 * n))
    split = root / "split.json"
    split.write_text(json.dumps({"train": [s["unit_id"] for s in scans[:n_train]], "val": [],
                                 "test": [s["unit_id"] for s in scans[n_train:]]}))
    return manifest, split, scans


def _otsu(array: np.ndarray) -> np.ndarray:
    return array > threshold_otsu(array.ravel())


def reference_spatial(path: str, spacing: float, shape: tuple[int, int, int]):
    """One volume through TorchIO's spatial transforms (mask label map computed after resampling)."""
    import torch
    import torchio as tio

    subject = tio.Subject(mri=tio.ScalarImage(path))
    subject = tio.ToCanonical()(subject)
    subject = tio.Resample(spacing)(subject)
    mask = torch.as_tensor(_otsu(subject["mri"].data[0].numpy())[None].astype(np.uint8))
    subject.add_image(tio.LabelMap(tensor=mask, affine=subject["mri"].affine), "fg")
    return tio.CropOrPad(shape, mask_name="fg")(subject)


def reference(scans: list[dict], train_ids: list[str], out_dir: Path, intensity: str, spacing: float,
              shape: tuple[int, int, int]) -> None:
    """The per-volume TorchIO pipeline; Nyul landmarks trained on the TRAIN volumes first."""
    import torchio as tio

    out_dir.mkdir(parents=True, exist_ok=True)
    if intensity == "zscore":
        transform = tio.ZNormalization()
    else:
        train_dir = out_dir / "train"
        train_dir.mkdir()
        train_paths = []
        for s in scans:
            if s["unit_id"] in train_ids:
                p = train_dir / f"{s['scan']}.nii.gz"
                reference_spatial(s["path"], spacing, shape)["mri"].save(p)
                train_paths.append(p)
        landmarks = tio.HistogramStandardization.train(
            train_paths, masking_function=lambda t: _otsu(t.numpy()), progress=False)
        transform = tio.HistogramStandardization({"mri": landmarks}, masking_method=lambda t: t > threshold_otsu(
            t.numpy().ravel()))
    for s in scans:
        subject = transform(reference_spatial(s["path"], spacing, shape))
        subject["mri"].save(out_dir / f"{s['scan']}.nii.gz")


def ours(manifest: Path, split: Path, work: Path, intensity: str, spacing: float, shape: tuple[int, int, int],
         figure: bool, workers: int = 1) -> Path:
    params = NormParams(spacing=(spacing,) * 3, shape=shape, intensity=intensity)
    landmarks = None
    if intensity == "nyul":
        landmarks = work / "landmarks.json"
        fit_nyul_landmarks(manifest, split, params, landmarks, workers=workers)
    out = work / "prep"
    normalize_variant(manifest, params, out, work / "figure.png" if figure else None, landmarks, workers=workers)
    return out


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _max_diff(a_dir: Path, b_dir: Path, scans: list[dict]) -> tuple[float, float]:
    """Largest |difference| of the two outputs' voxels and of their affines."""
    dv = da = 0.0
    for s in scans:
        a = nib.load(str(a_dir / f"{s['scan']}.nii.gz"))
        b = nib.load(str(b_dir / f"{s['scan']}.nii.gz"))
        if a.shape != b.shape:
            return float("inf"), float("inf")
        dv = max(dv, float(np.abs(np.asarray(a.dataobj, float) - np.asarray(b.dataobj, float)).max()))
        da = max(da, float(np.abs(a.affine - b.affine).max()))
    return dv, da


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=40, help="synthetic volumes")
    ap.add_argument("--repeat", type=int, default=2, help="timed runs; the best is reported")
    ap.add_argument("--spacing", type=float, default=4.0, help="target spacing in mm")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="threads for the extra multi-threaded medrepro timing (1: skip it)")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        manifest, split, scans = synthesize(root, args.n)
        train_ids = set(json.loads(split.read_text())["train"])
        print(f"MRI normalization benchmark: {args.n} volumes {'x'.join(map(str, SHAPE))} at "
              f"{'x'.join(f'{v:g}' for v in SPACING_IN)} mm (LPS) -> {args.spacing:g} mm, crop/pad to "
              f"{'x'.join(map(str, SHAPE))}; {os.cpu_count()} CPU(s), load {os.getloadavg()[0]:.2f}; "
              f"generated in {time.perf_counter() - t0:.1f} s")
        # warm-up: imports (torch, torchio, matplotlib) out of the timings
        ours(manifest, split, root / "warm", "nyul", args.spacing, SHAPE, True)
        reference(scans[:2], {scans[0]["unit_id"]}, root / "warm_ref", "nyul", args.spacing, SHAPE)
        for intensity in ("zscore", "nyul"):
            work = root / intensity
            t_ours = _best(lambda: ours(manifest, split, work, intensity, args.spacing, SHAPE, False), args.repeat)
            t_fig = _best(lambda: ours(manifest, split, work, intensity, args.spacing, SHAPE, True), args.repeat)
            t_par = None
            if args.workers > 1:
                t_par = _best(lambda: ours(manifest, split, work, intensity, args.spacing, SHAPE, False, args.workers),
                              args.repeat)
            ref_dir = root / f"ref_{intensity}"

            def run_ref() -> None:
                import shutil

                shutil.rmtree(ref_dir, ignore_errors=True)
                reference(scans, train_ids, ref_dir, intensity, args.spacing, SHAPE)

            t_ref = _best(run_ref, args.repeat)
            dv, da = _max_diff(work / "prep", ref_dir, scans)
            n = args.n
            label = "z-score (whole volume)" if intensity == "zscore" else "Nyul (fit on TRAIN + apply)"
            print(f"  {label}:")
            print(f"    medrepro normalize_variant, no figure: {t_ours:.2f} s = {n / t_ours:.1f} volumes/s")
            print(f"    medrepro normalize_variant + figure:   {t_fig:.2f} s = {n / t_fig:.1f} volumes/s")
            print(f"    reference TorchIO per volume:          {t_ref:.2f} s = {n / t_ref:.1f} volumes/s")
            print(f"    speed-up medrepro / reference: {t_ref / t_ours:.2f}x without figure, "
                  f"{t_ref / t_fig:.2f}x with figure (medrepro in one thread)")
            if t_par is not None:
                print(f"    medrepro with workers={args.workers}, no figure: {t_par:.2f} s = {n / t_par:.1f} volumes/s "
                      f"-> {t_ref / t_par:.2f}x the reference")
            print(f"    agreement: max |voxel diff| {dv:.2e}, max |affine diff| {da:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
