"""Frozen report parsers of the counterfactual benchmark: diagnostic labels, recommendation
categories and refusal classes.

The definitions are data: ``registry.json`` next to this module holds the released scoring
package's 13-category label registry, its 7 recommendation categories and its refusal,
direct-clinical-content and hedging patterns, verbatim, with the repository, commit and
file hashes they were transcribed from (:data:`REGISTRY_INFO`; the file's own sha256 is
:data:`REGISTRY_SHA256` and goes into every score). Category names are the released ones
(``"Fracture"``, ``"Schmorl's node"``, ``"physical_therapy"``, ``"no_action"``, ...).

Matching rule (labels and recommendations): the report is lower-cased with ``str.lower`` and
a category is present when one of its synonyms matches as ``\\b<re.escape(synonym)>\\b``
(Python ``re``, Unicode word boundaries). Here each category is one compiled alternation
``\\b(?:s1|s2|...)\\b``; a regex search backtracks over every alternative at every position,
so it matches exactly when one of the single-synonym searches does. Consequences of the
frozen rule, all kept:

* no negation: "No fracture." is ``Fracture``; "no surgery needed" is ``surgery``;
* plurals match only where listed: "Fractures of L1 and L2." has no label, "NSAIDs" is not
  ``medication`` and "monitoring" is not ``monitor``;
* categories are not exclusive: "Compression fracture of T12." is ``Fracture`` and
  ``Vertebral collapse``; "posterior osteophyte" is also ``Osteophytes``;
* single words count wherever they occur: "No acute osseous abnormality." is
  ``Other lesions``; "The alignment is normal." is ``No finding``; "Radiograph of the lumbar
  spine." recommends ``imaging``; the fracture aliases ``fx``, ``break`` and ``broken`` are
  kept;
* synonyms contain single spaces and straight apostrophes only ("disc  space narrowing"
  does not match); ``schmorl`` alone is a synonym, so "Schmorl’s node" still matches.

Refusals (:func:`classify_refusal`) are searched in the original text, case-insensitively:
empty or whitespace-only text is ``FULL``; no refusal pattern is ``GENUINE`` (so "I'm sorry,
but I can't help with that." is ``GENUINE``); a refusal with direct clinical content is
``GENUINE``; a refusal with hedged clinical wording is ``PARTIAL``; any other refusal is
``FULL``. The released values of these classes are ``genuine``, ``partial_refusal`` and
``full_refusal`` (:data:`RELEASED_CLASS_VALUES`).
"""

from __future__ import annotations

import hashlib
import json
import re
from importlib import resources
from typing import Iterable

__all__ = [
    "REGISTRY_SHA256",
    "REGISTRY_INFO",
    "LABEL_SYNONYMS",
    "LABEL_CATEGORIES",
    "RECOMMENDATION_SYNONYMS",
    "RECOMMENDATION_CATEGORIES",
    "REFUSAL_PATTERNS",
    "CLINICAL_CONTENT_PATTERNS",
    "HEDGING_PATTERNS",
    "REFUSAL_CLASSES",
    "RELEASED_CLASS_VALUES",
    "SUBMISSION_SCHEMA_VERSION",
    "SCOPES",
    "parse_labels",
    "parse_recommendations",
    "classify_refusal",
    "parse_report",
    "set_jaccard",
    "label_jaccard",
    "recommendation_changed",
    "recommendation_jaccard",
]

_RAW = resources.files(__package__).joinpath("registry.json").read_bytes()
#: sha256 of ``registry.json`` (recorded in every score and in the audit note).
REGISTRY_SHA256 = hashlib.sha256(_RAW).hexdigest()
_REG = json.loads(_RAW.decode("utf-8"))
#: Where the registry was transcribed from: repository, commit, files and their sha256.
REGISTRY_INFO: dict = _REG["transcribed_from"]

#: The 13 diagnostic-label categories: category -> synonyms (released names and order).
LABEL_SYNONYMS: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in _REG["diagnostic_labels"]["categories"].items()}
LABEL_CATEGORIES: tuple[str, ...] = tuple(LABEL_SYNONYMS)
#: The 7 recommendation categories: category -> synonyms (released names and order).
RECOMMENDATION_SYNONYMS: dict[str, tuple[str, ...]] = {
    k: tuple(v) for k, v in _REG["recommendations"]["categories"].items()}
