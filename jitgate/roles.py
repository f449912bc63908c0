"""Least privilege in the target: the reader role's SQL, and the proof that it cannot write.

A resource with ``write_url`` runs its read-only sessions on ``url``, the reader. The
gateway's guardrails decide; the reader's privileges make a misclassified statement fail
in the database. :func:`reader_role_sql` writes the role: SELECT on the schemas the writer
can use (and on tables made later, by default privileges), ``default_transaction_read_only``
(so even a SECURITY DEFINER function, a large-object call or ``nextval`` cannot write), no
other privilege. :func:`reader_violations` checks a role from its own connection with
privilege queries only — it never tries a write — and lists what would let it change
anything; the gateway runs it at start and ``jitgate doctor`` prints it.

Large objects are the exception ``default_transaction_read_only`` leaves: PostgreSQL lets a
read-only transaction create one (``lo_create``, ``lo_creat``, ``lo_from_bytea``; the
server-side ``lo_import`` too, for whoever may run it), and every role may, through
PUBLIC. So the role's SQL revokes EXECUTE on those functions from PUBLIC in the target
database and grants the ordinary ones back to the writer — which changes who may create
large objects there (only the writer, and roles the admin grants them to later).
:func:`reader_large_object_functions` finds the ones a reader can still run; that is a
warning, not a refusal to start: a new large object is an object of the reader's own,
not a change to the data it reads, and a reader made before this check existed must not
stop the gateway.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from approvals.execute import connect
from jitgate.config import Resource, UpstreamURL

# Built-in roles whose members reach the server's files, programs or other sessions, or
# write any table.
POWERFUL_ROLES = (
    "pg_read_server_files",
    "pg_write_server_files",
    "pg_execute_server_program",
    "pg_signal_backend",
    "pg_write_all_data",
    "pg_checkpoint",
    "pg_create_subscription",
    "pg_use_reserved_connections",
)
# Functions that create a large object; a read-only transaction may run them.
LARGE_OBJECT_CREATORS = ("lo_create(oid)", "lo_creat(integer)", "lo_from_bytea(oid, bytea)")
# Server-side imports: EXECUTE revoked from PUBLIC by PostgreSQL itself, never granted back.
LARGE_OBJECT_IMPORTS = ("lo_import(text)", "lo_import(text, oid)")
_USER_SCHEMAS = """
    SELECT n.nspname FROM pg_namespace n
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
      AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%'
      AND has_schema_privilege($1, n.oid, 'USAGE')
    ORDER BY 1
"""
# One row per thing that lets the connected role change something; empty when it cannot.
_VIOLATIONS = """
WITH me AS (SELECT * FROM pg_roles WHERE rolname = current_user),
user_rel AS (
    SELECT c.oid, c.relkind, c.relowner FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
      AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%'
)
SELECT 'is a superuser' FROM me WHERE rolsuper
UNION ALL SELECT 'may create roles' FROM me WHERE rolcreaterole
UNION ALL SELECT 'may create databases' FROM me WHERE rolcreatedb
UNION ALL SELECT 'may replicate' FROM me WHERE rolreplication
UNION ALL SELECT 'bypasses row-level security' FROM me WHERE rolbypassrls
UNION ALL SELECT 'is a member of ' || r.rolname FROM pg_roles r
    WHERE r.rolname = ANY($1::text[]) AND pg_has_role(current_user, r.oid, 'USAGE')
UNION ALL SELECT format('has %s on %s', p, r.oid::regclass) FROM user_rel r
    CROSS JOIN unnest(ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'TRIGGER']) p
    WHERE r.relkind IN ('r', 'p', 'v', 'm', 'f') AND has_table_privilege(r.oid, p)
UNION ALL SELECT format('may advance sequence %s', r.oid::regclass) FROM user_rel r
    WHERE r.relkind = 'S'
      AND (has_sequence_privilege(r.oid, 'USAGE') OR has_sequence_privilege(r.oid, 'UPDATE'))
UNION ALL SELECT format('owns %s', r.oid::regclass) FROM user_rel r
    WHERE pg_has_role(current_user, r.relowner, 'USAGE')
UNION ALL SELECT 'may create objects in schema ' || n.nspname FROM pg_namespace n
    WHERE n.nspname <> 'pg_catalog' AND has_schema_privilege(n.oid, 'CREATE')
UNION ALL SELECT 'may create schemas in the database'
    WHERE has_database_privilege(current_database(), 'CREATE')
