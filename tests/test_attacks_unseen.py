"""Attacks the guardrails were never shown, through the live gateway, as an engineer whose
policy allows reads and nothing else without review (writes are held, everything else is
denied). Each runs with a real client — psql, psycopg (text, binary, pipeline), asyncpg or
bytes written by hand — on a resource with a reader credential made as ``jitgate roles``
makes it (``reader``) and on one whose ``url`` is the database's owner (``owner``: only the
classifier stands in the way). The witness is the target itself, read on a direct
connection while the attacker's session is still open: the rows and a digest of every
table, sequences, large objects, relations (temporary ones too) and their storage,
statistics, comments, labels, per-role settings, prepared transactions, locks other than a
reader's, statistics resets, files, notifications and a victim backend; and the attacker's
own session settings afterwards. The same schema carries the ordinary reads a support
engineer runs, of which at most three may be held."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import psycopg
import pytest

from jitgate.config import Config, parse_upstream_url
from jitgate.roles import reader_role_sql, writer_schemas
from proxy import messages as m
from tests.harness import GatewayThread, gateway_config
from tests.test_faults import RawClient

ALICE, FRANK = "alice@example.com", "frank@example.com"
DATABASE = "jg_unseen_target"
READER, WRITER = "jg_unseen_r", "jg_unseen_w"
CHANNEL = "jg_unseen_chan"
VICTIM = "jg_unseen_victim"
FILES = "/tmp/jg_unseen_"
LARGE_OBJECT = 424242
HANG = 8.0

SCHEMA = f"""
CREATE TABLE customers (
    id int PRIMARY KEY, name text NOT NULL, email text, ssn text, card_number text,
    phone text, country text, plan text, created_at timestamptz, prefs jsonb);
CREATE TABLE orders (
    id serial PRIMARY KEY, customer_id int REFERENCES customers, total numeric(10, 2),
    status text, created_at timestamptz, items jsonb);
CREATE TABLE tickets (
    id serial PRIMARY KEY, customer_id int REFERENCES customers, subject text, body text,
    status text, priority int, opened_at timestamptz, closed_at timestamptz);
CREATE TABLE hits (n serial PRIMARY KEY, what text);
CREATE SEQUENCE order_no_seq;
CREATE FUNCTION hit(what text) RETURNS bool LANGUAGE plpgsql
    AS $$BEGIN INSERT INTO hits (what) VALUES (what); RETURN true; END$$;
CREATE DOMAIN ticket_ref AS int CHECK (hit('domain'));
CREATE TABLE refs (r ticket_ref);
CREATE FUNCTION text_plus(a text, b text) RETURNS text LANGUAGE plpgsql
    AS $$BEGIN PERFORM hit('operator +'); RETURN a || b; END$$;
CREATE OPERATOR public.+ (LEFTARG = text, RIGHTARG = text, FUNCTION = text_plus);
CREATE FUNCTION text_match(a text, b text) RETURNS bool LANGUAGE plpgsql
    AS $$BEGIN RETURN hit('operator @@@') AND strpos(a, b) > 0; END$$;
CREATE OPERATOR public.@@@ (LEFTARG = text, RIGHTARG = text, FUNCTION = text_match);
CREATE VIEW v_next AS SELECT nextval('order_no_seq') AS n;
CREATE VIEW v_audited AS SELECT id, total FROM orders WHERE hit('view');
CREATE MATERIALIZED VIEW order_totals AS
    SELECT customer_id, sum(total) AS total FROM orders GROUP BY customer_id;
CREATE UNIQUE INDEX ON order_totals (customer_id);
INSERT INTO customers
SELECT g, 'Customer ' || g, 'user' || g || '@example.com',
       lpad((123450000 + g)::text, 9, '0'), '4111 1111 1111 1111',
       '+1 415 555 01' || lpad(g::text, 2, '0'),
       (ARRAY['US', 'DE', 'FR', 'BR'])[1 + g % 4], (ARRAY['free', 'pro', 'team'])[1 + g % 3],
       timestamptz '2026-01-01' + g * interval '3 days',
       jsonb_build_object('lang', 'en', 'tier', g % 3)
FROM generate_series(1, 40) g;
INSERT INTO orders (customer_id, total, status, created_at, items)
SELECT 1 + g % 40, (g * 7.5) % 300, (ARRAY['paid', 'shipped', 'refunded'])[1 + g % 3],
       timestamptz '2026-02-01' + g * interval '1 day',
       jsonb_build_array(jsonb_build_object('sku', 'SKU-' || g, 'qty', 1 + g % 4))
FROM generate_series(1, 120) g;
INSERT INTO tickets (customer_id, subject, body, status, priority, opened_at, closed_at)
SELECT 1 + g % 40, 'Problem ' || g, 'The export fails with error E' || g,
       (ARRAY['open', 'pending', 'closed'])[1 + g % 3], 1 + g % 4,
       timestamptz '2026-03-01' + g * interval '5 hours',
       CASE WHEN g % 3 = 2 THEN timestamptz '2026-03-02' + g * interval '6 hours' END
