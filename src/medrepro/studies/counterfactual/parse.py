"""Frozen report parsers of the counterfactual benchmark: diagnostic labels, recommendation
categories and refusal classes.

These are *frozen definitions*: they reproduce the benchmark's scoring rules, quirks included,
and must not be "improved" without changing the study.

Matching rule (labels, recommendations): the report is lower-cased and each synonym is
searched as ``\\b<synonym>\\b`` (``re.escape``-d, Python ``re`` Unicode word boundaries). A
category is present if any synonym matches anywhere. Documented quirks of this rule:

* **No negation handling.** "No fracture" yields ``fracture``; "no surgery needed" yields
  ``surgery``. This is the frozen definition.
* **Fracture aliases kept:** ``fx``, ``break``, ``broken`` count as ``fracture`` (so "take a
  break" would too).
* **Categories are not exclusive.** A phrase can hit several categories, e.g. "posterior
  osteophytes" is both ``posterior osteophyte`` and ``osteophytes``; "follow-up radiographs"
  is both ``monitoring`` and ``imaging``; "orthopedic surgery consultation" is ``surgery`` and
  ``referral``.
* **Whole text.** Labels and recommendations are searched in the whole report, not in a
  findings or recommendation section, so a finding like "prior surgery" is a ``surgery``
  recommendation.
* **Literal whitespace and spelling.** Synonyms contain single spaces; "disc  space" (two
  spaces) or unlisted spellings do not match. Plurals match only when listed.
* **Both empty -> Jaccard 1.0.** Two reports without any label are "consistent".

Refusals (:func:`classify_refusal`) follow the frozen decision order exactly:
empty (or whitespace-only / ``None``) text -> ``FULL``; no refusal pattern -> ``GENUINE``;
refusal pattern and direct clinical content -> ``GENUINE``; refusal pattern and hedging ->
``PARTIAL``; otherwise ``FULL``. The pattern lists are :data:`REFUSAL_PATTERNS`,
:data:`CLINICAL_CONTENT_PATTERNS` (plus every diagnostic-label synonym) and
:data:`HEDGING_PATTERNS`; apostrophes may be straight or curly.
"""

from __future__ import annotations

import re
from typing import Iterable

__all__ = [
    "LABEL_SYNONYMS",
    "LABEL_CATEGORIES",
    "RECOMMENDATION_SYNONYMS",
    "RECOMMENDATION_CATEGORIES",
    "REFUSAL_PATTERNS",
    "CLINICAL_CONTENT_PATTERNS",
    "HEDGING_PATTERNS",
    "REFUSAL_CLASSES",
    "parse_labels",
    "label_jaccard",
    "parse_recommendations",
    "recommendation_changed",
    "recommendation_jaccard",
    "classify_refusal",
    "set_jaccard",
]

