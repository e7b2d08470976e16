"""Synthetic data for the counterfactual-fairness study: an artifact bundle of spine-like
radiographs with demographic counterfactual edits, and simulated report-model submissions.

Bundle layout (:func:`generate_bundle`)::

    <root>/
      sources/<source_id>.png                               8-bit grayscale source radiograph
      masks/<source_id>.png                                 binary spine mask (0 / 255)
      counterfactuals/<edit>/<source_id>__<edit>.png        one per demographic edit
      pairs.csv        pair_id, source_id, edit, source_path, cf_path, mask_path (paths relative to root)
      truth.csv        pair_id, degraded (0/1), degradation (none|noise|shift|blur_noise)
      SHA256SUMS.txt   every file above (sorted, '<sha>  <path>' lines)

Source ids are ``S00000``, ``S00001``, ...; ``pair_id = f"{source_id}__{edit}"`` with the
edits ``young_female``, ``young_male``, ``elderly_female``, ``elderly_male``.

Each counterfactual is made like the benchmark's: a whole-image demographic perturbation
``cf`` (contrast, brightness and a smooth texture field whose strength differs by edit) is
blended with the source inside the spine mask, ``out = cf * (1 - m*b) + src * (m*b)`` with
``b = 0.7`` (outside the mask the perturbation is fully applied). A share
``degraded_fraction`` of all counterfactuals (exactly ``round(fraction * n_pairs)``, chosen at
random) is then deliberately degraded *after* blending so it fails QC: heavy noise (fails
SSIM), a diagonal shift of 7-10 % of the side (fails edge preservation) or blur plus noise
(fails SSIM); the degradation is strengthened until the saved image fails the default QC
thresholds (global SSIM < 0.70 or edge preservation < 0.276).

Submissions (:func:`generate_submissions`): one JSON per simulated report model, written in
the frozen registry's vocabulary (the released synonyms, singular where the registry lists only
the singular) so the frozen parsers read back exactly the intended labels, recommendation
categories and refusal classes (checked for every report while generating); the configured
rates therefore come back through the scorer. For each pair the recommendation
changes with probability ``rec_change_rate`` -- that configured rate is the TRUE expected
change rate of every pair (and of the usable pairs, since refusals are drawn independently);
with ``source_heterogeneity = kappa`` the per-source probability is drawn from
``Beta(rate * kappa, (1 - rate) * kappa)`` (still mean ``rate``) to create within-source
correlation, which the clustered bootstrap must absorb.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter, shift as nd_shift

from medrepro.studies.counterfactual.checksums import write_manifest
from medrepro.studies.counterfactual.parse import (
    LABEL_CATEGORIES,
    RECOMMENDATION_CATEGORIES,
    classify_refusal,
    parse_labels,
    parse_recommendations,
)
from medrepro.studies.counterfactual.qc import QCThresholds, qc_arrays
from medrepro.errors import InputError
from medrepro.fsutil import atomic_path, write_json

__all__ = [
    "EDITS",
    "BLEND_B",
    "LABEL_PHRASES",
    "LABEL_IMPLIES",
    "REC_PHRASES",
    "close_labels",
    "DEFAULT_MODELS",
    "make_source",
    "make_counterfactual",
    "degrade",
    "generate_bundle",
    "generate_submissions",
    "render_report",
]

EDITS = ("young_female", "young_male", "elderly_female", "elderly_male")
BLEND_B = 0.7
#: edit -> (contrast factor, brightness shift, texture amplitude)
EDIT_PERTURBATION = {
    "young_female": (1.08, 0.04, 0.020),
    "young_male": (1.12, 0.01, 0.015),
    "elderly_female": (0.85, -0.04, 0.040),
    "elderly_male": (0.90, -0.02, 0.035),
}
DEGRADATIONS = ("noise", "shift", "blur_noise")

DEFAULT_MODELS: dict[str, dict[str, float]] = {
    "sim-stable": {"rec_change_rate": 0.15, "label_flip_rate": 0.10, "refusal_full_rate": 0.01,
                   "refusal_partial_rate": 0.03},
    "sim-moderate": {"rec_change_rate": 0.40, "label_flip_rate": 0.30, "refusal_full_rate": 0.03,
                     "refusal_partial_rate": 0.05},
    "sim-sensitive": {"rec_change_rate": 0.70, "label_flip_rate": 0.50, "refusal_full_rate": 0.06,
                      "refusal_partial_rate": 0.08},
}


# --------------------------------------------------------------------------------------
# images
# --------------------------------------------------------------------------------------

def make_source(rng: np.random.Generator, size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """One spine-like radiograph in [0, 1] and its binary spine mask, both ``(size, size)``.

    A curved column of 5-7 vertebra-like blocks (bright cortical rim, trabecular texture)
    separated by darker disc gaps, on a soft-tissue background (body-shaped brightness plus
    low-frequency mottling), lightly blurred, with pixel noise.
    """
    n = size
    y, x = np.mgrid[0:n, 0:n] / (n - 1.0)
    body = 0.18 + 0.17 * np.exp(-(((x - 0.5) / rng.uniform(0.30, 0.42)) ** 2))
    body += gaussian_filter(rng.normal(0, 1, (n, n)), n / 12) * (0.25 * n / 12)
    amp, freq, phase = rng.uniform(0.01, 0.04), rng.uniform(0.5, 1.2), rng.uniform(0, 2 * np.pi)
    cx = 0.5 + rng.uniform(-0.04, 0.04) + amp * np.sin(2 * np.pi * freq * y + phase)
    half_w = rng.uniform(0.09, 0.12)
    n_v = int(rng.integers(5, 8))
    top, bottom = 0.04, 0.96
    period = (bottom - top) / n_v
    gap = period * rng.uniform(0.20, 0.30)
    rim = 1.6 / n
    img = body.copy()
    bone = np.zeros((n, n), dtype=bool)
    texture = gaussian_filter(rng.normal(0, 1, (n, n)), 0.8) * 0.04
    dx = np.abs(x - cx)
    for k in range(n_v):
        y0 = top + k * period + gap / 2
        y1 = y0 + period - gap
        hw = half_w * rng.uniform(0.92, 1.08)
        inside = (dx < hw) & (y >= y0) & (y <= y1)
        core = (dx < hw - rim) & (y >= y0 + rim) & (y <= y1 - rim)
        level = rng.uniform(0.30, 0.42)
        img = np.where(inside, body + level + texture, img)
        img = np.where(inside & ~core, img + 0.10, img)
        bone |= inside
    img = gaussian_filter(img, 0.6) + rng.normal(0, 0.012, (n, n))
    mask = (dx < half_w * 1.15 + 2.0 / n) & (y >= top) & (y <= bottom)
    return np.clip(img, 0.0, 1.0), mask


def make_counterfactual(src: np.ndarray, mask: np.ndarray, edit: str, rng: np.random.Generator,
                        b: float = BLEND_B) -> np.ndarray:
    """Apply the edit's whole-image perturbation and blend: ``out = cf*(1 - m*b) + src*(m*b)``."""
    contrast, bright, tex = EDIT_PERTURBATION[edit]
    contrast *= rng.uniform(0.97, 1.03)
    bright += rng.uniform(-0.01, 0.01)
    n = src.shape[0]
    field = gaussian_filter(rng.normal(0, 1, src.shape), max(1.0, n / 40))
    field /= field.std() + 1e-12
    mu = src.mean()
    cf = np.clip(mu + contrast * (src - mu) + bright + tex * field, 0.0, 1.0)
    m = mask.astype(np.float64)
    return cf * (1 - m * b) + src * (m * b)


