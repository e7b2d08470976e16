"""Frozen report parsers: labels, recommendations, refusals (quirks included)."""

from __future__ import annotations

import pytest

from medrepro.studies.counterfactual.parse import (
    LABEL_CATEGORIES,
    LABEL_SYNONYMS,
    RECOMMENDATION_CATEGORIES,
    RECOMMENDATION_SYNONYMS,
    classify_refusal,
    label_jaccard,
    parse_labels,
    parse_recommendations,
    recommendation_changed,
    recommendation_jaccard,
)
from medrepro.studies.counterfactual.synthetic import LABEL_PHRASES, REC_PHRASES


def test_registries():
    assert len(LABEL_CATEGORIES) == 13
    assert set(LABEL_CATEGORIES) == {
        "osteophytes", "foraminal stenosis", "disc space narrowing", "spondylolisthesis",
        "surgical implant", "vertebral collapse", "other lesions", "no finding",
        "posterior osteophyte", "endplate sclerosis", "Schmorl's node", "disc calcification", "fracture",
    }
    assert RECOMMENDATION_CATEGORIES == ("surgery", "physical therapy", "imaging", "medication", "monitoring",
                                         "referral", "no action")
    for table in (LABEL_SYNONYMS, RECOMMENDATION_SYNONYMS):
        for syns in table.values():
            assert all(s == s.lower() and s.strip() == s for s in syns)


def test_every_synonym_matches_its_category():
    for cat, syns in LABEL_SYNONYMS.items():
        for s in syns:
            assert cat in parse_labels(f"There is {s}."), s
    for cat, syns in RECOMMENDATION_SYNONYMS.items():
        for s in syns:
            assert cat in parse_recommendations(f"We suggest {s}."), s


# ---------------------------------------------------------------- labels

def test_no_negation_handling_quirk():
    assert parse_labels("No fracture.") == {"fracture"}
    assert parse_labels("There is no evidence of spondylolisthesis or fracture.") == {"spondylolisthesis", "fracture"}


@pytest.mark.parametrize("text", ["L1 fx.", "Possible break of the pars.", "Broken pedicle screw? no", "FX"])
def test_fracture_aliases(text):
    assert "fracture" in parse_labels(text)


def test_word_boundaries_and_case():
    assert parse_labels("Osteophytes at L3.") == {"osteophytes"}
    assert parse_labels("fxr and breakage and unbroken") == set()  # no partial words
    assert parse_labels("SCHMORL'S NODE at L2") == {"Schmorl's node"}
    assert parse_labels("Schmorl\u2019s nodes at L2") == {"Schmorl's node"}
    assert parse_labels("disc  space narrowing") == set()  # literal single spaces (quirk)
    assert parse_labels("") == set() and parse_labels(None) == set()


def test_hand_made_reports():
    r1 = ("FINDINGS: Mild disc space narrowing at L4-L5 with anterior osteophytes. No fracture. "
          "Grade 1 anterolisthesis of L4 on L5. IMPRESSION: Degenerative change.")
    assert parse_labels(r1) == {"disc space narrowing", "osteophytes", "fracture", "spondylolisthesis"}
    r2 = "Posterior osteophytes narrow the neural foramina; endplate sclerosis; Schmorl's nodes."
    # a specific category also triggers the general one (categories are not exclusive)
    assert parse_labels(r2) == {"posterior osteophyte", "osteophytes", "endplate sclerosis", "Schmorl's node"}
    r3 = "Status post fusion with pedicle screws and rods. Wedge deformity of L1 with a lytic lesion."
    assert parse_labels(r3) == {"surgical implant", "vertebral collapse", "other lesions"}
    r4 = "Unremarkable lumbar spine radiograph. Calcified disc at T11-T12. Neural foraminal narrowing."
    assert parse_labels(r4) == {"no finding", "disc calcification", "foraminal stenosis"}