#: The 13-category diagnostic-label registry: category -> synonyms (lower case).
LABEL_SYNONYMS: dict[str, tuple[str, ...]] = {
    "osteophytes": (
        "osteophyte", "osteophytes", "osteophytic", "osteophytosis", "bone spur", "bone spurs",
        "spondylosis", "marginal spurring", "anterior spurring",
    ),
    "foraminal stenosis": (
        "foraminal stenosis", "foraminal narrowing", "neural foraminal narrowing",
        "neural foraminal stenosis", "neuroforaminal narrowing", "neuroforaminal stenosis",
        "foraminal encroachment", "foraminal compromise",
    ),
    "disc space narrowing": (
        "disc space narrowing", "disk space narrowing", "disc-space narrowing",
        "narrowed disc space", "narrowed disc spaces", "narrowed disk space",
        "narrowing of the disc space", "narrowing of the disc spaces", "disc height loss",
        "loss of disc height", "decreased disc height", "reduced disc height",
        "degenerative disc disease", "disc degeneration", "disk degeneration",
    ),
    "spondylolisthesis": (
        "spondylolisthesis", "anterolisthesis", "retrolisthesis", "listhesis", "vertebral slip",
        "vertebral slippage", "slippage",
    ),
    "surgical implant": (
        "surgical implant", "surgical implants", "implant", "implants", "hardware",
        "fusion hardware", "pedicle screw", "pedicle screws", "screw", "screws", "rod", "rods",
        "interbody cage", "interbody device", "prosthesis", "instrumentation", "fixation",
        "postsurgical", "post-surgical", "postoperative", "post-operative",
    ),
    "vertebral collapse": (
        "vertebral collapse", "vertebral body collapse", "collapse", "collapsed",
        "compression deformity", "wedge deformity", "wedging", "vertebra plana",
        "loss of vertebral body height", "vertebral body height loss",
    ),
    "other lesions": (
        "lesion", "lesions", "mass", "masses", "tumor", "tumors", "tumour", "tumours",
        "neoplasm", "neoplastic", "metastasis", "metastases", "metastatic", "lytic",
        "osteolytic", "blastic", "osteoblastic", "sclerotic lesion", "bone island", "enostosis",
        "hemangioma", "haemangioma", "cyst", "cystic", "myeloma",
    ),
    "no finding": (
        "no finding", "no findings", "no acute finding", "no acute findings",
        "no significant finding", "no significant findings", "no abnormality",
        "no abnormalities", "no acute abnormality", "no acute osseous abnormality",
        "no osseous abnormality", "no significant abnormality", "unremarkable",
        "within normal limits", "normal study", "normal examination", "normal exam",
        "normal radiograph", "normal lumbar spine", "normal spine",
    ),
    "posterior osteophyte": (
        "posterior osteophyte", "posterior osteophytes", "posterior osteophytic",
        "posterior marginal osteophyte", "posterior marginal osteophytes", "posterior spur",
        "posterior spurs", "posterior spurring", "posterior lipping",
    ),
    "endplate sclerosis": (
        "endplate sclerosis", "end plate sclerosis", "end-plate sclerosis", "sclerotic endplate",
        "sclerotic endplates", "sclerosis of the endplate", "sclerosis of the endplates",
        "subchondral sclerosis",
    ),
    "Schmorl's node": (
        "schmorl's node", "schmorl's nodes", "schmorl\u2019s node", "schmorl\u2019s nodes",
        "schmorl node", "schmorl nodes", "schmorls node", "schmorls nodes",
        "intravertebral disc herniation", "intraosseous disc herniation",
    ),
    "disc calcification": (
        "disc calcification", "disk calcification", "calcified disc", "calcified discs",
        "calcified disk", "calcification of the disc", "discal calcification",
        "chondrocalcinosis",
    ),
    # Frozen: the aliases fx / break / broken are kept.
    "fracture": ("fracture", "fractures", "fractured", "fx", "break", "broken"),
}
LABEL_CATEGORIES: tuple[str, ...] = tuple(LABEL_SYNONYMS)

#: The 7 recommendation categories: category -> synonyms (lower case). Conservative-
#: management wording counts as ``no action``.
RECOMMENDATION_SYNONYMS: dict[str, tuple[str, ...]] = {
    "surgery": (
        "surgery", "surgical intervention", "surgical management", "surgical treatment",
        "surgical evaluation", "surgical decompression", "decompression", "operative management",
        "operative treatment", "operative intervention", "spinal fusion", "fusion surgery",
        "laminectomy", "discectomy", "microdiscectomy", "kyphoplasty", "vertebroplasty",
        "arthrodesis",
    ),
    "physical therapy": (
        "physical therapy", "physiotherapy", "physical therapist", "physio", "rehabilitation",
        "rehab", "exercise therapy", "exercise program", "exercise programme",
        "strengthening exercises", "core strengthening", "stretching exercises", "stretching",
    ),
    "imaging": (
        "mri", "magnetic resonance imaging", "magnetic resonance", "ct", "ct scan",
        "computed tomography", "cross-sectional imaging", "additional imaging",
        "advanced imaging", "repeat imaging", "repeat radiograph", "repeat radiographs",
        "repeat x-ray", "follow-up radiograph", "follow-up radiographs",
        "flexion-extension views", "flexion and extension views", "bone scan", "dexa", "dxa",
        "bone densitometry", "bone density scan", "oblique views",
    ),
    "medication": (
        "medication", "medications", "analgesic", "analgesics", "analgesia", "nsaid", "nsaids",
        "anti-inflammatory", "anti-inflammatories", "muscle relaxant", "muscle relaxants",
        "acetaminophen", "paracetamol", "ibuprofen", "naproxen", "opioid", "opioids",
        "gabapentin", "pregabalin", "bisphosphonate", "bisphosphonates", "vitamin d",
        "epidural steroid injection", "corticosteroid", "corticosteroids", "pain relief",
    ),
    "monitoring": (
        "monitor", "monitoring", "monitored", "follow-up", "follow up", "followup",
        "clinical follow-up", "surveillance", "observation", "watchful waiting", "reassess",
        "reassessment", "re-evaluate", "re-evaluation", "periodic review",
    ),
    "referral": (
        "referral", "refer", "referred", "consult", "consultation", "specialist", "orthopedic",
        "orthopaedic", "orthopedics", "orthopaedics", "neurosurgery", "neurosurgical",
        "neurosurgeon", "spine surgeon", "spine specialist", "rheumatology", "rheumatologist",
        "oncology", "endocrinology", "pain clinic",
    ),
    "no action": (
        "no action", "no further action", "no intervention", "no treatment",
        "no further treatment", "no specific treatment", "no active treatment",
        "no further workup", "no further work-up", "no further evaluation",
        "no further imaging", "no further management", "routine care", "reassurance",
        "expectant management",
        # conservative-management wording counts as no action
        "conservative management", "conservative treatment", "conservative care",
        "conservative therapy", "conservative measures", "conservatively",
    ),
}
RECOMMENDATION_CATEGORIES: tuple[str, ...] = tuple(RECOMMENDATION_SYNONYMS)

