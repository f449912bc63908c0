"""The guardrail classifier: a table-driven corpus of disguises and look-alikes, plus the
cache, prepared statements, multi-statement strings, huge inputs and hostile ones."""

from __future__ import annotations

import random
import re
from typing import get_args

import pgparse  # type: ignore[import-not-found]
import pytest

from guard import Classifier, StatementClass, StatementVerdict
from guard.verdict import ALL_PREPARED
from tests.guard_corpus import BENIGN, DANGEROUS, Case

CLASSES = set(get_args(StatementClass))


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier()


def _reasons(verdicts: list[StatementVerdict]) -> str:
    return " | ".join(reason for v in verdicts for reason in v.reasons)


def test_the_corpus_is_large_enough() -> None:
    assert len(DANGEROUS) + len(BENIGN) >= 150
    assert len({sql for sql, _, _ in DANGEROUS + BENIGN}) == len(DANGEROUS) + len(BENIGN)


@pytest.mark.parametrize(("sql", "expected", "reason"), DANGEROUS + BENIGN, ids=repr)
def test_corpus(
    classifier: Classifier, sql: str, expected: StatementClass, reason: str | None
) -> None:
    for _ in range(2):  # the second answer comes from the cache
        verdicts = classifier.classify(sql)
        assert Classifier.strictest(verdicts).statement_class == expected, verdicts
        if reason is not None:
            assert reason in _reasons(verdicts)


def test_no_dangerous_statement_is_ever_read() -> None:
    warm, cold = Classifier(), Classifier(cache_size=0)
    for classifier in (warm, warm, cold):
        for sql, _, _ in DANGEROUS:
            assert Classifier.strictest(classifier.classify(sql)).statement_class != "read", sql


def test_reads_have_no_reasons(classifier: Classifier) -> None:
    for sql, expected, _ in BENIGN:
        if expected == "read":
            assert _reasons(classifier.classify(sql)) == "", sql


@pytest.mark.parametrize(
    "pair",
    [
        ("DELETE FROM t WHERE 1=2", "write", "DELETE FROM t WHERE 1=1", "destructive"),
        ("DELETE FROM t WHERE $1", "destructive", "DELETE FROM t WHERE false", "write"),
        ("DELETE FROM t WHERE id = 1 OR 1 = 2", "write", "DELETE FROM t WHERE id = 1 OR 1 = 1",
         "destructive"),
        ("DELETE FROM t WHERE 'a'='b'", "write", "DELETE FROM t WHERE 'a'='a'", "destructive"),
        ("DELETE FROM t WHERE name LIKE 'a%'", "write", "DELETE FROM t WHERE name LIKE '%'",
         "destructive"),
        ("UPDATE t SET a = 1 WHERE 1 NOT IN (1, 2)", "write",
         "UPDATE t SET a = 1 WHERE 3 NOT IN (1, 2)", "destructive"),
        ("SELECT set_config('application_name', 'x', false)", "read",
         "SELECT set_config('role', 'x', false)", "privilege"),
        ("EXPLAIN (ANALYZE false) DELETE FROM t", "read",
         "EXPLAIN (ANALYZE true) DELETE FROM t", "destructive"),
        ("BEGIN READ ONLY", "read", "BEGIN READ WRITE", "privilege"),
        ("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", "ddl",
         "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'DELETE FROM t'", "destructive"),
    ],
)  # fmt: skip
def test_the_cache_never_shares_a_verdict_that_depends_on_literals(
    pair: tuple[str, StatementClass, str, StatementClass],
) -> None:
    first, first_class, second, second_class = pair
    expected = {first: first_class, second: second_class}
    for order in ((first, second), (second, first)):
        classifier = Classifier()
        for sql in order + order:
            assert [v.statement_class for v in classifier.classify(sql)] == [expected[sql]], sql


def test_statements_differing_only_in_literals_share_a_verdict_with_their_own_text() -> None:
    classifier = Classifier()
    for aid in (1, 2, 3):
        sql = f"SELECT abalance FROM pgbench_accounts WHERE aid = {aid};"
        assert classifier.classify(sql) == [StatementVerdict("read", (), sql)]
    sql = "UPDATE t SET a = 'x' WHERE id = 9"
    classifier.classify("UPDATE t SET a = 'y' WHERE id = 8")
    assert classifier.classify(sql) == [StatementVerdict("write", ("UPDATE on t",), sql)]


def test_cached_answers_match_fresh_ones() -> None:
    warm, cold = Classifier(), Classifier(cache_size=0)
    cases: list[Case] = DANGEROUS + BENIGN
    for sql, _, _ in cases + cases:
        assert warm.classify(sql) == cold.classify(sql)


