"""What the catalog's row-level security policies and domain CHECKs make of a read, judged
from rows shaped as the target answers the catalog queries (no database needed)."""

from __future__ import annotations

import asyncio

import pytest

from guard.builtins import TARGET_FUNCTIONS_QUERY
from guard.catalog_code import (
    RECORD_CONVERSIONS,
    TARGET_CASTS_QUERY,
    TARGET_DOMAIN_CHECKS_QUERY,
    TARGET_OPERATORS_QUERY,
    TARGET_POLICIES_QUERY,
    TARGET_TYPE_COLUMNS_QUERY,
    Cast,
    Domain,
    Operator,
    Policy,
    TargetCatalog,
    TargetCode,
    TypeColumn,
    View,
    unsafe_code,
)
from guard.classify import Classifier
from guard.resources import ALLOWED_FUNCTIONS_QUERY, TARGET_VIEWS_QUERY, ResourceClassifiers

FUNCTIONS = frozenset({"audit_read", "audit_check", "tenant_of"})


def judged(
    views: list[View],
    policies: list[Policy],
    domains: list[Domain],
    allowed: tuple[str, ...] = (),
    operators: list[Operator] | None = None,
    columns: list[TypeColumn] | None = None,
    casts: list[Cast] | None = None,
) -> Classifier:
    def build(code: TargetCode) -> Classifier:
        return code.classifier(allowed_functions=allowed, target_functions=FUNCTIONS, cache_size=0)

    catalog = TargetCatalog(views, policies, domains, operators or [], casts or [], columns or [])
    return build(unsafe_code(catalog, build))


def verdict(classifier: Classifier, sql: str) -> tuple[str, tuple[str, ...]]:
    found = Classifier.strictest(classifier.classify(sql))
    return found.statement_class, found.reasons


AUDITED: Policy = ("public", "accounts", "audited", "audit_read(id)", None)
TENANT: Policy = ("public", "plain", "tenant", "(owner = CURRENT_USER)", "(id > 0)")


def test_a_policy_that_calls_a_function_of_the_targets_makes_reads_of_its_table_opaque() -> None:
    classifier = judged([], [AUDITED, TENANT], [])
    assert verdict(classifier, "SELECT * FROM accounts") == (
        "opaque",
        ("reads table public.accounts, whose row-level security policy audited calls"
         " audit_read(), which is not a known side-effect-free built-in",),
    )  # fmt: skip
    assert verdict(classifier, "SELECT id FROM public.ACCOUNTS")[0] == "opaque"
    assert verdict(classifier, "SELECT * FROM plain") == ("read", ())


def test_a_with_check_expression_counts_too() -> None:
    checked: Policy = ("app", "ledger", "checked", None, "audit_read(amount)")
    classifier = judged([], [checked], [])
    assert verdict(classifier, "SELECT * FROM app.ledger")[0] == "opaque"


def test_views_and_policies_over_each_other_are_followed() -> None:
    views: list[View] = [("public", "v_accounts", "SELECT id FROM accounts")]
    exists: Policy = ("public", "plain", "via", "(EXISTS (SELECT 1 FROM v_accounts))", None)
    classifier = judged(views, [AUDITED, exists], [])
    reasons = verdict(classifier, "SELECT * FROM plain")[1]
    assert reasons[0].startswith("reads table public.plain, whose row-level security policy via")
    assert "reads view public.v_accounts: reads table public.accounts" in reasons[0]


def test_a_function_on_functions_allow_keeps_the_policy_a_read() -> None:
    assert verdict(judged([], [AUDITED], [], ("audit_read",)), "TABLE accounts") == ("read", ())


