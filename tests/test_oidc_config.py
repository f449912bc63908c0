"""``oidc`` in the configuration: strict, one line naming the key for each mistake."""

from __future__ import annotations

from typing import Any

import pytest

from jitgate.config import parse_config
from jitgate.errors import ConfigError

BASE: dict[str, Any] = {
    "database_url": "postgresql://jitgate@127.0.0.1:5432/jitgate",
    "groups": {"engineers": ["alice@example.com"], "dba": []},
}
OIDC = {
    "issuer": "https://login.example.com/",
    "client_id": "jitgate",
    "client_secret": "${OIDC_CLIENT_SECRET}",
    "groups_claim": "groups",
}
ENV = {"OIDC_CLIENT_SECRET": "from-the-environment"}


def config_with(**oidc: Any) -> Any:
    return parse_config({**BASE, "oidc": {**OIDC, **oidc}}, ENV)


def test_the_documented_keys_load_with_their_defaults() -> None:
    settings = config_with().oidc
    assert settings.issuer == "https://login.example.com/"  # kept as the IdP writes iss
    assert settings.client_secret == "from-the-environment"
    assert "from-the-environment" not in repr(settings)
    assert settings.groups_claim == ("groups",)
    assert settings.scopes == ("openid", "email", "profile")
    assert (settings.session_ttl, settings.clock_skew) == (8 * 3600.0, 60.0)
    assert parse_config(BASE, ENV).oidc is None


def test_claim_paths_nested_namespaced_or_none() -> None:
    assert config_with(groups_claim="realm_access.roles").oidc.groups_claim == (
        "realm_access",
        "roles",
    )
    auth0 = "https://jitgate.example.com/groups"
    assert config_with(groups_claim=auth0).oidc.groups_claim == (auth0,)
    assert config_with(groups_claim=None).oidc.groups_claim == ()


def test_group_map_takes_one_group_or_a_list() -> None:
    mapped = config_with(group_map={"DB Admins": "dba", "eng": ["engineers", "dba"]}).oidc
    assert mapped.group_map == {"DB Admins": ("dba",), "eng": ("engineers", "dba")}


@pytest.mark.parametrize(
    ("edit", "key", "problem"),
    [
        ({"issuerr": "https://x"}, "oidc.issuerr", "unknown key"),
        ({"issuer": None}, "oidc.issuer", "is required"),
        ({"issuer": "http://login.example.com"}, "oidc.issuer", "must be an https:// URL"),
        ({"issuer": "https://login.example.com/?tenant=1"}, "oidc.issuer", "without ? or #"),
        ({"client_id": ""}, "oidc.client_id", "is required"),
        ({"groups_claim": "groups..x"}, "oidc.groups_claim", "is not a claim name"),
        ({"groups_claim": "my groups"}, "oidc.groups_claim", "is not a claim name"),
        ({"email_claim": "e mail"}, "oidc.email_claim", "is not a claim name"),
        ({"group_map": {"admins": "root"}}, "oidc.group_map.admins", "unknown group 'root'"),
        ({"group_map": {"admins": 3}}, "oidc.group_map.admins", "must be a group or a list"),
        ({"scopes": ["email"]}, "oidc.scopes", "must include openid"),
        ({"session_ttl": "forever"}, "oidc.session_ttl", "is not a duration"),
        ({"clock_skew": "10m"}, "oidc.clock_skew", "must be at most 5m"),
        ({"cookie_secret": "short"}, "oidc.cookie_secret", "at least 32 characters"),
    ],
)  # fmt: skip
def test_a_mistake_names_its_key(edit: dict[str, Any], key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_with(**edit)
    assert caught.value.key == key
    assert problem in str(caught.value)


def test_a_secret_must_come_from_a_set_variable() -> None:
    with pytest.raises(ConfigError, match="OIDC_CLIENT_SECRET is not set") as caught:
        parse_config({**BASE, "oidc": OIDC}, {})
    assert caught.value.key == "oidc.client_secret"


def test_demo_mode_and_oidc_do_not_mix() -> None:
    with pytest.raises(ConfigError, match=r"cannot be combined with http\.demo") as caught:
        parse_config({**BASE, "http": {"demo": True}, "oidc": OIDC}, ENV)
    assert caught.value.key == "oidc"
