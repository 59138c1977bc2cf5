"""AuthService over gRPC: proto in, use case in the servicer's transaction, proto out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
from loansuite.auth.v1 import auth_service_pb2 as pb
from loansuite.auth.v1 import auth_service_pb2_grpc as pb_grpc

from services.auth import conversions, login, passwords, schemas, throttle, use_cases
from services.auth.sessions import invalid_refresh_token
from services.auth.throttle import ThrottlePolicy
from services.auth.tokens import TokenMinter
from services.shared.db import Database
from services.shared.envelope import unary
from services.shared.identity import Claims, TokenVerifier, bearer_token
from services.shared.timestamps import timestamp

__all__ = ["AuthServicer"]


class AuthServicer(pb_grpc.AuthServiceServicer):
    """Each method opens one transaction, or none; Login opens two, so Argon2 runs in neither.

    Login checks the throttle and reads the account, verifies the password with no
    transaction open, then opens the write that starts the session or records
    LOGIN_FAILED. The write reads the user again, so a deactivation in between
    still refuses the login.
    """

    def __init__(
        self,
        db: Database,
        *,
        minter: TokenMinter,
        verifier: TokenVerifier,
        refresh_ttl: timedelta,
        service_secret: str,
        throttle_policy: ThrottlePolicy | None = None,
    ) -> None:
        self._db = db
        self._minter = minter
        self._verifier = verifier
        self._refresh_ttl = refresh_ttl
        self._service_secret = service_secret
        self._throttle = throttle_policy or ThrottlePolicy()

    @unary(pb.RegisterResponse)
    def Register(
        self, request: pb.RegisterRequest, ctx: grpc.ServicerContext
    ) -> pb.RegisterResponse:
        """Create a borrower or lender and their organization."""
        registration = schemas.parse_registration(
            email=request.email,
            password=request.password,
            name=request.name,
            role=conversions.role_name(request.role),
            organization_name=request.organization_name,
        )
        # Hashed before the transaction: SQLite's write lock is not held for tens of ms.
        password_hash = passwords.hash_password(registration.password)
        with self._db.write() as session:
            user = use_cases.register_user(
                session, registration=registration, password_hash=password_hash
            )
            return pb.RegisterResponse(user=conversions.user_to_proto(user))

    @unary(pb.LoginResponse)
    def Login(self, request: pb.LoginRequest, ctx: grpc.ServicerContext) -> pb.LoginResponse:
        """Exchange an email and password for a session."""
        email = schemas.lookup_email(request.email)
        peer = throttle.peer_address(ctx.peer())
        keys = throttle.throttle_keys(email=email, peer=peer, policy=self._throttle)
        # A read snapshot, Argon2 with no transaction open, then the one write.
        with self._db.read() as session:
            throttle.check_not_locked(session, keys, now=datetime.now(UTC))
            account = login.find_account(session, email=email)
        check = login.check_password(account, request.password)
        with self._db.write() as session:
            grant = login.log_in(
                session,
                attempt=login.LoginAttempt(email, keys, account, check),
                minter=self._minter,
                refresh_ttl=self._refresh_ttl,
                policy=self._throttle,
            )
            session_pb = conversions.session_to_proto(grant) if grant else None
        if session_pb is None:
            raise login.invalid_credentials()  # after the commit, so LOGIN_FAILED is kept
        return pb.LoginResponse(session=session_pb)

    @unary(pb.RefreshSessionResponse)
    def RefreshSession(
        self, request: pb.RefreshSessionRequest, ctx: grpc.ServicerContext
    ) -> pb.RefreshSessionResponse:
        """Exchange a refresh token for a new session; the old one stops working."""
        with self._db.write() as session:
            grant = use_cases.refresh_session(
                session,
                refresh_token=request.refresh_token,
                minter=self._minter,
                refresh_ttl=self._refresh_ttl,
            )
            session_pb = conversions.session_to_proto(grant) if grant else None
        if session_pb is None:  # a replay: after the commit, so the family stays revoked
            raise invalid_refresh_token()
        return pb.RefreshSessionResponse(session=session_pb)

    @unary(pb.LogoutResponse)
    def Logout(self, request: pb.LogoutRequest, ctx: grpc.ServicerContext) -> pb.LogoutResponse:
        """Revoke a refresh token."""
        with self._db.write() as session:
            logout_time = use_cases.log_out(session, refresh_token=request.refresh_token)
        logged_out = pb.LoggedOut(logout_time=timestamp(logout_time))
        return pb.LogoutResponse(logged_out=logged_out)

    @unary(pb.GetUserResponse)
    def GetUser(self, request: pb.GetUserRequest, ctx: grpc.ServicerContext) -> pb.GetUserResponse:
        """A user with their organization, for services, admins and the user themself."""
        claims = self._claims(ctx)
        with self._db.read() as session:
            user = use_cases.get_user(session, claims=claims, user_id=request.user_id)
            return pb.GetUserResponse(user=conversions.user_to_proto(user))

    @unary(pb.FindUserByEmailResponse)
    def FindUserByEmail(
        self, request: pb.FindUserByEmailRequest, ctx: grpc.ServicerContext
    ) -> pb.FindUserByEmailResponse:
        """The active user with an email, for service identities."""
        claims = self._claims(ctx)
        email = schemas.lookup_email(request.email)
        with self._db.read() as session:
            user = use_cases.find_user_by_email(session, claims=claims, email=email)
            return pb.FindUserByEmailResponse(user=conversions.user_to_proto(user))

    @unary(pb.WhoAmIResponse)
    def WhoAmI(self, request: pb.WhoAmIRequest, ctx: grpc.ServicerContext) -> pb.WhoAmIResponse:
        """The user the bearer token identifies."""
        claims = self._claims(ctx)
        with self._db.read() as session:
            user = use_cases.get_current_user(session, claims=claims)
            return pb.WhoAmIResponse(user=conversions.user_to_proto(user))

    @unary(pb.ListPublicKeysResponse)
    def ListPublicKeys(
        self, request: pb.ListPublicKeysRequest, ctx: grpc.ServicerContext
    ) -> pb.ListPublicKeysResponse:
        """The public keys that verify access tokens; needs no token."""
        with self._db.read() as session:
            keys = use_cases.list_public_keys(session, keep_for=self._minter.ttl)
            return pb.ListPublicKeysResponse(key_set=conversions.key_set_to_proto(keys))

    @unary(pb.IssueServiceTokenResponse)
    def IssueServiceToken(
        self, request: pb.IssueServiceTokenRequest, ctx: grpc.ServicerContext
    ) -> pb.IssueServiceTokenResponse:
        """A short-lived service token for the deployment's secret; touches no table."""
        token = use_cases.issue_service_token(
            service_name=request.service_name,
            service_secret=request.service_secret,
            expected_secret=self._service_secret,
            minter=self._minter,
        )
        return pb.IssueServiceTokenResponse(token=conversions.service_token_to_proto(token))

    def _claims(self, ctx: grpc.ServicerContext) -> Claims:
        return self._verifier.verify(bearer_token(ctx.invocation_metadata()))