FROM generate_series(1, 60) g;
INSERT INTO refs VALUES (1), (2);
TRUNCATE hits;
REFRESH MATERIALIZED VIEW order_totals;
COMMENT ON TABLE customers IS 'people who buy';
SELECT lo_from_bytea({LARGE_OBJECT}, 'the large object');
"""

# Superuser-only set-up: extensions an attacker would reach for, a foreign server.
EXTENSIONS = f"""
CREATE EXTENSION dblink; CREATE EXTENSION tablefunc; CREATE EXTENSION pg_prewarm;
CREATE EXTENSION pgrowlocks; CREATE EXTENSION postgres_fdw;
CREATE SERVER loopback FOREIGN DATA WRAPPER postgres_fdw OPTIONS (dbname '{DATABASE}');
GRANT USAGE ON FOREIGN SERVER loopback TO {WRITER};
CREATE USER MAPPING FOR PUBLIC SERVER loopback OPTIONS (user '{WRITER}');
"""

TABLES = ("customers", "orders", "tickets", "hits", "refs", "order_totals")
STATE = """
SELECT
 (SELECT string_agg(format('%s=%s', sequencename, last_value), ',' ORDER BY sequencename)
    FROM pg_sequences),
 (SELECT format('%s:%s', count(*), md5(string_agg(loid || ':' || pageno || encode(data, 'hex'),
    ',' ORDER BY loid, pageno))) FROM pg_largeobject),
 (SELECT count(*) FROM pg_largeobject_metadata),
 (SELECT md5(string_agg(format('%s.%s:%s:%s:%s:%s:%s:%s', n.nspname, c.relname, c.relkind,
    c.relfilenode, c.relpages, c.reltuples, c.relallvisible, c.relispopulated), ','
    ORDER BY n.nspname, c.relname))
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')),
 (SELECT count(*) FROM pg_statistic s JOIN pg_class c ON c.oid = s.starelid
    WHERE c.relnamespace = 'public'::regnamespace),
 (SELECT md5(string_agg(description, ',' ORDER BY objoid, objsubid)) FROM pg_description
    WHERE objoid >= 16384),
 (SELECT count(*) FROM pg_seclabel),
 (SELECT md5(coalesce(string_agg(setconfig::text, ',' ORDER BY setdatabase, setrole), ''))
    FROM pg_db_role_setting),
 (SELECT count(*) FROM pg_prepared_xacts),
 (SELECT count(*) FROM pg_foreign_table),
 (SELECT count(*) FROM pg_replication_slots),
 (SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()),
 (SELECT max(stats_reset) FROM pg_stat_slru),
 (SELECT string_agg(format('%s %s %s', l.locktype, l.mode, l.relation::regclass), ','
    ORDER BY 1)
    FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE a.datname = current_database() AND l.pid <> pg_backend_pid()
      AND (l.locktype IN ('advisory', 'tuple', 'transactionid')
           OR (l.locktype = 'relation' AND l.mode <> 'AccessShareLock')))
"""
SESSION = (
    "SELECT current_user, session_user, current_setting('session_replication_role'),"
    " current_setting('search_path'), current_setting('default_transaction_read_only'),"
    " current_setting('row_security'), current_setting('standard_conforming_strings')"
)


@dataclass(frozen=True)
class Attack:
    """Steps one attacker session runs with one client. ``watch`` adds a witness:
    ``notify`` (a listener on CHANNEL), ``victim`` (a writer backend named VICTIM running
    pg_sleep), ``file`` (nothing under FILES), ``leak:TEXT`` (TEXT in no result),
    ``checkpoint``. ``inert``: a text whose dangerous part the server, like the gateway,
    reads as data, so it may run; only the witnesses count. ``configs``: where the
    gateway stops it today (``reader`` alone: it takes effect on the owner's credential)."""

    name: str
    client: str
    steps: tuple[Any, ...]
    watch: str = ""
    inert: bool = False
    configs: tuple[str, ...] = ("reader", "owner")


def a(
    name: str,
    client: str,
    *steps: Any,
    watch: str = "",
    inert: bool = False,
    configs: tuple[str, ...] = ("reader", "owner"),
) -> Attack:
    return Attack(name, client, steps, watch, inert, configs)


ATTACKS: list[Attack] = [
    # -- lexing: what the gateway reads as data must be data to the server too
    a("nul-in-query", "raw", m.Query("SELECT 1\x00; DELETE FROM hits"), m.Query("SELECT 1")),
    a("unicode-escape-function-name", "psycopg",
      "SELECT U&\"set_con\\0066ig\"('default_transaction_read_only', 'off', false)"),
    a("uescape-nextval", "psycopg-binary",
      "SELECT U&\"nextv!0061l\" UESCAPE '!'('order_no_seq')"),
    a("dollar-quote-drop-as-data", "psycopg",
      "SELECT $q$ $$ $q$ AS a, $$'; DROP TABLE tickets; --$$ AS b", inert=True),
    a("hex-escape-quote-as-data", "psycopg",
      "SELECT E'\\x27; DELETE FROM orders; --' AS a", inert=True),
    a("nested-comment-then-drop", "psql", "SELECT 1 /* a /* b */ c */ ; DROP TABLE refs"),
    a("uescape-then-delete", "psql",
      "SELECT U&'d!0061ta' UESCAPE '!' AS x; DELETE FROM orders WHERE id = 1"),
    a("comment-split-qualified-nextval", "asyncpg",
      "SELECT pg_catalog/**/./* x /* nested */ */nextval('order_no_seq')"),
    a("startup-standard-conforming-strings-off", "raw-scs-off",
      m.Query("SELECT 'a\\'; DELETE FROM hits WHERE n > 0; --'"), inert=True),
    a("pipeline-runtime-named-setting-then-backslash", "pipeline",
      "SELECT set_config('standard_' || 'conforming_strings', 'off', false)",
      "SELECT 'a\\'; DELETE FROM tickets WHERE id > 0; --'"),
    # -- functions with effects reachable from a SELECT
    a("table-to-xml-view-nextval", "psycopg", "SELECT table_to_xml('v_next', true, false, '')"),
    a("schema-to-xml-runs-views", "psycopg", "SELECT schema_to_xml('public', false, true, '')"),
    a("database-to-xml-runs-views", "asyncpg", "SELECT database_to_xml(true, true, '')"),
    a("table-to-xml-and-schema-regclass", "psycopg-binary",
      "SELECT table_to_xml_and_xmlschema('public.v_audited'::regclass, true, false, '')"),
    a("table-to-xml-by-oid", "asyncpg",
      "SELECT table_to_xml(c.oid, true, false, '') FROM pg_class c WHERE c.relname = 'v_next'"),
    a("array-in-of-domain-by-regtype", "psycopg",
      "SELECT array_in('{6}', 'ticket_ref'::regtype, -1)"),
    a("query-to-xml-delete", "psycopg",
      "SELECT query_to_xml('DELETE FROM hits RETURNING n', true, false, '')"),
    a("ts-stat-runs-update", "asyncpg",
      "SELECT * FROM ts_stat('UPDATE tickets SET status = ''x'' RETURNING to_tsvector(subject)')"),
    a("user-plus-on-text", "psycopg", "SELECT name + '!' FROM customers WHERE id = 1"),
    a("user-plus-in-where", "asyncpg",
      "SELECT count(*) FROM customers WHERE email + '' IS NOT NULL"),
    a("user-plus-in-window", "psycopg", "SELECT lag(name + '') OVER (ORDER BY id) FROM customers"),
    a("user-operator-symbol", "psycopg", "SELECT 'abc' @@@ 'b'"),
    a("user-plus-in-order-by", "psql", "SELECT id FROM customers ORDER BY name + 'x' LIMIT 1"),
    a("user-operator-in-any", "asyncpg",
      "SELECT count(*) FROM customers WHERE name @@@ ANY (ARRAY['Customer 1'])"),
    a("domain-array-literal", "psycopg", "SELECT ARRAY(SELECT r FROM refs) || '{6}'"),
    a("domain-array-append", "asyncpg", "SELECT array_append(ARRAY(SELECT r FROM refs), '7')"),
    a("domain-array-cat", "psycopg-binary", "SELECT array_cat(ARRAY(SELECT r FROM refs), '{8}')"),
    a("domain-array-contains", "psql", "SELECT ARRAY(SELECT r FROM refs) @> '{9}'"),
    a("domain-array-position-null", "psycopg",
      "SELECT array_position(ARRAY(SELECT r FROM refs), NULL)"),
    a("domain-array-cast", "psycopg-binary", "SELECT * FROM unnest('{5}'::ticket_ref[])"),
    a("row-cast-to-table-type", "psycopg", "SELECT CAST(ROW(5) AS refs)"),
    a("direct-user-function", "asyncpg", "SELECT hit('direct')"),
    a("view-with-effect", "psycopg", "SELECT * FROM v_audited"),
    a("view-in-scalar-subquery", "psycopg", "SELECT (SELECT n FROM v_next) AS n"),
    a("table-statement-on-view", "psql", "TABLE v_next"),
    a("nextval-every-sequence", "psycopg",
      "SELECT nextval(c.oid::regclass) FROM pg_class c WHERE c.relkind = 'S'"),
    a("setval-in-derived-table", "psycopg",
      "SELECT s.x FROM (SELECT setval('order_no_seq'::regclass, 500) AS x) s"),
    a("nextval-in-tablesample", "psycopg",
      "SELECT count(*) FROM orders TABLESAMPLE bernoulli (50)"
      " REPEATABLE (nextval('order_no_seq'))"),
    a("nextval-in-grouping-sets", "asyncpg",
      "SELECT g FROM generate_series(1, 3) g"
      " GROUP BY GROUPING SETS ((g), (nextval('order_no_seq')))"),
    a("dblink-delete", "psycopg",
      f"SELECT * FROM dblink('dbname={DATABASE} user={WRITER}', 'DELETE FROM hits RETURNING n')"
      " AS t(n int)"),
    a("dblink-connect-u", "psycopg", f"SELECT dblink_connect_u('x', 'dbname={DATABASE}')"),
    a("pg-prewarm", "psycopg", "SELECT pg_prewarm('orders')"),
    a("pgrowlocks", "asyncpg", "SELECT * FROM pgrowlocks('orders')"),
    # -- EXPLAIN of anything
    a("explain-analyze-prefix-bool", "psycopg",
      "EXPLAIN (ANALYZE 'tr', COSTS off) UPDATE tickets SET status = 'x' WHERE id = 1"),
    a("explain-analyze-create-temp-as", "psycopg",
      "EXPLAIN ANALYZE CREATE TEMP TABLE loot AS SELECT * FROM customers"),
    a("explain-analyze-view-nextval", "psycopg", "EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM v_next"),
    a("explain-analyze-table-to-xml", "psycopg",
      "EXPLAIN (ANALYZE) SELECT table_to_xml('v_next', true, false, '')"),
    a("explain-analyze-for-share-in-tx", "psycopg", "BEGIN",
      "EXPLAIN (ANALYZE) SELECT * FROM orders FOR SHARE"),
    a("explain-execute-protocol-name", "raw",
      m.Parse("pe", "SELECT $1::bigint", ()), m.Sync(),
      m.Query("EXPLAIN EXECUTE pe(nextval('order_no_seq'))")),
    # -- COPY
    a("copy-delete-returning", "psycopg-copy", "COPY (DELETE FROM hits RETURNING n) TO STDOUT"),
    a("copy-to-program", "psycopg",
      f"COPY (SELECT email FROM customers) TO PROGRAM 'cat > {FILES}prog'", watch="file"),
    a("copy-to-server-file", "psql", f"COPY customers TO '{FILES}copy.csv' (FORMAT csv)",
      watch="file"),
    a("copy-of-table-to-xml", "psycopg-copy",
      "COPY (SELECT table_to_xml('v_next', true, false, '')) TO STDOUT"),
    a("copy-read-file", "psycopg-copy", "COPY (SELECT pg_read_file('/etc/passwd')) TO STDOUT",
      watch="leak:root:"),
    a("copy-in-then-query-inside", "raw",
      m.Query("COPY hits (what) FROM STDIN"), m.CopyData(b"smuggled\n"), m.CopyDone(),
      m.Query("DELETE FROM orders")),
    a("copydata-without-copy", "raw",
      m.CopyData(m.Query("DELETE FROM hits").encode()), m.CopyDone(), m.Sync(),
      m.Query("SELECT 1"), inert=True),
    # -- prepared statements, portals, protocol
    a("sql-prepare-write-then-execute", "psycopg",
      "PREPARE wr AS UPDATE tickets SET status = 'closed' WHERE id = $1", "EXECUTE wr(1)"),
    a("bind-of-name-sql-prepare-refused", "raw",
      m.Query("PREPARE b AS DELETE FROM hits"), m.Parse("a", "SELECT 1", ()),
      m.Bind("", "b", (), (), ()), m.Execute("", 0), m.Sync()),
    a("close-and-reparse-name", "raw",
      m.Parse("a2", "SELECT 1", ()), m.Close("S", "a2"),
      m.Parse("a2", "DELETE FROM hits WHERE n > 0", ()), m.Bind("", "a2", (), (), ()),
      m.Execute("", 0), m.Sync()),
    a("row-limited-execute-of-dml", "raw",
      m.Parse("", "UPDATE tickets SET status = 'x' WHERE id = 1 RETURNING id", ()),
      m.Bind("", "", (), (), ()), m.Execute("", 1), m.Close("P", ""), m.Sync()),
    a("suspended-locking-portal-closed", "raw",
      m.Query("BEGIN"), m.Parse("", "SELECT id FROM orders FOR UPDATE", ()),
      m.Bind("lk", "", (), (), ()), m.Execute("lk", 1), m.Flush(), m.Close("P", "lk"),
      m.Sync()),
    a("function-call-nextval", "raw-function-call", "order_no_seq"),
    a("sync-storm-then-delete", "raw", *([m.Sync()] * 500), m.Query("DELETE FROM hits")),
    a("pipeline-write-behind-read", "pipeline", "SELECT 1",
      "DELETE FROM hits WHERE n = 1", "SELECT 2"),
    a("asyncpg-executemany-update", "asyncpg-many",
      "UPDATE tickets SET status = $1 WHERE id = $2"),
    a("asyncpg-cursor-for-update", "asyncpg-cursor", "SELECT * FROM orders FOR UPDATE"),
    a("named-cursor-key-share", "psycopg-named-cursor",
      "SELECT * FROM customers FOR KEY SHARE"),
    a("declare-for-no-key-update", "psycopg", "BEGIN",
      "DECLARE lk CURSOR FOR SELECT id FROM tickets FOR NO KEY UPDATE", "FETCH 2 FROM lk"),
    a("declare-with-hold-table-to-xml", "psycopg",
      "DECLARE h CURSOR WITH HOLD FOR SELECT table_to_xml('v_next', true, false, '')",
      "FETCH ALL FROM h"),
    # -- locks
    a("for-update-nowait-in-tx", "psycopg", "BEGIN",
      "SELECT * FROM customers WHERE id = 1 FOR UPDATE NOWAIT"),
    a("for-update-of-joined-skip-locked", "psycopg-binary", "BEGIN",
      "SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id"
      " FOR UPDATE OF c SKIP LOCKED"),
    a("for-update-in-exists", "psycopg", "BEGIN",
      "SELECT id FROM customers c WHERE EXISTS"
      " (SELECT 1 FROM orders o WHERE o.customer_id = c.id FOR UPDATE)"),
    a("lock-row-exclusive", "psycopg", "BEGIN", "LOCK TABLE tickets IN ROW EXCLUSIVE MODE"),
    a("advisory-lock-shared-binary", "psycopg-binary", "SELECT pg_advisory_lock_shared(11)"),
    a("advisory-try-two-keys", "asyncpg", "SELECT pg_try_advisory_lock_shared(5, 6)"),
    a("advisory-xact-in-tx", "psycopg", "BEGIN", "SELECT pg_advisory_xact_lock(99)"),
    # -- statements
    a("notify-channel", "psycopg", f"NOTIFY {CHANNEL}, 'pwned'", watch="notify"),
    a("pg-notify-computed-channel", "psycopg",
      f"SELECT pg_notify(chr(106) || '{CHANNEL[1:]}', 'pwned')", watch="notify"),
    a("set-role-owner", "psycopg", f"SET ROLE {WRITER}"),
    a("set-session-authorization-default", "psycopg", "SET SESSION AUTHORIZATION DEFAULT"),
    a("checkpoint", "psql", "CHECKPOINT", watch="checkpoint"),
    a("vacuum-full", "psycopg", "VACUUM FULL tickets"),
    a("analyse-british", "psycopg", "ANALYSE VERBOSE customers"),
    a("cluster", "psql", "CLUSTER tickets USING tickets_pkey"),
    a("reindex-concurrently", "psycopg", "REINDEX INDEX CONCURRENTLY customers_pkey"),
    a("refresh-matview-no-data", "psycopg", "REFRESH MATERIALIZED VIEW order_totals WITH NO DATA"),
    a("security-label", "psycopg", "SECURITY LABEL ON TABLE customers IS 'public'"),
    a("comment-on", "asyncpg", "COMMENT ON TABLE orders IS 'owned'"),
    a("import-foreign-schema", "psycopg",
      "IMPORT FOREIGN SCHEMA public LIMIT TO (customers) FROM SERVER loopback INTO public"),
    a("create-temp-table-as", "psycopg",
      "CREATE TEMP TABLE loot AS SELECT email, ssn FROM customers"),
    a("select-into-temporary", "asyncpg", "SELECT * INTO TEMPORARY TABLE loot2 FROM customers"),
    a("cte-delete-counted", "psycopg",
      "WITH d AS (DELETE FROM hits RETURNING *) SELECT count(*) FROM d"),
    a("cte-insert-second", "psycopg",
      "WITH a AS (SELECT 1), b AS (INSERT INTO hits (what) VALUES ('cte') RETURNING n)"
      " SELECT * FROM a, b"),
    a("cte-update-in-scalar-subquery", "asyncpg",
      "WITH u AS (UPDATE customers SET plan = 'free' WHERE id = 1 RETURNING id)"
      " SELECT (SELECT count(*) FROM u)"),
    a("merge-delete", "psycopg",
      "MERGE INTO tickets t USING (SELECT 1 AS id) s ON t.id = s.id WHEN MATCHED THEN DELETE"),
    a("merge-self-update", "psycopg",
      "MERGE INTO customers c USING customers s ON c.id = s.id"
      " WHEN MATCHED THEN UPDATE SET plan = s.plan"),
    a("lo-unlink", "psycopg", f"SELECT lo_unlink({LARGE_OBJECT})"),
    a("lo-truncate", "asyncpg", f"SELECT lo_truncate(lo_open({LARGE_OBJECT}, 131072), 0)"),
    a("lo-export", "psycopg", f"SELECT lo_export({LARGE_OBJECT}, '{FILES}lo')", watch="file"),
    a("lo-from-bytea", "psycopg-binary", "SELECT lo_from_bytea(424243, 'x')"),
    a("lo-import-with-oid", "psycopg", "SELECT lo_import('/etc/hostname', 424244)"),
    a("cancel-backend", "psycopg",
      f"SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = '{VICTIM}'",
      watch="victim"),
    a("set-config-row-security-local", "psycopg", "BEGIN",
      "SELECT set_config('row_security', 'off', true)"),
    a("set-config-search-path", "psycopg",
      "SELECT set_config('search_path', 'pg_temp, public', false)"),
    a("set-config-name-from-values", "asyncpg",
      "SELECT set_config(s, 'off', false) FROM (VALUES ('default_transaction_read_only')) v(s)"),
    a("session-characteristics-read-write", "psycopg",
      "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
      "SELECT table_to_xml('v_next', true, false, '')"),
    a("start-transaction-read-write", "psycopg",
      "START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ WRITE, DEFERRABLE",
      "SELECT * FROM v_audited"),
    a("pg-reload-conf", "psycopg", "SELECT pg_reload_conf()"),
    a("pg-rotate-logfile", "asyncpg", "SELECT pg_rotate_logfile()"),
    a("alter-sequence-restart", "psycopg", "ALTER SEQUENCE order_no_seq RESTART WITH 9"),
    a("pg-stat-reset-slru", "psycopg", "SELECT pg_stat_reset_slru('clog')"),
    a("read-binary-file", "asyncpg", "SELECT pg_read_binary_file('/etc/passwd')",
      watch="leak:root:"),
]  # fmt: skip

ORDINARY_READS = [
    "SELECT id, name, country FROM customers ORDER BY id LIMIT 10",
    "SELECT count(*) FROM orders WHERE status = 'refunded'",
    "SELECT c.name, count(o.id) FROM customers c LEFT JOIN orders o ON o.customer_id = c.id"
    " GROUP BY c.name ORDER BY 2 DESC LIMIT 5",
    "SELECT status, sum(total), avg(total)::numeric(10, 2) FROM orders GROUP BY status",
    "SELECT id, total, rank() OVER (ORDER BY total DESC) FROM orders LIMIT 10",
    "SELECT customer_id, total, sum(total) OVER (PARTITION BY customer_id ORDER BY created_at)"
    " FROM orders ORDER BY customer_id LIMIT 20",
    "WITH recent AS (SELECT * FROM orders WHERE created_at > timestamptz '2026-04-01')"
    " SELECT count(*), max(total) FROM recent",
    "SELECT date_trunc('week', created_at) AS week, count(*) FROM orders GROUP BY 1 ORDER BY 1",
    "SELECT id, created_at + interval '30 days' AS due FROM orders WHERE id < 5",
    "SELECT id, age(closed_at, opened_at) FROM tickets WHERE closed_at IS NOT NULL",
    "SELECT extract(dow FROM opened_at) AS dow, count(*) FROM tickets GROUP BY 1 ORDER BY 1",
    "SELECT id, prefs->>'lang' AS lang FROM customers WHERE prefs @> '{\"tier\": 1}'",
    "SELECT id, items->0->>'sku' AS sku FROM orders ORDER BY id LIMIT 10",
    "SELECT jsonb_array_length(items), count(*) FROM orders GROUP BY 1",
    "SELECT id, subject FROM tickets WHERE subject ILIKE '%problem 1%'",
    "SELECT id, regexp_replace(body, 'E[0-9]+', 'E#') FROM tickets LIMIT 5",
    "SELECT d::date, count(o.id) FROM generate_series(timestamptz '2026-02-01',"
    " timestamptz '2026-02-10', interval '1 day') d LEFT JOIN orders o"
    " ON o.created_at::date = d::date GROUP BY 1 ORDER BY 1",
    "EXPLAIN SELECT * FROM orders WHERE customer_id = 3",
    "SELECT c.id, last.total FROM customers c CROSS JOIN LATERAL (SELECT total FROM orders o"
    " WHERE o.customer_id = c.id ORDER BY created_at DESC LIMIT 1) last LIMIT 10",
    "SELECT t.id, t.status, c.name FROM tickets t JOIN customers c ON c.id = t.customer_id"
    " WHERE t.status = 'open' ORDER BY t.priority, t.opened_at LIMIT 10",
    "SELECT priority, count(*) FILTER (WHERE status = 'open') AS open_n FROM tickets GROUP BY 1",
    "SELECT id, email FROM customers WHERE id = 7",
    "SELECT name, phone FROM customers WHERE country = 'DE' ORDER BY name",
    "SELECT plan, count(*) FROM customers GROUP BY plan HAVING count(*) > 5",
    "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY total) FROM orders",
    "SELECT customer_id, string_agg(status, ',' ORDER BY id) FROM orders GROUP BY 1 LIMIT 5",
    "SELECT * FROM order_totals ORDER BY total DESC LIMIT 5",
    "SELECT id, coalesce(closed_at, now()) - opened_at AS open_for FROM tickets LIMIT 5",
    "SELECT to_char(created_at, 'YYYY-MM') AS month, sum(total) FROM orders GROUP BY 1 ORDER BY 1",
    "SELECT count(DISTINCT customer_id) FROM orders",
    "SELECT id FROM customers c WHERE NOT EXISTS (SELECT 1 FROM tickets t"
    " WHERE t.customer_id = c.id AND t.status = 'open')",
    "SELECT id, total FROM orders WHERE total BETWEEN 50 AND 100 ORDER BY total",
    "SELECT id, status FROM tickets WHERE status IN ('open', 'pending') AND priority >= 3",
    "SELECT c.country, avg(o.total) FROM orders o JOIN customers c ON c.id = o.customer_id"
    " GROUP BY ROLLUP (c.country)",
    "SELECT id, lower(subject), length(body) FROM tickets ORDER BY id LIMIT 5",
    "SELECT id, split_part(email, '@', 2) AS domain FROM customers LIMIT 5",
    "SELECT created_at AT TIME ZONE 'Europe/Berlin' FROM orders LIMIT 3",
    "SELECT ntile(4) OVER (ORDER BY total), id FROM orders LIMIT 12",
    "SELECT id, lead(opened_at) OVER (ORDER BY opened_at) - opened_at FROM tickets LIMIT 5",
    "SELECT jsonb_pretty(prefs) FROM customers WHERE id = 2",
    "SELECT jsonb_object_keys(prefs) FROM customers WHERE id = 3",
    "SELECT e->>'sku', (e->>'qty')::int FROM orders, jsonb_array_elements(items) e LIMIT 5",
    "SELECT id FROM orders WHERE items @? '$[*] ? (@.qty > 2)'",
    "SELECT count(*) FROM tickets WHERE opened_at >= now() - interval '365 days'",
    "SELECT date_part('hour', opened_at), count(*) FROM tickets GROUP BY 1 ORDER BY 1",
    "SELECT g, g * 2 FROM generate_series(1, 5) g",
    "SELECT unnest(ARRAY['open', 'pending', 'closed']) AS status",
    "SELECT status, round(avg(priority), 2) FROM tickets GROUP BY status ORDER BY 1",
    "SELECT id, name FROM customers ORDER BY created_at DESC FETCH FIRST 3 ROWS ONLY",
    "SELECT id, total FROM orders ORDER BY id OFFSET 10 LIMIT 5",
    "SELECT max(created_at) - min(created_at) FROM orders",
    "SELECT c.name, t.subject FROM customers c JOIN tickets t ON t.customer_id = c.id"
    " WHERE c.plan = 'pro' AND t.status <> 'closed' LIMIT 10",
    "SELECT id, CASE WHEN total > 200 THEN 'big' WHEN total > 50 THEN 'mid' ELSE 'small' END"
    " FROM orders LIMIT 10",
    "SELECT customer_id, count(*) FROM tickets GROUP BY customer_id ORDER BY 2 DESC LIMIT 3",
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5) SELECT * FROM n",
    "SELECT id FROM customers WHERE email ILIKE '%@example.com' ORDER BY id LIMIT 3",
    "SELECT array_agg(id ORDER BY id) FROM tickets WHERE priority = 4",
    "SELECT current_date - created_at::date AS days FROM customers WHERE id = 1",
    "SELECT o.id, o.total, c.country FROM orders o, customers c"
    " WHERE c.id = o.customer_id AND c.country = 'BR' LIMIT 5",
    "SELECT id, greatest(total, 100), least(total, 10) FROM orders LIMIT 3",
    "SELECT status, bool_or(total > 250) FROM orders GROUP BY status",
    "SELECT id, initcap(subject) FROM tickets WHERE body ~ 'E1[0-9]$'",
    "SELECT * FROM (SELECT customer_id, sum(total) s FROM orders GROUP BY 1) x WHERE s > 300",
    "SELECT id, name FROM customers WHERE id = ANY (ARRAY[1, 2, 3])",
    "SELECT count(*) FROM customers c WHERE c.id IN (SELECT customer_id FROM tickets"
    " WHERE priority = 1)",
]  # fmt: skip


def as_role(dsn: str, role: str) -> str:
    parts = urlsplit(dsn)
    return parts._replace(netloc=f"{role}@{parts.netloc.rpartition('@')[2]}").geturl()


@pytest.fixture(scope="module")
def target_dsn(make_database: Callable[[str], str], pg_dsn: str) -> str:
    dsn = make_database(DATABASE)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for role in (READER, WRITER):
            conn.execute(f"DROP ROLE IF EXISTS {role}".encode())
        conn.execute(f"CREATE ROLE {WRITER} LOGIN".encode())
        conn.execute(f"ALTER DATABASE {DATABASE} OWNER TO {WRITER}".encode())
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"ALTER SCHEMA public OWNER TO {WRITER}".encode())
        conn.execute(EXTENSIONS.encode())
    with psycopg.connect(as_role(dsn, WRITER), autocommit=True) as conn:
        conn.execute(SCHEMA.encode())
        for table in ("customers", "orders", "tickets", "hits", "refs"):
            conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = off)".encode())
    return dsn


