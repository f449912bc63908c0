"""``make demo``: the gateway in front of a sample database, on this machine, in one command.

``python -m jitgate.demo`` keeps everything in ``.demo/`` under the current directory
(``make demo`` runs in the repository root), or in ``$JITGATE_DEMO_DIR``:

- ``pgdata/``: a PostgreSQL cluster (see :mod:`jitgate.cluster`), started on a free port or
  reused if it already runs. It holds the store database ``jitgate`` and the sample database
  ``shop`` (:func:`jitgate.demo_data.load_shop`), whose tables belong to the role ``app``
  (the resource's ``write_url``); alice's read-only sessions run as ``shop_reader``, made by
  :func:`jitgate.roles.reader_role_sql` (the resource's ``url``).
- ``app-password`` (mode 0600): ``app``'s password, made once. The config names it only as
  ``${DEMO_DB_PASSWORD}``; the demo puts it in the gateway's environment. The demo cluster
  trusts local connections (see :mod:`jitgate.cluster`), so the password shows where secrets
  come from rather than guarding anything.
- ``jitgate.yaml``: the gateway's config, written afresh on every run. The gateway listens on
  127.0.0.1:15432 (Postgres) and 127.0.0.1:8080 (HTTP), or on free ports if those are taken.
  The HTTP listener runs in demo mode (``http.demo: true``): the web inbox lets anyone pick
  any configured user, which is how bob@example.com approves alice's held statements.
- ``gateway.log``: the gateway's own log.

Each run issues a new access token for alice@example.com (an engineer), starts
``jitgate serve`` as a child process, prints the psql line to try and waits. Ctrl-C, SIGTERM
or SIGHUP stop the gateway, then the cluster (its data stays for the next run), and the demo
exits 0. ``--no-serve`` stops after the set-up and leaves the cluster running. Any failure
ends with one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import yaml

from jitgate.cluster import Cluster
from jitgate.config import load_config, parse_upstream_url
from jitgate.demo_data import load_shop
from jitgate.errors import JitgateError
from jitgate.roles import apply_reader_role, reader_role_sql
from store.db import connect_pool, migrate
from store.tokens import issue_token

HOST = "127.0.0.1"
HTTP_PORT = 8080
POSTGRES_PORT = 15432
USER = "alice@example.com"
TOKEN_TTL = 8 * 3600.0
CUSTOMERS = 1000
PASSWORD_VAR = "DEMO_DB_PASSWORD"
READER = "shop_reader"
READY_TIMEOUT = 60.0
# The gateway lets running statements finish before it exits; idle sessions close at once.
STOP_TIMEOUT = 30.0
# Engineers read at once; anything else waits for a DBA, and privilege changes are refused.
ACCESS = {
    "engineers": {
        "read": "allow", "write": "review", "ddl": "review",
        "destructive": "review", "privilege": "deny", "opaque": "review",
    },
    "dba": {
        "read": "allow", "write": "allow", "ddl": "review",
        "destructive": "review", "privilege": "review", "opaque": "review",
    },
}  # fmt: skip
STATEMENT_EVENTS_SQL = (
    "SELECT s.identity, e.statement_class, e.decision, e.outcome, e.sql"
    " FROM statement_events e JOIN sessions s ON s.id = e.session_id"
    " ORDER BY e.started_at DESC LIMIT 10"
)


@dataclass(frozen=True, slots=True)
class Demo:
    """What the set-up produced, and what the user is told about."""

    root: Path
    cluster: Cluster
    server_version: str
    shop_loaded: bool
    password: str = field(repr=False)
    http_port: int
    postgres_port: int
    port_notes: tuple[str, ...]
    token: str = field(repr=False)

    @property
    def config_path(self) -> Path:
        return self.root / "jitgate.yaml"

    @property
    def gateway_log(self) -> Path:
        return self.root / "gateway.log"

    @property
    def store_url(self) -> str:
        return _store_url(self.cluster)


def demo_dir() -> Path:
    return Path(os.environ.get("JITGATE_DEMO_DIR") or ".demo").absolute()


def _store_url(cluster: Cluster) -> str:
    return cluster.dsn("jitgate", "jitgate")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jitgate.demo", description="Run jitgate in front of a sample database."
    )
    parser.add_argument(
        "--no-serve",
        action="store_true",
        help="set everything up, print the config path and a token, leave PostgreSQL running",
    )
    args = parser.parse_args(argv)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    # All three end the demo as Ctrl-C does, even where a shell started it with SIGINT ignored.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.default_int_handler)
    root = demo_dir()
    cluster: Cluster | None = None
    status = 0
    try:
        root.mkdir(parents=True, exist_ok=True)
        cluster = _start_cluster(root / "pgdata")
        demo = asyncio.run(_prepare(cluster, root))
        if args.no_serve:
            _print_setup(demo)
            return 0  # the cluster stays up for whoever uses the config next
        _describe(demo)
        _serve(demo)
    except KeyboardInterrupt:
        print(f"\nstopping (the data stays in {root} for the next run) ...")
    except (JitgateError, RuntimeError, OSError, asyncpg.PostgresError) as exc:
        status = _fail(str(exc))
    if cluster is not None:
        status = _stop_cluster(cluster) or status
    return status


def _start_cluster(pgdata: Path) -> Cluster:
    try:
        return Cluster.ensure_running(pgdata)
    except RuntimeError as exc:
        lines = str(exc).splitlines() or ["unknown error"]
        fatal = [line.split("FATAL:", 1)[1].strip() for line in lines if "FATAL:" in line]
        reason = fatal[-1] if fatal else lines[0]
        raise JitgateError(
            f"PostgreSQL did not start: {reason} (server log: {pgdata / 'server.log'})"
        ) from exc


async def _prepare(cluster: Cluster, root: Path) -> Demo:
    """Create what is missing (roles, databases, sample rows), write the config, issue a token."""
    password = _app_password(root / "app-password")
    server_version = await _create_databases(cluster, password)
    shop = await asyncpg.connect(cluster.dsn("shop", "app", password))
    try:
        shop_loaded = bool(await shop.fetchval("SELECT to_regclass('customers') IS NULL"))
        if shop_loaded:
            await load_shop(shop, customers=CUSTOMERS)
    finally:
        await shop.close()
    await _make_reader(cluster, password)
    notes: list[str] = []
    http_port, postgres_port = _choose_ports(notes)
    config_path = root / "jitgate.yaml"
    config_path.write_text(_config_text(cluster, root, http_port, postgres_port), encoding="utf-8")
    config = load_config(config_path, {PASSWORD_VAR: password})
    pool = await connect_pool(config.database_url, max_size=2)
    try:
        await migrate(pool)
        token = await issue_token(pool, USER, TOKEN_TTL)
    finally:
        await pool.close()
    return Demo(
        root, cluster, server_version, shop_loaded, password, http_port, postgres_port,
        tuple(notes), token,
    )  # fmt: skip


async def _create_databases(cluster: Cluster, password: str) -> str:
    """Roles ``jitgate`` and ``app``, databases ``jitgate`` and ``shop``; the server version."""
    admin = await asyncpg.connect(cluster.dsn())
    try:
        await _ensure_role(admin, "jitgate", None)
        await _ensure_role(admin, "app", password)
        for database, owner in (("jitgate", "jitgate"), ("shop", "app")):
            if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database):
                await admin.execute(f"CREATE DATABASE {database} OWNER {owner}")
        return str(await admin.fetchval("SHOW server_version"))
    finally:
        await admin.close()


async def _make_reader(cluster: Cluster, password: str) -> None:
    """The role ``shop_reader`` (:func:`jitgate.roles.reader_role_sql`): the shop's read-only
    sessions run on it, so what the guardrails let through as a read cannot write."""
    reader = parse_upstream_url(cluster.dsn("shop", READER, password), "url")
    sql = reader_role_sql(READER, "app", "shop", ["public"])
    await apply_reader_role(cluster.dsn("shop"), sql, reader)


def _app_password(path: Path) -> str:
    """``app``'s password from ``path``, made and saved (mode 0600) on the first run."""
    try:
        saved = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        saved = ""
    if saved:
        path.chmod(0o600)
        return saved
    password = secrets.token_urlsafe(24)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(password + "\n")
    return password


