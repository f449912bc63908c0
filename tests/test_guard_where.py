"""The WHERE rule: UPDATE and DELETE are writes only when their condition provably limits
the target's rows; the constant evaluator is exact or says it does not know."""

from __future__ import annotations

import pgparse  # type: ignore[import-not-found]
import pytest

from guard import Classifier
from guard.values import UNKNOWN, Dependencies, evaluate

WRITES = [
    "DELETE FROM carts WHERE id = 7",
    "DELETE FROM customers WHERE created_at < '2020-01-01'",
    "UPDATE t SET a = 1 WHERE id = $1",
    "UPDATE t SET a = 1 WHERE status = 'x' AND id > 3",
    "UPDATE pgbench_accounts SET abalance = abalance + -1234 WHERE aid = 5;",
    "UPDATE pgbench_tellers SET tbalance = tbalance + 4321 WHERE tid = 3;",
    "UPDATE pgbench_branches SET bbalance = bbalance + -1 WHERE bid = 1;",
    "DELETE FROM t WHERE id IN (1, 2, 3)",
    "DELETE FROM t WHERE id = ANY ($1)",
    "DELETE FROM t WHERE id BETWEEN 10 AND 20",
    "DELETE FROM t WHERE name LIKE 'abc%'",
    "DELETE FROM t WHERE deleted_at IS NULL AND created_at < now() - interval '90 days'",
    "DELETE FROM t WHERE id = 1 OR id = 2",
    "DELETE FROM t WHERE 5 = id",
    "DELETE FROM t WHERE t.id::text = '5'",
    "DELETE FROM t AS x WHERE x.id = 5",
    "DELETE FROM t WHERE archived",
    "DELETE FROM t WHERE NOT active",
    "DELETE FROM t WHERE id IS NOT DISTINCT FROM 3",
    "DELETE FROM t WHERE CURRENT OF c",
    "DELETE FROM t USING u WHERE t.id = u.t_id AND u.flag",
    "DELETE FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.t_id = t.id)",
    "DELETE FROM t WHERE id IN (SELECT u.t_id FROM u WHERE u.x = 1)",
    "UPDATE t SET a = v.a FROM (VALUES (1, 'x')) AS v(id, a) WHERE t.id = v.id",
    "MERGE INTO t USING (SELECT * FROM s) AS src ON t.id = src.id "
    "WHEN MATCHED THEN UPDATE SET a = src.a",
    "DELETE FROM t WHERE false",
    "DELETE FROM t WHERE 1 = 2",
    "DELETE FROM t WHERE 9999999999999999999999999999 + 1 <> 10000000000000000000000000000",
]


@pytest.mark.parametrize("sql", WRITES)
def test_conditions_that_limit_rows_are_writes(sql: str) -> None:
    assert Classifier().classify(sql)[0].statement_class == "write"


def _value(sql: str) -> object:
    (entry,) = pgparse.parse(f"SELECT {sql}")
    target = entry["stmt"]["SelectStmt"]["targetList"][0]["ResTarget"]["val"]
    return evaluate(target, Dependencies())


@pytest.mark.parametrize(
    ("sql", "value"),
    [
        ("'a' = 'a'", True),
        ("'a' = 'a '", False),
        ("1 + 2 = 3", True),
        ("0.1 + 0.2 = 0.3", True),
        ("99999999999999999999999999999 + 1 = 100000000000000000000000000000", True),
        ("'7'::int = 7", True),
        ("' 7 '::int4 = 7", True),
        ("NULL = 1", None),
        ("1 IN (2, NULL)", None),
        ("'x'::char(3) = 'x  '", UNKNOWN),
        ("'abcd'::varchar(2) = 'ab'", UNKNOWN),
        ("'abc'::name = 'abc'", UNKNOWN),
        ("1.5::int = 2", UNKNOWN),
        ("'1.5'::int = 2", UNKNOWN),
        ("1.5::float8 = 1.5", UNKNOWN),
        ("'NaN'::numeric = 'NaN'::numeric", UNKNOWN),
        ("'inf'::numeric > 0", UNKNOWN),
        ("'0x10'::int = 16", UNKNOWN),
        ("'1_000'::int = 1000", UNKNOWN),
        ("3.14159::numeric(3, 2) = 3.14", UNKNOWN),
        ("40000::int2 = 40000", UNKNOWN),
        ("1e1000 + 1 = 0", UNKNOWN),  # exact only in more digits than it keeps
    ],
)
def test_the_evaluator_is_exact_or_unknown(sql: str, value: object) -> None:
    assert _value(sql) == value if value is not UNKNOWN else _value(sql) is UNKNOWN