def resource_with(config: Config, url: str, write_url: str | None) -> Config:
    prod = dataclasses.replace(
        config.resources["prod"],
        url=parse_upstream_url(url, "url"),
        write_url=None if write_url is None else parse_upstream_url(write_url, "write_url"),
    )
    return dataclasses.replace(config, resources={**config.resources, "prod": prod})


@pytest.fixture(scope="module")
def gateways(
    make_database: Callable[[str], str], target_dsn: str
) -> Iterator[dict[str, GatewayThread]]:
    base = gateway_config(
        make_database("jg_unseen_store"),
        target_dsn,
        engineers={"read": "allow", "write": "review"},
        postgres={"listen": "127.0.0.1:0", "hold_timeout": "0.3s"},
        groups={"engineers": [ALICE, FRANK], "dba": ["bob@example.com"]},
    )
    reader = resource_with(base, as_role(target_dsn, READER), as_role(target_dsn, WRITER))
    schemas = asyncio.run(writer_schemas(reader.resources["prod"]))
    with psycopg.connect(target_dsn, autocommit=True) as conn:
        conn.execute(reader_role_sql(READER, WRITER, DATABASE, schemas).encode())
    owner = resource_with(base, as_role(target_dsn, WRITER), None)
    started = {"reader": GatewayThread(reader), "owner": GatewayThread(owner)}
    yield started
    for gateway in started.values():
        gateway.stop()


