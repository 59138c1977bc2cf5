"""The shared decimal rules: amounts by currency, KPI values, and their plain renderings."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from pydantic_core import PydanticCustomError

from services.shared.validation import (
    CURRENCY_DIGITS,
    VALUE_FRACTION_DIGITS,
    format_amount,
    format_value,
    parse_decimal,
)

ARABIC_INDIC_123 = "\u0661\u0662\u0663"  # "١٢٣": digits to str.isdigit and Decimal, not to us


def refusal(rule: Callable[[], object]) -> tuple[str, str]:
    """The (reason, description) a rule raises."""
    with pytest.raises(PydanticCustomError) as caught:
        rule()
    return caught.value.type, caught.value.message()


def amount(raw: str, currency: str | None = "USD", default: str | None = None) -> Decimal:
    return parse_decimal(raw, reason_prefix="AMOUNT", currency=currency, default=default)


def value(raw: str, *, percentage: bool = False) -> Decimal:
    return parse_decimal(
        raw, reason_prefix="VALUE", fraction_digits=VALUE_FRACTION_DIGITS, percentage=percentage
    )


@pytest.mark.parametrize(
    ("raw", "currency", "expected"),
    [
        ("1250000.00", "USD", Decimal("1250000.00")),
        ("  1250000.5 ", "USD", Decimal("1250000.5")),
        ("0", "USD", Decimal(0)),
        ("999999999999999.99", "EUR", Decimal("999999999999999.99")),
        ("1250000", "JPY", Decimal(1250000)),
        ("1.123", None, Decimal("1.123")),  # the currency failed on its own: no digit bound
    ],
)
def test_amounts_parse_to_exact_decimals(raw: str, currency: str | None, expected: Decimal) -> None:
    parsed = amount(raw, currency)

    assert parsed == expected
    assert type(parsed) is Decimal
    assert str(parsed) == str(expected)


def test_a_blank_optional_amount_takes_the_default() -> None:
    assert amount("  ", default="0") == Decimal(0)
    assert amount("", currency="JPY", default="0") == Decimal(0)


@pytest.mark.parametrize(
    ("raw", "currency", "reason", "description"),
    [
        ("", "USD", "AMOUNT_REQUIRED", "is required"),
        ("   ", "USD", "AMOUNT_REQUIRED", "is required"),
        ("12,5", "USD", "AMOUNT_NOT_DECIMAL", 'must be a decimal string such as "1250000.00"'),
        (
            ARABIC_INDIC_123,
            "USD",
            "AMOUNT_NOT_DECIMAL",
            'must be a decimal string such as "1250000.00"',
        ),
        (
            ARABIC_INDIC_123,
            None,
            "AMOUNT_NOT_DECIMAL",
            'must be a decimal string such as "1250000.00"',
        ),
        ("-5", "USD", "AMOUNT_NEGATIVE", "must not be negative"),
        ("-0.01", "USD", "AMOUNT_NEGATIVE", "must not be negative"),
        ("1.001", "USD", "AMOUNT_TOO_PRECISE", "must have at most 2 fraction digits for USD"),
        ("100.5", "JPY", "AMOUNT_TOO_PRECISE", "must have at most 0 fraction digits for JPY"),
        ("100.0", "JPY", "AMOUNT_TOO_PRECISE", "must have at most 0 fraction digits for JPY"),
        ("1" + "0" * 15, "USD", "AMOUNT_TOO_LARGE", "must have at most 15 integer digits"),
    ],
)
def test_each_amount_rule_has_its_reason_and_description(
    raw: str, currency: str | None, reason: str, description: str
) -> None:
    assert refusal(lambda: amount(raw, currency)) == (reason, description)


@pytest.mark.parametrize(
    "raw",
    [
        "abc",
        "1e6",
        "NaN",
        "Infinity",
        "+5",
        "5.",
        ".5",
        "--5",
        "1.5.0",
        "1 000",
        "0x10",
        "\uff11\uff12",
    ],
)
def test_only_plain_ascii_decimals_are_numbers(raw: str) -> None:
    assert refusal(lambda: amount(raw))[0] == "AMOUNT_NOT_DECIMAL"
    assert refusal(lambda: value(raw))[0] == "VALUE_NOT_DECIMAL"


@pytest.mark.parametrize(
    ("raw", "percentage", "reason", "description"),
    [
        ("", False, "VALUE_REQUIRED", "is required"),
        ("9.1e3", False, "VALUE_NOT_DECIMAL", 'must be a decimal string such as "1200.5"'),
        (ARABIC_INDIC_123, False, "VALUE_NOT_DECIMAL", 'must be a decimal string such as "1200.5"'),
        ("-3", False, "VALUE_NEGATIVE", "must not be negative"),
        ("1.0000001", False, "VALUE_TOO_PRECISE", "must have at most 6 fraction digits"),
        ("9" * 16, False, "VALUE_TOO_LARGE", "must have at most 15 integer digits"),
        ("100.01", True, "VALUE_NOT_A_PERCENTAGE", "must be a percentage from 0 to 100"),
    ],
)
def test_each_value_rule_has_its_reason_and_description(
    raw: str, percentage: bool, reason: str, description: str
) -> None:
    assert refusal(lambda: value(raw, percentage=percentage)) == (reason, description)


def test_value_bounds_themselves_are_accepted() -> None:
    assert value("0.000001") == Decimal("0.000001")
    assert value("999999999999999.999999") == Decimal("999999999999999.999999")
    assert value("100", percentage=True) == Decimal(100)
    assert value("250") == Decimal(250)


def test_digits_come_from_a_currency_or_a_count_never_both() -> None:
    with pytest.raises(ValueError, match="not both"):
        parse_decimal("1", reason_prefix="AMOUNT", fraction_digits=2, currency="USD")


@pytest.mark.parametrize(
    ("amount_value", "currency", "expected"),
    [
        (Decimal("1250000.5"), "USD", "1250000.50"),
        (Decimal("1E+6"), "EUR", "1000000.00"),
        (Decimal(1250000), "JPY", "1250000"),
        (Decimal("-0.00"), "USD", "0.00"),
        (Decimal("999999999999999.99"), "GBP", "999999999999999.99"),
    ],
)
def test_format_amount_writes_the_currency_digits(
    amount_value: Decimal, currency: str, expected: str
) -> None:
    assert format_amount(amount_value, currency) == expected


@pytest.mark.parametrize(
    ("amount_value", "currency"),
    [
        (Decimal("1.001"), "USD"),
        (Decimal("0.5"), "JPY"),
        (Decimal("NaN"), "USD"),
        (Decimal(1), "XYZ"),
    ],
)
def test_format_amount_never_rounds_or_guesses(amount_value: Decimal, currency: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        format_amount(amount_value, currency)


def test_every_currency_round_trips_through_parse_and_format() -> None:
    for currency, digits in CURRENCY_DIGITS.items():
        raw = "1234" + ("." + "5" * digits if digits else "")
        assert format_amount(amount(raw, currency), currency) == raw


def test_format_value_is_minimal_and_plain() -> None:
    assert format_value(Decimal("1200.500000")) == "1200.5"
    assert format_value(Decimal("1E+3")) == "1000"
    assert format_value(Decimal("0.000001")) == "0.000001"
    with pytest.raises(ValueError, match="not finite"):
        format_value(Decimal("Infinity"))
