"""How the gateway reads an external token's claims: its type, and roles at a configured path."""

from __future__ import annotations

import pytest

from errors import Unauthorized
from security.tokens import roles_at, verify_access_type


@pytest.mark.parametrize(("claims", "path", "roles"), [
    ({"roles": ["a"]}, "roles", ("a",)),
    ({"realm_access": {"roles": ["a", "b"]}}, "realm_access.roles", ("a", "b")),
    ({"resource_access": {"tg": {"roles": ["c"]}}}, "resource_access.tg.roles", ("c",)),
    ({"https://tg.example/roles": ["d"]}, "https://tg.example/roles", ("d",)),
    ({"realm_access": ["a"]}, "realm_access.roles", ()),
    ({"roles": [["a"]]}, "roles", ()),
    ({}, "roles", ()),
])
def test_roles_are_read_at_a_dotted_path(claims, path, roles):
    assert roles_at(claims, path) == roles


@pytest.mark.parametrize(("header", "claims", "accepted"), [
    ({"typ": "JWT"}, {"typ": "Bearer"}, True),
    ({"typ": "at+jwt"}, {}, True),
    ({"typ": "application/at+JWT"}, {"type": "access"}, True),
    ({}, {"typ": "bearer"}, True),
    ({"typ": "JWT"}, {"typ": "Refresh"}, False),
    ({"typ": "JWT"}, {"typ": "Offline"}, False),
    ({"typ": "JWT"}, {"typ": "ID"}, False),
    ({"typ": "JWT"}, {"type": "refresh"}, False),
    ({"typ": "dpop+jwt"}, {}, False),
    ({"typ": None}, {"type": None}, False),
])
def test_only_access_tokens_pass_the_type_check(header, claims, accepted):
    if accepted:
        assert verify_access_type(header, claims) is None
    else:
        with pytest.raises(Unauthorized, match=r"An access token is required\."):
            verify_access_type(header, claims)


@pytest.mark.parametrize("left", [0.2, 1.5, 899.9])
def test_store_marks_outlive_the_token_and_the_external_leeway(left):
    from security.tokens import EXTERNAL_LEEWAY_SECONDS, mark_lifetime
    now = 1_000_000.0
    assert mark_lifetime({"exp": now + left}, now) > left + EXTERNAL_LEEWAY_SECONDS
