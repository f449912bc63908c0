"""The :class:`Classifier`: SQL text in, one :class:`StatementVerdict` per statement out.

Pure and I/O-free; it never raises. Text that does not parse, contains a NUL character (the
parser would stop there, the server would refuse it) or nests too deeply to walk is one
``opaque`` verdict.

Caching. Two bounded maps (oldest entry evicted first), neither of which can answer wrong:

* by the exact text: any verdict that does not depend on the session's prepared statements;
* by the text as ``pgparse.normalize`` writes it, every constant replaced by ``$n`` — so
  ``… WHERE aid = 1`` and ``… WHERE aid = 2`` share an entry — but only for a single
  statement whose verdict read no literal's value (see :class:`~guard.values.Dependencies`):
  ``WHERE 1=1`` and ``WHERE 1=2``, ``set_config('role', …)`` and ``set_config('x', …)``,
  ``EXPLAIN (ANALYZE false)`` never share one.

In front of those, a third map answers the commonest traffic — the same statement with
other numbers, as pgbench and ORMs send it — without calling the parser: for plain ASCII
text (no quotes, dollar signs, backslashes or comments) the key is the text with every digit
written as ``0`` (one ``bytes.translate``: each digit run keeps its place and its length).
An entry is stored there only when every digit run of the text stands alone (no letter,
digit, ``_``, ``.`` or ``$`` beside it) and the key with each run numbered ``$1…$n`` is
exactly what ``pgparse.normalize`` made of the text: every run is an integer constant the
parser replaced and nothing else was. A ``-`` before a run may have gone into the
placeholder with it: the parser folds a unary minus into the constant (``abalance +
-1234``), never a binary one (``x -1``, ``x - 1``); which it is depends on the tokens
before the minus, never on the digits, so it is the same for every text with the key. Two
texts with the same key have the same characters everywhere but in those runs, integer
constants in both, and share the normalized entry's verdict. (A text with a digit in an
identifier, ``t1``, is never stored there; the normalized map still answers it.)

The normalized text is used rather than ``pgparse.fingerprint``: a fingerprint is a 64-bit
non-cryptographic hash (collisions can be crafted) and ignores more than literals (the names
of prepared statements, for one). Texts longer than :data:`MAX_CACHED_LENGTH` are not cached.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

import pgparse  # type: ignore[import-not-found]

from guard.builtins import DEFAULT_DENIED_FUNCTIONS
from guard.calls import CallRules
from guard.values import Dependencies
from guard.verdict import (
    ALL_PREPARED,
    Finding,
    StatementClass,
    StatementVerdict,
    merge,
    strictest,
)
from guard.walk import Walker

MAX_CACHED_LENGTH = 8192

# Every digit becomes "0"; the marks of text whose digits may not be integer tokens
# (strings, quoted identifiers, dollar quotes and parameters, escapes) all become a quote,
# so one search finds any of them; comments are found in the text.
_NUMBERS_TABLE = bytes.maketrans(b'123456789"$\\', b"000000000'''")
_QUOTE = ord("'")
# A run of zeros in a key that is a token by itself.
_LONE_RUN = re.compile(rb"(?<![\w.$])0+(?![\w.$])")
_ZERO_RUN = re.compile(rb"00+")

_K = TypeVar("_K")
_V = TypeVar("_V")
_ShapeEntry = tuple[StatementClass, tuple[str, ...], str | None]


class Classifier:
    """Classifies SQL text; one instance may serve every session (it keeps no session state:
    pass the session's prepared statements to :meth:`classify`)."""

    __slots__ = ("_by_numbers", "_by_shape", "_by_text", "_cache_size", "_rules")

    def __init__(
        self,
        *,
        denied_functions: Iterable[str] = DEFAULT_DENIED_FUNCTIONS,
        allowed_functions: Iterable[str] = (),
        target_functions: Iterable[str] = (),
        target_views: Mapping[str, Finding] | None = None,
        target_calls: Mapping[str, Finding] | None = None,
        target_operators: Mapping[str, Finding] | None = None,
        cache_size: int = 10_000,
    ) -> None:
        """``denied_functions``: names (matched unqualified, any case: ``pg_catalog.PG_SLEEP``
        is ``pg_sleep``) whose call is ``opaque`` wherever it is. ``allowed_functions``:
        functions a ``read`` may call besides the built-in allow-list — ``schema.f`` allows
        ``f`` written with that schema or none, ``f`` allows it in any schema (any case;
        a denied name stays denied). ``target_functions``: the names of the functions the
        target database defines itself (:data:`guard.builtins.TARGET_FUNCTIONS_QUERY` reads
        them), so that ``c.f`` (attribute notation for ``f(c)``) and an unqualified call that
        one of them could answer are not taken for reads. ``target_views``: the target's
        views whose definitions are not reads, as ``view`` and ``schema.view`` (lower case)
        → the finding a read of one calls for (:mod:`guard.resources` builds it); tables
        whose row-level security policies run such code are there too.
        ``target_calls``: built-in functions (unqualified, lower case) that run code of
        the target's own there, such as a record conversion that checks a domain → the
        finding a call of one calls for (:mod:`guard.catalog_code`). ``target_operators``:
        operator symbols the target overloads with an operator of its own whose function is
        not a read → the finding any use of the symbol, written plainly, calls for."""
        self._rules = CallRules(
            denied=denied_functions,
            allowed=allowed_functions,
            target=target_functions,
            relations=target_views,
            calls=target_calls,
            operators=target_operators,
        )
        self._cache_size = cache_size
        self._by_text: dict[str, tuple[StatementVerdict, ...]] = {}
        self._by_shape: dict[str, _ShapeEntry] = {}
        self._by_numbers: dict[bytes, _ShapeEntry] = {}

    def classify(
        self, sql: str, *, prepared: Mapping[str, StatementClass] | None = None
    ) -> list[StatementVerdict]:
        """One verdict per statement of ``sql``, in order; an empty query is one ``read``.

        ``prepared`` maps the session's SQL-level prepared statement names to their class,
        for ``EXECUTE name`` (an unknown name is ``opaque``). A ``PREPARE`` earlier in the
        same text counts too. Callers record each verdict's ``prepared_name``."""
        cached = self._by_text.get(sql)
        if cached is not None:
            return list(cached)
        numbers = numbers_key(sql)
        if numbers is not None:
            entry = self._by_numbers.get(numbers)
            if entry is not None:
                return [StatementVerdict(entry[0], entry[1], sql.strip(), entry[2])]
        shape = self._shape(sql)
        if shape is not None:
            entry = self._by_shape.get(shape)
            if entry is not None:
                # Same statement with other numbers: next time the key answers.
                if numbers is not None and _matches(numbers, shape):
                    self._remember(self._by_numbers, numbers, entry)
                elif numbers is None and "'" not in sql:
                    # A text without a numbers key or a string, such as a parameterized
                    # one ("... WHERE aid = $1"), comes back as it is: remember it so that
                    # memo_key names it (the shape cache alone cannot).
                    verdict = StatementVerdict(entry[0], entry[1], sql.strip(), entry[2])
                    self._remember(self._by_text, sql, (verdict,))
                    return [verdict]
                return [StatementVerdict(entry[0], entry[1], sql.strip(), entry[2])]
        deps = Dependencies()
        try:
            verdicts = _classify_text(sql, prepared or {}, self._rules, deps)
        except RecursionError:
            return [_opaque(sql, "nests too deeply to classify")]
        except Exception as exc:  # fail closed: whatever went wrong, the statement is opaque
            return [_opaque(sql, f"could not be classified ({type(exc).__name__})")]
        if not deps.prepared and len(sql) <= MAX_CACHED_LENGTH:
            self._remember(self._by_text, sql, tuple(verdicts))
            if shape is not None and not deps.literals and len(verdicts) == 1:
                only = verdicts[0]
                entry = (only.statement_class, only.reasons, only.prepared_name)
                self._remember(self._by_shape, shape, entry)
                if numbers is not None and _matches(numbers, shape):
                    self._remember(self._by_numbers, numbers, entry)
        return verdicts

    def memo_key(self, sql: str) -> str | bytes | None:
        """A key under which a caller may remember what it made of ``sql``'s verdict: the
        text itself when the exact-text map holds it as one statement, else its number key
        when the number map holds that (every text with the key is the same statement up
        to integer constants, with the same verdict). None when neither does, and for a
        ``PREPARE`` (the caller must record its name each time)."""
        cached = self._by_text.get(sql)
        if cached is not None:
            return sql if len(cached) == 1 and cached[0].prepared_name is None else None
        key = numbers_key(sql)
        entry = None if key is None else self._by_numbers.get(key)
        return key if entry is not None and entry[2] is None else None

    @staticmethod
    def strictest(verdicts: Sequence[StatementVerdict]) -> StatementVerdict:
        """The most dangerous verdict: destructive > opaque > privilege > ddl > write > read."""
        return strictest(verdicts)

    def _shape(self, sql: str) -> str | None:
        if self._cache_size <= 0 or len(sql) > MAX_CACHED_LENGTH or "\x00" in sql:
            return None
        try:
            shape: str = pgparse.normalize(sql)
        except Exception:  # not parseable: classified (and cached) by its exact text
            return None
        return shape

    def _remember(self, store: dict[_K, _V], key: _K, value: _V) -> None:
        if self._cache_size <= 0:
            return
        if len(store) >= self._cache_size:
            store.pop(next(iter(store)), None)
        store[key] = value


def numbers_key(sql: str) -> bytes | None:
    """``sql`` with every run of digits as one ``0`` (so numbers of any length share the
    key), when it is plain ASCII without strings, quoted names, dollar signs, escapes or
    comments; None otherwise."""
    if len(sql) > MAX_CACHED_LENGTH or not sql.isascii():
        return None
    if "--" in sql or "/*" in sql:
        return None
    key = sql.encode("ascii").translate(_NUMBERS_TABLE)
    # an int operand: CPython searches a one-byte bytes needle far more slowly
    if _QUOTE in key:
        return None
    return _ZERO_RUN.sub(b"0", key) if b"00" in key else key


def _matches(key: bytes, shape: str) -> bool:
    """Whether ``shape`` is the key's text with every digit run replaced by the next
    ``$n`` — or a ``-`` and the run after it, where the parser took the minus for the
    constant's sign (``abalance + -1234`` normalizes to ``abalance + $1``, ``x -1`` to
    ``x -$1``). False when some run is not a token by itself."""
    parts = _LONE_RUN.split(key)
    if any(b"0" in part for part in parts):
        return False
    position = 0
    for number, part in enumerate(parts[:-1], 1):
        text = part.decode("ascii")
        placeholder = f"${number}"
        if shape.startswith(text + placeholder, position):
            position += len(text) + len(placeholder)
        elif text.endswith("-") and shape.startswith(text[:-1] + placeholder, position):
            position += len(text) - 1 + len(placeholder)
        else:
            return False
    return shape[position:] == parts[-1].decode("ascii")


def _opaque(sql: str, reason: str) -> StatementVerdict:
    return StatementVerdict("opaque", (reason,), sql.strip())


def _classify_text(
    sql: str,
    prepared: Mapping[str, StatementClass],
    rules: CallRules,
    deps: Dependencies,
) -> list[StatementVerdict]:
    if "\x00" in sql:
        return [_opaque(sql, "contains a NUL character")]
    try:
        tree: list[dict[str, Any]] = pgparse.parse(sql)
    except pgparse.PGQueryError as exc:
        return [_opaque(sql, f"does not parse: {exc.message}")]
    if not tree:
        return [StatementVerdict("read", (), sql.strip())]
    verdicts = []
    for entry, text in zip(tree, _statement_texts(sql, tree), strict=True):
        statement = entry.get("stmt", {})
        walker = Walker(rules, prepared, deps)
        walker.walk(statement)
        statement_class, reasons = merge(walker.findings)
        name = statement.get("PrepareStmt", {}).get("name")
        if name is not None:
            prepared = {**prepared, name: statement_class}
        released = _deallocated(statement)
        if released is not None:
            # Not cached: the shape of DEALLOCATE a is the shape of DEALLOCATE b.
            deps.prepared = True
            prepared = {k: v for k, v in prepared.items() if released not in (k, ALL_PREPARED)}
        verdicts.append(StatementVerdict(statement_class, reasons, text, name, released))
    return verdicts


def _deallocated(statement: dict[str, Any]) -> str | None:
    """The prepared statement a DEALLOCATE drops, :data:`ALL_PREPARED` for DEALLOCATE ALL
    and DISCARD ALL, None for any other statement."""
    deallocate = statement.get("DeallocateStmt")
    if deallocate is not None:
        return ALL_PREPARED if deallocate.get("isall") else str(deallocate.get("name", ""))
    if statement.get("DiscardStmt", {}).get("target") == "DISCARD_ALL":
        return ALL_PREPARED
    return None


def _statement_texts(sql: str, tree: list[dict[str, Any]]) -> list[str]:
    """Each statement's own text; libpg_query's offsets count UTF-8 bytes."""
    if len(tree) == 1:
        return [sql.strip()]
    ascii_only = sql.isascii()
    data: str | bytes = sql if ascii_only else sql.encode()
    texts = []
    for entry in tree:
        start = entry.get("stmt_location", 0)
        length = entry.get("stmt_len", 0)
        piece = data[start : start + length] if length else data[start:]
        texts.append((piece if isinstance(piece, str) else piece.decode(errors="replace")).strip())
    return texts