async def _ensure_role(conn: asyncpg.Connection[Any], role: str, password: str | None) -> None:
    if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
        await conn.execute(f"CREATE ROLE {role} LOGIN")
    if password is not None:
        alter = await conn.fetchval(
            "SELECT format('ALTER ROLE %I PASSWORD %L', $1::text, $2::text)", role, password
        )
        await conn.execute(alter)


def _choose_ports(notes: list[str]) -> tuple[int, int]:
    """The usual HTTP and Postgres ports, or free ones (explained in ``notes``) if taken."""
    chosen: list[int] = []
    probes: list[socket.socket] = []
    try:
        for port, listener in ((HTTP_PORT, "HTTP"), (POSTGRES_PORT, "Postgres")):
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            probes.append(probe)
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((HOST, port))
            except OSError:
                probe.bind((HOST, 0))
                notes.append(
                    f"port {port} is taken: the {listener} listener uses"
                    f" {HOST}:{probe.getsockname()[1]} instead"
                )
            chosen.append(probe.getsockname()[1])
    finally:
        for probe in probes:
            probe.close()
    return chosen[0], chosen[1]


def _config_text(cluster: Cluster, root: Path, http_port: int, postgres_port: int) -> str:
    config = {
        "database_url": _store_url(cluster),
        "public_url": f"http://{HOST}:{http_port}",
        # Demo mode: the web inbox lets you pick who you are, so bob can approve alice's
        # statements without a token of his own. Never in production.
        "http": {"listen": f"{HOST}:{http_port}", "demo": True},
        "postgres": {"listen": f"{HOST}:{postgres_port}", "hold_timeout": "120s"},
        "groups": {"engineers": [USER], "dba": ["bob@example.com", "carol@example.com"]},
        "resources": {
            "shop": {
                "type": "postgres",
                # The reader and the writer share the demo's one password.
                "url": f"postgresql://{READER}:${{{PASSWORD_VAR}}}@{HOST}:{cluster.port}/shop",
                "write_url": f"postgresql://app:${{{PASSWORD_VAR}}}@{HOST}:{cluster.port}/shop",
                "access": ACCESS,
                "approvers": ["dba"],
                "approvals_required": 1,
                "request_ttl": "1h",
                "masking": "default",
            }
        },
    }
    header = (
        "# Written by `make demo` (python -m jitgate.demo) on every run: edits do not last.\n"
        f"# ${{{PASSWORD_VAR}}} comes from the environment; the demo sets it from"
        f" {root / 'app-password'}.\n"
    )
    return header + yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=120)