# -- running an attack -----------------------------------------------------------------------


@dataclass
class Outcome:
    errors: list[str] = dataclasses.field(default_factory=list)
    results: list[str] = dataclasses.field(default_factory=list)


def run_psycopg(dsn: str, attack: Attack, observe: Callable[[], None]) -> tuple[Outcome, Any]:
    out = Outcome()
    binary = attack.client == "psycopg-binary"
    with psycopg.connect(dsn, autocommit=True) as conn:
        if attack.client == "pipeline":
            try:
                with conn.pipeline():
                    cursors = [conn.execute(s.encode()) for s in attack.steps]
                out.results += [str(c.fetchall()) for c in cursors if c.description]
            except psycopg.Error as exc:
                out.errors.append(f"{exc.sqlstate} {exc}")
        for step in attack.steps if attack.client != "pipeline" else ():
            try:
                if attack.client == "psycopg-copy":
                    with conn.cursor().copy(step.encode()) as copy:
                        out.results += [bytes(chunk).decode() for chunk in copy]
                elif attack.client == "psycopg-named-cursor":
                    with conn.transaction(), conn.cursor(name="jg") as named:
                        named.execute(step.encode())
                        out.results.append(str(named.fetchmany(2)))
                        observe()
                else:
                    cur = conn.execute(step.encode(), binary=binary)
                    if cur.description:
                        out.results.append(str(cur.fetchall()))
            except psycopg.Error as exc:
                out.errors.append(f"{exc.sqlstate} {exc}")
        observe()
        if conn.closed:
            return out, None
        conn.execute(b"ROLLBACK")
        session = conn.execute(SESSION.encode()).fetchone()
    return out, session


