"""SET, RESET, ``set_config`` and transaction statements: what a session may change.

* SET, SET LOCAL, RESET and SET … TO DEFAULT of a harmless setting
  (:data:`guard.catalog.HARMLESS_SETTINGS`: timeouts, memory, output formats, planner
  switches, …) are ``read``, and so is RESET ALL (it returns to the configured values).
* ``SET client_encoding`` / ``SET NAMES`` to UTF8 (``'UTF8'``, ``'utf-8'``, ``'unicode'``,
  any case) and ``SET standard_conforming_strings`` to on are ``read``: they set exactly
  what the gateway pins. Any other change of a :data:`guard.catalog.LEXING_SETTINGS`
  setting is ``privilege`` ("changes how SQL text is read").
* SET or RESET of any other setting is ``privilege``: safety settings, logging and
  tracking, custom ``app.*`` settings (row-level security policies read them), and every
  setting the gateway does not know.
* ``set_config``: of a setting named at run time, ``opaque``; of one that is not harmless,
  ``privilege``; of a harmless one, ``read``, as the same SET is (asyncpg turns ``jit`` off
  this way before it reads a type's definition), unless a resource's policy denies
  ``set_config`` (then ``opaque``).
* READ WRITE transaction modes are ``privilege`` (they undo a read-only default);
  PREPARE TRANSACTION, COMMIT PREPARED and ROLLBACK PREPARED are ``write``: they keep,
  commit or discard a transaction's changes beyond the session.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from guard.catalog import setting_concern
from guard.tree import Node, options
from guard.values import evaluate, parse_bool

if TYPE_CHECKING:
    from guard.walk import Handler, Walker

_UTF8_NAMES = frozenset({"utf8", "unicode"})
_TWO_PHASE = {
    "TRANS_STMT_PREPARE": "PREPARE TRANSACTION keeps this transaction's changes and locks",
    "TRANS_STMT_COMMIT_PREPARED": "COMMIT PREPARED commits a prepared transaction",
    "TRANS_STMT_ROLLBACK_PREPARED": "ROLLBACK PREPARED discards a prepared transaction",
}


def _variable_set(walker: Walker, body: Node) -> bool:
    kind = body.get("kind")
    name = str(body.get("name", ""))
    if kind == "VAR_SET_MULTI":
        _transaction_modes(walker, body.get("args"))
        return True
    concern = None if kind == "VAR_RESET_ALL" else setting_concern(name)
    if concern is None or (kind == "VAR_SET_VALUE" and _pinned(walker, name, body.get("args"))):
        return True
    verb = "RESET" if kind == "VAR_RESET" else "SET LOCAL" if body.get("is_local") else "SET"
    walker.add("privilege", f"{verb} {name} ({concern})")
    return True


def _pinned(walker: Walker, name: str, args: object) -> bool:
    """Whether SET ``name`` TO ``args`` sets the value the gateway pins."""
    name = name.lower()
    if name not in ("client_encoding", "standard_conforming_strings"):
        return False
    if type(args) is not list or len(args) != 1:
        return False
    value = evaluate(args[0], walker.deps)
    if type(value) is Decimal:
        value = str(value)
    if type(value) is not str:
        return False
    if name == "client_encoding":
        # PostgreSQL matches encoding names ignoring case and everything but letters and digits
        return "".join(c for c in value.lower() if c.isalnum()) in _UTF8_NAMES
    return parse_bool(value) is True


def set_config(walker: Walker, args: list[object], denied: bool) -> None:
    """Judge a call of ``set_config(setting, value, is_local)``; ``denied``: whether
    ``set_config`` is a denied function."""
    setting = evaluate(args[0], walker.deps)
    if type(setting) is not str:
        walker.add("opaque", "set_config of a setting named at run time")
        return
    concern = setting_concern(setting)
    if concern is not None:
        walker.add("privilege", f"set_config of {setting.lower()} ({concern})")
    elif denied:
        walker.add("opaque", "calls set_config")


def _transaction(walker: Walker, body: Node) -> bool:
    two_phase = _TWO_PHASE.get(str(body.get("kind")))
    if two_phase is not None:
        walker.add("write", two_phase)
    _transaction_modes(walker, body.get("options"))
    return True


def _transaction_modes(walker: Walker, items: object) -> None:
    """READ WRITE can undo a read-only default the operator set; other modes are harmless."""
    mode = options(items).get("transaction_read_only")
    if mode is not None and evaluate(mode, walker.deps) == 0:
        walker.add("privilege", "READ WRITE overrides a read-only transaction default")


HANDLERS: dict[str, Handler] = {
    "VariableSetStmt": _variable_set,
    "TransactionStmt": _transaction,
}
