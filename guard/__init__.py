"""Guardrails: every statement's class, from PostgreSQL's own parse tree (libpg_query via
pgparse), walked whole — CTEs, subqueries, function arguments, ORDER BY, RULE actions and SQL
function bodies included. Comments, case, quoting, dollar-quoted and ``U&"…"`` text are the
parser's business; strings that mention DROP are just data.

Classes, most dangerous first (the order :meth:`Classifier.strictest` uses)::

    destructive > opaque > privilege > ddl > write > read

``read``
    An allow-list, not a deny-list: a statement is ``read`` only when everything in it is
    known to leave data, other sessions and the server's settings alone — SELECT, VALUES,
    TABLE, SHOW, EXPLAIN (not ANALYZE) and DECLARE/FETCH/MOVE/CLOSE, COPY … TO STDOUT,
    PREPARE of a read, DEALLOCATE, DISCARD, LISTEN/UNLISTEN, BEGIN/COMMIT/ROLLBACK/
    SAVEPOINT/RELEASE and transaction modes other than READ WRITE — whose every function,
    aggregate and operator is on the allow-list :mod:`guard.builtins` makes from
    ``pg_proc``/``pg_operator`` of the supported versions (pg_catalog, immutable or stable,
    not SECURITY DEFINER, not set apart; a few volatile readers such as ``random`` and
    ``pg_sleep``), or in the caller's ``allowed_functions``; whose casts are to built-in
    types; and that changes no setting but harmless ones (:mod:`guard.settings`: timeouts,
    memory, formats, planner switches; RESET ALL; ``client_encoding`` UTF8 and
    ``standard_conforming_strings`` on, the values the gateway pins). What an EXPLAIN
    plans, EXECUTE's parameters, a DECLARE's or a COPY's query, CTEs and subqueries are
    judged as if they ran (EXPLAIN's DML is only planned). Anything else is not ``read``.
``write``
    INSERT; UPDATE/DELETE (also … FROM / … USING) whose WHERE provably limits the target's
    rows (:mod:`guard.where`); MERGE without a DELETE action whose join condition does;
    COPY … FROM STDIN; SELECT … FOR UPDATE/SHARE (row locks); NOTIFY; PREPARE TRANSACTION,
    COMMIT/ROLLBACK PREPARED; calls to built-ins that change data or signal other sessions
    (``setval``, ``nextval``, large-object writers, ``pg_notify``).
``ddl``
    CREATE/ALTER of objects, COMMENT, CREATE INDEX/TRIGGER/VIEW/RULE (without DML), REINDEX,
    CLUSTER, REFRESH MATERIALIZED VIEW, VACUUM, ANALYZE, CHECKPOINT, SELECT INTO; LOCK TABLE
    (no data changes, but it blocks other sessions, so it is held like a schema change).
``destructive``
    DROP of any object kind but roles, DROP DATABASE/TABLESPACE/SUBSCRIPTION/OWNED, TRUNCATE;
    UPDATE/DELETE without WHERE or with one that does not provably limit the rows
    (:mod:`guard.where`); MERGE … THEN DELETE and MERGE … WHEN NOT MATCHED BY SOURCE THEN
    UPDATE; ALTER TABLE … DROP COLUMN / ALTER COLUMN TYPE / DROP CONSTRAINT; DML inside any
    CTE; EXPLAIN ANALYZE of DML (or of EXECUTE of a write); a RULE whose actions or a SQL
    function whose body contains DML (a CREATE TRIGGER is ``ddl``: the function it runs was
    judged when it was created).
``privilege``
    GRANT/REVOKE, ALTER DEFAULT PRIVILEGES, ownership changes and REASSIGN OWNED, SECURITY
    LABEL, policies, user mappings, SECURITY DEFINER functions; CREATE/ALTER/DROP
    ROLE/USER/GROUP (roles are access control, so DROP ROLE is here, not ``destructive``);
    ALTER SYSTEM; SET/SET LOCAL/RESET of any setting that is not harmless — safety settings
    (:data:`SAFETY_SETTINGS`: role, session authorization, read-only defaults,
    session_replication_role, row_security, search_path, audit logging, …), settings that
    change how SQL text is read (:data:`LEXING_SETTINGS`, but for the pinned values),
    logging and tracking, custom ``app.*`` settings, any the gateway does not know — and
    ALTER DATABASE/ROLE … SET of one; READ WRITE transaction modes; ``set_config`` of such
    a setting named by a literal; ALTER TABLE … OWNER TO / ROW LEVEL SECURITY / DISABLE
    TRIGGER; a function's own SET of one; DML on a system catalog (``UPDATE pg_settings``
    is SET in disguise).
``opaque``
    DO, CALL, LOAD, CREATE/ALTER EXTENSION (install scripts run arbitrary SQL), CREATE
    LANGUAGE, CREATE SUBSCRIPTION; functions in any language but SQL (PL/pgSQL bodies are not
    inspected); COPY … PROGRAM and COPY to or from a server file; EXECUTE of a prepared name
    the session does not know; a call anywhere of a function, aggregate or operator that
    is not on the allow-list (``wipe()``, ``crosstab``, ``dblink*``, advisory locks,
    ``txid_current``, stats resets, WAL and replication-slot functions, ``OPERATOR(s.op)``
    outside pg_catalog, ``table_to_xml`` and the other readers of relations or types named
    at run time), a cast to a type that is not built in, ``c.f`` where ``f`` is one
    of the caller's ``target_functions`` (attribute notation for ``f(c)``); a plain
    operator symbol of the caller's ``target_operators``; a read of a relation of the
    caller's ``target_views`` (a view whose definition is not a read, a table whose policy
    is not, a relation with a column built on a domain whose CHECK, or on a type whose
    cast, is not); a call of a
    denied function (:data:`DEFAULT_DENIED_FUNCTIONS`, configurable, matched
    case-insensitively on the unqualified name; denied even when allowed), or an
    aggregate, operator or cast built on one; ``set_config`` of a setting named at run
    time, or — where ``set_config`` is denied — of a harmless one;
    statement kinds the classifier does not know;
    anything that does not parse, contains a NUL character or nests too deeply to walk (a
    few hundred levels of operators).

What ``read`` cannot see, and the reader credential must catch: the bodies of views and
the policies of tables a query reads, the CHECKs of domains a record conversion or a
literal beside a column of the domain reaches, the casts of a database's own types that
``to_json`` or an implicit conversion of a column runs, and the functions of operators a
database defines under a built-in symbol, unless the caller passes what the target's
catalog says of them (``Classifier(target_views=…, target_calls=…, target_operators=…)``,
:mod:`guard.catalog_code`; which overload of a symbol answers is not known without types,
so any plain use of an overloaded symbol is ``opaque``); overloads of a built-in function
name that a database defines for its own types; attribute notation (``c.f`` meaning
``f(c)``) and unqualified calls a target's own function could answer, unless the caller
passes the target's function names (``Classifier(target_functions=…)``).

A statement's class is the strictest of everything found in it; its reasons list each
finding above ``read``, most dangerous first. ``PREPARE name AS …`` has the class of what it
prepares and sets ``prepared_name``; ``EXECUTE name`` has the class the session remembered;
``DEALLOCATE name`` sets ``deallocated`` (``ALL_PREPARED`` for ``DEALLOCATE ALL`` and
``DISCARD ALL``) so the relay forgets the text a Parse prepared under it; a session's
memory of a name's class never gets milder (``proxy.hooks.remember_prepared``). The relay
judges a protocol Bind of a name no Parse prepared as ``EXECUTE name``.
"""

from guard.builtins import DEFAULT_DENIED_FUNCTIONS
from guard.catalog import LEXING_SETTINGS, SAFETY_SETTINGS
from guard.classify import Classifier
from guard.verdict import StatementClass, StatementVerdict

__all__ = [
    "DEFAULT_DENIED_FUNCTIONS",
    "LEXING_SETTINGS",
    "SAFETY_SETTINGS",
    "Classifier",
    "StatementClass",
    "StatementVerdict",
]