def test_a_domain_check_that_calls_a_function_makes_record_conversions_opaque() -> None:
    domains: list[Domain] = [
        ("public", "plain_text", "plain_text_check", "(VALUE <> ''::text)"),
        ("public", "checked_text", "checked", "audit_check(VALUE)"),
    ]
    classifier = judged([], [], domains)
    for conversion in RECORD_CONVERSIONS[:4]:
        found = verdict(classifier, f"SELECT {conversion}(n, '{{}}') FROM notes n")
        assert found == ("opaque", (
            f"calls {conversion}, which may convert a value to domain public.checked_text,"
            " whose CHECK calls audit_check(), which is not a known side-effect-free built-in",
        ))  # fmt: skip
    assert verdict(classifier, "SELECT to_jsonb(n), body FROM notes n") == ("read", ())


def test_domains_of_built_ins_leave_record_conversions_reads() -> None:
    domains: list[Domain] = [("public", "email", "email_check", "(VALUE ~ '@'::text)")]
    classifier = judged([], [], domains)
    assert verdict(classifier, "SELECT jsonb_populate_record(n, '{}') FROM notes n") == ("read", ())


def test_the_strict_classifier_sees_a_policy_that_reaches_an_allowed_function() -> None:
    """A read of a table whose policy calls a function on ``functions.allow`` is a read,
    and one that code the gateway cannot see runs: the strict classifier says so."""
    answers = {
        TARGET_FUNCTIONS_QUERY: [("audit_read",)],
        TARGET_VIEWS_QUERY: [],
        TARGET_POLICIES_QUERY: [AUDITED],
        TARGET_DOMAIN_CHECKS_QUERY: [],
        TARGET_OPERATORS_QUERY: [],
        TARGET_CASTS_QUERY: [],
        TARGET_TYPE_COLUMNS_QUERY: [],
        ALLOWED_FUNCTIONS_QUERY: [("public", "audit_read", "s", False)],
    }

    async def fetch(_resource: str, query: str) -> list[tuple[object, ...]]:
        return [tuple(row) for row in answers[query]]

    classifiers = ResourceClassifiers({"shop": ["audit_read"]})
    asyncio.run(classifiers.load(fetch))
    assert verdict(classifiers.of("shop"), "SELECT * FROM accounts") == ("read", ())
    strict = classifiers.strict("shop", "SELECT * FROM accounts")
    assert strict is not None
    assert verdict(strict, "SELECT * FROM accounts")[0] == "opaque"
    assert classifiers.strict("elsewhere", "SELECT * FROM accounts") is None


def test_the_strict_classifier_is_asked_only_where_an_allowed_function_may_be_reached() -> None:
    classifiers = ResourceClassifiers({"shop": ["reporting.Monthly_Totals"]})
    assert classifiers.strict("shop", "SELECT * FROM orders") is None
    for sql in (
        "SELECT monthly_totals()",
        'SELECT o."MONTHLY_TOTALS" FROM orders o',
        'SELECT U&"monthly\\005ftotals"()',
    ):
        assert classifiers.strict("shop", sql) is not None, sql


PLUS: Operator = ("public", "+", "text", "text", "public", "text_plus")
MATCH: Operator = ("app", "@@@", "text", "text", "app", "text_match")
PLAIN_EQ: Operator = ("public", "=", "citext", "citext", "pg_catalog", "texteq")


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT name + '!' FROM customers",
        "SELECT count(*) FROM customers WHERE email + '' IS NOT NULL",
        "SELECT lag(name + '') OVER (ORDER BY id) FROM customers",
        "SELECT id FROM customers ORDER BY name + 'x'",
        "SELECT 'abc' @@@ 'b'",
        "SELECT id FROM customers WHERE name @@@ ANY (ARRAY['a'])",
        "SELECT id FROM customers WHERE name @@@ ALL (SELECT 'a')",
        "CREATE VIEW shout AS SELECT name + '!' FROM customers",
        "SELECT (SELECT name + '' FROM customers LIMIT 1)",
    ],
)
def test_a_plain_use_of_a_symbol_the_target_overloads_with_code_is_opaque(sql: str) -> None:
    found = verdict(judged([], [], [], operators=[PLUS, MATCH, PLAIN_EQ]), sql)
    assert found[0] == "opaque", sql
    assert "which the target overloads: " in " ".join(found[1]), found


