"""Between the auth protos and the models: enums, timestamps, users, sessions and keys."""

from __future__ import annotations

from loansuite.auth.v1 import auth_service_pb2 as pb

from services.auth.models import Organization, OrganizationType, SigningKey, User
from services.auth.sessions import SessionGrant
from services.auth.tokens import IssuedToken
from services.shared.identity import Role
from services.shared.timestamps import timestamp

__all__ = [
    "key_set_to_proto",
    "role_name",
    "service_token_to_proto",
    "session_to_proto",
    "user_to_proto",
]

_ROLES: dict[Role, pb.UserRole.ValueType] = {
    Role.BORROWER: pb.USER_ROLE_BORROWER,
    Role.LENDER: pb.USER_ROLE_LENDER,
    Role.ADMIN: pb.USER_ROLE_ADMIN,
}
_ORGANIZATION_TYPES: dict[OrganizationType, pb.OrganizationType.ValueType] = {
    OrganizationType.BORROWER: pb.ORGANIZATION_TYPE_BORROWER,
    OrganizationType.LENDER: pb.ORGANIZATION_TYPE_LENDER,
    OrganizationType.PLATFORM: pb.ORGANIZATION_TYPE_PLATFORM,
}


def role_name(value: int) -> str:
    """The proto enum name of a role as sent ("USER_ROLE_LENDER"); unknown numbers as digits."""
    try:
        return pb.UserRole.Name(value)  # type: ignore[arg-type]
    except ValueError:  # proto3 enums are open: a newer client may send any number
        return str(value)


def organization_to_proto(organization: Organization) -> pb.Organization:
    return pb.Organization(
        id=organization.id,
        name=organization.name,
        type=_ORGANIZATION_TYPES[organization.type],
        create_time=timestamp(organization.create_time),
    )


def user_to_proto(user: User) -> pb.User:
    return pb.User(
        id=user.id,
        email=user.email,
        name=user.name,
        role=_ROLES[user.role],
        organization=organization_to_proto(user.organization),
        active=user.active,
        create_time=timestamp(user.create_time),
        update_time=timestamp(user.update_time),
    )


def session_to_proto(grant: SessionGrant) -> pb.Session:
    return pb.Session(
        access_token=grant.access.token,
        refresh_token=grant.refresh_token,
        access_token_expire_time=timestamp(grant.access.expire_time),
        refresh_token_expire_time=timestamp(grant.refresh_expire_time),
        user=user_to_proto(grant.user),
    )


def key_set_to_proto(keys: list[SigningKey]) -> pb.PublicKeySet:
    # Only the public half ever leaves: the private PEM stays in the row.
    return pb.PublicKeySet(
        keys=[
            pb.PublicKey(
                kid=key.kid,
                algorithm=key.algorithm,
                public_key_pem=key.public_key_pem,
                create_time=timestamp(key.create_time),
            )
            for key in keys
        ]
    )


def service_token_to_proto(token: IssuedToken) -> pb.ServiceToken:
    return pb.ServiceToken(access_token=token.token, expire_time=timestamp(token.expire_time))