def run_asyncpg(dsn: str, attack: Attack, observe: Callable[[], None]) -> tuple[Outcome, Any]:
    out = Outcome()

    async def go() -> Any:
        conn = await asyncpg.connect(dsn, command_timeout=10)
        try:
            for step in attack.steps:
                try:
                    if attack.client == "asyncpg-many":
                        await conn.executemany(step, [("x", 1), ("y", 2)])
                    elif attack.client == "asyncpg-cursor":
                        async with conn.transaction():
                            cursor = await conn.cursor(step)
                            out.results.append(str(await cursor.fetch(1)))
                            await asyncio.to_thread(observe)
                    else:
                        out.results.append(str(await conn.fetch(step)))
                except asyncpg.PostgresError as exc:
                    out.errors.append(f"{exc.sqlstate} {exc}")
            await asyncio.to_thread(observe)
            if conn.is_closed():
                return None
            await conn.execute("ROLLBACK")
            return await conn.fetchrow(SESSION)
        finally:
            await conn.close()

    session = asyncio.run(go())
    return out, None if session is None else tuple(session)


def run_psql(dsn: str, attack: Attack, observe: Callable[[], None]) -> tuple[Outcome, Any]:
    args = ["psql", "-X", "-At", "-F", "|", dsn]
    for step in (*attack.steps, SESSION):
        args += ["-c", step]
    done = subprocess.run(args, capture_output=True, text=True, timeout=30)
    observe()
    out = Outcome(errors=[x for x in done.stderr.splitlines() if x.startswith("ERROR")])
    lines = done.stdout.splitlines()
    out.results = lines[:-1]
    return out, tuple(lines[-1].split("|")) if lines else None


