"""start() and create_admin(): migrations, lasting keys, request ids, failures, the relay."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import grpc
import jwt
import pytest
from loansuite.auth.v1 import auth_service_pb2 as pb
from loansuite.common.v1 import error_pb2
from sqlalchemy import select

from services.auth.key_encryption import KeyEncryptionKey
from services.auth.models import SigningKey
from services.auth.signing_keys import ensure_signing_key
from services.auth.tokens import generate_key_material
from services.auth.wiring import MIGRATIONS, create_admin
from services.shared.db import Database
from services.shared.errors import AlreadyExistsError, ValidationError
from services.shared.migrations import upgrade
from services.shared.settings import Settings
from tests.auth.support import AuthService, running
from tests.support import PASSWORD, AuditSpy, bearer, serve_spy


def test_create_admin_migrates_and_the_admin_logs_in(fresh_settings: Settings) -> None:
    first = create_admin(fresh_settings, email=" Root@Example.com ", password=PASSWORD, name="Root")
    second = create_admin(fresh_settings, email="ops@example.com", password=PASSWORD, name="Ops")

    with running(fresh_settings) as auth:
        session = auth.log_in("root@example.com")
        other = auth.log_in("ops@example.com")

    assert session.user.id == first
    assert other.user.id == second
    assert session.user.role == pb.USER_ROLE_ADMIN
    assert session.user.organization.type == pb.ORGANIZATION_TYPE_PLATFORM
    assert other.user.organization.id == session.user.organization.id  # one platform org
    claims = jwt.decode(session.access_token, options={"verify_signature": False})
    assert claims["role"] == "ADMIN"


def test_create_admin_refuses_a_taken_or_invalid_email(auth: AuthService) -> None:
    user = auth.register()

    with pytest.raises(AlreadyExistsError) as taken:
        create_admin(auth.settings, email=user.email, password=PASSWORD, name="Root")
    with pytest.raises(ValidationError) as invalid:
        create_admin(auth.settings, email="root", password="short", name="")

    assert taken.value.reason == "EMAIL_TAKEN"
    assert invalid.value.reasons == {
        "email": "EMAIL_INVALID",
        "password": "PASSWORD_TOO_SHORT",
        "name": "NAME_REQUIRED",
    }


def test_the_signing_key_survives_a_restart(fresh_settings: Settings) -> None:
    with running(fresh_settings) as auth:
        user = auth.register()
        session = auth.log_in(user.email)
        keys_before = auth.stub.ListPublicKeys(pb.ListPublicKeysRequest()).key_set

    with running(fresh_settings) as auth:
        keys_after = auth.stub.ListPublicKeys(pb.ListPublicKeysRequest()).key_set
        whoami = auth.stub.WhoAmI(pb.WhoAmIRequest(), metadata=bearer(session.access_token))
        new_session = auth.log_in(user.email)

    assert keys_after == keys_before
    assert len(keys_after.keys) == 1
    assert whoami.user.id == user.id  # a token from before the restart still verifies
    kid = jwt.get_unverified_header(new_session.access_token)["kid"]
    assert kid == keys_before.keys[0].kid


def test_racing_replicas_agree_on_one_signing_key(fresh_settings: Settings) -> None:
    url = fresh_settings.database_url("auth")
    ours, theirs = Database(url), Database(url)
    material = generate_key_material()
    kek = KeyEncryptionKey(bytes(32))
    try:
        upgrade(ours, MIGRATIONS)
        with ThreadPoolExecutor(max_workers=1) as pool, ours.write() as session:
            session.add(
                SigningKey(
                    kid=material.kid,
                    generation=1,
                    algorithm="EdDSA",
                    sealed_private_key=kek.seal(material.kid, material.private_key_pem),
                    public_key_pem=material.public_key_pem,
                    create_time=datetime.now(UTC),
                )
            )
            session.flush()
            # Their start-up runs while our first key is written but not yet committed:
            # on PostgreSQL their insert then fails on the unique generation and retries.
            racing = pool.submit(ensure_signing_key, theirs, kek)
            time.sleep(0.3)
        assert racing.result(timeout=15) == material.kid
        with ours.read() as session:
            assert session.scalars(select(SigningKey.kid)).all() == [material.kid]
    finally:
        ours.dispose()
        theirs.dispose()


def test_request_id_is_echoed_in_the_error_and_trailing_metadata(auth: AuthService) -> None:
    response, call = auth.stub.Logout.with_call(
        pb.LogoutRequest(), metadata=(("x-request-id", "req-1234.abc"),)
    )
    _, success = auth.stub.ListPublicKeys.with_call(
        pb.ListPublicKeysRequest(), metadata=(("x-request-id", "req-5678"),)
    )
    replaced, _ = auth.stub.Logout.with_call(
        pb.LogoutRequest(), metadata=(("x-request-id", "no spaces allowed"),)
    )

    assert response.error.request_id == "req-1234.abc"
    assert ("x-request-id", "req-1234.abc") in tuple(call.trailing_metadata() or ())
    assert ("x-request-id", "req-5678") in tuple(success.trailing_metadata() or ())
    assert replaced.error.request_id not in ("", "no spaces allowed")


def test_an_unexpected_failure_is_internal_and_says_nothing(auth: AuthService) -> None:
    user = auth.register()
    cascade = "" if auth.settings.database_url("auth").startswith("sqlite") else " CASCADE"
    auth.sql(f"DROP TABLE users{cascade}")

    response, call = auth.stub.Login.with_call(
        pb.LoginRequest(email=user.email, password=PASSWORD),
        metadata=(("x-request-id", "req-broken"),),
    )

    assert call.code() == grpc.StatusCode.OK  # status codes belong to the transport
    assert response.error.code == error_pb2.ERROR_CODE_INTERNAL
    assert response.error.reason == "INTERNAL"
    assert response.error.request_id == "req-broken"
    assert "users" not in response.error.message
    assert "quote the request id" in response.error.message


def test_the_relay_delivers_with_a_service_token_of_auth(fresh_settings: Settings) -> None:
    spy = AuditSpy()
    audit = serve_spy(spy)
    settings = fresh_settings.model_copy(update={"audit_target": f"127.0.0.1:{audit.port}"})
    try:
        with running(settings) as auth:
            user = auth.register()
            pending = wait_for_delivery(auth)
            keys = auth.stub.ListPublicKeys(pb.ListPublicKeysRequest()).key_set.keys
    finally:
        audit.stop(0)

    assert pending == 0
    (event,) = spy.events
    assert (event.action, event.resource_id, event.source) == ("USER_REGISTERED", user.id, "auth")
    token = spy.tokens[0].removeprefix("Bearer ")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["sub"], claims["role"], claims["org"]) == ("service:auth", "SERVICE", "")
    assert jwt.get_unverified_header(token)["kid"] in {key.kid for key in keys}


def wait_for_delivery(auth: AuthService, timeout: float = 10.0) -> int:
    """Wait until the relay has marked every outbox row delivered; returns how many are not."""
    deadline = time.monotonic() + timeout
    while True:
        ((pending,),) = auth.sql(
            "SELECT count(*) FROM auth_outbox_events WHERE delivered_time IS NULL"
        )
        if pending == 0 or time.monotonic() > deadline:
            return int(str(pending))
        time.sleep(0.05)