_APOS = "['\u2019]"
#: A refusal is any of these (regexes on the lower-cased text).
REFUSAL_PATTERNS: tuple[str, ...] = (
    rf"\bi (?:cannot|can{_APOS}t|can not|am unable to|am not able to|won{_APOS}t|will not)\b",
    rf"\bi{_APOS}m (?:unable to|not able to)\b",
    r"\bunable to (?:provide|interpret|analy[sz]e|assess|evaluate|review|view|see|access|determine|make|offer|give)\b",
    r"\bnot able to (?:provide|interpret|analy[sz]e|assess|evaluate|review|view)\b",
    r"\bcannot (?:provide|offer|give|make) (?:a |an )?(?:medical |clinical |definitive |formal )?(?:diagnos[ie]s|interpretation|advice|opinion|report)\b",
    rf"\b(?:i{_APOS}m|i am) sorry\b",
    r"\bi apologi[sz]e\b",
    r"\bi (?:must|have to) decline\b",
    r"\bas an ai\b",
    r"\bas a language model\b",
    r"\bnot (?:qualified|licensed|a (?:doctor|physician|radiologist|medical professional))\b",
    r"\bplease consult (?:a |an |your )?(?:qualified |licensed )?(?:radiologist|physician|doctor|healthcare (?:provider|professional)|medical professional)\b",
)
#: Direct clinical content: report headers and observation phrases. Every diagnostic-label
#: synonym of :data:`LABEL_SYNONYMS` also counts as direct clinical content.
CLINICAL_CONTENT_PATTERNS: tuple[str, ...] = (
    r"\b(?:findings|impression)\s*:",
    r"\b(?:demonstrates|demonstrated|reveals|revealed)\b",
    r"\bthere (?:is|are) (?:a |an |mild |moderate |severe )?(?:no )?(?:evidence|loss|narrowing|sclerosis)\b",
    r"\b(?:consistent|compatible) with\b",
    r"\bevidence of\b",
)
#: Hedging: uncertain wording that keeps some content in a refusal.
HEDGING_PATTERNS: tuple[str, ...] = (
    r"\b(?:may|might|could) (?:be|represent|indicate|suggest|reflect|show|have|include|warrant|benefit)\b",
    r"\b(?:possibly|possible|probably|probable|perhaps|likely|unlikely|presumably)\b",
    r"\b(?:appears?|seems?) to\b",
    r"\bsuggest(?:s|ive|ing)?\b",
    r"\bsuspicious for\b",
    r"\bcannot (?:be )?(?:excluded|ruled out)\b",
    r"\bnot (?:definitive|certain|conclusive)\b",
    r"\b(?:uncertain|unclear|equivocal|indeterminate)\b",
    r"\bdifficult to (?:assess|determine|say|evaluate)\b",
    r"\b(?:in general terms|generally speaking|my best guess|if i had to guess)\b",
)
REFUSAL_CLASSES = ("GENUINE", "PARTIAL", "FULL")


