"""Dangerous statements the deny-list let through as reads, by root cause: functions,
operators and casts the gateway does not know; code that runs while EXPLAIN only plans;
SQL run from a string by extensions; side-effecting built-ins and statements; settings;
WHERE clauses that only look like they limit rows. None may come out ``read``.

The classifier is given the target's own function names, as the gateway reads them from
the target (``guard.builtins.TARGET_FUNCTIONS_QUERY``): ``wipe``, ``wipe_row``, ``lower``
(a user's overload of a built-in name) and ``total_of``.
"""

from __future__ import annotations

import pytest

from guard import Classifier

TARGET_FUNCTIONS = ["public.wipe", "app.wipe_row", "public.lower", "app.total_of"]

ATTACKS: list[tuple[str, str | None]] = [
    # 1. functions, aggregates, operators and casts that are not known built-ins
    ("SELECT wipe()", "calls wipe(), which is not a known side-effect-free built-in"),
    ("SELECT public.wipe()", "calls public.wipe()"),
    ("SELECT * FROM customers WHERE id = 1 AND wipe() IS NOT NULL", "calls wipe()"),
    ("SELECT c.wipe_row FROM customers c", "attribute notation"),
    ("SELECT (c).wipe_row FROM customers c", "attribute notation"),
    ("SELECT customers.wipe_row FROM customers", "attribute notation"),
    ("SELECT app.total_of(o) FROM orders o", "calls app.total_of()"),
    ("SELECT my_sum(total) FROM orders", "calls my_sum()"),
    ("SELECT audit_everything() OVER () FROM orders", "calls audit_everything()"),
    ("SELECT lower(c) FROM customers c", "calls lower()"),
    ("SELECT 1 === 2", "uses operator ==="),
    ("SELECT 1 OPERATOR(public.===) 2", "uses operator public.==="),
    ("SELECT 1 OPERATOR(public.+) 2", "uses operator public.+"),
    ("SELECT * FROM t WHERE a <~> b", "uses operator <~>"),
    ("SELECT * FROM t ORDER BY x USING ~<~~", "uses operator ~<~~"),
    ("SELECT x ##> ANY (SELECT 1) FROM t", "uses operator ##>"),
    ("SELECT 'x'::checked_domain", "casts to checked_domain"),
    ("SELECT CAST(email AS app.email_address) FROM customers", "casts to app.email_address"),
    ("SELECT ROW(1, 2)::public.pair", "casts to public.pair"),
    ("SELECT json_value(payload, '$.a' RETURNING audited_text) FROM events", "audited_text"),
    ("SELECT * FROM t TABLESAMPLE system_time(1000)", "TABLESAMPLE system_time"),
    ('SELECT "LOWER"(name) FROM customers', "calls LOWER()"),
    ("SELECT pg_catalog.pg_sleep(1), evil.pg_sleep(1)", "calls evil.pg_sleep()"),
    # 2. code that runs when EXPLAIN plans, DECLARE, COPY, EXECUTE, CTEs and subqueries
    ("EXPLAIN EXECUTE p(pg_read_file('/etc/passwd'))", "calls pg_read_file"),
    ("EXPLAIN (COSTS off) EXECUTE p(wipe())", "calls wipe()"),
    ("EXPLAIN SELECT wipe()", "calls wipe()"),
    ("EXPLAIN DELETE FROM t WHERE id = wipe()", "calls wipe()"),
    ("EXPLAIN (ANALYZE false) SELECT pg_terminate_backend(1)", "pg_terminate_backend"),
    ("EXPLAIN VERBOSE SELECT set_config('role', 'admin', false)", "set_config of role"),
    ("DECLARE c CURSOR WITH HOLD FOR SELECT wipe()", "calls wipe()"),
    ("COPY (SELECT wipe()) TO STDOUT", "calls wipe()"),
    ("EXECUTE p(nextval('orders_id_seq'))", None),
    ("WITH x AS (SELECT wipe()) SELECT 1", "calls wipe()"),
    ("SELECT * FROM t WHERE id IN (SELECT u.wipe_row FROM u)", "attribute notation"),
    # 3. extension functions that run SQL from a string
    ("SELECT * FROM crosstab('SELECT 1, 2, 3') AS ct(a int, b int)", "calls crosstab()"),
    ("SELECT * FROM connectby('t', 'id', 'parent', '1', 0) AS c(id int, p int, l int)",
     "calls connectby()"),
    ("SELECT * FROM xpath_table('id', 'x', 't', '/a', 'true') AS x(id int, a text)",
     "calls xpath_table()"),
    ("SELECT * FROM dblink_get_result('c') AS r(a int)", "calls dblink_get_result()"),
    ("SELECT dblink_send_query('c', 'DELETE FROM t')", "dblink_send_query"),
    ("SELECT public.dblink('host=evil', 'SELECT 1')", "calls dblink"),
    # 4. side-effecting built-ins and statements
    ("SELECT nextval('orders_id_seq')", "calls nextval, which changes data"),
    ("SELECT lowrite(lo_open(42, 131072), 'x')", "changes data"),
    ("SELECT lo_put(42, 0, 'x')", "changes data"),
    ("SELECT lo_open(42, 131072)", "calls lo_open()"),
    ("SELECT pg_advisory_lock(1)", "calls pg_advisory_lock()"),
    ("SELECT pg_advisory_xact_lock_shared(1)", "pg_advisory_xact_lock_shared"),
    ("SELECT pg_try_advisory_lock(1, 2)", "pg_try_advisory_lock"),
    ("SELECT pg_advisory_unlock_all()", "pg_advisory_unlock_all"),
    ("SELECT pg_notify('jobs', 'run')", "signals other sessions"),
    ("NOTIFY jobs, 'run'", "NOTIFY jobs signals other sessions"),
    ("SELECT pg_stat_reset()", "pg_stat_reset"),
    ("SELECT pg_stat_reset_shared('bgwriter')", "pg_stat_reset_shared"),
    ("SELECT pg_stat_reset_single_table_counters('orders'::regclass)", "pg_stat_reset_single"),
    ("SELECT pg_switch_wal()", "pg_switch_wal"),
    ("SELECT pg_create_restore_point('x')", "pg_create_restore_point"),
    ("SELECT pg_backup_start('x')", "pg_backup_start"),
    ("SELECT pg_wal_replay_pause()", "pg_wal_replay_pause"),
    ("SELECT pg_logical_emit_message(true, 'p', 'x')", "pg_logical_emit_message"),
    ("SELECT pg_replication_slot_advance('s', '0/0')", "pg_replication_slot_advance"),
    ("SELECT * FROM pg_logical_slot_get_changes('s', NULL, NULL)", "pg_logical_slot_get"),
    ("SELECT pg_copy_logical_replication_slot('a', 'b')", "pg_copy_logical_replication_slot"),
    ("SELECT heap_force_kill('orders'::regclass, ARRAY['(0,1)']::tid[])", "heap_force_kill"),
    ("SELECT heap_force_freeze('orders'::regclass, ARRAY['(0,1)']::tid[])", "heap_force_freeze"),
    ("SELECT txid_current()", "txid_current"),
    ("SELECT pg_current_xact_id()", "pg_current_xact_id"),
    ("SELECT setseed(0.5)", "setseed"),
    ("SELECT pg_import_system_collations('pg_catalog')", "pg_import_system_collations"),
    ("SELECT brin_summarize_new_values('i'::regclass)", "brin_summarize_new_values"),
    ("SELECT gin_clean_pending_list('i'::regclass)", "gin_clean_pending_list"),
    ("PREPARE TRANSACTION 'held'", "PREPARE TRANSACTION"),
    ("COMMIT PREPARED 'held'", "COMMIT PREPARED"),
    ("ROLLBACK PREPARED 'held'", "ROLLBACK PREPARED"),
    # settings
    ("SET transform_null_equals = on", "SET transform_null_equals"),
    ("SET log_statement_stats = on", "log_statement_stats"),
    ("SET track_activities = off", "track_activities"),
    ("SET track_counts = off", "track_counts"),
    ("SET log_min_messages = panic", "log_min_messages"),
    ("SET ignore_checksum_failure = on", "ignore_checksum_failure"),
    ("SET app.tenant_id = '42'", "app.tenant_id"),
    ("SET LOCAL synchronous_commit = off", "synchronous_commit"),
    ("RESET track_io_timing", "RESET track_io_timing"),
    ("SET client_encoding = 'SJIS'", "changes how SQL text is read"),
    ("SET NAMES 'BIG5'", "changes how SQL text is read"),
    ("SET client_encoding TO DEFAULT", "changes how SQL text is read"),
    ("SET standard_conforming_strings = off", "changes how SQL text is read"),
    ("SET backslash_quote = on", "changes how SQL text is read"),
    ("SET escape_string_warning = off", "changes how SQL text is read"),
    ("RESET standard_conforming_strings", "changes how SQL text is read"),
    ("SELECT set_config('client_encoding', 'UTF8', false)", "changes how SQL text is read"),
    ("SELECT set_config('transform_null_equals', 'on', false)", "transform_null_equals"),
    ("ALTER DATABASE shop SET client_encoding = 'SJIS'", "changes how SQL text is read"),
    ("ALTER ROLE app SET standard_conforming_strings = off", None),
    ("ALTER DATABASE shop SET log_statement_stats = on", "is not a known harmless setting"),
]  # fmt: skip

