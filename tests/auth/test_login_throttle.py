"""Login throttling: per account and per peer, RESOURCE_EXHAUSTED with the Error and RetryInfo."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from loansuite.auth.v1 import auth_service_pb2 as pb
from loansuite.common.v1 import error_pb2

from services.auth import throttle
from services.auth.throttle import LoginThrottledError, ThrottlePolicy, peer_address
from services.auth.wiring import MIGRATIONS
from services.shared.db import Database
from services.shared.migrations import upgrade
from services.shared.settings import Settings
from tests.auth.support import AuthService, running
from tests.support import PASSWORD

ACCOUNT_LIMIT = 3
PEER_LIMIT = 6
LOCKOUT_SECONDS = 600


@pytest.fixture
def strict_settings(fresh_settings: Settings) -> Settings:
    return fresh_settings.model_copy(
        update={
            "login_max_failures_per_account": ACCOUNT_LIMIT,
            "login_max_failures_per_peer": PEER_LIMIT,
            "login_lockout_seconds": LOCKOUT_SECONDS,
        }
    )


@pytest.fixture
def strict(strict_settings: Settings) -> Iterator[AuthService]:
    with running(strict_settings) as service:
        yield service


def fail_login(auth: AuthService, email: str) -> None:
    response = auth.stub.Login(pb.LoginRequest(email=email, password="not the password at all"))
    assert response.error.reason == "INVALID_CREDENTIALS", response


def throttled(auth: AuthService, email: str, password: str = PASSWORD) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        auth.stub.Login(
            pb.LoginRequest(email=email, password=password),
            metadata=(("x-request-id", "throttled-1"),),
        )
    return caught.value


def details(error: grpc.RpcError) -> tuple[error_pb2.Error, error_details_pb2.RetryInfo]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    envelope, retry = error_pb2.Error(), error_details_pb2.RetryInfo()
    assert [status.details[0].Unpack(envelope), status.details[1].Unpack(retry)] == [True, True]
    return envelope, retry


def actions(auth: AuthService) -> list[str]:
    return [str(event["action"]) for event in auth.outbox() if event["action"].startswith("LOGIN")]


def test_failures_lock_the_account_even_for_the_right_password(strict: AuthService) -> None:
    user = strict.register()
    for _ in range(ACCOUNT_LIMIT):
        fail_login(strict, user.email)

    error = throttled(strict, user.email)

    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    envelope, retry = details(error)
    assert envelope.code == error_pb2.ERROR_CODE_RESOURCE_EXHAUSTED
    assert (envelope.reason, envelope.request_id) == ("LOGIN_THROTTLED", "throttled-1")
    assert LOCKOUT_SECONDS - 60 <= retry.retry_delay.seconds <= LOCKOUT_SECONDS
    assert actions(strict) == ["LOGIN_FAILED"] * ACCOUNT_LIMIT + ["LOGIN_THROTTLED"]
    locked = strict.outbox()[-1]
    assert locked["resource_id"] == user.id
    assert "not the password" not in str(locked)


def test_a_successful_login_clears_the_account_count(strict: AuthService) -> None:
    user = strict.register()
    for _ in range(2):
        for _ in range(ACCOUNT_LIMIT - 1):
            fail_login(strict, user.email)
        strict.log_in(user.email)  # would be refused if the counts added up

    assert "LOGIN_THROTTLED" not in actions(strict)


def test_an_unknown_email_is_throttled_like_a_known_one(strict: AuthService) -> None:
    email = f"nobody-{uuid.uuid4().hex[:8]}@example.com"
    for _ in range(ACCOUNT_LIMIT):
        fail_login(strict, email)

    envelope, _ = details(throttled(strict, email))

    assert envelope.reason == "LOGIN_THROTTLED"
    assert strict.outbox()[-1]["resource_id"] == ""


def test_failures_from_one_peer_lock_it_across_accounts(strict: AuthService) -> None:
    victim = strict.register()
    for _ in range(PEER_LIMIT):
        fail_login(strict, f"guess-{uuid.uuid4().hex[:8]}@example.com")  # each under its limit

    envelope, _ = details(throttled(strict, victim.email))

    assert envelope.reason == "LOGIN_THROTTLED"
    locked = strict.outbox()[-1]
    assert locked["action"] == "LOGIN_THROTTLED"
    assert locked["resource_id"] == ""  # a peer's lockout is about no one user
    assert '"peer"' in str(locked)


def test_a_lockout_outlasts_a_restart(strict_settings: Settings) -> None:
    with running(strict_settings) as auth:
        user = auth.register()
        for _ in range(ACCOUNT_LIMIT):
            fail_login(auth, user.email)

    with running(strict_settings) as again:
        assert details(throttled(again, user.email))[0].reason == "LOGIN_THROTTLED"


def test_a_lockout_ends_and_the_count_starts_again(fresh_settings: Settings) -> None:
    policy = ThrottlePolicy(max_account_failures=2, max_peer_failures=100)
    keys = throttle.throttle_keys(email="ada@example.com", peer="10.0.0.1", policy=policy)
    db = Database(fresh_settings.database_url("auth"))
    start = datetime.now(UTC)
    try:
        upgrade(db, MIGRATIONS)
        with db.write() as session:
            assert throttle.record_failure(session, keys, policy=policy, now=start) == []
            (locked,) = throttle.record_failure(session, keys, policy=policy, now=start)
        with db.read() as session, pytest.raises(LoginThrottledError) as refused:
            throttle.check_not_locked(session, keys, now=start + timedelta(minutes=1))
        after = start + policy.lockout + timedelta(seconds=1)
        with db.write() as session:
            throttle.check_not_locked(session, keys, now=after)
            relocked = throttle.record_failure(session, keys, policy=policy, now=after)
    finally:
        db.dispose()

    assert locked == (keys[0], start + policy.lockout)
    assert refused.value.retry_delay == policy.lockout - timedelta(minutes=1)
    assert relocked == []  # one failure of a new window


@pytest.mark.parametrize(
    ("peer", "address"),
    [
        ("ipv4:127.0.0.1:54321", "127.0.0.1"),
        ("ipv6:[2001:db8::1]:443", "2001:db8::/64"),
        ("ipv6:[2001:db8::ffff:1]:443", "2001:db8::/64"),  # the same /64: one peer
        ("unix:/run/loansuite.sock", "unix:/run/loansuite.sock"),
        ("", ""),
    ],
)
def test_a_peer_is_its_address_without_the_port(peer: str, address: str) -> None:
    assert peer_address(peer) == address
