"""Which built-in functions, operators and types a ``read`` may use: the allow-list.

It is made from the facts :mod:`guard.allowlist_gen` read out of ``pg_proc``,
``pg_operator`` and ``pg_type`` of every supported PostgreSQL major version
(``guard/data/pg<major>.txt``) by one rule. A pg_catalog function name is allowed when, in
**every** shipped version, it exists and each of its overloads

* is ``IMMUTABLE`` or ``STABLE`` (or the name is one of :data:`HARMLESS_VOLATILE`:
  volatile, but it only reads — ``random``, ``clock_timestamp``, ``gen_random_uuid``,
  ``pg_sleep``, the size and WAL-position functions, ``currval``, …),
* is not ``SECURITY DEFINER``,
* and the name is not on :data:`NOT_READS` (stable or immutable by declaration, yet they
  read files, run SQL from a string, read relations or types named at run time — whose
  views, policies and domain CHECKs run there, out of the classifier's sight — or assign a
  transaction id).

An operator symbol is allowed when every pg_catalog operator of that symbol runs an allowed
function; a type when it is in pg_catalog (or, written with the schema, information_schema)
in every version. Requiring every version keeps the list right whatever the target runs:
a function new in one version is not a read on another, where a user's function of that
name could answer the call.

What the list cannot see: overloads of a built-in name or operator symbol that a database
defines for its own types in another schema, and functions the target defines, unless the
caller names them (``Classifier(target_functions)``, ``Classifier(target_operators)``, which
:mod:`guard.resources` reads from the target's catalog); the reader credential is the net.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

DATA_DIR = Path(__file__).parent / "data"
SHIPPED_VERSIONS = (15, 18)

TARGET_FUNCTIONS_QUERY = """
SELECT DISTINCT p.proname FROM pg_proc p
WHERE p.pronamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
"""
"""The names of the functions a database defines itself, for ``Classifier(target_functions)``."""

HARMLESS_VOLATILE = frozenset(
    {
        # values that differ per call, nothing else
        "random",
        "random_normal",
        "clock_timestamp",
        "timeofday",
        "gen_random_uuid",
        # waiting ties up only the session's own backend, as any long query does, and the
        # resource's statement_timeout ends it
        "pg_sleep",
        "pg_sleep_for",
        "pg_sleep_until",
        # sizes, recovery and WAL positions, locks: what support engineers look up
        "pg_relation_size",
        "pg_table_size",
        "pg_indexes_size",
        "pg_total_relation_size",
        "pg_database_size",
        "pg_tablespace_size",
        "pg_is_in_recovery",
        "pg_is_wal_replay_paused",
        "pg_get_wal_replay_pause_state",
        "pg_current_wal_lsn",
        "pg_current_wal_insert_lsn",
        "pg_current_wal_flush_lsn",
        "pg_last_wal_receive_lsn",
        "pg_last_wal_replay_lsn",
        "pg_last_xact_replay_timestamp",
        "pg_blocking_pids",
        "pg_safe_snapshot_blocking_pids",
        "pg_lock_status",
        "pg_partition_tree",
        "pg_partition_ancestors",
        "pg_xact_status",
        "txid_status",
        "pg_jit_available",
        "pg_notification_queue_usage",
        # the session's own sequence state, read back
        "currval",
        "lastval",
    }
)

RELATION_READERS = (
    "table_to_xml",
    "table_to_xmlschema",
    "table_to_xml_and_xmlschema",
    "schema_to_xml",
    "schema_to_xmlschema",
    "schema_to_xml_and_xmlschema",
    "database_to_xml",
    "database_to_xmlschema",
    "database_to_xml_and_xmlschema",
)
"""Built-ins that read the rows of relations named by their arguments (a ``regclass``, a
schema's name, the whole database) when they run."""

NOT_READS = frozenset(
    {
        # assign a transaction id (a write to the server's state, visible to VACUUM)
        "txid_current",
        "pg_current_xact_id",
        # the server's files, and SQL run from a string out of the classifier's sight
        "pg_read_file",
        "pg_read_binary_file",
        "pg_stat_file",
        "pg_ls_dir",
        "query_to_xml",
        "query_to_xmlschema",
        "query_to_xml_and_xmlschema",
        "cursor_to_xml",
        "cursor_to_xmlschema",
        "ts_stat",
        "ts_rewrite",
        # relations named by a value at run time, read (or described) out of the
        # classifier's sight: a view's definition and a table's policies run there
        *RELATION_READERS,
        # values read as a type named at run time: a domain's CHECK runs there
        "array_in",
        "record_in",
        "domain_in",
        "range_in",
        "multirange_in",
        # CREATE FUNCTION's validators: the C one loads the function's shared library
        "fmgr_c_validator",
        "fmgr_internal_validator",
        "fmgr_sql_validator",
        # settings are judged as SET is (guard.queries)
        "set_config",
    }
)


DEFAULT_DENIED_FUNCTIONS = frozenset(
    {
        # other sessions and the server itself
        "pg_terminate_backend",
        "pg_cancel_backend",
        "pg_reload_conf",
        "pg_rotate_logfile",
        "pg_promote",
        "pg_create_physical_replication_slot",
        "pg_create_logical_replication_slot",
        "pg_drop_replication_slot",
        # other servers
        "dblink",
        "dblink_exec",
        "dblink_connect",
        "dblink_connect_u",
        "dblink_send_query",
        "dblink_open",
        # the server's file system and large objects
        "lo_import",
        "lo_export",
        "lo_unlink",
        "pg_read_file",
        "pg_read_binary_file",
        "pg_ls_dir",
        "pg_stat_file",
        "pg_file_write",
        "pg_file_unlink",
        "pg_file_rename",
        "pg_ls_logdir",
        "pg_ls_waldir",
        "pg_ls_tmpdir",
        "pg_ls_archive_statusdir",
        # SQL run from a string, out of the classifier's sight
        "query_to_xml",
        "query_to_xmlschema",
        "query_to_xml_and_xmlschema",
        "ts_stat",
        "ts_rewrite",
        # relations named at run time: their views' and policies' code, out of sight too
        *RELATION_READERS,
    }
)

# Functions that change data or signal other sessions: a SELECT calling one is a write.
WRITE_FUNCTIONS = {
    "setval": "changes data",
    "nextval": "changes data",
    "lo_create": "changes data",
    "lo_creat": "changes data",
    "lo_from_bytea": "changes data",
    "lo_put": "changes data",
    "lowrite": "changes data",
    "lo_truncate": "changes data",
    "lo_truncate64": "changes data",
    "pg_notify": "signals other sessions",
}


class Facts:
    """One version's facts: function volatilities, operator functions, type names."""

    __slots__ = ("definers", "functions", "operators", "types")

    def __init__(self, text: str) -> None:
        self.functions: dict[str, str] = {}
        self.definers: set[str] = set()
        self.operators: dict[str, list[str]] = {}
        self.types: set[str] = set()
        for line in text.splitlines():
            kind, _, rest = line.partition(" ")
            if kind == "function":
                name, volatility, *flags = rest.split(" ")
                self.functions[name] = volatility
                if "definer" in flags:
                    self.definers.add(name)
            elif kind == "operator":
                symbol, functions = rest.split(" ")
                self.operators[symbol] = functions.split(",")
            elif kind == "type":
                self.types.add(rest)

    def read_functions(self) -> set[str]:
        return {
            name
            for name, volatility in self.functions.items()
            if (set(volatility) <= {"i", "s"} or name in HARMLESS_VOLATILE)
            and name not in self.definers
            and name not in NOT_READS
        }


@cache
def facts(major: int) -> Facts:
    return Facts((DATA_DIR / f"pg{major}.txt").read_text())


@cache
def read_functions() -> frozenset[str]:
    """pg_catalog function names (exact case) a ``read`` may call."""
    per_version = [facts(major).read_functions() for major in SHIPPED_VERSIONS]
    return frozenset(set.intersection(*per_version))


@cache
def read_operators() -> frozenset[str]:
    """pg_catalog operator symbols a ``read`` may use."""
    allowed = read_functions()
    per_version = [
        {op for op, functions in facts(major).operators.items() if allowed.issuperset(functions)}
        for major in SHIPPED_VERSIONS
    ]
    return frozenset(set.intersection(*per_version))


@cache
def builtin_types() -> frozenset[str]:
    """``schema.name`` of the types in pg_catalog and information_schema."""
    return frozenset(set.intersection(*(facts(major).types for major in SHIPPED_VERSIONS)))
