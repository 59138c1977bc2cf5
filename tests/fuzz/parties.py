"""Who a fuzzed call claims to be, and the values of the run that reach past the first checks.

The parties register and log in through the real auth service with long
random passwords (an admin is made as an operator makes one); the service
identity gets its token with the deployment's secret. Besides them a call may
carry no token or one of several bad ones. ``RunValues`` hands the request
builder, by field name, real ids, etags, emails, page and refresh tokens, so
that random requests reach the rules behind "not found".
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from loansuite.audit.v1 import audit_service_pb2 as audit_pb
from loansuite.auth.v1 import auth_service_pb2 as auth_pb
from loansuite.loans.v1 import loan_service_pb2 as pb

from services.auth.wiring import create_admin
from tests.loans.journey import Journey
from tests.support import SERVICE_SECRET, Account, Suite, bearer, eventually

__all__ = ["Party", "RunValues", "callers", "enrol", "enrol_admin", "seed"]

ROLES: Final = ("borrower", "lender", "admin", "service")
_Values = Callable[["RunValues"], Sequence[str]]  # the values of one kind of field


def strong_password() -> str:
    """A long random password: whatever the password rules, it passes them."""
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class Party:
    """A logged-in user, with what they logged in with and the refresh token they got."""

    account: Account
    password: str
    refresh_token: str


def _log_in(suite: Suite, email: str, password: str) -> Party:
    login = suite.auth.Login(auth_pb.LoginRequest(email=email, password=password))
    assert login.HasField("session"), login.error
    session = login.session
    account = Account(email, session.user.id, session.user.organization.id, session.access_token)
    return Party(account, password, session.refresh_token)


def enrol(suite: Suite, role: str) -> Party:
    """Register a borrower or lender with an organization of their own, and log them in."""
    email, password = f"fuzz-{role}-{uuid.uuid4().hex[:8]}@example.com", strong_password()
    request = auth_pb.RegisterRequest(
        email=email,
        password=password,
        name=f"Fuzz {role.title()}",
        role=auth_pb.UserRole.Value(f"USER_ROLE_{role.upper()}"),
        organization_name=f"Fuzz {role.title()} {uuid.uuid4().hex[:6]}",
    )
    registered = suite.auth.Register(request)
    assert registered.HasField("user"), registered.error
    return _log_in(suite, email, password)


def enrol_admin(suite: Suite) -> Party:
    """An admin made by the operator command, logged in."""
    email, password = f"fuzz-admin-{uuid.uuid4().hex[:8]}@example.com", strong_password()
    create_admin(suite.settings, email=email, password=password, name="Fuzz Admin")
    return _log_in(suite, email, password)


def service_token(suite: Suite) -> str:
    """An access token of the loans service identity."""
    request = auth_pb.IssueServiceTokenRequest(service_name="loans", service_secret=SERVICE_SECRET)
    response = suite.auth.IssueServiceToken(request)
    assert response.HasField("token"), response.error
    return response.token.access_token


def callers(parties: dict[str, Party], service: str) -> dict[str, str | None]:
    """The authorization header of each kind of caller; None sends none."""
    real = parties["borrower"].account.access_token
    flipped = real[:-2] + ("A" if real[-2] != "A" else "B") + real[-1]
    return {
        "anonymous": None,
        "garbage": "Bearer not-a-token",
        "unsigned": "Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ4In0.",
        "tampered": f"Bearer {flipped}",
        "refresh_as_access": f"Bearer {parties['borrower'].refresh_token}",
        "no_scheme": real,
        "huge": "Bearer " + "A" * 4000,
        **{
            role: dict(bearer(parties[role].account.access_token))["authorization"]
            for role in ROLES[:3]
        },
        "service": f"Bearer {service}",
    }


@dataclass
class RunValues:
    """Values of the run worth trying in a request field, by the field's name."""

    ids: list[str] = field(default_factory=list)
    etags: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    passwords: list[str] = field(default_factory=list)
    refresh_tokens: list[str] = field(default_factory=list)
    page_tokens: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=lambda: ["LOAN_CREATED", "LOGIN_FAILED"])

    def __call__(self, name: str) -> Sequence[str]:
        if name.endswith("_id") or name == "id":
            return [*self.ids, str(uuid.uuid4()), "0", "-1"]
        return _BY_NAME.get(name, _by_suffix(name))(self)