UNION ALL SELECT 'default_transaction_read_only is off'
    WHERE current_setting('default_transaction_read_only') <> 'on'
"""
_EXECUTABLE = """
SELECT f FROM unnest($1::text[]) f WHERE has_function_privilege(f::regprocedure, 'EXECUTE')
"""


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def reader_role_sql(reader: str, writer: str, database: str, schemas: Sequence[str]) -> str:
    """The SQL that makes ``reader`` a role that can read what ``writer`` can, and nothing
    else. Its password is not part of it (set it with ALTER ROLE … PASSWORD)."""
    r, w = _ident(reader), _ident(writer)
    lines = [
        f"-- jitgate reader role {reader}: reads what {writer} can read, writes nothing",
        "DO $$BEGIN",
        f"  CREATE ROLE {r} LOGIN;",
        "EXCEPTION WHEN duplicate_object THEN NULL;",
        "END$$;",
        f"ALTER ROLE {r} NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;",
        f"ALTER ROLE {r} SET default_transaction_read_only = on;",
        f"GRANT CONNECT ON DATABASE {_ident(database)} TO {r};",
        f"REVOKE CREATE ON DATABASE {_ident(database)} FROM {r};",
    ]
    lines += [f"REVOKE {role} FROM {r};" for role in POWERFUL_ROLES[:5]]
    for schema in schemas:
        s = _ident(schema)
        lines += [
            f"GRANT USAGE ON SCHEMA {s} TO {r};",
            f"REVOKE CREATE ON SCHEMA {s} FROM {r};",
            f"GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {r};",
            f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE, TRIGGER ON ALL TABLES IN SCHEMA {s}"
            f" FROM {r};",
            f"REVOKE USAGE, UPDATE ON ALL SEQUENCES IN SCHEMA {s} FROM {r};",
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {w} IN SCHEMA {s} GRANT SELECT ON TABLES TO {r};",
        ]
    creators = ", ".join(f"pg_catalog.{f}" for f in LARGE_OBJECT_CREATORS)
    imports = ", ".join(f"pg_catalog.{f}" for f in LARGE_OBJECT_IMPORTS)
    lines += [
        "-- A read-only transaction may still create large objects, and every role may",
        f"-- through PUBLIC: this changes who may create large objects in {database} to",
        f"-- {writer} (and whoever is granted these functions later).",
        f"REVOKE EXECUTE ON FUNCTION {creators}, {imports} FROM PUBLIC;",
        f"REVOKE EXECUTE ON FUNCTION {creators}, {imports} FROM {r};",
        f"GRANT EXECUTE ON FUNCTION {creators} TO {w};",
    ]
    return "\n".join(lines) + "\n"


async def writer_schemas(resource: Resource) -> list[str]:
    """The schemas the resource's writer may use, asked on the writer's own connection."""
    conn = await connect(resource.writer)
    try:
        return [row[0] for row in await conn.fetch(_USER_SCHEMAS, resource.writer.user)]
    finally:
        await conn.close(timeout=2)


async def reader_violations(url: UpstreamURL) -> list[str]:
    """What lets ``url``'s role change anything in its database; empty when nothing does.
    Privilege queries only, on the role's own connection."""
    conn = await connect(url)
    try:
        rows = await conn.fetch(_VIOLATIONS, list(POWERFUL_ROLES))
    finally:
        await conn.close(timeout=2)
    return [row[0] for row in rows]


async def reader_large_object_functions(url: UpstreamURL) -> list[str]:
    """The functions creating a large object that ``url``'s role may run (a privilege
    query on its own connection; nothing is created)."""
    conn = await connect(url)
    try:
        rows = await conn.fetch(_EXECUTABLE, [*LARGE_OBJECT_CREATORS, *LARGE_OBJECT_IMPORTS])
    finally:
        await conn.close(timeout=2)
    return [row[0] for row in rows]


async def apply_reader_role(admin_url: str, sql: str, reader: UpstreamURL) -> None:
    """Run ``sql`` as the admin, and give the reader the password its URL carries."""
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(sql)
        if reader.password:
            # ALTER ROLE takes no parameters; the literal is quoted by the server.
            quoted = await conn.fetchval("SELECT quote_literal($1::text)", reader.password)
            await conn.execute(f"ALTER ROLE {_ident(reader.user)} PASSWORD {quoted}")
    finally:
        await conn.close(timeout=2)
