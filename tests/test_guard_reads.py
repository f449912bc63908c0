"""Ordinary reads a support engineer writes stay ``read`` under the allow-list: a corpus
written apart from the classifier's own tests (joins, aggregates, window functions, date
and string functions, JSON, arrays, catalog queries, casts, SHOW and harmless SET)."""

from __future__ import annotations

import pytest

from guard import Classifier

READS = [
    # joins and filters
    "SELECT * FROM customers WHERE email = 'ann@example.com'",
    "SELECT c.id, c.name, o.id AS order_id, o.total FROM customers c "
    "JOIN orders o ON o.customer_id = c.id WHERE c.id = 42 ORDER BY o.created_at DESC LIMIT 10",
    "SELECT o.* FROM orders o LEFT JOIN refunds r ON r.order_id = o.id WHERE r.id IS NULL",
    "SELECT * FROM orders WHERE status IN ('pending', 'failed') AND created_at > now() - "
    "interval '2 days'",
    "SELECT * FROM customers WHERE lower(email) LIKE '%@example.com' OR name ILIKE 'ann%'",
    "SELECT * FROM customers WHERE name ~* '^jo(h)?n' AND NOT (email !~ '@')",
    "SELECT * FROM orders WHERE total BETWEEN 10 AND 20.5 AND coupon IS NOT NULL",
    "SELECT * FROM orders o WHERE EXISTS (SELECT 1 FROM refunds r WHERE r.order_id = o.id)",
    "SELECT * FROM orders WHERE customer_id = ANY (ARRAY[1, 2, 3])",
    "SELECT * FROM orders WHERE customer_id IN (SELECT id FROM customers WHERE country = 'DE')",
    "SELECT * FROM a FULL OUTER JOIN b USING (id) CROSS JOIN LATERAL "
    "(SELECT max(x) AS top FROM c WHERE c.a_id = a.id) AS m",
    # aggregates, FILTER, GROUPING SETS, HAVING
    "SELECT status, count(*), sum(total), avg(total)::numeric(10,2) FROM orders GROUP BY status",
    "SELECT count(*) FILTER (WHERE status = 'paid') AS paid, count(DISTINCT customer_id) "
    "FROM orders",
    "SELECT country, city, count(*) FROM customers GROUP BY GROUPING SETS ((country), "
    "(country, city), ())",
    "SELECT customer_id, string_agg(sku, ', ' ORDER BY sku) FROM order_items GROUP BY 1 "
    "HAVING count(*) > 3",
    "SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) FROM requests",
    "SELECT array_agg(DISTINCT tag) FROM posts, unnest(tags) AS tag",
    "SELECT bool_and(active), bool_or(active), min(created_at), max(created_at) FROM accounts",
    "SELECT jsonb_agg(to_jsonb(c)) FROM (SELECT id, name FROM customers LIMIT 5) c",
    "SELECT status, count(*) FROM orders GROUP BY ROLLUP (status) ORDER BY 2 DESC NULLS LAST",
    # window functions
    "SELECT id, total, row_number() OVER (PARTITION BY customer_id ORDER BY created_at) "
    "FROM orders",
    "SELECT id, total - lag(total) OVER w AS delta, sum(total) OVER (ORDER BY id ROWS BETWEEN "
    "2 PRECEDING AND CURRENT ROW) FROM orders WINDOW w AS (ORDER BY id)",
    "SELECT DISTINCT ON (customer_id) customer_id, id, created_at FROM orders "
    "ORDER BY customer_id, created_at DESC",
    "SELECT id, rank() OVER (ORDER BY score DESC), ntile(4) OVER (ORDER BY score) FROM players",
    # dates and times
    "SELECT date_trunc('day', created_at) AS day, count(*) FROM orders GROUP BY 1 ORDER BY 1",
    "SELECT extract(epoch FROM now() - created_at) / 3600 AS hours FROM orders WHERE id = 5",
    "SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') FROM orders LIMIT 3",
    "SELECT * FROM generate_series(date '2024-01-01', date '2024-01-31', interval '1 day') AS d",
    "SELECT age(now(), created_at), created_at::date, current_date - 7, "
    "justify_interval(interval '40 hours') FROM customers LIMIT 1",
    "SELECT make_date(2024, 2, 29), date_part('dow', current_date), "
    "to_timestamp(1700000000), clock_timestamp()",
    "SELECT * FROM orders WHERE created_at >= date_trunc('month', now()) "
    "AND created_at < date_trunc('month', now()) + interval '1 month'",
    # strings
    "SELECT concat_ws(' ', first_name, last_name), initcap(city), length(name), "
    "left(phone, 3) FROM customers",
    "SELECT split_part(email, '@', 2) AS domain, count(*) FROM customers GROUP BY 1",
    "SELECT regexp_replace(phone, '[^0-9]', '', 'g'), substring(zip FROM 1 FOR 3), "
    "trim(both ' ' FROM name), position('x' IN sku) FROM customers",
    "SELECT format('%s <%s>', name, email), md5(email), upper(coalesce(nickname, name)) "
    "FROM customers",
    "SELECT string_to_array('a,b,c', ','), array_to_string(ARRAY['x', 'y'], '-'), "
    "repeat('=', 20), lpad(id::text, 8, '0') FROM customers",
    "SELECT * FROM products WHERE to_tsvector('english', description) @@ "
    "plainto_tsquery('english', 'red shoes')",
    # JSON and arrays
    "SELECT payload ->> 'event' AS event, payload -> 'user' ->> 'id' FROM events LIMIT 20",
    "SELECT * FROM events WHERE payload @> '{\"type\": \"refund\"}' AND payload ? 'amount'",
    "SELECT jsonb_path_query(payload, '$.items[*].sku') FROM events WHERE id = 9",
    "SELECT key, value FROM events, jsonb_each_text(payload) WHERE events.id = 3",
    "SELECT jsonb_build_object('id', id, 'name', name), row_to_json(c) FROM customers c LIMIT 2",
    "SELECT payload #>> '{user,email}', jsonb_array_length(payload -> 'items') FROM events",
    "SELECT tags[1], array_length(tags, 1), cardinality(tags), 'vip' = ANY (tags), "
    "tags && ARRAY['x'] FROM customers",
    "SELECT * FROM unnest(ARRAY[1, 2, 3]) WITH ORDINALITY AS t(v, n)",
    # CASE, COALESCE, NULLIF, casts
    "SELECT CASE WHEN total > 100 THEN 'big' WHEN total > 10 THEN 'medium' ELSE 'small' END, "
    "coalesce(discount, 0), nullif(note, ''), greatest(a, b), least(a, b) FROM orders",
    "SELECT '42'::int + 1, 3.5::numeric(5, 2), CAST(id AS text), '2024-01-01'::date, "
    "'{\"a\": 1}'::jsonb, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid",
    "SELECT 'orders'::regclass::oid, pg_typeof(1.5), 10 / 3, 10 % 3, 2 ^ 10, round(2.345, 2), "
    "abs(-3), ceil(1.2), floor(1.8), random() < 2",
    "SELECT id::bigint, total::float8, created_at::timestamptz, true::int, "
    "interval '1 day' * 3 FROM orders LIMIT 1",
    # CTEs and set operations
    "WITH recent AS (SELECT * FROM orders WHERE created_at > now() - interval '1 hour') "
    "SELECT status, count(*) FROM recent GROUP BY status",
    "SELECT id FROM customers WHERE country = 'FR' UNION SELECT customer_id FROM orders "
    "EXCEPT SELECT customer_id FROM refunds",
    "WITH RECURSIVE tree AS (SELECT id, parent_id FROM categories WHERE id = 1 UNION ALL "
    "SELECT c.id, c.parent_id FROM categories c JOIN tree t ON c.parent_id = t.id) "
    "SELECT * FROM tree",
    # catalogs and statistics
    "SELECT table_name, column_name, data_type FROM information_schema.columns "
    "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position",
    "SELECT relname, n_live_tup, n_dead_tup, last_autovacuum FROM pg_stat_user_tables "
    "ORDER BY n_dead_tup DESC LIMIT 10",
    "SELECT pid, usename, state, wait_event_type, now() - query_start AS running, "
    "left(query, 60) FROM pg_stat_activity WHERE state <> 'idle'",
    "SELECT relname, pg_size_pretty(pg_total_relation_size(oid)) FROM pg_class "
    "WHERE relkind = 'r' ORDER BY pg_total_relation_size(oid) DESC LIMIT 5",
    "SELECT indexrelid::regclass, idx_scan FROM pg_stat_user_indexes WHERE idx_scan = 0",
    "SELECT pg_get_indexdef(indexrelid), pg_get_constraintdef(c.oid) FROM pg_index i "
    "JOIN pg_constraint c ON c.conindid = i.indexrelid LIMIT 5",
    "SELECT blocked.pid, pg_blocking_pids(blocked.pid) FROM pg_stat_activity blocked "
    "WHERE cardinality(pg_blocking_pids(blocked.pid)) > 0",
    "SELECT l.locktype, l.mode, l.granted, l.relation::regclass FROM pg_locks l "
    "WHERE NOT l.granted",
    "SELECT current_user, session_user, current_database(), version(), "
    "pg_postmaster_start_time(), inet_server_addr(), current_setting('server_version')",
    "SELECT has_table_privilege('orders', 'SELECT'), pg_get_viewdef('active_orders'::regclass), "
    "obj_description('orders'::regclass, 'pg_class')",
    "SELECT pg_is_in_recovery(), pg_current_wal_lsn(), pg_database_size(current_database())",
    "SELECT n.nspname, c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
    "ON n.oid = c.relnamespace WHERE pg_catalog.pg_table_is_visible(c.oid)",
    # session statements
    "SHOW statement_timeout",
    "SHOW ALL",
    "SET statement_timeout = '30s'",
    "SET LOCAL lock_timeout = '2s'",
    "SET application_name = 'support-ann'",
    "SET TIME ZONE 'Europe/Berlin'",
    "SET DateStyle = 'ISO, MDY'",
    "SET extra_float_digits = 3",
    "SET work_mem = '64MB'",
    "SET enable_seqscan = off",
    "RESET statement_timeout",
    "BEGIN READ ONLY",
    "EXPLAIN SELECT * FROM orders WHERE customer_id = 42",
    "EXPLAIN (ANALYZE, BUFFERS) SELECT count(*) FROM orders WHERE status = 'paid'",
    "TABLE customers LIMIT 5",
    "VALUES (1, 'a'), (2, 'b')",
    "SELECT gen_random_uuid(), now(), statement_timestamp(), md5(random()::text)",
]


def test_the_reads_corpus_is_large_enough() -> None:
    assert len(READS) >= 65
    assert len(set(READS)) == len(READS)


def test_ordinary_reads_are_reads() -> None:
    classifier = Classifier()
    held = {}
    for sql in READS:
        verdict = Classifier.strictest(classifier.classify(sql))
        if verdict.statement_class != "read":
            held[sql] = (verdict.statement_class, verdict.reasons)
    assert held == {}


@pytest.mark.parametrize("sql", READS[::7])
def test_a_read_has_no_reasons(sql: str) -> None:
    (verdict,) = Classifier().classify(sql)
    assert verdict.reasons == ()