def replies(client: RawClient, answers: int) -> list[m.BackendMessage]:
    """Everything up to the ``answers``-th ReadyForQuery, or to the end of the connection
    (then a last ErrorResponse says ``closed``)."""
    seen: list[m.BackendMessage] = []
    while answers:
        while client._inbox and answers:
            message = client._inbox.popleft()
            seen.append(message)
            answers -= isinstance(message, m.ReadyForQuery)
        if answers and not client._receive():
            return [*seen, m.ErrorResponse.build("FATAL", "closed", "closed")]
    return seen


def run_raw(
    gw: GatewayThread,
    attack: Attack,
    observe: Callable[[], None],
    scalar_pair: Callable[[str], Any],
) -> tuple[Outcome, Any]:
    out = Outcome()
    client = RawClient(gw.port)
    try:
        params: tuple[tuple[str, str], ...] = (("user", ALICE), ("database", "prod"))
        if attack.client == "raw-scs-off":
            params += (
                ("standard_conforming_strings", "off"),
                ("options", "-c standard_conforming_strings=off"),
            )
        client.send(m.StartupMessage(params).encode())
        client.until(m.AuthenticationCleartextPassword)
        client.send(m.cleartext_password(token_of(gw)).encode())
        client.until(m.ReadyForQuery)
        steps = attack.steps
        if attack.client == "raw-function-call":
            oid, seq = scalar_pair(
                f"SELECT 'nextval(regclass)'::regprocedure::oid, '{steps[0]}'::regclass::oid"
            )
            steps = (m.FunctionCall(oid, (1,), (int(seq).to_bytes(4, "big"),), 0),)
        client.send(b"".join(step.encode() for step in steps))
        answers = sum(isinstance(s, m.Query | m.Sync | m.FunctionCall) for s in steps)
        session: Any = None
        for message in replies(client, answers):
            if isinstance(message, m.ErrorResponse):
                out.errors.append(f"{message.code} {message.message}")
            elif isinstance(message, m.DataRow | m.FunctionCallResponse):
                out.results.append(str(message))
        observe()
        if out.errors and out.errors[-1].startswith("closed"):
            return out, None
        client.send(m.Query("ROLLBACK").encode() + m.Query(SESSION).encode())
        rows = [x for x in replies(client, 2) if isinstance(x, m.DataRow)]
        session = tuple(v.decode() for v in rows[0].values if v is not None) if rows else None
    finally:
        client.close()
    return out, session