def test_literal_variants_never_get_a_stale_verdict() -> None:
    """Every corpus statement, its literals swapped for others (and for parameters): the
    cache answers each variant as a fresh classifier does."""
    fills = ["1", "2", "0", "-1", "'a'", "'b'", "'%'", "'yes'", "true", "false", "NULL", "$1"]
    rng = random.Random(5)
    warm, cold = Classifier(), Classifier(cache_size=0)
    for sql, _, _ in DANGEROUS + BENIGN:
        try:
            template = pgparse.normalize(sql)
        except pgparse.PGQueryError:
            continue
        for _ in range(8 if "$" in template else 1):
            variant = re.sub(r"\$\d+", lambda _: rng.choice(fills), template)
            assert warm.classify(variant) == cold.classify(variant), variant


def test_pgbench_statements_share_a_cache_entry_across_literals() -> None:
    classifier = Classifier()
    for aid in range(50):
        update = f"UPDATE pgbench_accounts SET abalance = abalance + {aid} WHERE aid = {aid}"
        assert classifier.classify(update)[0].statement_class == "write"
        classifier.classify(f"SELECT abalance FROM pgbench_accounts WHERE aid = {aid}")
    assert (len(classifier._by_text), len(classifier._by_shape)) == (2, 2)


def test_a_parameterized_text_met_by_its_shape_is_remembered_by_its_text() -> None:
    # The literal form came first (pgbench -S, then -M extended): the parameterized text
    # hits the shape cache, and must still get a memo key for the relay's fast path.
    classifier = Classifier()
    classifier.classify("SELECT abalance FROM pgbench_accounts WHERE aid = 12")
    parameterized = "SELECT abalance FROM pgbench_accounts WHERE aid = $1"
    assert classifier.classify(parameterized)[0].statement_class == "read"
    assert classifier.memo_key(parameterized) == parameterized
    # A text with a string is not: its literal changes from one statement to the next.
    classifier.classify("SELECT * FROM t WHERE name = 'a'")
    assert classifier.memo_key("SELECT * FROM t WHERE name = 'b'") is None
    assert classifier.classify("SELECT * FROM t WHERE name = 'b'")[0].statement_class == "read"
    assert classifier.memo_key("SELECT * FROM t WHERE name = 'b'") is None


def test_the_number_key_holds_only_texts_whose_digits_are_all_integer_constants() -> None:
    classifier = Classifier()
    for sql in (
        "SELECT abalance FROM pgbench_accounts WHERE aid = 77",
        "SELECT * FROM t1 WHERE a = 1",
        "SELECT 1.5, x FROM t",
        "SELECT 0x1F",
        "SELECT - 5",
        "SELECT -5",
    ):
        classifier.classify(sql)
    classifier.classify("SELECT abalance FROM pgbench_accounts WHERE aid = 123")
    assert list(classifier._by_numbers) == [
        b"SELECT abalance FROM pgbench_accounts WHERE aid = 0",  # 77 and 123 alike
        b"SELECT -0",  # the parser folds the minus into the constant: "SELECT $1"
    ]


def test_callers_cannot_alter_the_cache(classifier: Classifier) -> None:
    verdicts = classifier.classify("DROP TABLE t")
    verdicts.clear()
    assert classifier.classify("DROP TABLE t")[0].statement_class == "destructive"


def test_a_small_cache_evicts_and_stays_right() -> None:
    classifier = Classifier(cache_size=2)
    for i in range(10):
        assert classifier.classify(f"DELETE FROM t{i}")[0].statement_class == "destructive"
        assert classifier.classify(f"SELECT {i} FROM t{i}")[0].statement_class == "read"


def test_prepare_has_the_class_of_what_it_prepares(classifier: Classifier) -> None:
    (wipe,) = classifier.classify("PREPARE wipe AS DELETE FROM items")
    assert (wipe.statement_class, wipe.prepared_name) == ("destructive", "wipe")
    (look,) = classifier.classify("PREPARE look (int) AS SELECT * FROM items WHERE id = $1")
    assert (look.statement_class, look.prepared_name) == ("read", "look")
    assert classifier.classify("SELECT 1")[0].prepared_name is None


def test_execute_is_judged_by_the_sessions_memory(classifier: Classifier) -> None:
    def execute(prepared: dict[str, StatementClass] | None) -> StatementVerdict:
        return classifier.classify("EXECUTE wipe(1)", prepared=prepared)[0]

    assert execute({"wipe": "destructive"}).statement_class == "destructive"
    assert execute({"wipe": "read"}).statement_class == "read"
    assert execute({"wipe": "write"}).statement_class == "write"
    unknown = execute(None)
    assert unknown.statement_class == "opaque"
    assert "EXECUTE of an unknown prepared statement" in unknown.reasons[0]
    explained = classifier.classify("EXPLAIN ANALYZE EXECUTE w", prepared={"w": "write"})
    assert explained[0].statement_class == "destructive"
    assert classifier.classify("EXPLAIN EXECUTE w")[0].statement_class == "read"


