"""Content rules: what the user wrote goes live exactly (NFC only), and validity agrees with twitter-text v3."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest

from pipeline.content import ContentError, fingerprint, make_draft, text_fingerprint, validate_part, x_refuses

CONFORMANCE = json.loads((Path(__file__).parent / "fixtures" / "twitter_text_validate_v3.json").read_text())


def _valid(text: str) -> bool:
    return x_refuses(text) is None


def test_the_conformance_fixture_holds_all_24_tweet_validity_cases() -> None:
    assert len(CONFORMANCE["cases"]) == 24
    assert sum(1 for c in CONFORMANCE["cases"] if not c["valid"]) == 10


@pytest.mark.parametrize("case", CONFORMANCE["cases"], ids=[c["description"][:60] for c in CONFORMANCE["cases"]])
def test_validity_agrees_with_twitter_text_v3_conformance(case: dict) -> None:
    assert _valid(case["text"]) is case["valid"], case["description"]


def test_zero_width_space_is_accepted_and_fffe_ffff_are_refused() -> None:
    assert validate_part("a\u200bb") == "a\u200bb"
    for bad in ("\ufffe", "\uffff", "\ufeff"):
        with pytest.raises(ContentError, match=f"U\\+{ord(bad):04X}"):
            validate_part(f"text {bad} here")


def test_bidi_controls_x_would_take_are_refused_by_our_policy() -> None:
    text = "\u2066\u202ahttp://foobar.example/\u202c\u2069"
    assert x_refuses(text) is None  # X's own rule (conformance): valid
    with pytest.raises(ContentError, match="U\\+2066"):
        validate_part(text)


def test_line_breaks_and_spacing_are_kept_exactly_as_written() -> None:
    text = "Big news!\n\nWe shipped v2:\n- faster\n- smaller  & safer "
    draft = make_draft("alice", [text])
    assert draft.parts == [text]


def test_text_is_nfc_normalised_and_nothing_else() -> None:
    decomposed = "cafe\u0301\n\nok"
    assert validate_part(decomposed) == unicodedata.normalize("NFC", decomposed) == "caf\u00e9\n\nok"


def test_whitespace_is_folded_only_inside_fingerprints() -> None:
    assert text_fingerprint("line one\n\nline  two") == text_fingerprint("line one line two")
    assert fingerprint(["A\nB", "c"]) == fingerprint(["a b", "C"])
    assert fingerprint(["a b"]) != fingerprint(["ab"])


def test_control_characters_and_blank_text_are_refused_by_name() -> None:
    with pytest.raises(ContentError, match="U\\+0007"):
        validate_part("bell \x07")
    with pytest.raises(ContentError, match="empty"):
        validate_part(" \n\t ")
    with pytest.raises(ContentError, match="281 weighted characters"):
        validate_part("x" * 281)
