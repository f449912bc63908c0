"""Code of the target's own that a read runs without naming it, found in the catalog.

* **Views**: reading one runs its definition (``pg_get_viewdef``).
* **Row-level security policies**: reading a table with row-level security runs the
  ``USING`` (and, for writes, ``WITH CHECK``) expressions of its policies. A table with a
  policy whose expression is not a read (it calls a function that is not a side-effect-free
  built-in, nor on ``functions.allow``) makes every statement that reads it ``opaque``,
  with the reason naming the policy.
* **Domain CHECKs**: a value read as a domain runs its CHECK, with no type name in the
  statement. A literal (or a parameter, or NULL) combined with a column of the domain, or
  of a type built on it (an array, a composite, a range, a domain over it), may be read as
  that type (``ARRAY(SELECT r FROM refs) || '{6}'``, ``array_append(…, '7')``, ``@>``):
  the parse tree has no types, so when a domain's CHECK is not a read, every read of a
  table, view or materialized view with such a column is ``opaque``, the reason naming the
  column and the domain. And converting a value to a record type
  (``jsonb_populate_record(t, '{…}') FROM t``) runs the CHECK of every domain among its
  columns: every call of a record conversion (:data:`RECORD_CONVERSIONS`) is ``opaque``
  then, as which row type a call converts to is not known before it runs. Domains whose
  CHECKs are reads (``CHECK (VALUE ~ '@')``) cost nothing.
* **Casts**: a cast the target defines from or to a type of its own
  (``CREATE CAST (mood AS json) WITH FUNCTION mood_json(mood)``) runs with no cast in the
  text — ``to_json``, ``json_build_object``, ``row_to_json`` and implicit conversions call
  it. When its function is not a read, every read of a relation with a column of that type
  (or of a type built on it) is ``opaque`` too, the reason naming the column and the cast.
* **Operators**: an operator the target defines outside pg_catalog (``public.+`` on
  ``text``) answers a plain use of its symbol wherever its schema is on the search path
  and its argument types match better than a built-in's. The parse tree has no types, so
  which overload answers is not known: when some operator's function is not a read (not a
  side-effect-free built-in, nor on ``functions.allow``), every plain use of its symbol is
  ``opaque``, with the reason naming the operator; ``OPERATOR(pg_catalog.+)`` stays a read.
  Every schema counts, on the search path or not: a session's path is not known either.

An operator's or a cast's function that is compiled code (C or internal, which only a
superuser can create, as ``CREATE EXTENSION`` does) declared ``IMMUTABLE`` or ``STABLE``
and not ``SECURITY DEFINER`` counts as a read, the rule the built-in allow-list applies to
pg_catalog: citext's ``=`` and hstore's casts cost nothing.

Each expression is judged by the resource's own classifier as ``SELECT <expression>``
(an operator's function as ``SELECT schema.function()``); a policy that reads a view or
another table with such a policy is judged with what was found so far, until nothing more
is found (views over tables over views). A cast to a domain or to a table's row type
(``row(…)::t``) is ``opaque`` already: it names a type that is not built in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from guard.classify import Classifier
from guard.verdict import Finding

TARGET_POLICIES_QUERY = """
SELECT n.nspname, c.relname, p.polname, pg_get_expr(p.polqual, p.polrelid),
       pg_get_expr(p.polwithcheck, p.polrelid)
FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relrowsecurity
"""
"""Every policy of a table with row-level security on, and its expressions."""

TARGET_DOMAIN_CHECKS_QUERY = """
SELECT n.nspname, t.typname, c.conname, pg_get_expr(c.conbin, 0)
FROM pg_constraint c JOIN pg_type t ON t.oid = c.contypid
JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE c.contype = 'c' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
"""
"""The CHECK constraints of the target's own domains (``VALUE`` is the value checked)."""

_COMPILED_READ = """(l.lanname IN ('c', 'internal') AND p.provolatile <> 'v'
     AND NOT p.prosecdef)"""
# Compiled code (C or internal: only a superuser can create it, as CREATE EXTENSION does)
# declared IMMUTABLE or STABLE, without SECURITY DEFINER: the rule the built-in allow-list
# applies to pg_catalog, here for the functions of an extension's operators and casts
# (citext's =, hstore's casts). A PL's declared volatility binds nothing it calls.

TARGET_CASTS_QUERY = f"""
SELECT tn.nspname, t.typname, format_type(c.castsource, NULL),
       format_type(c.casttarget, NULL), fn.nspname, p.proname
FROM pg_cast c JOIN pg_proc p ON p.oid = c.castfunc
JOIN pg_namespace fn ON fn.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
JOIN pg_type t ON t.oid IN (c.castsource, c.casttarget)
JOIN pg_namespace tn ON tn.oid = t.typnamespace
WHERE tn.nspname NOT IN ('pg_catalog', 'information_schema') AND NOT {_COMPILED_READ}
"""
"""Casts from or to the target's own types that run a function other than compiled code
declared side-effect-free (each row names the type of the target's own it is about)."""

