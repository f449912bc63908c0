"""Writes the facts :mod:`guard.builtins` judges built-ins by, read from a live server.

``python -m guard.allowlist_gen --dsn URL`` reads the server at ``URL``;
``python -m guard.allowlist_gen --start`` starts a throw-away cluster from the binaries
:func:`jitgate.cluster.find_bindir` finds (``JITGATE_PG_BIN`` picks a version). Either way
the facts go to ``guard/data/pg<major>.txt`` (or ``--out FILE``, ``-`` for stdout).

The file holds facts, not verdicts — the rule that turns them into the allow-list lives in
:mod:`guard.builtins`, where it can be read and reviewed. One line per fact, sorted::

    version 15
    function lower i           every pg_catalog function of that name: the volatilities
    function now s             of its overloads (i, s, v), then "definer" when one of them
    function pg_sleep v        is SECURITY DEFINER
    operator = boolne,int4eq   every pg_catalog operator of that symbol: its functions
    type pg_catalog.int4       every type in pg_catalog and information_schema
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import asyncpg

DATA_DIR = Path(__file__).parent / "data"

_FUNCTIONS = """
SELECT p.proname, string_agg(DISTINCT p.provolatile::text, ''), bool_or(p.prosecdef)
FROM pg_proc p WHERE p.pronamespace = 'pg_catalog'::regnamespace GROUP BY p.proname
"""
_OPERATORS = """
SELECT o.oprname, array_agg(DISTINCT p.proname::text)
FROM pg_operator o JOIN pg_proc p ON p.oid = o.oprcode
WHERE o.oprnamespace = 'pg_catalog'::regnamespace GROUP BY o.oprname
"""
_TYPES = """
SELECT n.nspname, t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname IN ('pg_catalog', 'information_schema')
"""


async def read_facts(dsn: str) -> tuple[int, list[str]]:
    """The server's major version and its fact lines, sorted."""
    conn = await asyncpg.connect(dsn)
    try:
        major = int(await conn.fetchval("SHOW server_version_num")) // 10_000
        lines = [
            f"function {name} {''.join(sorted(vols))}" + (" definer" if definer else "")
            for name, vols, definer in await conn.fetch(_FUNCTIONS)
        ]
        lines += [
            f"operator {name} {','.join(sorted(functions))}"
            for name, functions in await conn.fetch(_OPERATORS)
        ]
        lines += [f"type {schema}.{name}" for schema, name in await conn.fetch(_TYPES)]
    finally:
        await conn.close()
    return major, sorted(lines)


def render(major: int, lines: list[str]) -> str:
    return "\n".join([f"version {major}", *lines]) + "\n"


def data_path(major: int) -> Path:
    return DATA_DIR / f"pg{major}.txt"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m guard.allowlist_gen", description=__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dsn", help="a server to read")
    source.add_argument("--start", action="store_true", help="start a throw-away cluster")
    parser.add_argument("--out", help="where to write (default guard/data/pg<major>.txt)")
    args = parser.parse_args(argv)
    if args.start:
        from jitgate.cluster import Cluster  # only the generator needs a server of its own

        with Cluster() as cluster:
            major, lines = asyncio.run(read_facts(cluster.dsn()))
    else:
        major, lines = asyncio.run(read_facts(args.dsn))
    text = render(major, lines)
    if args.out == "-":
        sys.stdout.write(text)
        return
    out = Path(args.out) if args.out else data_path(major)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"{out}: {len(lines)} facts of PostgreSQL {major}")


if __name__ == "__main__":
    main()