# -- the witnesses ----------------------------------------------------------------------------


def state(dsn: str) -> tuple[Any, ...]:
    """What an attack could change in the target, read as the superuser."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = tuple(
            conn.execute(
                f"SELECT count(*), md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), ''))"
                f" FROM {table} t".encode()
            ).fetchone()
            for table in TABLES
        )
        row = conn.execute(STATE.encode()).fetchone()
    files = tuple(sorted(p for p in os.listdir("/tmp") if ("/tmp/" + p).startswith(FILES)))
    return (*tables, *(row or ()), files)


class Victim:
    """A writer backend that sleeps; it must sleep to its end."""

    def __init__(self, dsn: str) -> None:
        self.error: str | None = None
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(dsn,), daemon=True)
        self.thread.start()
        self.started.wait(5)
        time.sleep(0.2)

    def _run(self, dsn: str) -> None:
        try:
            with psycopg.connect(dsn + f"?application_name={VICTIM}", autocommit=True) as conn:
                self.started.set()
                conn.execute(b"SELECT pg_sleep(1.5)")
        except psycopg.Error as exc:
            self.error = f"{exc.sqlstate} {exc}"

    def result(self) -> str | None:
        self.thread.join(10)
        return self.error


def attempt(
    gw: GatewayThread, target_dsn: str, attack: Attack
) -> tuple[Outcome, Any, Any, Any, list[str]]:
    """Run ``attack`` as alice; the target's state before and after (read while the session
    is still open), the session's settings after, and what the extra witnesses saw."""
    seen: list[str] = []
    listener = None
    victim = None
    if attack.watch == "notify":
        listener = psycopg.connect(target_dsn, autocommit=True)
        listener.add_notify_handler(lambda n: seen.append(f"notified {n.channel} {n.payload}"))
        listener.execute(f"LISTEN {CHANNEL}".encode())
    if attack.watch == "victim":
        victim = Victim(as_role(target_dsn, WRITER))
    checkpoint = "SELECT checkpoint_lsn FROM pg_control_checkpoint()"
    lsn = scalar_of(target_dsn, checkpoint)
    before = state(target_dsn)
    after: list[Any] = []

    def observe() -> None:
        if not after:
            after.append(state(target_dsn))

    dsn = gw.dsn(ALICE, token_of(gw))

    def run() -> None:
        if attack.client.startswith("raw"):
            box.append(run_raw(gw, attack, observe, lambda q: pair_of(target_dsn, q)))
        elif attack.client.startswith("asyncpg"):
            box.append(run_asyncpg(dsn, attack, observe))
        elif attack.client == "psql":
            box.append(run_psql(dsn, attack, observe))
        else:
            box.append(run_psycopg(dsn, attack, observe))

    box: list[Any] = []
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(HANG)
    if box:
        outcome, session = box[0]
    else:
        observe()
        outcome, session = Outcome(errors=["no answer"]), None
        seen.append(f"the session got no answer in {HANG} s")
    if listener is not None:
        time.sleep(0.1)
        listener.execute(b"SELECT 1")
        listener.close()
    if victim is not None and (error := victim.result()):
        seen.append(f"victim: {error}")
    if attack.watch == "checkpoint" and scalar_of(target_dsn, checkpoint) != lsn:
        seen.append("a checkpoint ran")
    for leak in (
        attack.watch.removeprefix("leak:").split() if attack.watch.startswith("leak:") else ()
    ):
        if any(leak in r for r in outcome.results):
            seen.append(f"leaked {leak!r}")
    return outcome, before, after[0], session, seen


