"""Classifier throughput: ``python -m guard.bench``.

Prints classifications per second on one core for

* the exact-text cache (the same statements again, as drivers send them with parameters),
* the normalized-text cache (pgbench's statements with a fresh literal each time),
* no cache at all (parse and walk every time),

over a mix of statements, then the time of a 200 KB INSERT and of a 5,000-statement string.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from guard.classify import Classifier

MIX = (
    "SELECT abalance FROM pgbench_accounts WHERE aid = $1",
    "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2",
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, now())",
    "SELECT * FROM customers WHERE email = $1 ORDER BY created_at DESC LIMIT 20",
    "SELECT c.id, sum(o.total) FROM customers c JOIN orders o ON o.customer_id = c.id "
    "WHERE o.created_at > now() - interval '30 days' GROUP BY c.id HAVING sum(o.total) > 100",
    "BEGIN",
    "COMMIT",
    "SET statement_timeout = '5s'",
    "DELETE FROM carts WHERE id = 7",
    "WITH gone AS (DELETE FROM items RETURNING *) SELECT count(*) FROM gone",
    "DELETE FROM customers WHERE 1 = 1",
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'x'",
    "DROP TABLE customers",
    "GRANT SELECT ON customers TO bob",
)


def rate(label: str, count: int, run: Callable[[int], None]) -> None:
    started = time.perf_counter()
    run(count)
    elapsed = time.perf_counter() - started
    print(f"{label:<44} {count / elapsed:>12,.0f} /s  ({elapsed * 1e6 / count:.1f} µs each)")


def main() -> None:
    rng = random.Random(7)
    mix = list(MIX)
    cached = Classifier()
    for sql in mix:
        cached.classify(sql)
    rate("cached, exact text (mix)", 500_000, lambda n: _each(cached, mix, n))

    texts = [f"SELECT abalance FROM pgbench_accounts WHERE aid = {rng.randrange(10**6)};"]
    texts += [f"SELECT abalance FROM pgbench_accounts WHERE aid = {i};" for i in range(200_000)]
    cached.classify(texts[0])
    rate("cached, normalized (pgbench -S literals)", len(texts), lambda n: _each(cached, texts, n))

    uncached = Classifier(cache_size=0)
    rate("uncached (mix)", 20_000, lambda n: _each(uncached, mix, n))

    rows = ", ".join(f"({i}, 'customer {i}', 'c{i}@example.com')" for i in range(5_000))
    insert = f"INSERT INTO customers (id, name, email) VALUES {rows}"
    _once(f"{len(insert) // 1024} KB INSERT", lambda: uncached.classify(insert))
    many = ";\n".join(mix[i % len(mix)] for i in range(5_000))
    _once("5,000-statement string", lambda: uncached.classify(many))


def _each(classifier: Classifier, texts: list[str], count: int) -> None:
    size = len(texts)
    for i in range(count):
        classifier.classify(texts[i % size])


def _once(label: str, run: Callable[[], object]) -> None:
    started = time.perf_counter()
    run()
    print(f"{label:<44} {(time.perf_counter() - started) * 1e3:>12,.1f} ms")


if __name__ == "__main__":
    main()
