"""Gateway operations: tokens, TLS, upstream authentication, health, metrics, shutdown."""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import yaml

from jitgate.cli import collect_cycles
from jitgate.cluster import Cluster, generate_self_signed
from jitgate.config import parse_config
from jitgate.errors import ConfigError
from store.db import migrations
from tests.harness import GatewayThread, gateway_config


@pytest.fixture(scope="module")
def store_dsn(make_database: Callable[[str], str]) -> str:
    return make_database("jg_ops_store")


@pytest.fixture(scope="module")
def target_dsn(make_database: Callable[[str], str]) -> str:
    return make_database("jg_ops_target")


@pytest.fixture(scope="module")
def gw(store_dsn: str, target_dsn: str) -> Iterator[GatewayThread]:
    gateway = GatewayThread(gateway_config(store_dsn, target_dsn))
    yield gateway
    gateway.stop()


def http_get(gw: GatewayThread, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{gw.http_port}{path}", timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_token_cli_prints_only_the_token_and_revoke_ends_it(
    tmp_path: Path, store_dsn: str, target_dsn: str, gw: GatewayThread
) -> None:
    config = tmp_path / "jitgate.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database_url": store_dsn,
                "groups": {"engineers": ["alice@example.com"]},
                "resources": {
                    "prod": {"url": target_dsn, "access": {"engineers": {"read": "allow"}}}
                },
            }
        )
    )
    cli = [sys.executable, "-m", "jitgate", "token"]
    issued = subprocess.run(
        [*cli, "issue", "--config", str(config), "--user", "alice@example.com", "--ttl", "1h"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip()
    assert issued.stdout == token + "\n" and token.startswith("jg_") and len(token) == 46
    stored = gw.call(
        gw.gateway.pool.fetchval(
            "SELECT count(*) FROM access_tokens"
            " WHERE position($1 in scram_verifier) > 0 OR token_sha256 = convert_to($1, 'UTF8')",
            token,
        )
    )
    assert stored == 0  # only hashes are kept
    with psycopg.connect(gw.dsn("alice@example.com", token)) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    revoked = subprocess.run(
        [*cli, "revoke", "--config", str(config), "--token", "-"],
        input=token + "\n", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert revoked.stdout.strip() == "revoked 1 token(s)"
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(gw.dsn("alice@example.com", token))
    nobody = subprocess.run(
        [*cli, "issue", "--config", str(config), "--user", "mallory@example.com"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert nobody.returncode == 2
    assert (
        nobody.stderr.strip()
        == "jitgate: user mallory@example.com is in no group of the configuration"
    )


def test_health_and_metrics(gw: GatewayThread) -> None:
    token = gw.token("alice@example.com")
    with psycopg.connect(gw.dsn("alice@example.com", token)) as conn:
        conn.execute("SELECT 1")
    status, body = http_get(gw, "/healthz")
    assert status == 200
    assert json.loads(body) == {
        "status": "ok",
        "checks": {"store": True, "postgres_listener": True},
    }
    status, body = http_get(gw, "/metrics")
    text = body.decode()
    assert status == 200
    assert 'jitgate_statements_total{decision="allow",outcome="ok"}' in text
    assert "jitgate_statement_duration_seconds_bucket" in text
    assert "jitgate_sessions_total" in text and "jitgate_audit_store_up 1.0" in text


def test_client_tls_when_a_certificate_is_configured(
    tmp_path: Path, pg_bin: Callable[[str], str], store_dsn: str, target_dsn: str
) -> None:
    cert, key = tmp_path / "gw.crt", tmp_path / "gw.key"
    generate_self_signed(cert, key)
    postgres = {"listen": "127.0.0.1:0", "tls": {"cert": str(cert), "key": str(key)}}
    gateway = GatewayThread(gateway_config(store_dsn, target_dsn, postgres=postgres))
    try:
        token = gateway.token("alice@example.com")
        dsn = gateway.dsn("alice@example.com", token).replace("sslmode=disable", "sslmode=require")
        with psycopg.connect(dsn) as conn:
            assert conn.info.pgconn.ssl_in_use
            assert conn.execute("SELECT 41 + 1").fetchone() == (42,)
        out = subprocess.run(
            [pg_bin("psql"), "-X", "-At", dsn, "-c", "SELECT 'over tls'"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert out.stdout.strip() == "over tls", out.stderr
    finally:
        gateway.stop()


def test_a_listener_that_requires_tls_refuses_a_cleartext_token(
    tmp_path: Path, store_dsn: str, target_dsn: str
) -> None:
    cert, key = tmp_path / "gw.crt", tmp_path / "gw.key"
    generate_self_signed(cert, key)
    tls = {"cert": str(cert), "key": str(key), "require": True}
    postgres = {"listen": "127.0.0.1:0", "tls": tls}
    gateway = GatewayThread(gateway_config(store_dsn, target_dsn, postgres=postgres))
    try:
        dsn = gateway.dsn("alice@example.com", gateway.token("alice@example.com"))
        with pytest.raises(psycopg.OperationalError, match="requires TLS on this listener"):
            psycopg.connect(dsn)  # sslmode=disable: the token would go in cleartext
        with psycopg.connect(dsn.replace("sslmode=disable", "sslmode=require")) as conn:
            assert conn.info.pgconn.ssl_in_use
    finally:
        gateway.stop()


def test_tls_is_required_by_default_off_loopback() -> None:
    with pytest.raises(ConfigError, match=r"postgres\.tls\.require: clients must use TLS"):
        parse_config({"database_url": "x", "postgres": {"listen": "0.0.0.0:15432"}}, {})
    loopback = parse_config({"database_url": "x", "postgres": {"listen": "127.0.0.1:1"}}, {})
    assert not loopback.postgres.tls_required


def test_no_tls_without_a_certificate(gw: GatewayThread) -> None:
    token = gw.token("alice@example.com")
    dsn = gw.dsn("alice@example.com", token).replace("sslmode=disable", "sslmode=require")
    with pytest.raises(psycopg.OperationalError, match="server does not support SSL"):
        psycopg.connect(dsn)
    with psycopg.connect(dsn.replace("sslmode=require", "sslmode=prefer")) as conn:
        assert not conn.info.pgconn.ssl_in_use


@pytest.mark.parametrize(
    ("user", "password", "sslmode"),
    [("scram_user", "scram-pass", "disable"), ("md5_user", "md5-pass", "disable"),
     ("scram_user", "scram-pass", "require")],
)  # fmt: skip
def test_upstream_authentication(
    auth_cluster: Cluster, store_dsn: str, user: str, password: str, sslmode: str
) -> None:
    if sslmode == "require" and not auth_cluster.ssl:
        pytest.fail("the auth cluster was started without TLS support")
    target = (
        f"postgresql://{user}:{password}@127.0.0.1:{auth_cluster.port}/authdb?sslmode={sslmode}"
    )
    gateway = GatewayThread(gateway_config(store_dsn, target))
    try:
        token = gateway.token("alice@example.com")
        with psycopg.connect(gateway.dsn("alice@example.com", token)) as conn:
            row = conn.execute("SELECT current_user, ssl FROM pg_stat_ssl"
                               " WHERE pid = pg_backend_pid()").fetchone()  # fmt: skip
        assert row == (user, sslmode == "require")
        wrong = target.replace(password, "wrong")
        _assert_refused(store_dsn, wrong, "could not connect to resource")
    finally:
        gateway.stop()


def _assert_refused(store_dsn: str, target: str, reason: str) -> None:
    """A gateway whose resource URL carries a wrong password refuses the client, saying
    ``reason``."""
    bad = GatewayThread(gateway_config(store_dsn, target))
    try:
        with pytest.raises(psycopg.OperationalError, match=reason):
            psycopg.connect(bad.dsn("alice@example.com", bad.token("alice@example.com")))
    finally:
        bad.stop()


@pytest.mark.parametrize(
    ("user", "password"), [("scram_user", "scram-pass"), ("md5_user", "md5-pass")]
)
def test_upstream_authentication_over_the_unix_socket(
    auth_cluster: Cluster, store_dsn: str, user: str, password: str
) -> None:
    target = (
        f"postgresql://{user}:{password}@/authdb?host={auth_cluster.socket_dir}"
        f"&port={auth_cluster.port}"
    )
    gateway = GatewayThread(gateway_config(store_dsn, target))
    try:
        token = gateway.token("alice@example.com")
        with psycopg.connect(gateway.dsn("alice@example.com", token)) as conn:
            row = conn.execute("SELECT current_user, inet_server_addr() IS NULL").fetchone()
        assert row == (user, True)
        _assert_refused(
            store_dsn, target.replace(password, "wrong"), "password authentication failed"
        )
    finally:
        gateway.stop()


def test_client_scram_authentication(store_dsn: str, target_dsn: str) -> None:
    postgres = {"listen": "127.0.0.1:0", "client_auth": "scram"}
    gateway = GatewayThread(gateway_config(store_dsn, target_dsn, postgres=postgres))
    try:
        token = gateway.token("alice@example.com")
        with psycopg.connect(gateway.dsn("alice@example.com", token)) as conn:
            assert conn.execute("SELECT 'scram ok'").fetchone() == ("scram ok",)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(gateway.dsn("alice@example.com", "jg_wrong"))
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(gateway.dsn("nobody@example.com", token))
    finally:
        gateway.stop()


def test_unsafe_startup_parameters_do_not_reach_the_target(gw: GatewayThread) -> None:
    token = gw.token("alice@example.com")
    dsn = gw.dsn("alice@example.com", token, options="-c%20session_replication_role%3Dreplica")
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SHOW session_replication_role").fetchone() == ("origin",)


def test_shutdown_drains_sessions(store_dsn: str, target_dsn: str) -> None:
    gateway = GatewayThread(gateway_config(store_dsn, target_dsn))
    token = gateway.token("alice@example.com")
    busy = psycopg.connect(gateway.dsn("alice@example.com", token), autocommit=True)
    idle = psycopg.connect(gateway.dsn("alice@example.com", token), autocommit=True)
    result: list[object] = []

    def slow_query() -> None:
        result.append(busy.execute("SELECT 'finished', pg_sleep(1)").fetchone())

    worker = threading.Thread(target=slow_query)
    worker.start()
    time.sleep(0.3)
    started = time.monotonic()
    gateway.stop(drain_timeout=10)
    worker.join(10)
    assert result == [("finished", "")]  # the statement in flight completed
    assert time.monotonic() - started < 5
    with pytest.raises(psycopg.OperationalError, match="jitgate is shutting down"):
        idle.execute("SELECT 1")
    busy.close()
    idle.close()
    ended = asyncpg_fetch(store_dsn, "SELECT end_reason FROM sessions WHERE ended_at IS NOT NULL"
                          " ORDER BY ended_at DESC LIMIT 2")  # fmt: skip
    assert [r[0] for r in ended] == ["gateway shutdown", "gateway shutdown"]


def asyncpg_fetch(dsn: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query).fetchall()


def test_migrate_is_idempotent(tmp_path: Path, make_database: Callable[[str], str]) -> None:
    config = tmp_path / "jitgate.yaml"
    config.write_text(yaml.safe_dump({"database_url": make_database("jg_migrate_store")}))
    command = [sys.executable, "-m", "jitgate", "migrate", "--config", str(config)]
    first = subprocess.run(command, capture_output=True, text=True, timeout=60)
    second = subprocess.run(command, capture_output=True, text=True, timeout=60)
    shipped = [migration.version for migration in migrations()]
    assert first.stdout.strip() == f"applied {len(shipped)} migration(s): {shipped}", first.stderr
    assert second.stdout.strip() == "applied 0 migration(s)"


def test_audit_batches_are_compressed_with_lz4_where_the_store_has_it(
    tmp_path: Path, make_database: Callable[[str], str]
) -> None:
    """Both toasted columns of a batch (a busy session's texts and events) use lz4 when
    the server was built with it: pglz costs the store several times the CPU."""
    dsn = make_database("jg_lz4_store")
    config = tmp_path / "jitgate.yaml"
    config.write_text(yaml.safe_dump({"database_url": dsn}))
    command = [sys.executable, "-m", "jitgate", "migrate", "--config", str(config)]
    subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    [(has_lz4,)] = asyncpg_fetch(
        dsn,
        "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'",
    )
    methods = asyncpg_fetch(
        dsn,
        "SELECT attname, attcompression FROM pg_attribute"
        " WHERE attrelid = 'statement_batches'::regclass AND attname IN ('texts', 'events')"
        " ORDER BY attname",
    )
    expected = "l" if has_lz4 else ""
    assert methods == [("events", expected), ("texts", expected)]


def test_an_unreachable_store_fails_serve_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "jitgate.yaml"
    config.write_text(yaml.safe_dump({"database_url": "postgresql://nobody@127.0.0.1:1/none"}))
    result = subprocess.run(
        [sys.executable, "-m", "jitgate", "serve", "--config", str(config)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "jitgate: cannot reach the store at database_url"
    )


async def test_serve_collects_the_cycles_closed_sessions_leave() -> None:
    """``serve`` raises the collector's thresholds so far that closed sessions' reference
    cycles (and the engines' buffers in them) would stay; its periodic full collection
    frees them."""

    class Session:
        pass

    thresholds = gc.get_threshold()
    gc.set_threshold(100_000, 50, 1000)
    try:
        session = Session()
        session.me = session  # type: ignore[attr-defined]
        gone = weakref.ref(session)
        del session
        collector = asyncio.create_task(collect_cycles(0.05))
        for _ in range(100):
            await asyncio.sleep(0.01)
            if gone() is None:
                break
        collector.cancel()
        assert gone() is None
    finally:
        gc.set_threshold(*thresholds)