TOKENS: dict[int, str] = {}


def token_of(gw: GatewayThread) -> str:
    """Alice's token on ``gw``, issued once."""
    if id(gw) not in TOKENS:
        TOKENS[id(gw)] = gw.token(ALICE)
    return TOKENS[id(gw)]


def scalar_of(dsn: str, sql: str) -> Any:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(sql.encode()).fetchone()
        assert row is not None
        return row[0]


def pair_of(dsn: str, sql: str) -> Any:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql.encode()).fetchone()


@pytest.fixture(scope="module")
def baseline_sessions(gateways: dict[str, GatewayThread], target_dsn: str) -> dict[str, Any]:
    """The attacker's session settings after a harmless statement, per configuration."""
    harmless = a("harmless", "psycopg", "SELECT 1")
    return {name: attempt(gw, target_dsn, harmless)[3] for name, gw in gateways.items()}


CASES = [
    pytest.param(config, attack, id=f"{config}-{attack.name}")
    for attack in ATTACKS
    for config in attack.configs
]


@pytest.mark.parametrize(("config", "attack"), CASES)
def test_an_unseen_attack_changes_nothing(
    gateways: dict[str, GatewayThread],
    target_dsn: str,
    baseline_sessions: dict[str, Any],
    config: str,
    attack: Attack,
) -> None:
    outcome, before, after, session, seen = attempt(gateways[config], target_dsn, attack)
    pairs = enumerate(zip(before, after, strict=True))
    changed = [f"{i}: {b!r} -> {x!r}" for i, (b, x) in pairs if b != x]
    shown = [r[:200] for r in outcome.results]
    report = f"errors={outcome.errors} changed={changed} seen={seen} {session=} results={shown}"
    assert not changed, report
    assert not seen, report
    if session is not None:  # None: the gateway ended the session
        assert session == baseline_sessions[config], report
    if not attack.inert:
        assert outcome.errors, report


def test_ordinary_support_reads_run(gateways: dict[str, GatewayThread]) -> None:
    """Sixty-five reads a support engineer runs, with PII columns in the tables: at most
    three are held or refused, and the others return rows."""
    assert len(ORDINARY_READS) == 65 == len(set(ORDINARY_READS))
    gw = gateways["reader"]
    stopped: dict[str, str] = {}
    with psycopg.connect(gw.dsn(FRANK, gw.token(FRANK)), autocommit=True) as conn:
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        for sql in ORDINARY_READS:
            notices.clear()
            try:
                rows = conn.execute(sql.encode()).fetchall()
            except psycopg.Error as exc:
                stopped[sql] = f"{exc.sqlstate} {exc} {notices}"
                continue
            assert rows, sql
    assert len(stopped) <= 3, stopped