def _psql(demo: Demo) -> str:
    return "psql" if shutil.which("psql") else shlex.quote(str(demo.cluster.bin("psql")))


def _psql_line(demo: Demo) -> str:
    conninfo = (
        f"host={HOST} port={demo.postgres_port} user={USER} dbname=shop password={demo.token}"
    )
    return f'{_psql(demo)} "{conninfo}"'


def _describe(demo: Demo) -> None:
    shop = "loaded now" if demo.shop_loaded else "kept from an earlier run"
    print(f"jitgate demo: files in {demo.root}")
    print(f"  PostgreSQL {demo.server_version} on {HOST}:{demo.cluster.port}")
    print(f"  database shop: {CUSTOMERS} customers with fake PII, orders, carts ({shop})")
    print(f"  config: {demo.config_path} (the shop password comes from ${PASSWORD_VAR})")
    for note in demo.port_notes:
        print(f"  {note}")
    print(f"  starting the gateway (log: {demo.gateway_log}) ...")


def _print_setup(demo: Demo) -> None:
    print(f"config: {demo.config_path}")
    print(f"token:  {demo.token}")
    for note in demo.port_notes:
        print(note)
    print(
        f"PostgreSQL {demo.server_version} keeps running on {HOST}:{demo.cluster.port};"
        " `make demo` reuses it and stops it on Ctrl-C. To run the gateway yourself:"
    )
    password_file = shlex.quote(str(demo.root / "app-password"))
    print(
        f"  {PASSWORD_VAR}=$(cat {password_file}) {shlex.quote(sys.executable)} -m jitgate"
        f" serve --config {shlex.quote(str(demo.config_path))}"
    )


