"""Configuration: valid files load into frozen objects; every mistake names its key."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from identity import Directory
from jitgate.config import load_config, parse_config, parse_upstream_url
from jitgate.errors import ConfigError

VALID = """
database_url: postgresql://jitgate@127.0.0.1:5432/jitgate
public_url: http://127.0.0.1:8080/
http: {listen: 127.0.0.1:8080}
postgres: {listen: 127.0.0.1:15432, hold_timeout: 120s}
groups:
  engineers: [Alice@Example.com]
  dba: [bob@example.com, carol@example.com]
resources:
  prod:
    type: postgres
    url: postgresql://app:${PROD_DB_PASSWORD}@127.0.0.1:5432/shop?sslmode=require
    access:
      engineers: {read: allow, write: review, ddl: review, destructive: review,
                  privilege: deny, opaque: review}
      dba: {read: allow, write: allow, ddl: review, destructive: review,
            privilege: review, opaque: review}
    approvers: [dba]
    approvals_required: 1
    request_ttl: 1h
    notify: {slack: C0APPROVALS, teams: null}
    masking: default
alerts: {slack: C0SECURITY}
slack:
  bot_token: ${SLACK_BOT_TOKEN}
  signing_secret: ${SLACK_SIGNING_SECRET}
  api_url: https://slack.com/api/