def test_label_phrases_used_by_the_generator_parse_exactly():
    for cat, phrases in LABEL_PHRASES.items():
        for p in phrases:
            assert parse_labels(f"Findings: {p}.") == {cat}, p
            assert parse_recommendations(f"Findings: {p}.") == set(), p


def test_label_jaccard():
    assert label_jaccard(set(), set()) == 1.0  # both empty: 1.0 (frozen)
    assert label_jaccard({"fracture"}, set()) == 0.0
    assert label_jaccard({"a", "b"}, {"b", "c"}) == pytest.approx(1 / 3)
    assert label_jaccard({"a"}, {"a"}) == 1.0
    assert label_jaccard("No fracture", "fx") == 1.0
    assert label_jaccard("alignment normal", "soft tissues fine") == 1.0


# ---------------------------------------------------------------- recommendations

def test_recommendations_hand_made():
    assert parse_recommendations("Recommend MRI and physical therapy.") == {"imaging", "physical therapy"}
    assert parse_recommendations("Conservative management.") == {"no action"}
    assert parse_recommendations("Can be treated conservatively.") == {"no action"}
    assert parse_recommendations("No further action required.") == {"no action"}
    assert parse_recommendations("NSAIDs; orthopedic consultation.") == {"medication", "referral"}
    assert parse_recommendations("Clinical follow-up in 6 weeks.") == {"monitoring"}
    assert parse_recommendations("Surgical decompression is advised.") == {"surgery"}
    assert parse_recommendations("no surgery needed") == {"surgery"}  # no negation handling
    assert parse_recommendations("Follow-up radiographs.") == {"monitoring", "imaging"}  # non-exclusive
    assert parse_recommendations("Refer to neurosurgery.") == {"referral"}  # \bsurgery\b not inside neurosurgery
    assert parse_recommendations("") == set()


def test_rec_phrases_used_by_the_generator_parse_exactly():
    for cat, phrases in REC_PHRASES.items():
        for p in phrases:
            assert parse_recommendations(f"Recommendation: {p}.") == {cat}, p
            assert parse_labels(f"Recommendation: {p}.") == set(), p


def test_recommendation_change_and_jaccard():
    assert recommendation_changed("Recommend an MRI.", "Further evaluation with a CT scan.") is False
    assert recommendation_changed("Recommend an MRI.", "Recommend an MRI and physiotherapy.") is True
    assert recommendation_changed({"imaging"}, {"imaging"}) is False
    assert recommendation_changed(set(), set()) is False
    assert recommendation_jaccard({"imaging"}, {"imaging", "referral"}) == 0.5
    assert recommendation_jaccard(set(), set()) == 1.0


# ---------------------------------------------------------------- refusals

@pytest.mark.parametrize(
    "text, expected",
    [
        ("", "FULL"),
        ("   \n", "FULL"),
        (None, "FULL"),
        ("Findings: mild osteophytes. Recommend physical therapy.", "GENUINE"),
        ("The spine looks fine to me.", "GENUINE"),  # no refusal pattern at all
        ("I'm sorry, but I cannot interpret medical images. Please consult a radiologist.", "FULL"),
        ("I can\u2019t help with this radiograph.", "FULL"),
        ("As an AI, I must decline to read radiographs.", "FULL"),
        ("I cannot provide a definitive diagnosis, but this may represent degenerative change.", "PARTIAL"),
        ("I am unable to give a formal report; the appearance is unclear.", "PARTIAL"),
        ("I cannot be certain, but there is a compression fracture of L1.", "GENUINE"),  # clinical content
        ("I am not a radiologist. Findings: disc space narrowing at L5-S1.", "GENUINE"),
        ("I'm sorry; I cannot exclude a fracture.", "GENUINE"),  # a label is direct clinical content
        ("I am unable to interpret this image; it is possibly normal, and I cannot be sure.", "PARTIAL"),
    ],
)
def test_classify_refusal(text, expected):
    assert classify_refusal(text) == expected
