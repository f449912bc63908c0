"""The PostgreSQL server the benchmark runs against, and its two databases."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import quote, unquote, urlsplit

import asyncpg

from bench import BenchError
from bench.pgbench import Endpoint
from jitgate.cluster import Cluster, find_bindir, local_socket_dir

DSN_VARIABLE = "JITGATE_BENCH_DSN"
DATABASE_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


class BenchServer:
    """``$JITGATE_BENCH_DSN`` (a superuser URL) if set, else a throw-away cluster, destroyed
    when the ``with`` block ends."""

    def __init__(self) -> None:
        configured = os.environ.get(DSN_VARIABLE)
        self._cluster: Cluster | None = None
        if configured:
            self.admin_dsn = configured
        else:
            self._cluster = Cluster()
            try:
                self._cluster.start()
            except BaseException:
                self._cluster.destroy()
                raise
            self.admin_dsn = self._cluster.dsn()

    @property
    def origin(self) -> str:
        return f"${DSN_VARIABLE}" if self._cluster is None else "a throw-away cluster"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._cluster is not None:
            self._cluster.destroy()

    def binary(self, name: str) -> Path:
        """A client binary such as ``pgbench``: from ``PATH`` first, else the server's own."""
        found = shutil.which(name)
        if found:
            return Path(found)
        bindir = self._cluster.bindir if self._cluster is not None else find_bindir()
        return bindir / name

    def url(self, database: str) -> str:
        """The admin URL pointed at ``database``, without TLS (as pgbench connects)."""
        parts = urlsplit(self.admin_dsn)
        return parts._replace(path="/" + quote(database, safe=""), query="sslmode=disable").geturl()

    def endpoint(self, database: str) -> Endpoint:
        parts = urlsplit(self.admin_dsn)
        if parts.hostname is None or parts.username is None:
            raise BenchError(f"{DSN_VARIABLE} must name a host and a user")
        return Endpoint(
            host=parts.hostname,
            port=parts.port or 5432,
            user=unquote(parts.username),
            database=database,
            password=unquote(parts.password) if parts.password is not None else None,
        )

    async def socket_dir(self) -> str | None:
        """The directory of the server's Unix socket when that socket is on this machine
        (a gateway beside its database connects there), else None."""
        conn = await self.connect()
        try:
            row = await conn.fetchrow(
                "SELECT current_setting('unix_socket_directories'), current_setting('port')::int"
            )
        except DATABASE_ERRORS as exc:
            raise BenchError(f"cannot ask the server for its socket: {exc}") from exc
        finally:
            await conn.close()
        return None if row is None else local_socket_dir(str(row[0]), int(row[1]))

    def socket_url(self, database: str, directory: str) -> str:
        """The admin URL pointed at ``database`` over the Unix socket in ``directory``."""
        parts = urlsplit(self.admin_dsn)
        login = parts.netloc.rpartition("@")[0]
        query = f"host={quote(directory)}&port={self.endpoint(database).port}"
        return parts._replace(
            netloc=f"{login}@", path="/" + quote(database, safe=""), query=query
        ).geturl()

    def socket_endpoint(self, database: str, directory: str) -> Endpoint:
        """:meth:`endpoint` over the Unix socket in ``directory`` (libpq's host rule)."""
        return dataclasses.replace(self.endpoint(database), host=directory)

    async def connect(self, database: str | None = None) -> asyncpg.Connection:
        """A superuser connection to ``database``, or to the admin URL's own database."""
        url = self.admin_dsn if database is None else self.url(database)
        try:
            return await asyncpg.connect(url, ssl=False, timeout=30)
        except (*DATABASE_ERRORS, TimeoutError) as exc:
            raise BenchError(f"cannot connect to {database or 'the server'}: {exc}") from exc

    async def recreate_database(self, name: str) -> None:
        """Drop ``name`` if it exists (disconnecting its sessions) and create it empty."""
        conn = await self.connect()
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{name}"')
        except DATABASE_ERRORS as exc:
            raise BenchError(f"cannot recreate database {name}: {exc}") from exc
        finally:
            await conn.close()