TARGET_TYPE_COLUMNS_QUERY = """
WITH RECURSIVE edges(type, base) AS (
    SELECT t.oid, t.typbasetype FROM pg_type t WHERE t.typtype = 'd'
    UNION ALL SELECT t.oid, t.typelem FROM pg_type t WHERE t.typelem <> 0
    UNION ALL SELECT c.reltype, a.atttypid FROM pg_class c
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE c.relnamespace NOT IN ('pg_catalog'::regnamespace,
                                     'information_schema'::regnamespace)
    UNION ALL SELECT r.rngtypid, r.rngsubtype FROM pg_range r
    UNION ALL SELECT r.rngmultitypid, r.rngtypid FROM pg_range r
), coded(type) AS (
    SELECT c.contypid FROM pg_constraint c WHERE c.contype = 'c' AND c.contypid <> 0
    UNION SELECT c.castsource FROM pg_cast c WHERE c.castmethod = 'f'
    UNION SELECT c.casttarget FROM pg_cast c WHERE c.castmethod = 'f'
), built_on(type, domain) AS (
    SELECT t.oid, t.oid FROM coded JOIN pg_type t ON t.oid = coded.type
    WHERE t.typnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
    UNION
    SELECT e.type, b.domain FROM built_on b JOIN edges e ON e.base = b.type
)
SELECT DISTINCT n.nspname, c.relname, a.attname, dn.nspname, d.typname
FROM built_on b
JOIN pg_attribute a ON a.atttypid = b.type AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type d ON d.oid = b.domain JOIN pg_namespace dn ON dn.oid = d.typnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
"""
"""Every column of a table, view, materialized view or foreign table whose type is one of
the target's own types with code (a domain with a CHECK, a type with a cast function) or
is built on one (arrays, composites, ranges and multiranges, domains over it, to any
depth), with that type."""

TARGET_OPERATORS_QUERY = f"""
SELECT n.nspname, o.oprname, o.oprleft::regtype::text, o.oprright::regtype::text,
       fn.nspname, p.proname
FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace
JOIN pg_proc p ON p.oid = o.oprcode JOIN pg_namespace fn ON fn.oid = p.pronamespace
JOIN pg_language l ON l.oid = p.prolang
WHERE NOT starts_with(n.nspname, 'pg_') AND n.nspname <> 'information_schema'
  AND NOT {_COMPILED_READ}
"""
"""The target's own operators and the function each runs, but for compiled code declared
side-effect-free (schemas named ``pg_*`` are the server's: pg_catalog, and temporary
schemas, never searched for operators)."""

RECORD_CONVERSIONS = (
    "json_populate_record",
    "json_populate_recordset",
    "jsonb_populate_record",
    "jsonb_populate_recordset",
    "jsonb_populate_record_valid",
)
"""Built-ins that convert a value to a record type of the caller's choosing."""

View = tuple[str, str, str]
"""Schema, name, definition."""
Policy = tuple[str, str, str, str | None, str | None]
"""Schema, table, policy name, USING expression, WITH CHECK expression."""
Domain = tuple[str, str, str, str]
"""Schema, domain, constraint name, CHECK expression."""
Operator = tuple[str, str, str, str, str, str]
"""Schema, symbol, left and right argument types (``-`` for none), the function's schema
and name."""
Cast = tuple[str, str, str, str, str, str]
"""The schema and name of the target's own type, the cast's source and target, the
function's schema and name."""
TypeColumn = tuple[str, str, str, str, str]
"""The relation's schema and name, the column, the schema and name of the type with code
it is built on."""


@dataclass(frozen=True, slots=True)
class TargetCatalog:
    """The target's own code, as it answers the catalog queries above."""

    views: Sequence[View] = ()
    policies: Sequence[Policy] = ()
    domains: Sequence[Domain] = ()
    operators: Sequence[Operator] = ()
    casts: Sequence[Cast] = ()
    type_columns: Sequence[TypeColumn] = ()


_ROUNDS = 8  # views and policies over each other: passes until nothing more is found


