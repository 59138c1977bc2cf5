"""The shared text rules: stripped, bounded, no control or bidirectional formatting characters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic_core import PydanticCustomError

from services.shared.errors import FieldViolation, ValidationError
from services.shared.validation import (
    INT64_MAX,
    check_characters,
    check_range,
    parse_reason,
    text,
    text_field,
)

BIDI_CONTROLS = [chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))] + [
    "\u200e",
    "\u200f",
    "\u061c",
]


def refusal(rule: Callable[[], object]) -> tuple[str, str]:
    """The (reason, description) a rule raises."""
    with pytest.raises(PydanticCustomError) as caught:
        rule()
    return caught.value.type, caught.value.message()


def name(raw: str, **options: Any) -> str:
    return text(raw, reason_prefix="NAME", limit=20, **options)


def test_text_is_stripped_and_bounded() -> None:
    assert name("  Solar Park  ") == "Solar Park"
    assert name("n" * 20) == "n" * 20
    assert refusal(lambda: name(" \t\n ")) == ("NAME_REQUIRED", "is required")
    assert refusal(lambda: name("n" * 21)) == ("NAME_TOO_LONG", "must be at most 20 characters")


def test_optional_text_may_be_empty() -> None:
    assert name("   ", required=False) == ""
    assert refusal(lambda: name("n" * 21, required=False))[0] == "NAME_TOO_LONG"


@pytest.mark.parametrize(
    "raw",
    [
        "Solar\u001b[2J Park\u0007\u0000",
        "Green\u0000Bank",
        "Eve\u001b[2J",
        "tab\there",
        "line\nbreak",
        "carriage\rreturn",
        "del\u007f",
        "c1\u0085next",
        "c1\u009bcsi",
    ],
)
def test_single_line_text_refuses_control_characters(raw: str) -> None:
    assert refusal(lambda: name(raw)) == (
        "NAME_HAS_CONTROL_CHARACTERS",
        "must not contain control characters",
    )


@pytest.mark.parametrize("bidi", BIDI_CONTROLS)
def test_text_refuses_each_bidirectional_formatting_character(bidi: str) -> None:
    assert refusal(lambda: name(f"a{bidi}b")) == (
        "NAME_HAS_BIDI_CONTROLS",
        "must not contain bidirectional formatting characters",
    )


def test_a_reversed_file_name_is_refused() -> None:
    assert refusal(lambda: name("Invoice \u202efdp.exe"))[0] == "NAME_HAS_BIDI_CONTROLS"
    assert refusal(lambda: name("Invoice \u202efdp.exe", multiline=True))[0] == (
        "NAME_HAS_BIDI_CONTROLS"
    )


def test_multiline_text_keeps_tabs_and_newlines_only() -> None:
    assert name(" a\tb\nc ", multiline=True) == "a\tb\nc"
    assert refusal(lambda: name("a\r\nb", multiline=True)) == (
        "NAME_HAS_CONTROL_CHARACTERS",
        "must not contain control characters other than tab and newline",
    )
    assert refusal(lambda: name("a\u001b[2Jb", multiline=True))[0] == "NAME_HAS_CONTROL_CHARACTERS"


@pytest.mark.parametrize(
    "raw",
    [
        "Zürich ☀ 🌍",
        "شركة الطاقة",
        "עברית",
        "Zoë Ødegård",
        "👩\u200d💻 team",
        "a\u00a0b",
        "“quoted”",
    ],
)
def test_ordinary_unicode_text_is_accepted(raw: str) -> None:
    assert name(raw) == raw


def test_check_characters_never_alters_the_value() -> None:
    assert check_characters(" as sent ", reason_prefix="VALUE") == " as sent "
    assert refusal(lambda: check_characters("a\x00", reason_prefix="VALUE"))[0] == (
        "VALUE_HAS_CONTROL_CHARACTERS"
    )


def reason_violation(raw: str) -> tuple[str, str, tuple[FieldViolation, ...]]:
    with pytest.raises(ValidationError) as caught:
        parse_reason(raw)
    error = caught.value
    return error.reason, error.message, error.field_violations


def test_a_rejection_reason_is_required_bounded_and_plain() -> None:
    assert parse_reason("  Targets too weak.\n\tSee section 2.  ") == (
        "Targets too weak.\n\tSee section 2."
    )
    assert parse_reason("r" * 1000) == "r" * 1000
    assert reason_violation("   ") == (
        "REASON_REQUIRED",
        "invalid reason",
        (FieldViolation("reason", "is required"),),
    )
    assert reason_violation("r" * 1001)[0::2] == (
        "REASON_TOO_LONG",
        (FieldViolation("reason", "must be at most 1000 characters"),),
    )
    assert reason_violation("late\u0007")[0] == "REASON_HAS_CONTROL_CHARACTERS"
    assert reason_violation("see \u202eexe.fdp")[0] == "REASON_HAS_BIDI_CONTROLS"


def test_text_is_normalised_to_nfc_and_counted_as_such() -> None:
    decomposed = "Cafe\u0301 Zoe\u0308"  # combining acute accent and diaeresis

    assert name(decomposed) == "Café Zoë"
    assert name("e\u0301" * 20) == "é" * 20  # 40 code points sent, 20 characters kept
    assert refusal(lambda: name("e\u0301" * 21))[0] == "NAME_TOO_LONG"
    assert refusal(lambda: name("n" * 81))[0] == "NAME_TOO_LONG"  # refused before NFC


def test_text_field_names_the_field_it_refuses() -> None:
    with pytest.raises(ValidationError) as caught:
        text_field("Eve\u001b[2J", field="filter.name", reason_prefix="NAME", limit=20)

    assert caught.value.reasons == {"filter.name": "NAME_HAS_CONTROL_CHARACTERS"}
    assert text_field(" Cafe\u0301 ", field="name", reason_prefix="NAME", limit=20) == "Café"


@pytest.mark.parametrize(
    ("value", "ok"), [(0, True), (INT64_MAX, True), (-1, False), (INT64_MAX + 1, False)]
)
def test_integers_are_range_checked_naming_the_field(value: int, ok: bool) -> None:
    if ok:
        assert check_range(value, "after_sequence") == value
        return
    with pytest.raises(ValidationError) as caught:
        check_range(value, "after_sequence")
    assert caught.value.reasons == {"after_sequence": "AFTER_SEQUENCE_OUT_OF_RANGE"}