"""

ENV = {"PROD_DB_PASSWORD": "s3cret", "SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "abc"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "jitgate.yaml"
    path.write_text(text)
    return path


def test_the_design_example_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID), ENV)
    prod = config.resources["prod"]
    assert prod.url.password == "s3cret" and prod.url.sslmode == "require"
    assert prod.url.database == "shop" and prod.url.user == "app"
    assert prod.access["engineers"]["privilege"] == "deny"
    assert prod.request_ttl == 3600.0
    assert config.postgres.hold_timeout == 120.0
    assert config.public_url == "http://127.0.0.1:8080"
    assert Directory(config).groups_of("alice@example.COM") == {"engineers"}
    assert config.slack.signing_secret == "abc"
    assert "s3cret" not in repr(config)  # secrets stay out of reprs and logs
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.public_url = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("edit", "key", "problem"),
    [
        (("masking: default", "maskin: default"), "resources.prod.maskin", "unknown key"),
        (("write: review, ddl", "write: maybe, ddl"), "resources.prod.access.engineers.write",
         "'maybe' is not one of allow, review, deny"),
        (("approvers: [dba]", "approvers: [dbas]"), "resources.prod.approvers", "unknown group"),
        (("request_ttl: 1h", "request_ttl: soon"), "resources.prod.request_ttl",
         "is not a duration"),
        (("listen: 127.0.0.1:15432", "listen: nowhere"), "postgres.listen", "is not host:port"),
        (("postgresql://app", "mysql://app"), "resources.prod.url", "scheme must be"),
        (("approvals_required: 1", "approvals_required: 0"),
         "resources.prod.approvals_required", "must be at least 1"),
        (("database_url: postgresql://jitgate@127.0.0.1:5432/jitgate", ""), "database_url",
         "is required"),
    ],
)  # fmt: skip
def test_a_mistake_names_its_key(
    tmp_path: Path, edit: tuple[str, str], key: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, VALID.replace(*edit)), ENV)
    assert caught.value.key == key
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    ("url", "host", "port", "socket"),
    [
        ("postgresql://app@%2Fvar%2Frun%2FPostgreSQL:5433/shop", "/var/run/PostgreSQL", 5433,
         "/var/run/PostgreSQL/.s.PGSQL.5433"),
        ("postgresql://app@/shop?host=/tmp/pg&port=6000", "/tmp/pg", 6000,
         "/tmp/pg/.s.PGSQL.6000"),
        ("postgresql://app@db.internal/shop", "db.internal", 5432, None),
        ("postgresql://app@[::1]:7000/shop?host=/run/pg", "/run/pg", 7000,
         "/run/pg/.s.PGSQL.7000"),
    ],
)  # fmt: skip
def test_a_resource_url_may_name_a_unix_socket_directory(
    url: str, host: str, port: int, socket: str | None
) -> None:
    parsed = parse_upstream_url(url, "resources.prod.url")
    assert (parsed.host, parsed.port, parsed.socket_path) == (host, port, socket)
    assert parsed.address == (socket or f"{host}:{port}")
    assert (parsed.user, parsed.database) == ("app", "shop")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("postgresql://app@/shop?host=/run/pg&sslmode=require",
         "sslmode=require cannot be met over the Unix socket /run/pg"),
        ("postgresql://app@/shop?host=/run/pg&port=0", "has an invalid port"),
        ("postgresql://app@/shop?port=x", "has an invalid port"),
        ("postgresql://app@/shop", "must name a user, a host and a database"),
    ],
)  # fmt: skip
def test_a_bad_unix_socket_url_names_its_key(url: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as caught:
        parse_upstream_url(url, "resources.prod.url")
    assert caught.value.key == "resources.prod.url"


def test_a_missing_environment_variable_is_named(tmp_path: Path) -> None:
    env = {k: v for k, v in ENV.items() if k != "PROD_DB_PASSWORD"}
    with pytest.raises(ConfigError, match="PROD_DB_PASSWORD is not set") as caught:
        load_config(write(tmp_path, VALID), env)
    assert caught.value.key == "resources.prod.url"


def test_broken_yaml_and_wrong_shapes() -> None:
    with pytest.raises(ConfigError, match="must be a mapping"):
        parse_config({"database_url": "postgresql://x@y/z", "groups": ["a"]}, {})
    with pytest.raises(ConfigError, match="must be a mapping"):
        parse_config("just text", {})


def test_serve_exits_nonzero_with_one_line_naming_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("masking: default", "maskin: default"))
    result = subprocess.run(
        [sys.executable, "-m", "jitgate", "serve", "--config", str(path)],
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin", **ENV},
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "jitgate: config error: resources.prod.maskin: unknown key"
    ]
    unparsable = write(tmp_path, "groups: [unclosed\n")
    result = subprocess.run(
        [sys.executable, "-m", "jitgate", "serve", "--config", str(unparsable)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "is not valid YAML" in result.stderr


def test_slack_users_map_slack_ids_to_identities(tmp_path: Path) -> None:
    text = VALID + "  users: {U012ALICE: Alice@Example.com, W0ENTERPRISE: bob@example.com}\n"
    config = load_config(write(tmp_path, text), ENV)
    assert config.slack.users == {"U012ALICE": "alice@example.com",
                                  "W0ENTERPRISE": "bob@example.com"}  # fmt: skip
    assert load_config(write(tmp_path, VALID), ENV).slack.users == {}


@pytest.mark.parametrize(
    ("addition", "key", "problem"),
    [
        ("  users: {alice: alice@example.com}\n", "slack.users.alice", "not a Slack user id"),
        ("  users: {U012ALICE: alice}\n", "slack.users.U012ALICE", "must be the email"),
        ("  users: [U012ALICE]\n", "slack.users", "must be a mapping"),
        ("  app_token: xoxb-not-an-app-token\n", "slack.app_token", "app-level token"),
    ],
)
def test_slack_mistakes_name_their_key(
    tmp_path: Path, addition: str, key: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, VALID + addition), ENV)
    assert caught.value.key == key
    assert problem in str(caught.value)


def test_a_bot_token_needs_a_signing_secret_or_socket_mode(tmp_path: Path) -> None:
    http_only = VALID.replace("  signing_secret: ${SLACK_SIGNING_SECRET}\n", "")
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, http_only), ENV)
    assert caught.value.key == "slack.signing_secret"
    socket_mode = load_config(write(tmp_path, http_only + "  app_token: xapp-1-A-1-x\n"), ENV)
    assert socket_mode.slack.app_token == "xapp-1-A-1-x"
    assert "xapp" not in repr(socket_mode)


def test_named_masking_policies_and_blast_radius(tmp_path: Path) -> None:
    text = VALID.replace(
        "    masking: default\n", "    masking: strict\n    blast_radius: {factor: 2.5, floor: 3}\n"
    )
    text += "masking_policies:\n  strict: {default: redact, entities: {enable: [IP_ADDRESS]}}\n"
    config = load_config(write(tmp_path, text), ENV)
    prod = config.resources["prod"]
    assert prod.masking == "strict"
    assert "IP_ADDRESS" in config.masking_policies["strict"].entities
    assert (prod.blast_radius_factor, prod.blast_radius_floor) == (2.5, 3)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (("    masking: default\n", "    masking: lenient\n"), "resources.prod.masking"),
        (("alerts:", "masking_policies: {strict: {default: shred}}\nalerts:"),
         "masking_policies.strict.default"),
        (("    masking: default\n", "    masking: default\n    blast_radius: {factor: 0}\n"),
         "resources.prod.blast_radius.factor"),
        (("http: {listen: 127.0.0.1:8080}", "http: {listen: 127.0.0.1:8080, demo: yes please}"),
         "http.demo"),
    ],
)  # fmt: skip
def test_masking_and_approval_settings_name_the_bad_key(
    tmp_path: Path, change: tuple[str, str], key: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, VALID.replace(*change)), ENV)
    assert error.value.key == key


def test_session_limits_load_as_milliseconds(tmp_path: Path) -> None:
    limits = "    session_limits: {statement_timeout: 30s, lock_timeout: 500ms}\n"
    config = load_config(write(tmp_path, VALID.replace("    masking: default\n", limits)), ENV)
    assert config.resources["prod"].session_limits == {
        "statement_timeout": 30000,
        "lock_timeout": 500,
    }
    plain = load_config(write(tmp_path, VALID), ENV)
    assert plain.resources["prod"].session_limits == {}


@pytest.mark.parametrize(
    ("limits", "key", "problem"),
    [
        ("{work_mem: 30s}", "resources.prod.session_limits.work_mem", "unknown key"),
        ("{statement_timeout: soon}", "resources.prod.session_limits.statement_timeout",
         "is not a duration"),
        ("{lock_timeout: 0s}", "resources.prod.session_limits.lock_timeout", "must be positive"),
    ],
)  # fmt: skip
def test_session_limits_mistakes_name_their_key(
    tmp_path: Path, limits: str, key: str, problem: str
) -> None:
    text = VALID.replace("    masking: default\n", f"    session_limits: {limits}\n")
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, text), ENV)
    assert error.value.key == key and problem in str(error.value)