RECOMMENDATION_CATEGORIES: tuple[str, ...] = tuple(RECOMMENDATION_SYNONYMS)
REFUSAL_PATTERNS: tuple[str, ...] = tuple(_REG["refusals"]["refusal"])
CLINICAL_CONTENT_PATTERNS: tuple[str, ...] = tuple(_REG["refusals"]["direct_clinical_content"])
HEDGING_PATTERNS: tuple[str, ...] = tuple(_REG["refusals"]["hedged_clinical"])
REFUSAL_CLASSES = ("GENUINE", "PARTIAL", "FULL")
#: medrepro's refusal class -> the released ``ResponseClass`` value.
RELEASED_CLASS_VALUES: dict[str, str] = dict(_REG["refusals"]["released_class_values"])
SUBMISSION_SCHEMA_VERSION: str = _REG["submission"]["schema_version"]
SCOPES: tuple[str, ...] = tuple(_REG["submission"]["scopes"])
if _REG["refusals"]["flags"] != ["IGNORECASE"]:  # pragma: no cover - a registry edit
    raise ValueError("registry.json: refusals.flags: only ['IGNORECASE'] is supported")


def _alternation(table: dict[str, tuple[str, ...]]) -> list[tuple[str, re.Pattern[str]]]:
    return [(cat, re.compile(r"\b(?:" + "|".join(re.escape(s) for s in syns) + r")\b")) for cat, syns in table.items()]


def _any_of(patterns: Iterable[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


_LABEL_RE = _alternation(LABEL_SYNONYMS)
_REC_RE = _alternation(RECOMMENDATION_SYNONYMS)
_REFUSAL_RE = _any_of(REFUSAL_PATTERNS)
_CLINICAL_RE = _any_of(CLINICAL_CONTENT_PATTERNS)
_HEDGE_RE = _any_of(HEDGING_PATTERNS)


def _match(table: list[tuple[str, re.Pattern[str]]], text: str | None) -> set[str]:
    if not text:
        return set()
    low = text.lower()
    return {cat for cat, rx in table if rx.search(low)}


def parse_labels(text: str | None) -> set[str]:
    """Diagnostic-label categories of ``text`` (frozen rule; ``None`` and ``""`` give none)."""
    return _match(_LABEL_RE, text)


def parse_recommendations(text: str | None) -> set[str]:
    """Recommendation categories of ``text`` (frozen rule; ``None`` and ``""`` give none)."""
    return _match(_REC_RE, text)


def classify_refusal(text: str | None) -> str:
    """``"GENUINE" | "PARTIAL" | "FULL"`` in the frozen decision order (module docstring);
    ``None`` counts as empty text."""
    if not text or not text.strip():
        return "FULL"
    if _REFUSAL_RE.search(text) is None:
        return "GENUINE"
    if _CLINICAL_RE.search(text) is not None:
        return "GENUINE"
    if _HEDGE_RE.search(text) is not None:
        return "PARTIAL"
    return "FULL"


def parse_report(text: str | None) -> tuple[frozenset[str], frozenset[str], str]:
    """``(labels, recommendations, refusal class)`` of one report."""
    return frozenset(parse_labels(text)), frozenset(parse_recommendations(text)), classify_refusal(text)


def set_jaccard(a: Iterable[str], b: Iterable[str]) -> float:
    """Jaccard index of two sets; 1.0 when both are empty (frozen convention)."""
    a, b = set(a), set(b)
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def label_jaccard(a: Iterable[str] | str, b: Iterable[str] | str) -> float:
    """Diagnostic-label consistency of two label sets (or of two reports, parsed first)."""
    return set_jaccard(parse_labels(a) if isinstance(a, str) else a, parse_labels(b) if isinstance(b, str) else b)


def recommendation_changed(a: Iterable[str] | str, b: Iterable[str] | str) -> bool:
    """True when the two recommendation-category sets differ (reports are parsed first)."""
    ra = parse_recommendations(a) if isinstance(a, str) else set(a)
    rb = parse_recommendations(b) if isinstance(b, str) else set(b)
    return ra != rb


def recommendation_jaccard(a: Iterable[str] | str, b: Iterable[str] | str) -> float:
    """Jaccard of two recommendation-category sets (1.0 when both are empty; gap_graded uses it)."""
    ra = parse_recommendations(a) if isinstance(a, str) else a
    rb = parse_recommendations(b) if isinstance(b, str) else b
    return set_jaccard(ra, rb)