@dataclass(frozen=True, slots=True)
class TargetCode:
    """What the classifier must know: ``relations`` (views and tables whose reading runs
    code that is not a read, as ``name`` and ``schema.name`` in lower case), ``calls``
    (built-ins that run such code, by name) and ``operators`` (symbols the target
    overloads with such code) — each with the finding it calls for."""

    relations: dict[str, Finding] = field(default_factory=dict)
    calls: dict[str, Finding] = field(default_factory=dict)
    operators: dict[str, Finding] = field(default_factory=dict)

    def classifier(self, **options: Any) -> Classifier:
        """A classifier that knows this code (``options``: the rest of its arguments)."""
        return Classifier(
            target_views=self.relations, target_calls=self.calls,
            target_operators=self.operators, **options,
        )  # fmt: skip


def unsafe_code(
    catalog: TargetCatalog, classifier: Callable[[TargetCode], Classifier]
) -> TargetCode:
    """The target's views, policies, domain CHECKs and operators that are not reads, judged
    by ``classifier(code)`` built with what was found so far."""
    relations: dict[str, Finding] = {}
    calls: dict[str, Finding] = {}
    overloads = unsafe_operators(catalog.operators, classifier(TargetCode()))
    for _ in range(_ROUNDS):
        judge = classifier(TargetCode(relations, calls, overloads))
        before = (len(relations), len(calls))
        for schema, name, definition in catalog.views:
            why = _not_read(judge, definition)
            if why is not None:
                _found(relations, schema, name, (why[0], f"reads view {schema}.{name}: {why[1]}"))
        for schema, table, policy, using, check in catalog.policies:
            for expression in (using, check):
                why = None if expression is None else _not_read(judge, f"SELECT {expression}")
                if why is not None:
                    reason = f"reads table {schema}.{table}, whose row-level security policy"
                    _found(relations, schema, table, ("opaque", f"{reason} {policy} {why[1]}"))
        _types(catalog, judge, relations, calls)
        if (len(relations), len(calls)) == before:
            break
    return TargetCode(relations, calls, overloads)


def _types(
    catalog: TargetCatalog,
    judge: Classifier,
    relations: dict[str, Finding],
    calls: dict[str, Finding],
) -> None:
    """Record conversions where a domain's CHECK is not a read, and relations with a
    column built on such a domain or on a type with a cast whose function is not a read."""
    coded: dict[tuple[str, str], str] = {}
    for schema, domain, _constraint, expression in catalog.domains:
        why = _not_read(judge, f"SELECT {expression}")
        if why is None:
            continue
        check = coded.setdefault(
            (schema, domain), f"domain {schema}.{domain}, whose CHECK {why[1]}"
        )
        for conversion in RECORD_CONVERSIONS:
            calls.setdefault(conversion, (
                "opaque", f"calls {conversion}, which may convert a value to {check}"
            ))  # fmt: skip
    for schema, name, source, target, function_schema, function in catalog.casts:
        why = _not_read(judge, f"SELECT {_quoted(function_schema)}.{_quoted(function)}()")
        if why is not None:
            coded.setdefault((schema, name), (
                f"type {schema}.{name}, whose cast from {source} to {target} {why[1]}"
            ))  # fmt: skip
    for rel_schema, relation, column, of_schema, of_type in catalog.type_columns:
        code = coded.get((of_schema, of_type))
        if code is not None:
            _found(relations, rel_schema, relation, ("opaque", (
                f"reads {rel_schema}.{relation}, whose column {column} is of (or built on)"
                f" {code}: a literal beside the column, or a conversion of it, may run that"
                " with no type in the statement"
            )))  # fmt: skip


def unsafe_operators(operators: Sequence[Operator], judge: Classifier) -> dict[str, Finding]:
    """Each symbol with an operator whose function is not a read → the finding a plain use
    of the symbol calls for (the first such operator names it)."""
    overloads: dict[str, Finding] = {}
    for schema, symbol, left, right, function_schema, function in sorted(operators):
        if symbol in overloads:
            continue
        why = _not_read(judge, f"SELECT {_quoted(function_schema)}.{_quoted(function)}()")
        if why is not None:
            overloads[symbol] = ("opaque", (
                f"uses operator {symbol}, which the target overloads: {schema}.{symbol}"
                f" ({left}, {right}) {why[1]}; the statement's types are not known, so any"
                f" use of {symbol} may run it"
            ))  # fmt: skip
    return overloads


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _not_read(judge: Classifier, sql: str) -> Finding | None:
    """What ``sql`` is when it is not a read: its class and its reasons in words."""
    verdict = Classifier.strictest(judge.classify(sql))
    if verdict.statement_class == "read":
        return None
    return verdict.statement_class, "; ".join(verdict.reasons) or verdict.statement_class


def _found(relations: dict[str, Finding], schema: str, name: str, finding: Finding) -> None:
    qualified = f"{schema}.{name}".lower()
    if qualified not in relations:
        relations[qualified] = finding
        relations.setdefault(name.lower(), finding)
