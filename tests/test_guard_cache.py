"""The number key of the verdict cache: texts that differ only in integer constants, signs
folded into them by the parser included, share a verdict without a parse; texts whose
verdicts differ never share an entry."""

from __future__ import annotations

import pytest

import guard.classify
from guard import Classifier
from guard.classify import numbers_key

TPCB = (
    "UPDATE pgbench_accounts SET abalance = abalance + {delta} WHERE aid = {aid};",
    "UPDATE pgbench_tellers SET tbalance = tbalance + {delta} WHERE tid = {aid};",
    "UPDATE pgbench_branches SET bbalance = bbalance + {delta} WHERE bid = {aid};",
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) "
    "VALUES ({aid}, {aid}, {aid}, {delta}, CURRENT_TIMESTAMP);",
)


class _NoParser:
    """Stands in for pgparse: any call means the cache did not answer."""

    PGQueryError = Exception

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"pgparse.{name} called: the statement missed the cache")


@pytest.mark.parametrize("template", TPCB)
def test_a_tpcb_statement_with_another_negative_number_hits_the_cache(
    template: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    classifier = Classifier()
    first = classifier.classify(template.format(delta=-1234, aid=5))
    assert first[0].statement_class == "write"
    monkeypatch.setattr(guard.classify, "pgparse", _NoParser())
    again = template.format(delta=-4321, aid=7)
    (verdict,) = classifier.classify(again)
    assert (verdict.statement_class, verdict.reasons, verdict.sql) == (
        "write",
        first[0].reasons,
        again.strip(),
    )
    assert classifier.memo_key(again) == numbers_key(again)


def test_a_positive_and_a_negative_number_have_keys_of_their_own() -> None:
    classifier = Classifier()
    for delta in (-1234, 1234, -1, 7):
        sql = f"UPDATE pgbench_accounts SET abalance = abalance + {delta} WHERE aid = 5"
        assert classifier.classify(sql)[0].statement_class == "write"
    keys = set(classifier._by_numbers)
    assert keys == {
        b"UPDATE pgbench_accounts SET abalance = abalance + -0 WHERE aid = 0",
        b"UPDATE pgbench_accounts SET abalance = abalance + 0 WHERE aid = 0",
    }


@pytest.mark.parametrize(
    ("first", "second"),
    [
        # a binary minus stays outside the constant; a unary one goes into it
        ("SELECT x -1 FROM t", "SELECT x - -1 FROM t"),
        ("SELECT x - 1 FROM t", "SELECT x + -1 FROM t"),
        ("DELETE FROM t WHERE id = -1", "DELETE FROM t WHERE id - 1 = 0"),
        ("DELETE FROM t WHERE -1 = -2", "DELETE FROM t WHERE -1 = -1"),
        # numbers of any length share a key: only verdicts that do not read them are kept
        ("DELETE FROM t WHERE 1 = 12", "DELETE FROM t WHERE 12 = 12"),
        ("DELETE FROM t WHERE id = 7 OR 10 = 100", "DELETE FROM t WHERE id = 7 OR 10 = 10"),
        ("DELETE FROM t WHERE 1 - 1 = 0", "DELETE FROM t WHERE 1 - 1 = 1"),
        ("UPDATE t SET a = 1 WHERE 2 -1 = 0", "UPDATE t SET a = 1 WHERE 2 -1 = 1"),
    ],
)
def test_texts_the_parser_reads_differently_never_share_a_verdict(first: str, second: str) -> None:
    fresh = Classifier(cache_size=0)
    expected = {sql: fresh.classify(sql) for sql in (first, second)}
    for order in ((first, second), (second, first)):
        warm = Classifier()
        for sql in order + order:
            assert warm.classify(sql) == expected[sql], sql


def test_renumbered_signed_variants_agree_with_a_fresh_classifier() -> None:
    templates = [
        "SELECT x {op}{n} FROM t WHERE id = {n}",
        "DELETE FROM t WHERE {n} {op}{n} = {n}",
        "UPDATE t SET a = a {op}{n} WHERE id {op}{n} = {n}",
        "DELETE FROM t WHERE id = {op}{n}",
    ]
    warm, cold = Classifier(), Classifier(cache_size=0)
    for template in templates:
        for op in ("-", "- -", "+ -", "-- ", "*-", "<>-"):
            for n in (0, 1, 2, 10, 99):
                sql = template.format(op=op, n=n)
                assert warm.classify(sql) == cold.classify(sql), sql