def test_the_reason_names_the_operator_and_its_function() -> None:
    found = verdict(judged([], [], [], operators=[PLUS]), "SELECT name + '!' FROM customers")
    assert found == ("opaque", (
        "uses operator +, which the target overloads: public.+ (text, text) calls"
        " public.text_plus(), which is not a known side-effect-free built-in; the"
        " statement's types are not known, so any use of + may run it",
    ))  # fmt: skip


def test_operators_found_by_name_without_being_written_count_too() -> None:
    symbols = {
        "=": ("public", "=", "text", "text", "public", "text_eq"),
        ">=": ("public", ">=", "text", "text", "public", "text_ge"),
        "<": ("public", "<", "text", "text", "public", "text_lt"),
    }
    for sql, symbol in [
        ("SELECT id FROM tickets WHERE subject BETWEEN 'a' AND 'b'", ">="),
        ("SELECT id FROM tickets WHERE subject BETWEEN SYMMETRIC 'b' AND 'a'", ">="),
        ("SELECT id FROM tickets WHERE subject NOT BETWEEN 'a' AND 'b'", "<"),
        ("SELECT id FROM tickets WHERE subject IN (SELECT name FROM customers)", "="),
        ("SELECT id FROM tickets WHERE subject NOT IN (SELECT name FROM customers)", "="),
        ("SELECT id FROM tickets WHERE subject IN ('a', 'b')", "="),
        ("SELECT CASE subject WHEN 'a' THEN 1 END FROM tickets", "="),
        ("SELECT * FROM tickets JOIN customers USING (name)", "="),
        ("SELECT * FROM tickets NATURAL JOIN customers", "="),
        ("SELECT nullif(subject, 'a') FROM tickets", "="),
        ("SELECT id FROM tickets WHERE subject IS DISTINCT FROM 'a'", "="),
    ]:
        found = verdict(judged([], [], [], operators=[symbols[symbol]]), sql)
        assert found[0] == "opaque" and f"uses operator {symbol}," in found[1][0], (sql, found)


def test_symbols_not_overloaded_or_overloaded_with_reads_stay_reads() -> None:
    allowed = ("app", "||", "text", "int", "app", "audit_read")
    classifier = judged([], [], [], ("audit_read",), [PLUS, PLAIN_EQ, allowed])
    for sql in (
        "SELECT name || '!' FROM customers WHERE id = 1",
        "SELECT name OPERATOR(pg_catalog.+) 1 FROM customers",
        "SELECT id FROM tickets WHERE subject BETWEEN 'a' AND 'b'",
        "SELECT * FROM tickets JOIN customers USING (name)",
        "SELECT 'a' || 1",
    ):
        assert verdict(classifier, sql) == ("read", ()), sql
    assert verdict(judged([], [], [], operators=[allowed]), "SELECT 'a' || 1")[0] == "opaque"


def test_a_view_or_policy_that_uses_such_an_operator_is_not_a_read() -> None:
    views: list[View] = [("public", "shouted", "SELECT name + '!' AS loud FROM customers")]
    policy: Policy = ("public", "accounts", "by_name", "(owner @@@ 'x')", None)
    classifier = judged(views, [policy], [], operators=[PLUS, MATCH])
    assert (
        "reads view public.shouted: uses operator +"
        in verdict(classifier, "SELECT * FROM shouted")[1][0]
    )
    assert "policy by_name uses operator @@@" in verdict(classifier, "TABLE accounts")[1][0]