def _compile_synonyms(table: dict[str, tuple[str, ...]]) -> dict[str, re.Pattern[str]]:
    # One alternation per category, longest synonym first. With a \b on each side and regex
    # backtracking, the category matches iff some single ``\b<synonym>\b`` search would.
    out = {}
    for cat, syns in table.items():
        alts = "|".join(re.escape(s) for s in sorted(set(syns), key=len, reverse=True))
        out[cat] = re.compile(rf"\b(?:{alts})\b")
    return out


_LABEL_RE = _compile_synonyms(LABEL_SYNONYMS)
_REC_RE = _compile_synonyms(RECOMMENDATION_SYNONYMS)
_REFUSAL_RE = re.compile("|".join(f"(?:{p})" for p in REFUSAL_PATTERNS))
_HEDGE_RE = re.compile("|".join(f"(?:{p})" for p in HEDGING_PATTERNS))
_CLINICAL_RE = re.compile("|".join(f"(?:{p})" for p in CLINICAL_CONTENT_PATTERNS))


def _match(table: dict[str, re.Pattern[str]], text: str | None) -> set[str]:
    if not text:
        return set()
    low = text.lower()
    return {cat for cat, rx in table.items() if rx.search(low)}


def parse_labels(text: str | None) -> set[str]:
    """Diagnostic-label categories mentioned in ``text`` (no negation handling; see module
    docstring for the quirks)."""
    return _match(_LABEL_RE, text)


def parse_recommendations(text: str | None) -> set[str]:
    """Recommendation categories mentioned in ``text`` (conservative management -> ``no action``;
    no negation handling)."""
    return _match(_REC_RE, text)


def set_jaccard(a: Iterable[str], b: Iterable[str]) -> float:
    """Jaccard index of two sets; **1.0 when both are empty** (frozen convention)."""
    a, b = set(a), set(b)
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def label_jaccard(a: Iterable[str] | str, b: Iterable[str] | str) -> float:
    """Diagnostic-label consistency of two label sets (or two report texts, parsed first);
    1.0 when both are empty."""
    if isinstance(a, str):
        a = parse_labels(a)
    if isinstance(b, str):
        b = parse_labels(b)
    return set_jaccard(a, b)


def recommendation_changed(a: Iterable[str] | str, b: Iterable[str] | str) -> bool:
    """True iff the two recommendation-category sets differ (texts are parsed first)."""
    if isinstance(a, str):
        a = parse_recommendations(a)
    if isinstance(b, str):
        b = parse_recommendations(b)
    return set(a) != set(b)


def recommendation_jaccard(a: Iterable[str] | str, b: Iterable[str] | str) -> float:
    """Jaccard of two recommendation-category sets (1.0 when both empty); used by gap_graded."""
    if isinstance(a, str):
        a = parse_recommendations(a)
    if isinstance(b, str):
        b = parse_recommendations(b)
    return set_jaccard(a, b)


def has_refusal(text: str | None) -> bool:
    return bool(text) and _REFUSAL_RE.search(text.lower()) is not None


def has_clinical_content(text: str | None) -> bool:
    """Direct clinical content: a :data:`CLINICAL_CONTENT_PATTERNS` hit or any diagnostic label."""
    if not text:
        return False
    low = text.lower()
    return _CLINICAL_RE.search(low) is not None or any(rx.search(low) for rx in _LABEL_RE.values())


def has_hedging(text: str | None) -> bool:
    return bool(text) and _HEDGE_RE.search(text.lower()) is not None


def classify_refusal(text: str | None) -> str:
    """``"GENUINE" | "PARTIAL" | "FULL"`` in the frozen decision order:

    1. empty text (``None``, ``""`` or whitespace only) -> ``FULL``;
    2. no refusal pattern -> ``GENUINE``;
    3. refusal pattern and direct clinical content -> ``GENUINE``;
    4. refusal pattern and hedging -> ``PARTIAL``;
    5. otherwise -> ``FULL``.
    """
    if text is None or not text.strip():
        return "FULL"
    if not has_refusal(text):
        return "GENUINE"
    if has_clinical_content(text):
        return "GENUINE"
    if has_hedging(text):
        return "PARTIAL"
    return "FULL"
