"""CreateLoan validation: every rule names its proto field and a stable reason."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pydantic
import pytest

from services.loans.loan.conversions import loan_form
from services.loans.loan.schemas import CURRENCY_DIGITS, NewLoan, format_amount, parse_new_loan
from services.loans.vocabulary import InterestPeriod, LoanType, ReferenceRate
from services.shared.errors import Code, FieldViolation, ValidationError
from tests.loans.factories import loan_request

# The CreateLoan template as the servicer hands it to the parser: every field a string.
VALID = loan_form(loan_request())


def reasons_for(**overrides: str) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        parse_new_loan(**{**VALID, **overrides})
    return caught.value.reasons


def test_valid_loan_parses_to_typed_values() -> None:
    loan = parse_new_loan(**{**VALID, "name": "  Green Term Loan 2027  "})

    assert loan == NewLoan.model_construct(
        name="Green Term Loan 2027",
        loan_type=LoanType.FIXED_RATE,
        currency_code="EUR",
        principal_amount=Decimal("1250000.00"),
        committed_amount=Decimal("1000000.00"),
        drawn_amount=Decimal("250000.50"),
        start_date=datetime.date(2027, 1, 1),
        maturity_date=datetime.date(2032, 1, 1),
        # The facility terms a loan gets when its request leaves them out.
        base_margin_bps=0,
        reference_rate=ReferenceRate.FIXED,
        interest_period=InterestPeriod.QUARTERLY,
        adjustment_cap_bps=500,
        adjustment_floor_bps=-500,
        reporting_grace_days=120,  # the reporting grace likewise
    )
    assert type(loan.principal_amount) is Decimal
    assert type(loan.loan_type) is LoanType


def test_new_loan_is_frozen() -> None:
    loan = parse_new_loan(**VALID)
    with pytest.raises(pydantic.ValidationError):
        loan.name = "other"  # type: ignore[misc]  # the very assignment mypy refuses: frozen


@pytest.mark.parametrize("member", list(LoanType))
def test_every_loan_type_parses_from_its_proto_name(member: LoanType) -> None:
    assert parse_new_loan(**{**VALID, "loan_type": f"LOAN_TYPE_{member}"}).loan_type is member


def test_optional_amounts_default_to_zero() -> None:
    loan = parse_new_loan(**{**VALID, "committed_amount": "", "drawn_amount": "  "})
    assert (loan.committed_amount, loan.drawn_amount) == (Decimal(0), Decimal(0))


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"name": "   "}, "name", "NAME_REQUIRED"),
        ({"name": "x" * 201}, "name", "NAME_TOO_LONG"),
        ({"loan_type": ""}, "loan_type", "LOAN_TYPE_REQUIRED"),
        ({"loan_type": "LOAN_TYPE_UNSPECIFIED"}, "loan_type", "LOAN_TYPE_REQUIRED"),
        ({"loan_type": "LOAN_TYPE_MORTGAGE"}, "loan_type", "LOAN_TYPE_INVALID"),
        ({"loan_type": "FIXED_RATE"}, "loan_type", "LOAN_TYPE_INVALID"),
        ({"loan_type": "LOAN_TYPE_"}, "loan_type", "LOAN_TYPE_INVALID"),
        ({"currency_code": ""}, "currency_code", "CURRENCY_REQUIRED"),
        ({"currency_code": "usd"}, "currency_code", "CURRENCY_UNSUPPORTED"),
        ({"currency_code": "XYZ"}, "currency_code", "CURRENCY_UNSUPPORTED"),
        ({"currency_code": "USDX"}, "currency_code", "CURRENCY_UNSUPPORTED"),
        ({"principal_amount": " "}, "principal_amount", "AMOUNT_REQUIRED"),
        ({"principal_amount": "abc"}, "principal_amount", "AMOUNT_NOT_DECIMAL"),
        ({"principal_amount": "1e6"}, "principal_amount", "AMOUNT_NOT_DECIMAL"),
        ({"principal_amount": "NaN"}, "principal_amount", "AMOUNT_NOT_DECIMAL"),
        ({"principal_amount": "Infinity"}, "principal_amount", "AMOUNT_NOT_DECIMAL"),
        ({"principal_amount": "1,250,000"}, "principal_amount", "AMOUNT_NOT_DECIMAL"),
        ({"principal_amount": "+5"}, "principal_amount", "AMOUNT_NOT_DECIMAL"),
        ({"principal_amount": "5."}, "principal_amount", "AMOUNT_NOT_DECIMAL"),
        ({"principal_amount": ".5"}, "principal_amount", "AMOUNT_NOT_DECIMAL"),
        ({"principal_amount": "١٢٣"}, "principal_amount", "AMOUNT_NOT_DECIMAL"),
        ({"principal_amount": "--5"}, "principal_amount", "AMOUNT_NOT_DECIMAL"),
        ({"principal_amount": "-5"}, "principal_amount", "AMOUNT_NEGATIVE"),
        ({"principal_amount": "0.00"}, "principal_amount", "AMOUNT_NOT_POSITIVE"),
        ({"principal_amount": "1.001"}, "principal_amount", "AMOUNT_TOO_PRECISE"),
        ({"principal_amount": "1" + "0" * 15}, "principal_amount", "AMOUNT_TOO_LARGE"),
        ({"committed_amount": "-1"}, "committed_amount", "AMOUNT_NEGATIVE"),
        ({"committed_amount": "1.5.0"}, "committed_amount", "AMOUNT_NOT_DECIMAL"),
        ({"committed_amount": "0.123"}, "committed_amount", "AMOUNT_TOO_PRECISE"),
        ({"drawn_amount": "-0.01"}, "drawn_amount", "AMOUNT_NEGATIVE"),
        ({"drawn_amount": "x"}, "drawn_amount", "AMOUNT_NOT_DECIMAL"),
        ({"drawn_amount": "9" * 16}, "drawn_amount", "AMOUNT_TOO_LARGE"),
        ({"committed_amount": "1250000.01"}, "committed_amount", "COMMITTED_EXCEEDS_PRINCIPAL"),
        ({"drawn_amount": "1000000.01"}, "drawn_amount", "DRAWN_EXCEEDS_COMMITTED"),
        ({"committed_amount": "", "drawn_amount": "1"}, "drawn_amount", "DRAWN_EXCEEDS_COMMITTED"),
        ({"start_date": ""}, "start_date", "DATE_REQUIRED"),
        ({"start_date": "2025-1-15"}, "start_date", "DATE_INVALID_FORMAT"),
        ({"start_date": "15/01/2025"}, "start_date", "DATE_INVALID_FORMAT"),
        ({"start_date": "2025-01-15T00:00:00"}, "start_date", "DATE_INVALID_FORMAT"),
        ({"start_date": "20250115"}, "start_date", "DATE_INVALID_FORMAT"),
        ({"start_date": "2025-02-30"}, "start_date", "DATE_DOES_NOT_EXIST"),
        ({"start_date": "2025-13-01"}, "start_date", "DATE_DOES_NOT_EXIST"),
        ({"maturity_date": ""}, "maturity_date", "DATE_REQUIRED"),
        ({"maturity_date": "2030-1-1"}, "maturity_date", "DATE_INVALID_FORMAT"),
        ({"maturity_date": "2030-02-29"}, "maturity_date", "DATE_DOES_NOT_EXIST"),
        ({"maturity_date": "2027-01-01"}, "maturity_date", "MATURITY_NOT_AFTER_START"),
        ({"maturity_date": "2026-12-31"}, "maturity_date", "MATURITY_NOT_AFTER_START"),
    ],
)
def test_each_rule_names_its_field_and_reason(
    overrides: dict[str, str], field: str, reason: str
) -> None:
    assert reasons_for(**overrides) == {field: reason}


def test_violation_carries_code_reason_and_description() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_new_loan(**{**VALID, "principal_amount": "12,5"})

    error = caught.value
    assert (error.code, error.reason, error.message) == (
        Code.INVALID_ARGUMENT,
        "AMOUNT_NOT_DECIMAL",
        "invalid principal_amount",
    )
    assert error.field_violations == (
        FieldViolation("principal_amount", 'must be a decimal string such as "1250000.00"'),
    )


def test_too_precise_description_names_the_currency() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_new_loan(**{**VALID, "currency_code": "JPY", "principal_amount": "100.5"})
    assert caught.value.field_violations[0].description == (
        "must have at most 0 fraction digits for JPY"
    )


@pytest.mark.parametrize(
    ("currency", "amount", "valid"),
    [
        ("JPY", "100", True),
        ("JPY", "100.5", False),
        ("JPY", "100.0", False),
        ("USD", "100.50", True),
        ("USD", "100.505", False),
        ("EUR", "0.01", True),
    ],
)
def test_precision_follows_the_currency(currency: str, amount: str, valid: bool) -> None:
    fields = {
        **VALID,
        "currency_code": currency,
        "principal_amount": amount,
        "committed_amount": "",
        "drawn_amount": "",
    }
    if valid:
        assert parse_new_loan(**fields).principal_amount == Decimal(amount)
    else:
        assert reasons_for(**fields) == {"principal_amount": "AMOUNT_TOO_PRECISE"}


def test_unknown_currency_skips_the_precision_check() -> None:
    assert reasons_for(currency_code="ABC", principal_amount="9999999.123456") == {
        "currency_code": "CURRENCY_UNSUPPORTED"
    }


def test_largest_amount_is_accepted() -> None:
    largest = "9" * 15 + ".99"
    loan = parse_new_loan(**{**VALID, "principal_amount": largest})
    assert loan.principal_amount == Decimal(largest)


def test_cross_field_rules_wait_for_valid_fields() -> None:
    # An invalid field must not also produce a violation derived from it.
    assert reasons_for(
        principal_amount="abc",
        committed_amount="9000000",
        start_date="2031-02-30",
        maturity_date="2030-01-01",
    ) == {"principal_amount": "AMOUNT_NOT_DECIMAL", "start_date": "DATE_DOES_NOT_EXIST"}


def test_all_violations_are_reported_in_field_order() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_new_loan(
            name="",
            loan_type="LOAN_TYPE_UNSPECIFIED",
            currency_code="usd",
            principal_amount="-1",
            committed_amount="1e3",
            drawn_amount="NaN",
            start_date="2025-02-30",
            maturity_date="tomorrow",
        )

    error = caught.value
    # The loan's own terms; the facility and reporting terms left out take their defaults.
    assert [v.field for v in error.field_violations] == list(VALID)[:8]
    assert error.reasons == {
        "name": "NAME_REQUIRED",
        "loan_type": "LOAN_TYPE_REQUIRED",
        "currency_code": "CURRENCY_UNSUPPORTED",
        "principal_amount": "AMOUNT_NEGATIVE",
        "committed_amount": "AMOUNT_NOT_DECIMAL",
        "drawn_amount": "AMOUNT_NOT_DECIMAL",
        "start_date": "DATE_DOES_NOT_EXIST",
        "maturity_date": "DATE_INVALID_FORMAT",
    }
    assert (error.reason, error.message) == ("NAME_REQUIRED", "invalid request fields")


def test_cross_field_rule_is_reported_alongside_unrelated_violations() -> None:
    assert reasons_for(name="", drawn_amount="2000000", maturity_date="2020-01-01") == {
        "name": "NAME_REQUIRED",
        "drawn_amount": "DRAWN_EXCEEDS_COMMITTED",
        "maturity_date": "MATURITY_NOT_AFTER_START",
    }


def test_missing_fields_are_proto3_empty_strings() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_new_loan()
    assert caught.value.reasons == {
        "name": "NAME_REQUIRED",
        "loan_type": "LOAN_TYPE_REQUIRED",
        "currency_code": "CURRENCY_REQUIRED",
        "principal_amount": "AMOUNT_REQUIRED",
        "start_date": "DATE_REQUIRED",
        "maturity_date": "DATE_REQUIRED",
    }


def test_unknown_field_is_a_caller_bug_not_a_violation() -> None:
    with pytest.raises(pydantic.ValidationError):
        parse_new_loan(**VALID, lender_email="x@example.com")


@pytest.mark.parametrize(
    ("value", "currency", "expected"),
    [
        (Decimal("1250000"), "USD", "1250000.00"),
        (Decimal("1250000"), "JPY", "1250000"),
        (Decimal("1250000.5"), "EUR", "1250000.50"),
        (Decimal("1.25E+6"), "GBP", "1250000.00"),
        (Decimal("100.000"), "JPY", "100"),
        (Decimal("0"), "CHF", "0.00"),
        (Decimal("-0"), "USD", "0.00"),
        (Decimal("999999999999999.99"), "USD", "999999999999999.99"),
    ],
)
def test_format_amount(value: Decimal, currency: str, expected: str) -> None:
    assert format_amount(value, currency) == expected


@pytest.mark.parametrize(
    ("value", "currency"),
    [
        (Decimal("1.005"), "USD"),
        (Decimal("100.5"), "JPY"),
        (Decimal("NaN"), "USD"),
        (Decimal("Infinity"), "USD"),
        (Decimal("1"), "XYZ"),
    ],
)
def test_format_amount_refuses_to_round_or_guess(value: Decimal, currency: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        format_amount(value, currency)


@pytest.mark.parametrize("currency", sorted(CURRENCY_DIGITS))
def test_format_amount_round_trips_through_the_parser(currency: str) -> None:
    text = format_amount(Decimal(1234), currency)
    fields = {**VALID, "currency_code": currency, "principal_amount": text}
    fields |= {"committed_amount": "", "drawn_amount": ""}
    assert parse_new_loan(**fields).principal_amount == Decimal(1234)


@pytest.mark.parametrize(
    ("currency", "digits"),
    [
        ("USD", 2),
        ("EUR", 2),
        ("GBP", 2),
        ("JPY", 0),
        ("AUD", 2),
        ("CAD", 2),
        ("CHF", 2),
        ("CNY", 2),
        ("INR", 2),
    ],
)
def test_seed_currencies_are_supported(currency: str, digits: int) -> None:
    assert CURRENCY_DIGITS[currency] == digits
