"""What the catalog's row-level security policies and domain CHECKs make of a read, judged
from rows shaped as the target answers the catalog queries (no database needed)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from guard.builtins import TARGET_FUNCTIONS_QUERY
from guard.catalog_code import (
    RECORD_CONVERSIONS,
    TARGET_DOMAIN_CHECKS_QUERY,
    TARGET_POLICIES_QUERY,
    Domain,
    Policy,
    View,
    unsafe_code,
)
from guard.classify import Classifier
from guard.resources import ALLOWED_FUNCTIONS_QUERY, TARGET_VIEWS_QUERY, ResourceClassifiers
from guard.verdict import Finding

FUNCTIONS = frozenset({"audit_read", "audit_check", "tenant_of"})


def judged(
    views: list[View], policies: list[Policy], domains: list[Domain], allowed: tuple[str, ...] = ()
) -> Classifier:
    def build(relations: Mapping[str, Finding], calls: Mapping[str, Finding]) -> Classifier:
        return Classifier(
            allowed_functions=allowed, target_functions=FUNCTIONS, target_views=relations,
            target_calls=calls, cache_size=0,
        )  # fmt: skip

    code = unsafe_code(views, policies, domains, build)
    return build(code.relations, code.calls)


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