def test_a_prepare_counts_for_later_statements_of_the_same_string(classifier: Classifier) -> None:
    verdicts = classifier.classify(
        "PREPARE a AS SELECT 1; EXECUTE a; PREPARE b AS DELETE FROM t; EXECUTE b"
    )
    assert [v.statement_class for v in verdicts] == ["read", "read", "destructive", "destructive"]
    assert [v.prepared_name for v in verdicts] == ["a", None, "b", None]


def test_deallocate_names_what_it_drops_and_is_never_cached(classifier: Classifier) -> None:
    assert classifier.classify("DEALLOCATE a")[0].deallocated == "a"
    # Same shape, other name: a cache keyed by shape would hand back "a".
    assert classifier.classify("DEALLOCATE PREPARE b")[0].deallocated == "b"
    for everything in ("DEALLOCATE ALL", "discard all"):
        (verdict,) = classifier.classify(everything)
        assert (verdict.statement_class, verdict.deallocated) == ("read", ALL_PREPARED)
    assert classifier.classify("DISCARD PLANS")[0].deallocated is None
    assert classifier.classify("SELECT 1")[0].deallocated is None
    # Within one string, a dropped name is unknown to the statements after it.
    verdicts = classifier.classify("PREPARE a AS SELECT 1; DEALLOCATE a; EXECUTE a")
    assert [v.statement_class for v in verdicts] == ["read", "read", "opaque"]
    assert classifier.memo_key("DEALLOCATE a") is None


def test_each_statement_gets_its_own_text(classifier: Classifier) -> None:
    verdicts = classifier.classify("SELECT 1;  SELECT 'é' ;\n/* x */ DROP TABLE t;")
    assert [v.sql for v in verdicts] == ["SELECT 1", "SELECT 'é'", "/* x */ DROP TABLE t"]
    assert [v.statement_class for v in verdicts] == ["read", "read", "destructive"]
    assert classifier.classify("  SELECT 1;  ")[0].sql == "SELECT 1;"


@pytest.mark.parametrize("sql", ["", "   ", "-- nothing", "/* nothing */", ";;"])
def test_an_empty_query_is_one_read(classifier: Classifier, sql: str) -> None:
    assert classifier.classify(sql) == [StatementVerdict("read", (), sql.strip())]


def test_what_does_not_parse_is_opaque_with_the_parsers_message(classifier: Classifier) -> None:
    (verdict,) = classifier.classify("SELEC * FROM t")
    assert verdict.statement_class == "opaque"
    assert verdict.reasons == ('does not parse: syntax error at or near "SELEC"',)


def test_a_200_kb_insert_is_walked_to_its_end(classifier: Classifier) -> None:
    rows = ", ".join(f"({i}, 'customer {i}', 'c{i}@example.com')" for i in range(4_600))
    insert = f"INSERT INTO customers (id, name, email) VALUES {rows}"
    assert len(insert) > 200_000
    assert [v.statement_class for v in classifier.classify(insert)] == ["write"]
    hidden = insert + ", (0, pg_terminate_backend(1)::text, '')"
    assert classifier.classify(hidden)[0].statement_class == "opaque"


def test_a_5000_statement_string_gets_5000_verdicts(classifier: Classifier) -> None:
    statements = [f"UPDATE t{i} SET a = {i} WHERE id = {i}" for i in range(5_000)]
    statements[4321] = "DROP TABLE t4321"
    verdicts = classifier.classify(";\n".join(statements))
    assert len(verdicts) == 5_000
    assert verdicts[4321] == StatementVerdict(
        "destructive", ("DROP TABLE t4321",), "DROP TABLE t4321"
    )
    assert Classifier.strictest(verdicts) is verdicts[4321]
    assert verdicts[0].sql == "UPDATE t0 SET a = 0 WHERE id = 0"


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT " + "(" * 100_000 + "1" + ")" * 100_000,
        "SELECT " + "1 + " * 5_000 + "1",
        "SELECT " + "NOT " * 5_000 + "true",
        "DELETE FROM t WHERE " + "(" * 900 + "true" + ")" * 900,
        "SELECT '\ud800'",
        "SELECT 1\x00",
    ],
    ids=["parentheses", "sum", "not", "where", "surrogate", "nul"],
)
def test_hostile_input_is_opaque_not_an_exception(classifier: Classifier, sql: str) -> None:
    (verdict,) = classifier.classify(sql)
    assert verdict.statement_class in ("opaque", "destructive"), verdict.reasons