def _by_suffix(name: str) -> _Values:
    for suffix, values in _BY_SUFFIX.items():
        if name.endswith(suffix):
            return values
    return lambda _: ["Solar Park", "a"]


_DATES: Final = ["2027-01-01", "2027-12-31", "2032-01-01", "2026-12-31"]
_DECIMALS: Final = [
    "1250000.00",
    "0",
    "0.00",
    "-1",
    "9000",
    "100",
    "100.000001",
    "999999999999999.99",
]
_BY_NAME: Final[dict[str, _Values]] = {
    "etag": lambda v: v.etags,
    "email": lambda v: [*v.emails, "nobody@example.com", "a@b"],
    "lender_email": lambda v: [*v.emails, "nobody@example.com"],
    "password": lambda v: [*v.passwords, strong_password(), "password", "12345678"],
    "refresh_token": lambda v: v.refresh_tokens,
    "page_token": lambda v: v.page_tokens,
    "request_id": lambda _: ["fuzz-1", "a" * 128, "a" * 129, "not allowed!"],
    "service_secret": lambda _: [SERVICE_SECRET],
    "service_name": lambda _: ["loans", "auth", "audit", "admin"],
    "currency_code": lambda _: ["EUR", "JPY", "XXX", "eur"],
    "action": lambda v: v.actions,
    "source": lambda _: ["loans", "auth", "audit"],
    "role": lambda _: ["USER_ROLE_BORROWER", "SERVICE"],
    "resource_type": lambda _: ["loan", "user", "kpi"],
    "hash": lambda _: ["0" * 64, "f" * 64],
    "unit": lambda _: ["tCO2e", "%"],
    "value": lambda _: _DECIMALS,
}
_BY_SUFFIX: Final[dict[str, _Values]] = {
    "_amount": lambda _: _DECIMALS,
    "_value": lambda _: _DECIMALS,
    "_date": lambda _: _DATES,
    "effective_from": lambda _: _DATES,
    "effective_to": lambda _: _DATES,
    "period_start": lambda _: _DATES,
    "period_end": lambda _: _DATES,
}


def seed(suite: Suite, parties: dict[str, Party]) -> RunValues:
    """Loans in two states, a listing's page tokens and a rotated refresh token."""
    borrower, lender, admin = (parties[r].account for r in ROLES[:3])
    journey = Journey(suite.loans, borrower, lender)
    values = RunValues(emails=[p.account.email for p in parties.values()])
    values.passwords = [p.password for p in parties.values()]
    # A loan that has not started cannot be activated: DRAFT and APPROVED are as far as
    # loans starting in the future go.
    for at in (journey.draft(), journey.to("APPROVED")):
        values.ids += [at.loan.id, at.kpi.id]
        values.etags += [at.loan.etag, at.kpi.etag]
        for part in (at.ratchet, at.result):
            if part is not None:
                values.ids.append(part.id)
                values.etags.append(part.etag)
    for party in parties.values():
        values.ids += [party.account.user_id, party.account.organization_id]
    first = suite.loans.ListLoans(pb.ListLoansRequest(page_size=1), metadata=borrower.metadata)
    values.page_tokens.append(first.page.next_page_token)
    values.page_tokens.append(_audit_page_token(suite, admin, values))
    values.refresh_tokens += _rotated(suite, parties["borrower"])
    return values


def _audit_page_token(suite: Suite, admin: Account, values: RunValues) -> str:
    request = audit_pb.ListAuditEventsRequest(page_size=1)
    eventually(
        lambda: bool(suite.audit.ListAuditEvents(request, metadata=admin.metadata).page.events),
        "the first audit event",
    )
    page = suite.audit.ListAuditEvents(request, metadata=admin.metadata).page
    values.ids.append(page.events[0].event_id)
    return page.next_page_token


def _rotated(suite: Suite, party: Party) -> list[str]:
    """A refresh token already exchanged (a replay of it is reuse), and its successor."""
    first = _log_in(suite, party.account.email, party.password).refresh_token
    request = auth_pb.RefreshSessionRequest(refresh_token=first)
    second = suite.auth.RefreshSession(request)
    assert second.HasField("session"), second.error
    return [first, second.session.refresh_token]