# 5. WHERE clauses that only look like they limit rows: each is destructive
UNLIMITED = [
    "DELETE FROM t WHERE 'x'::char(3) = 'x  '",
    "DELETE FROM t WHERE 'abcd'::varchar(2) = 'ab'",
    "DELETE FROM t WHERE 1.5::int = 2",
    "DELETE FROM t WHERE 2.5::float8::int = 2",
    "DELETE FROM t WHERE 'NaN'::numeric = 'NaN'::numeric",
    "DELETE FROM t WHERE 'Infinity'::numeric > 0",
    "DELETE FROM t WHERE 99999999999999999999999999999 + 1 = 100000000000000000000000000000",
    "DELETE FROM t WHERE 0.1::float4 = 0.1",
    "DELETE FROM t WHERE '0x10' = 16",
    "DELETE FROM t WHERE x IS NULL OR x IS NOT NULL",
    "DELETE FROM t WHERE ctid IS NOT NULL",
    "DELETE FROM t WHERE id = ANY (SELECT id FROM t)",
    "DELETE FROM t WHERE id IN (SELECT t.id FROM u)",
    "DELETE FROM t WHERE NOT (id <> id)",
    "DELETE FROM t WHERE id + 0 = id",
    "DELETE FROM t WHERE coalesce(id, 0) >= coalesce(id, 0)",
    "DELETE FROM t WHERE abs(id) >= 0",
    "DELETE FROM t WHERE id > 0 OR id <= 0",
    "DELETE FROM t WHERE name LIKE '%' || ''",
    "DELETE FROM t WHERE name LIKE $1",
    "DELETE FROM t WHERE id <> -1",
    "DELETE FROM t WHERE id = (SELECT id)",
    "DELETE FROM t WHERE EXISTS (SELECT 1 FROM u WHERE t.id = t.id)",
    "DELETE FROM t WHERE EXISTS (SELECT 1 FROM t AS t2 WHERE t2.id = t.id)",
    "DELETE FROM t WHERE EXISTS (SELECT 1 FROM u AS t WHERE t.id = 5)",
    "DELETE FROM t USING t AS t2 WHERE t.id = t2.id",
    "DELETE FROM t USING u WHERE flag = 1",
    "DELETE FROM t USING (SELECT * FROM t) AS s WHERE t.id = s.id",
    "WITH s AS (SELECT * FROM t) DELETE FROM t USING s WHERE t.id = s.id",
    "UPDATE t SET a = 1 FROM t AS t2 WHERE t.id = t2.id",
    "UPDATE public.t SET a = 1 FROM other.t AS o WHERE t.id = o.id",
    "MERGE INTO t USING t AS s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = 1",
    "MERGE INTO t USING (SELECT * FROM t) AS s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = 1",
    "MERGE INTO t USING s ON t.id = t.id WHEN MATCHED THEN UPDATE SET a = 1",
    "MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED BY SOURCE THEN UPDATE SET a = 1",
]


@pytest.fixture(scope="module")
def gateway() -> Classifier:
    return Classifier(target_functions=TARGET_FUNCTIONS)


def test_the_attack_corpus_is_large_enough() -> None:
    statements = [sql for sql, _ in ATTACKS] + UNLIMITED
    assert len(statements) >= 60
    assert len(set(statements)) == len(statements)


@pytest.mark.parametrize(("sql", "reason"), ATTACKS, ids=repr)
def test_no_attack_is_read(gateway: Classifier, sql: str, reason: str | None) -> None:
    for classifier in (
        gateway,
        gateway,
        Classifier(cache_size=0, target_functions=TARGET_FUNCTIONS),
    ):
        verdict = Classifier.strictest(classifier.classify(sql))
        assert verdict.statement_class != "read", sql
        if reason is not None:
            assert reason in " | ".join(verdict.reasons)


@pytest.mark.parametrize("sql", UNLIMITED, ids=repr)
def test_conditions_that_only_look_limiting_are_destructive(gateway: Classifier, sql: str) -> None:
    for _ in range(2):
        verdict = Classifier.strictest(gateway.classify(sql))
        assert verdict.statement_class == "destructive", verdict
        assert "may match every row" in " | ".join(verdict.reasons)