def test_no_input_makes_it_raise(classifier: Classifier) -> None:
    rng = random.Random(3)
    alphabet = "abcdefghijklmnopqrstuvwxyz ();,'\"$*=<>-/+.:\\\n\t0123456789_&U€\x00"
    samples = [sql for sql, _, _ in DANGEROUS + BENIGN]
    inputs = ["".join(rng.choices(alphabet, k=rng.randrange(60))) for _ in range(2_000)]
    for sql in samples[::3]:
        inputs += [sql[:cut] for cut in range(len(sql))]
        inputs += [sql[cut:] for cut in range(len(sql))]
    for sql in inputs:
        verdicts = classifier.classify(sql)
        assert verdicts and all(v.statement_class in CLASSES for v in verdicts)


def test_strictest_orders_destructive_opaque_privilege_ddl_write_read() -> None:
    order: list[StatementClass] = ["destructive", "opaque", "privilege", "ddl", "write", "read"]
    for i, expected in enumerate(order):
        verdicts = [StatementVerdict(c, (), c) for c in reversed(order[i:])]
        assert Classifier.strictest(verdicts).statement_class == expected
    assert Classifier.strictest([]) == StatementVerdict("read", (), "")


def test_the_deny_list_is_configurable() -> None:
    custom = Classifier(denied_functions=["public.Kill_Session"])
    (verdict,) = custom.classify("SELECT ops.KILL_SESSION(42)")
    assert (verdict.statement_class, verdict.reasons) == ("opaque", ("calls kill_session",))
    # not denied any more, yet still no read: it is not on the allow-list
    (verdict,) = custom.classify("SELECT pg_terminate_backend(1)")
    assert verdict.statement_class == "opaque"
    assert "not a known side-effect-free built-in" in verdict.reasons[0]


def test_set_config_when_it_is_denied() -> None:
    strict = Classifier(denied_functions=["set_config"])
    (verdict,) = strict.classify("SELECT set_config('application_name', 'x', false)")
    assert (verdict.statement_class, verdict.reasons) == ("opaque", ("calls set_config",))


def test_set_config_of_settings() -> None:
    lenient = Classifier()

    def judged(sql: str) -> StatementClass:
        return lenient.classify(sql)[0].statement_class

    assert judged("SELECT set_config('application_name', 'x', false)") == "read"
    assert judged("SELECT set_config('session_replication_role', 'replica', false)") == "privilege"
    assert judged("SELECT set_config(current_user, 'x', false)") == "opaque"


def test_verdicts_are_frozen(classifier: Classifier) -> None:
    verdict = classifier.classify("SELECT 1")[0]
    with pytest.raises(AttributeError):
        verdict.statement_class = "write"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("first", "second", "classes"),
    [
        ("EXPLAIN (ANALYZE 0) DELETE FROM t", "EXPLAIN (ANALYZE 1) DELETE FROM t",
         ("read", "destructive")),
        ("DELETE FROM t WHERE 1=2", "DELETE FROM t WHERE 1=1", ("write", "destructive")),
        ("DELETE FROM t WHERE id = 3", "DELETE FROM t WHERE 3 = 3", ("write", "destructive")),
        ("SELECT * FROM t1 WHERE a = 1", "SELECT * FROM t2 WHERE a = 1", ("read", "read")),
        ("UPDATE t SET a = 1 WHERE id = 2", "UPDATE t SET a = 1 WHERE 2 > 1",
         ("write", "destructive")),
        ("SELECT 1 FROM t LIMIT 5", "SELECT pg_terminate_backend(5) FROM t LIMIT 5",
         ("read", "opaque")),
        # one key ("0x00") for a hex constant and for a number with trailing junk
        ("SELECT 0x10 FROM t", "SELECT 1x10 FROM t", ("read", "opaque")),
        ("DELETE FROM t0 WHERE id = 1", "DELETE FROM t1", ("write", "destructive")),
    ],
)  # fmt: skip
def test_the_number_key_shares_only_what_normalize_shares(
    first: str, second: str, classes: tuple[str, str]
) -> None:
    classifier = Classifier()
    assert classifier.classify(first)[0].statement_class == classes[0]
    assert classifier.classify(second)[0].statement_class == classes[1]
    # and in the other order, each against a warm cache of many renumbered variants
    warm = Classifier()
    for n in range(50):
        warm.classify(re.sub(r"\b\d+\b", str(n + 10), second))
    assert warm.classify(second)[0].statement_class == classes[1]
    assert warm.classify(first)[0].statement_class == classes[0]