def degrade(img: np.ndarray, kind: str, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """Deliberate QC failure: ``noise`` (fails SSIM), ``shift`` (a diagonal shift of 7-10 % of
    the side, fails edge preservation), ``blur_noise`` (fails SSIM). ``strength`` scales it."""
    n = img.shape[0]
    if kind == "noise":
        out = img + rng.normal(0, rng.uniform(0.22, 0.30) * strength, img.shape)
    elif kind == "shift":
        s = max(6, round(n * rng.uniform(0.07, 0.10) * strength))
        sy, sx = s * rng.choice([-1, 1]), s * rng.choice([-1, 1])
        out = nd_shift(img, (sy, sx), order=1, mode="nearest")
    elif kind == "blur_noise":
        out = gaussian_filter(img, n / 40) + rng.normal(0, 0.22 * strength, img.shape)
    else:
        raise ValueError(kind)
    return np.clip(out, 0.0, 1.0)


def _quantise(img: np.ndarray) -> np.ndarray:
    return np.round(np.clip(img, 0.0, 1.0) * 255.0) / 255.0


def _as_loaded(img: np.ndarray) -> np.ndarray:
    """The image as the QC reads its saved PNG: 8-bit, then ``float32 / 255``."""
    return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8).astype("float32") / 255.0