def _print_ready(demo: Demo) -> None:
    web = f"http://{HOST}:{demo.http_port}"
    print()
    print(f"The gateway is up. Connect as {USER} (group engineers); her access token")
    print("(valid 8 h, a new one on every run) is the password:")
    print()
    print(f"  {_psql_line(demo)}")
    print()
    if _psql(demo) != "psql":
        print(f"  (psql is not on your PATH; the line above uses {demo.cluster.bin('psql')})")
        print()
    print("Then try:")
    print("  SELECT * FROM customers LIMIT 5;   -- a read: runs at once, PII masked in flight")
    print("  SELECT count(*) FROM orders;       -- so does this one")
    print("  DELETE FROM carts WHERE id = 1;    -- a write: held for approval, psql waits 120 s")
    print()
    print(f"While psql waits, open {web}/inbox, pick bob@example.com (a DBA), open the")
    print("request and click Approve: psql prints DELETE 1. Reject it instead (with a reason)")
    print("and psql gets an ERROR naming bob and the reason; the session goes on.")
    print()
    print("Every statement is recorded in the store's statement_events table:")
    print(f'  {_psql(demo)} "{demo.store_url}" -c "{STATEMENT_EVENTS_SQL}"')
    print()
    print(f"HTTP: {web}/healthz and {web}/metrics")
    print()
    print("Ctrl-C to stop.")


def _serve(demo: Demo) -> None:
    """Run the gateway until it fails (raises) or the user stops the demo (KeyboardInterrupt)."""
    command = [sys.executable, "-m", "jitgate", "serve", "--config", str(demo.config_path)]
    with demo.gateway_log.open("w", encoding="utf-8") as log:
        # A process group of its own: the terminal's Ctrl-C reaches only the demo, which then
        # stops the gateway and the cluster in that order.
        gateway = subprocess.Popen(
            command,
            env={**os.environ, PASSWORD_VAR: demo.password},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            process_group=0,
        )
    try:
        _wait_until_healthy(gateway, demo)
        _print_ready(demo)
        code = gateway.wait()
        raise JitgateError(f"the gateway exited with status {code}: {_last_line(demo)}")
    finally:
        _ignore_stop_signals()
        if gateway.poll() is None:
            gateway.terminate()
            try:
                gateway.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                gateway.kill()
                gateway.wait()


def _wait_until_healthy(gateway: subprocess.Popen[bytes], demo: Demo) -> None:
    # No proxy from the environment may stand between us and a listener on 127.0.0.1.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    url = f"http://{HOST}:{demo.http_port}/healthz"
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        code = gateway.poll()
        if code is not None:
            raise JitgateError(f"the gateway exited with status {code}: {_last_line(demo)}")
        try:
            with opener.open(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise JitgateError(
                f"the gateway did not answer {url} within {READY_TIMEOUT:.0f} s"
                f" (log: {demo.gateway_log})"
            )
        time.sleep(0.2)


def _last_line(demo: Demo) -> str:
    """The gateway's last words: the CLI's one-line reason or a traceback's last line."""
    try:
        lines = demo.gateway_log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    said = [line.strip() for line in lines if line.strip()]
    return f"{said[-1] if said else 'no output'} (log: {demo.gateway_log})"


def _ignore_stop_signals() -> None:
    """A second Ctrl-C must not cut the clean-up short."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)


def _stop_cluster(cluster: Cluster) -> int:
    _ignore_stop_signals()
    try:
        cluster.stop()
    except RuntimeError as exc:
        return _fail(f"PostgreSQL did not stop: {str(exc).splitlines()[0]}")
    return 0


def _fail(message: str) -> int:
    print(f"demo: {message}", file=sys.stderr, flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