TICKET_REF: Domain = ("public", "ticket_ref", "ticket_ref_check", "hit('domain'::text)")
EMAIL: Domain = ("public", "email", "email_check", "(VALUE ~ '@'::text)")
DOMAIN_COLUMNS: list[TypeColumn] = [
    ("public", "refs", "r", "public", "ticket_ref"),
    ("app", "ref_sets", "rs", "public", "ticket_ref"),  # ticket_ref[], or a composite of it
    ("public", "v_refs", "r", "public", "ticket_ref"),
    ("public", "people", "mail", "public", "email"),
]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT ARRAY(SELECT r FROM refs) || '{6}'",
        "SELECT array_append(ARRAY(SELECT r FROM refs), '7')",
        "SELECT array_cat(ARRAY(SELECT r FROM public.refs), '{8}')",
        "SELECT ARRAY(SELECT r FROM refs) @> '{9}'",
        "SELECT array_position(ARRAY(SELECT r FROM refs), NULL)",
        "SELECT rs || '{1}' FROM app.ref_sets",
        "SELECT count(*) FROM v_refs",
        "SELECT x FROM v_wrapped",
        "EXPLAIN ANALYZE SELECT ARRAY(SELECT r FROM refs) || '{6}'",
        "DECLARE c CURSOR FOR SELECT ARRAY(SELECT r FROM refs) || '{6}'",
        "COPY (SELECT ARRAY(SELECT r FROM refs) || '{6}') TO STDOUT",
    ],
)
def test_a_read_of_a_column_of_a_domain_whose_check_runs_code_is_opaque(sql: str) -> None:
    views: list[View] = [("public", "v_wrapped", "SELECT count(*) AS x FROM refs")]
    classifier = judged(views, [], [TICKET_REF, EMAIL], columns=DOMAIN_COLUMNS)
    found = verdict(classifier, sql)
    assert found[0] == "opaque", (sql, found)
    assert "built on) domain public.ticket_ref, whose CHECK calls hit()" in " ".join(found[1])


def test_the_reason_names_the_column_and_the_domain() -> None:
    classifier = judged([], [], [TICKET_REF], columns=DOMAIN_COLUMNS)
    assert verdict(classifier, "SELECT ARRAY(SELECT r FROM refs) || '{6}'") == ("opaque", (
        "reads public.refs, whose column r is of (or built on) domain public.ticket_ref, whose"
        " CHECK calls hit(), which is not a known side-effect-free built-in: a literal beside"
        " the column, or a conversion of it, may run that with no type in the statement",
    ))  # fmt: skip


def test_columns_of_domains_whose_checks_are_reads_stay_reads() -> None:
    classifier = judged([], [], [EMAIL], columns=DOMAIN_COLUMNS)
    for sql in (
        "SELECT mail FROM people WHERE mail ~ 'example'",
        "SELECT ARRAY(SELECT r FROM refs) || '{6}'",  # ticket_ref's CHECK is unknown here
        "SELECT * FROM v_refs",
    ):
        assert verdict(classifier, sql) == ("read", ()), sql
    allowed = judged([], [], [TICKET_REF], ("hit",), columns=DOMAIN_COLUMNS)
    assert verdict(allowed, "SELECT ARRAY(SELECT r FROM refs) || '{6}'") == ("read", ())


MOOD_JSON: Cast = ("public", "mood", "mood", "json", "public", "mood_json")
MOOD_COLUMNS: list[TypeColumn] = [
    ("public", "people", "m", "public", "mood"),
    ("public", "crowds", "moods", "public", "mood"),  # mood[]
]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT to_json(m) FROM people",
        "SELECT json_build_object('m', m) FROM people",
        "SELECT row_to_json(p) FROM people p",
        "SELECT upper(m) FROM people",
        "SELECT to_jsonb(moods) FROM crowds",
    ],
)
def test_a_read_of_a_column_whose_type_has_a_cast_that_runs_code_is_opaque(sql: str) -> None:
    found = verdict(judged([], [], [], casts=[MOOD_JSON], columns=MOOD_COLUMNS), sql)
    assert found[0] == "opaque", (sql, found)
    assert "of (or built on) type public.mood, whose cast from mood to json calls" in found[1][0]


def test_casts_whose_functions_are_reads_cost_nothing() -> None:
    plain: Cast = ("public", "mood", "mood", "text", "pg_catalog", "enum_out")
    for casts, allowed in (([plain], ()), ([MOOD_JSON], ("mood_json",))):
        classifier = judged([], [], [], allowed, columns=MOOD_COLUMNS, casts=casts)
        assert verdict(classifier, "SELECT to_json(m) FROM people") == ("read", ())