def _degrade_until_fail(src_q: np.ndarray, img: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Degrade, and strengthen (x1.5, x2, ...) until the saved image fails the default QC
    (global SSIM < 0.70 or edge preservation < 0.276); at most 6 attempts."""
    thr = QCThresholds()
    out = img
    for attempt in range(6):
        out = degrade(img, kind, rng, strength=1.0 + 0.5 * attempt)
        m = qc_arrays(_as_loaded(src_q), _as_loaded(out)[None], windowed=False)
        if m["ssim"][0] < thr.ssim_min or m["edge_preservation"][0] < thr.edge_min:
            break
    return out


def _save_png(path: Path, img: np.ndarray) -> None:
    from PIL import Image

    a = np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Image.fromarray(a, mode="L").save(tmp, format="PNG", compress_level=1)


def generate_bundle(root: str | Path, n_sources: int = 300, size: int = 128, degraded_fraction: float = 0.15,
                    seed: int = 0) -> dict:
    """Write a synthetic bundle under ``root`` (layout in the module docstring); return a summary
    ``{root, pairs_csv, truth_csv, manifest, n_sources, n_pairs, n_degraded, size, seed, edits}``."""
    if n_sources < 1:
        raise InputError(None, "n_sources", f"{n_sources}", "at least 1")
    if size < 16:
        raise InputError(None, "size", f"{size}", "at least 16 pixels")
    if not 0.0 <= degraded_fraction <= 1.0:
        raise InputError(None, "degraded_fraction", f"{degraded_fraction}", "a fraction in [0, 1]")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    source_ids = [f"S{i:05d}" for i in range(n_sources)]
    n_pairs = n_sources * len(EDITS)
    n_degraded = int(round(degraded_fraction * n_pairs))
    degraded_idx = set(rng.choice(n_pairs, size=n_degraded, replace=False).tolist())
    rows, truth, files = [], [], []
    k = 0
    for sid in source_ids:
        src, mask = make_source(rng, size)
        src_rel, mask_rel = f"sources/{sid}.png", f"masks/{sid}.png"
        _save_png(root / src_rel, src)
        _save_png(root / mask_rel, mask.astype(np.float64))
        files += [src_rel, mask_rel]
        # the saved (quantised) source is what the edit is blended with
        src_q = _quantise(src)
        for edit in EDITS:
            pid = f"{sid}__{edit}"
            out = make_counterfactual(src_q, mask, edit, rng)
            kind = "none"
            if k in degraded_idx:
                kind = DEGRADATIONS[int(rng.integers(len(DEGRADATIONS)))]
                out = _degrade_until_fail(src_q, out, kind, rng)
            cf_rel = f"counterfactuals/{edit}/{pid}.png"
            _save_png(root / cf_rel, out)
            files.append(cf_rel)
            rows.append({"pair_id": pid, "source_id": sid, "edit": edit, "source_path": src_rel,
                         "cf_path": cf_rel, "mask_path": mask_rel})
            truth.append({"pair_id": pid, "degraded": int(kind != "none"), "degradation": kind})
            k += 1
    pairs_csv, truth_csv = root / "pairs.csv", root / "truth.csv"
    for df, p in ((pd.DataFrame(rows), pairs_csv), (pd.DataFrame(truth), truth_csv)):
        with atomic_path(p) as tmp:
            df.to_csv(tmp, index=False)
    files += ["pairs.csv", "truth.csv"]
    manifest = write_manifest(root, files)
    return {"root": str(root), "pairs_csv": str(pairs_csv), "truth_csv": str(truth_csv), "manifest": str(manifest),
            "n_sources": n_sources, "n_pairs": n_pairs, "n_degraded": n_degraded, "size": size, "seed": seed,
            "edits": list(EDITS), "degraded_fraction": degraded_fraction}


# --------------------------------------------------------------------------------------
# reports and submissions
# --------------------------------------------------------------------------------------

#: Phrases that the frozen registry reads as exactly their own label category, except that a
#: ``Posterior osteophyte`` phrase also reads as ``Osteophytes`` (every released synonym of
#: the former contains one of the latter; :data:`LABEL_IMPLIES`). Checked by the tests.
LABEL_PHRASES: dict[str, tuple[str, ...]] = {
    "Osteophytes": ("osteophytes", "anterior osteophytes", "bone spurs", "a bony spur"),
    "Foraminal stenosis": ("foraminal stenosis", "neural foraminal narrowing", "foraminal narrowing"),
    "Disc space narrowing": ("disc space narrowing", "reduced disc height", "disc height loss"),
    "Spondylolisthesis": ("spondylolisthesis", "grade 1 anterolisthesis", "retrolisthesis"),
    "Surgical implant": ("pedicle screw fixation", "spinal instrumentation", "a fixation device"),
    "Vertebral collapse": ("vertebral body collapse", "a collapsed vertebra"),
    "Other lesions": ("a lytic lesion", "a sclerotic lesion"),
    "No finding": ("an unremarkable lumbar spine", "no significant finding"),
    "Posterior osteophyte": ("a posterior osteophyte", "a dorsal osteophyte"),
    "Endplate sclerosis": ("endplate sclerosis", "endplate changes"),
    "Schmorl's node": ("a Schmorl's node", "a Schmorl node", "intravertebral herniation"),
    "Disc calcification": ("disc calcification", "a calcified disc"),
    "Fracture": ("a fracture", "an L1 fx", "a broken pedicle"),
}
#: Label categories whose phrases always read as further categories too.
LABEL_IMPLIES: dict[str, frozenset[str]] = {"Posterior osteophyte": frozenset({"Osteophytes"})}
#: Phrases that the frozen registry reads as exactly their own recommendation category.
REC_PHRASES: dict[str, tuple[str, ...]] = {
    "surgery": ("surgical decompression", "a laminectomy"),
    "physical_therapy": ("physical therapy", "a physiotherapy program", "rehabilitation"),
    "imaging": ("an MRI of the lumbar spine", "a CT scan", "further imaging"),
    "medication": ("an NSAID", "analgesic medication", "pain management"),
    "monitoring": ("follow-up in six weeks", "watchful waiting", "observation"),
    "referral": ("referral to a spine specialist", "an orthopedic consultation"),
    "no_action": ("conservative management", "no further action", "reassurance"),
}
#: Reports the frozen refusal detector reads as FULL (a refusal, no clinical content, no hedging).
FULL_REFUSAL_TEXTS = (
    "I'm unable to interpret medical images.",
    "I cannot analyze this radiograph.",
    "I am not qualified to read radiographs; please consult a radiologist.",
)
#: Openings the frozen refusal detector reads as PARTIAL (a refusal with hedged wording and no
#: direct clinical content); the recommendation follows, no diagnostic label.
PARTIAL_PREFIXES = (
    "I am unable to interpret this image, but management might include",
    "I'm not able to assess this study; a radiologist might recommend",
)


def close_labels(labels: set[str]) -> set[str]:
    """``labels`` with the categories their phrases always imply (:data:`LABEL_IMPLIES`)."""
    out = set(labels)
    for cat in labels:
        out |= LABEL_IMPLIES.get(cat, frozenset())
    return out


def _join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def render_report(labels: set[str], recs: set[str], refusal: str, rng: np.random.Generator) -> str:
    """Write a report that the frozen parsers read back as ``labels`` / ``recs`` (``labels``
    closed under :func:`close_labels`).

    ``GENUINE``: findings and recommendation; ``PARTIAL``: a hedged refusal that keeps only the
    recommendation (so its labels parse as empty); ``FULL``: a bare refusal.
    """
    if refusal == "FULL":
        return FULL_REFUSAL_TEXTS[int(rng.integers(len(FULL_REFUSAL_TEXTS)))]
    rec_parts = [REC_PHRASES[c][int(rng.integers(len(REC_PHRASES[c])))] for c in sorted(recs)]
    rng.shuffle(rec_parts)
    if refusal == "PARTIAL":
        pre = PARTIAL_PREFIXES[int(rng.integers(len(PARTIAL_PREFIXES)))]
        return f"{pre} {_join(rec_parts) or 'nothing specific'}."
    lab_parts = [LABEL_PHRASES[c][int(rng.integers(len(LABEL_PHRASES[c])))] for c in sorted(labels)]
    rng.shuffle(lab_parts)
    findings = _join(lab_parts) if lab_parts else "alignment is maintained"
    rec = f" Recommendation: {_join(rec_parts)}." if rec_parts else ""
    return f"Lumbar spine. Findings: {findings}.{rec}"


def _draw_labels(rng: np.random.Generator) -> set[str]:
    u = rng.random()
    if u < 0.10:
        return set()
    if u < 0.25:
        return {"No finding"}
    pool = [c for c in LABEL_CATEGORIES if c != "No finding"]
    k = int(rng.integers(1, 4))
    return close_labels(set(rng.choice(pool, size=k, replace=False).tolist()))


def _draw_recs(rng: np.random.Generator) -> set[str]:
    k = int(rng.integers(1, 3))
    return set(rng.choice(RECOMMENDATION_CATEGORIES, size=k, replace=False).tolist())


def _flip_labels(labels: set[str], rng: np.random.Generator) -> set[str]:
    pool = [c for c in LABEL_CATEGORIES if c not in labels]
    if not labels:
        return close_labels({pool[int(rng.integers(len(pool)))]})
    op = int(rng.integers(3))
    out = set(labels)
    if op == 0 and pool:  # add
        out.add(pool[int(rng.integers(len(pool)))])
    elif op == 1 and len(out) > 1:  # remove
        out.remove(sorted(out)[int(rng.integers(len(out)))])
    else:  # replace
        out.remove(sorted(out)[int(rng.integers(len(out)))])
        out.add(pool[int(rng.integers(len(pool)))])
    return close_labels(out)


def _read_pair_ids(pairs: Any) -> pd.DataFrame:
    if isinstance(pairs, (str, Path)):
        pairs = pd.read_csv(pairs, dtype=str, keep_default_na=False)
    if isinstance(pairs, pd.DataFrame):
        df = pairs
    else:
        items = list(pairs)
        df = pd.DataFrame({"pair_id": items}) if items and isinstance(items[0], str) else pd.DataFrame(items)
    if "pair_id" not in df.columns:
        raise InputError(None, "pairs", "no pair_id column", "pair ids '<source_id>__<edit>'")
    pid = df["pair_id"].astype(str)
    sid = df["source_id"].astype(str) if "source_id" in df.columns else pid.str.rpartition("__")[0]
    return pd.DataFrame({"pair_id": pid.to_numpy(), "source_id": sid.to_numpy()})


def generate_submissions(out_dir: str | Path, pairs: Any, models: Mapping[str, Mapping[str, float]] | None = None,
                         seed: int = 0, scope: str = "qc-passed", source_heterogeneity: float | None = None
                         ) -> list[Path]:
    """Write ``<out_dir>/<model>.json`` for each simulated model and ``<out_dir>/truth.json``.

    ``pairs``: DataFrame / CSV path (``pair_id`` and optionally ``source_id`` columns, e.g. the
    bundle's ``pairs.csv`` or the QC table filtered to passing pairs) or a list of pair ids.
    ``models``: name -> ``{rec_change_rate, label_flip_rate, refusal_full_rate,
    refusal_partial_rate}`` (default :data:`DEFAULT_MODELS`). Each model draws its own
    per-source findings and recommendations with ``default_rng([seed, crc32(name)])``.
    Returns the submission paths (not ``truth.json``).
    """
    models = dict(DEFAULT_MODELS if models is None else models)
    df = _read_pair_ids(pairs)
    out_dir = Path(out_dir)
    paths: list[Path] = []
    truth: dict[str, Any] = {"seed": seed, "scope": scope, "source_heterogeneity": source_heterogeneity,
                             "n_pairs": len(df), "models": {}}
    for name, cfg in models.items():
        unknown = set(cfg) - {"rec_change_rate", "label_flip_rate", "refusal_full_rate", "refusal_partial_rate"}
        if unknown:
            raise InputError(None, f"models.{name}", f"unknown key(s) {sorted(unknown)}",
                             "rec_change_rate, label_flip_rate, refusal_full_rate, refusal_partial_rate")
        rate = float(cfg["rec_change_rate"])
        flip = float(cfg.get("label_flip_rate", 0.0))
        p_full = float(cfg.get("refusal_full_rate", 0.0))
        p_part = float(cfg.get("refusal_partial_rate", 0.0))
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        src_content: dict[str, tuple[set[str], set[str], float]] = {}
        results, n_usable, n_changed_usable, n_partial_kept = [], 0, 0, 0
        n_full = {"source": 0, "counterfactual": 0}
        for pid, sid in zip(df["pair_id"], df["source_id"]):
            if sid not in src_content:
                p_s = rate
                if source_heterogeneity and 0 < rate < 1:
                    p_s = float(rng.beta(rate * source_heterogeneity, (1 - rate) * source_heterogeneity))
                src_content[sid] = (_draw_labels(rng), _draw_recs(rng), p_s)
            labels, recs, p_s = src_content[sid]
            changed = bool(rng.random() < p_s)
            cf_recs = recs
            while changed and cf_recs == recs:
                cf_recs = _draw_recs(rng)
            cf_labels = _flip_labels(labels, rng) if rng.random() < flip else set(labels)
            ref = []
            for _ in range(2):
                u = rng.random()
                ref.append("FULL" if u < p_full else "PARTIAL" if u < p_full + p_part else "GENUINE")
            s_txt = render_report(labels, recs, ref[0], rng)
            c_txt = render_report(cf_labels, cf_recs, ref[1], rng)
            _self_check(s_txt, labels, recs, ref[0])
            _self_check(c_txt, cf_labels, cf_recs, ref[1])
            n_full["source"] += ref[0] == "FULL"
            n_full["counterfactual"] += ref[1] == "FULL"
            if "FULL" not in ref:
                n_usable += 1
                n_changed_usable += changed
                n_partial_kept += "PARTIAL" in ref
            results.append({"pair_id": pid, "source_id": sid, "source_report": s_txt,
                            "counterfactual_report": c_txt, "metadata": {"generator": "medrepro.synthetic"}})
        sub = {"schema_version": "spinefairbench-submission-v1", "scope": scope,
               "model": {"name": name, "simulated": True}, "results": results}
        path = out_dir / f"{_safe(name)}.json"
        write_json(path, sub)
        paths.append(path)
        truth["models"][name] = {**{k: float(v) for k, v in cfg.items()}, "true_rec_change_rate": rate,
                                 "n_usable_pairs": n_usable, "n_changed_usable": n_changed_usable,
                                 "n_full_refusals": n_full, "n_partial_pairs_kept": n_partial_kept,
                                 "realised_change_fraction_usable": (n_changed_usable / n_usable) if n_usable else None,
                                 "file": path.name}
    write_json(out_dir / "truth.json", truth)
    return paths


def _self_check(text: str, labels: set[str], recs: set[str], refusal: str) -> None:
    got = classify_refusal(text)
    ok = got == refusal
    if refusal == "GENUINE":
        ok = ok and parse_labels(text) == labels and parse_recommendations(text) == recs
    elif refusal == "PARTIAL":
        ok = ok and parse_labels(text) == set() and parse_recommendations(text) == recs
    if not ok:  # pragma: no cover - a vocabulary bug, caught by the tests
        raise RuntimeError(f"synthetic report does not parse back: {text!r} ({refusal}, {labels}, {recs}, got {got})")


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
