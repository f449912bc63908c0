"""Guardrails: every statement's class, from PostgreSQL's own parse tree (libpg_query via
pgparse), walked whole — CTEs, subqueries, function arguments, ORDER BY, RULE actions and SQL
function bodies included. Comments, case, quoting, dollar-quoted and ``U&"…"`` text are the
parser's business; strings that mention DROP are just data.

Classes, most dangerous first (the order :meth:`Classifier.strictest` uses)::

    destructive > opaque > privilege > ddl > write > read

``read``
    SELECT, VALUES, TABLE, SHOW; BEGIN/COMMIT/ROLLBACK/SAVEPOINT/RELEASE and transaction
    modes other than READ WRITE; harmless SET/RESET, RESET ALL and DISCARD (they return to
    the role's and database's configured settings); LISTEN/UNLISTEN/NOTIFY; PREPARE of a read,
    DEALLOCATE, DECLARE/FETCH/MOVE/CLOSE; COPY … TO STDOUT; EXPLAIN without ANALYZE, of
    anything (nothing in it runs).
``write``
    INSERT; UPDATE/DELETE (also … FROM / … USING) whose WHERE depends on the target's rows;
    MERGE without a DELETE action; COPY … FROM STDIN; SELECT … FOR UPDATE/SHARE (row locks);
    calls to functions that change data (``setval``, large-object writers).
``ddl``
    CREATE/ALTER of objects, COMMENT, CREATE INDEX/TRIGGER/VIEW/RULE (without DML), REINDEX,
    CLUSTER, REFRESH MATERIALIZED VIEW, VACUUM, ANALYZE, CHECKPOINT, SELECT INTO; LOCK TABLE
    (no data changes, but it blocks other sessions, so it is held like a schema change).
``destructive``
    DROP of any object kind but roles, DROP DATABASE/TABLESPACE/SUBSCRIPTION/OWNED, TRUNCATE;
    UPDATE/DELETE without WHERE or with a tautological one (:mod:`guard.where`); MERGE …
    THEN DELETE; ALTER TABLE … DROP COLUMN / ALTER COLUMN TYPE / DROP CONSTRAINT; DML inside
    any CTE; EXPLAIN ANALYZE of DML (or of EXECUTE of a write); a RULE whose actions or a SQL
    function whose body contains DML (a CREATE TRIGGER is ``ddl``: the function it runs was
    judged when it was created).
``privilege``
    GRANT/REVOKE, ALTER DEFAULT PRIVILEGES, ownership changes and REASSIGN OWNED, SECURITY
    LABEL, policies, user mappings, SECURITY DEFINER functions; CREATE/ALTER/DROP
    ROLE/USER/GROUP (roles are access control, so DROP ROLE is here, not ``destructive``);
    ALTER SYSTEM; SET/SET LOCAL/RESET of a safety setting (:data:`SAFETY_SETTINGS`: role,
    session authorization, read-only defaults, session_replication_role, row_security,
    search_path, audit logging, preload libraries, …), ALTER DATABASE/ROLE … SET of one,
    READ WRITE transaction modes; ``set_config`` of a safety setting named by a literal;
    ALTER TABLE … OWNER TO / ROW LEVEL SECURITY / DISABLE TRIGGER; a function's own SET of a
    safety setting; DML on a system catalog (``UPDATE pg_settings`` is SET in disguise).
``opaque``
    DO, CALL, LOAD, CREATE/ALTER EXTENSION (install scripts run arbitrary SQL), CREATE
    LANGUAGE, CREATE SUBSCRIPTION; functions in any language but SQL (PL/pgSQL bodies are not
    inspected); COPY … PROGRAM and COPY to or from a server file; EXECUTE of a prepared name
    the session does not know; a call anywhere to a denied function
    (:data:`DEFAULT_DENIED_FUNCTIONS`, configurable, matched case-insensitively on the
    unqualified name), or an aggregate, operator or cast built on one; ``set_config`` of a
    setting named at run time, or — while ``set_config`` is denied, as by default — of any
    setting that is not a safety setting; statement kinds the classifier does not know;
    anything that does not parse, contains a NUL character or nests too deeply to walk (a
    few hundred levels of operators).

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
