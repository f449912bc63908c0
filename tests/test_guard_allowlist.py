"""The allow-list: its shipped facts match a live server, its rule, and the caller's own
lists of allowed, denied and target functions."""

from __future__ import annotations

import asyncio

import pytest

from guard import Classifier, builtins
from guard.allowlist_gen import data_path, read_facts, render


def test_the_shipped_facts_match_the_suites_server(pg_dsn: str) -> None:
    major, lines = asyncio.run(read_facts(pg_dsn))
    if major not in builtins.SHIPPED_VERSIONS:
        pytest.skip(f"PostgreSQL {major} is not a shipped version")
    assert render(major, lines) == data_path(major).read_text()


def test_the_rule() -> None:
    functions = builtins.read_functions()
    for name in ("lower", "now", "count", "jsonb_path_query", "random", "pg_sleep", "currval"):
        assert name in functions, name
    for name in (
        "nextval",
        "txid_current",
        "pg_current_xact_id",
        "pg_advisory_lock",
        "pg_read_file",
        "query_to_xml",
        "set_config",
        "pg_notify",
        "lo_open",
    ):
        assert name not in functions, name  # fmt: skip
    # new in PostgreSQL 18: not a read while 15 is shipped (a user's uuidv7 may answer)
    assert "uuidv7" in builtins.facts(18).functions and "uuidv7" not in functions
    assert {"=", "<>", "->>", "@>", "~", "||", "&&"} <= builtins.read_operators()
    assert {"pg_catalog.int4", "pg_catalog.regclass", "information_schema.sql_identifier"} <= (
        builtins.builtin_types()
    )


def _judged(classifier: Classifier, sql: str) -> tuple[str, tuple[str, ...]]:
    (verdict,) = classifier.classify(sql)
    return verdict.statement_class, verdict.reasons


def test_allowed_functions_extend_the_list() -> None:
    classifier = Classifier(allowed_functions=["Reporting.Monthly_Totals", "normalize_phone"])
    assert _judged(classifier, "SELECT reporting.monthly_totals(2024)") == ("read", ())
    assert _judged(classifier, "SELECT MONTHLY_TOTALS(2024)") == ("read", ())
    assert _judged(classifier, "SELECT elsewhere.monthly_totals(1)")[0] == "opaque"
    assert _judged(classifier, "SELECT any_schema.normalize_phone(p) FROM t") == ("read", ())
    assert _judged(Classifier(), "SELECT reporting.monthly_totals(2024)")[0] == "opaque"


def test_a_denied_name_stays_denied_when_allowed() -> None:
    classifier = Classifier(
        denied_functions=["reporting.monthly_totals"], allowed_functions=["monthly_totals"]
    )
    assert _judged(classifier, "SELECT monthly_totals(1)") == (
        "opaque",
        ("calls monthly_totals",),
    )
    assert _judged(Classifier(denied_functions=["lower"]), "SELECT lower('A')")[0] == "opaque"


def test_target_functions_catch_attribute_notation_and_shadowed_built_ins() -> None:
    plain = Classifier()
    aware = Classifier(target_functions=["app.wipe_row", "public.lower"])
    assert _judged(plain, "SELECT c.wipe_row FROM customers c") == ("read", ())
    assert _judged(aware, "SELECT c.wipe_row FROM customers c")[0] == "opaque"
    assert _judged(aware, "SELECT lower(name) FROM customers")[0] == "opaque"
    assert _judged(aware, "SELECT pg_catalog.lower(name) FROM customers") == ("read", ())
    assert _judged(aware, "SELECT c.name FROM customers c") == ("read", ())
    allowed = Classifier(target_functions=["app.wipe_row"], allowed_functions=["app.wipe_row"])
    assert _judged(allowed, "SELECT c.wipe_row FROM customers c") == ("read", ())


def test_write_functions_are_writes_only_as_built_ins() -> None:
    assert _judged(Classifier(), "SELECT nextval('s')") == (
        "write",
        ("calls nextval, which changes data",),
    )
    assert _judged(Classifier(), "SELECT app.nextval('s')")[0] == "opaque"


def test_the_target_functions_query_runs(pg_dsn: str) -> None:
    async def names() -> list[str]:
        import asyncpg

        conn = await asyncpg.connect(pg_dsn)
        try:
            return [row[0] for row in await conn.fetch(builtins.TARGET_FUNCTIONS_QUERY)]
        finally:
            await conn.close()

    assert "lower" not in asyncio.run(names())
