"""What the classifier knows about PostgreSQL: which settings guard safety, change how SQL
text is read or are harmless, and the class of every statement kind that needs no closer
look (functions are :mod:`guard.builtins`' business).

Statement kinds the walk inspects more closely (DML, SELECT, EXPLAIN, COPY, SET, DROP,
ALTER TABLE, CREATE FUNCTION/RULE, GRANT, …) have handlers in :mod:`guard.walk` instead.
"""

from __future__ import annotations

from guard.verdict import StatementClass

SAFETY_SETTINGS = frozenset(
    {
        # who the session is, and whether it may write
        "role",
        "session_authorization",
        "default_transaction_read_only",
        "transaction_read_only",
        # what guards the data: triggers and foreign keys, row-level security
        "session_replication_role",
        "row_security",
        "lo_compat_privileges",
        # search_path decides what an unqualified name runs (CVE-2018-1058)
        "search_path",
        # code loaded into the backend
        "local_preload_libraries",
        "session_preload_libraries",
        # the server's own record of what ran, and its catalogue safety nets
        "log_statement",
        "log_min_duration_statement",
        "allow_system_table_mods",
        "ignore_system_indexes",
        "zero_damaged_pages",
    }
)
SAFETY_SETTING_PREFIXES = ("pgaudit.",)

LEXING_SETTINGS = frozenset(
    {"client_encoding", "standard_conforming_strings", "backslash_quote", "escape_string_warning"}
)
"""Settings that change how the server reads SQL text; the gateway pins them, so that it
reads the text as the server does."""

# Settings a read-only session may change: its own time limits, memory, output formats and
# planner choices. Any other setting is a ``privilege`` matter.
HARMLESS_SETTINGS = frozenset(
    {
        "statement_timeout",
        "lock_timeout",
        "idle_in_transaction_session_timeout",
        "idle_session_timeout",
        "transaction_timeout",
        "work_mem",
        "hash_mem_multiplier",
        "maintenance_work_mem",
        "temp_buffers",
        "application_name",
        "client_min_messages",
        "datestyle",
        "intervalstyle",
        "timezone",
        "extra_float_digits",
        "bytea_output",
        "xmloption",
        "xmlbinary",
        "lc_monetary",
        "lc_numeric",
        "lc_time",
        "default_text_search_config",
        "default_transaction_isolation",
        "transaction_isolation",
        "default_transaction_deferrable",
        "transaction_deferrable",
        "random_page_cost",
        "seq_page_cost",
        "cpu_tuple_cost",
        "cpu_index_tuple_cost",
        "cpu_operator_cost",
        "effective_cache_size",
        "effective_io_concurrency",
        "jit",
        "jit_above_cost",
        "jit_inline_above_cost",
        "jit_optimize_above_cost",
        "max_parallel_workers_per_gather",
        "parallel_setup_cost",
        "parallel_tuple_cost",
        "parallel_leader_participation",
        "min_parallel_table_scan_size",
        "min_parallel_index_scan_size",
        "from_collapse_limit",
        "join_collapse_limit",
        "geqo",
        "geqo_threshold",
        "geqo_effort",
        "plan_cache_mode",
        "cursor_tuple_fraction",
        "constraint_exclusion",
        "default_statistics_target",
        "recursive_worktable_factor",
        "gin_fuzzy_search_limit",
    }
)
HARMLESS_SETTING_PREFIXES = ("enable_",)  # the planner's method switches


def is_safety_setting(name: str) -> bool:
    """Whether setting ``name`` (any case) is one whose change is a ``privilege`` matter."""
    name = name.lower()
    return name in SAFETY_SETTINGS or name.startswith(SAFETY_SETTING_PREFIXES)


def setting_concern(name: str) -> str | None:
    """Why changing setting ``name`` (any case) is a ``privilege`` matter, in words to follow
    its name; None for a harmless setting (:data:`HARMLESS_SETTINGS`)."""
    name = name.lower()
    if name in LEXING_SETTINGS:
        return "changes how SQL text is read"
    if is_safety_setting(name):
        return "guards safety"
    if name in HARMLESS_SETTINGS or name.startswith(HARMLESS_SETTING_PREFIXES):
        return None
    return "is not a known harmless setting"


# Statement kinds whose class does not depend on their content, with their reason:
# ``{kind}`` becomes the kind of object (e.g. "AGGREGATE"), ``{name}`` the object's name,
# which is appended when the template does not place it.
SIMPLE_STATEMENTS: dict[str, tuple[StatementClass, str]] = {
    "VariableShowStmt": ("read", "SHOW"),
    "ListenStmt": ("read", "LISTEN"),
    "UnlistenStmt": ("read", "UNLISTEN"),
    "NotifyStmt": ("write", "NOTIFY {name} signals other sessions"),
    "DeallocateStmt": ("read", "DEALLOCATE"),
    "DeclareCursorStmt": ("read", "DECLARE CURSOR"),
    "FetchStmt": ("read", "FETCH"),
    "ClosePortalStmt": ("read", "CLOSE"),
    "DiscardStmt": ("read", "DISCARD"),
    "ConstraintsSetStmt": ("read", "SET CONSTRAINTS"),
    "PrepareStmt": ("read", "PREPARE"),
    "ReturnStmt": ("read", "RETURN"),
    "CreateStmt": ("ddl", "CREATE TABLE"),
    "CreateTableAsStmt": ("ddl", "CREATE {kind} AS"),
    "ViewStmt": ("ddl", "CREATE VIEW"),
    "IndexStmt": ("ddl", "CREATE INDEX"),
    "CreateSeqStmt": ("ddl", "CREATE SEQUENCE"),
    "AlterSeqStmt": ("ddl", "ALTER SEQUENCE"),
    "CreateDomainStmt": ("ddl", "CREATE DOMAIN"),
    "AlterDomainStmt": ("ddl", "ALTER DOMAIN"),
    "DefineStmt": ("ddl", "CREATE {kind}"),
    "CompositeTypeStmt": ("ddl", "CREATE TYPE"),
    "CreateEnumStmt": ("ddl", "CREATE TYPE"),
    "AlterEnumStmt": ("ddl", "ALTER TYPE"),
    "CreateRangeStmt": ("ddl", "CREATE TYPE"),
    "AlterTypeStmt": ("ddl", "ALTER TYPE"),
    "CommentStmt": ("ddl", "COMMENT ON {kind}"),
    "RenameStmt": ("ddl", "ALTER {kind} RENAME"),
    "AlterObjectSchemaStmt": ("ddl", "ALTER {kind} SET SCHEMA"),
    "AlterObjectDependsStmt": ("ddl", "ALTER {kind} DEPENDS ON EXTENSION"),
    "CreateTrigStmt": ("ddl", "CREATE TRIGGER"),
    "CreateEventTrigStmt": ("ddl", "CREATE EVENT TRIGGER"),
    "AlterEventTrigStmt": ("ddl", "ALTER EVENT TRIGGER"),
    "CreateSchemaStmt": ("ddl", "CREATE SCHEMA"),
    "CreateFdwStmt": ("ddl", "CREATE FOREIGN DATA WRAPPER"),
    "AlterFdwStmt": ("ddl", "ALTER FOREIGN DATA WRAPPER"),
    "CreateForeignServerStmt": ("ddl", "CREATE SERVER"),
    "AlterForeignServerStmt": ("ddl", "ALTER SERVER"),
    "CreateForeignTableStmt": ("ddl", "CREATE FOREIGN TABLE"),
    "ImportForeignSchemaStmt": ("ddl", "IMPORT FOREIGN SCHEMA"),
    "CreateAmStmt": ("ddl", "CREATE ACCESS METHOD"),
    "CreateCastStmt": ("ddl", "CREATE CAST"),
    "CreateConversionStmt": ("ddl", "CREATE CONVERSION"),
    "CreateOpClassStmt": ("ddl", "CREATE OPERATOR CLASS"),
    "CreateOpFamilyStmt": ("ddl", "CREATE OPERATOR FAMILY"),
    "AlterOpFamilyStmt": ("ddl", "ALTER OPERATOR FAMILY"),
    "AlterOperatorStmt": ("ddl", "ALTER OPERATOR"),
    "CreateTransformStmt": ("ddl", "CREATE TRANSFORM"),
    "CreateStatsStmt": ("ddl", "CREATE STATISTICS"),
    "AlterStatsStmt": ("ddl", "ALTER STATISTICS"),
    "CreatePublicationStmt": ("ddl", "CREATE PUBLICATION"),
    "AlterPublicationStmt": ("ddl", "ALTER PUBLICATION"),
    "AlterSubscriptionStmt": ("ddl", "ALTER SUBSCRIPTION"),
    "CreateTableSpaceStmt": ("ddl", "CREATE TABLESPACE"),
    "AlterTableSpaceOptionsStmt": ("ddl", "ALTER TABLESPACE"),
    "AlterTableMoveAllStmt": ("ddl", "ALTER TABLE ALL IN TABLESPACE"),
    "CreatedbStmt": ("ddl", "CREATE DATABASE"),
    "AlterDatabaseStmt": ("ddl", "ALTER DATABASE"),
    "AlterDatabaseRefreshCollStmt": ("ddl", "ALTER DATABASE REFRESH COLLATION VERSION"),
    "AlterCollationStmt": ("ddl", "ALTER COLLATION"),
    "AlterTSDictionaryStmt": ("ddl", "ALTER TEXT SEARCH DICTIONARY"),
    "AlterTSConfigurationStmt": ("ddl", "ALTER TEXT SEARCH CONFIGURATION"),
    "AlterExtensionContentsStmt": ("ddl", "ALTER EXTENSION ADD/DROP"),
    "ClusterStmt": ("ddl", "CLUSTER"),
    "ReindexStmt": ("ddl", "REINDEX"),
    "RefreshMatViewStmt": ("ddl", "REFRESH MATERIALIZED VIEW"),
    "CheckPointStmt": ("ddl", "CHECKPOINT"),
    "LockStmt": ("ddl", "LOCK TABLE {name} blocks other sessions"),
    "DropdbStmt": ("destructive", "DROP DATABASE"),
    "TruncateStmt": ("destructive", "TRUNCATE"),
    "DropTableSpaceStmt": ("destructive", "DROP TABLESPACE"),
    "DropSubscriptionStmt": ("destructive", "DROP SUBSCRIPTION"),
    "DropOwnedStmt": ("destructive", "DROP OWNED BY"),
    "CreateRoleStmt": ("privilege", "CREATE ROLE"),
    "AlterRoleStmt": ("privilege", "ALTER ROLE"),
    "AlterRoleSetStmt": ("privilege", "ALTER ROLE {name} SET or RESET"),
    "DropRoleStmt": ("privilege", "DROP ROLE"),
    "AlterDefaultPrivilegesStmt": ("privilege", "ALTER DEFAULT PRIVILEGES"),
    "SecLabelStmt": ("privilege", "SECURITY LABEL ON {kind}"),
    "AlterOwnerStmt": ("privilege", "ALTER {kind} {name} changes its owner"),
    "ReassignOwnedStmt": ("privilege", "REASSIGN OWNED BY"),
    "CreatePolicyStmt": ("privilege", "CREATE POLICY"),
    "AlterPolicyStmt": ("privilege", "ALTER POLICY"),
    "CreateUserMappingStmt": ("privilege", "CREATE USER MAPPING"),
    "AlterUserMappingStmt": ("privilege", "ALTER USER MAPPING"),
    "DropUserMappingStmt": ("privilege", "DROP USER MAPPING"),
    "DoStmt": ("opaque", "DO block runs procedural code"),
    "CallStmt": ("opaque", "CALL {name} runs a procedure"),
    "LoadStmt": ("opaque", "LOAD loads a shared library"),
    "CreateExtensionStmt": ("opaque", "CREATE EXTENSION {name} runs its install script"),
    "AlterExtensionStmt": ("opaque", "ALTER EXTENSION {name} runs its update script"),
    "CreatePLangStmt": ("opaque", "CREATE LANGUAGE"),
    "CreateSubscriptionStmt": ("opaque", "CREATE SUBSCRIPTION {name} connects to another server"),
}

# Statement kinds that bind functions into objects called by their own name later.
FUNCTION_BINDING_STATEMENTS = frozenset(
    {"DefineStmt", "CreateCastStmt", "AlterOperatorStmt", "CreateOpClassStmt"}
)

# ALTER TABLE sub-commands that are not plain ``ddl`` (``{name}``: the column or constraint).
ALTER_TABLE_COMMANDS: dict[str, tuple[StatementClass, str]] = {
    "AT_DropColumn": ("destructive", "DROP COLUMN {name}"),
    "AT_AlterColumnType": ("destructive", "ALTER COLUMN {name} TYPE"),
    "AT_DropConstraint": ("destructive", "DROP CONSTRAINT {name}"),
    "AT_ChangeOwner": ("privilege", "OWNER TO"),
    "AT_EnableRowSecurity": ("privilege", "ENABLE ROW LEVEL SECURITY"),
    "AT_DisableRowSecurity": ("privilege", "DISABLE ROW LEVEL SECURITY"),
    "AT_ForceRowSecurity": ("privilege", "FORCE ROW LEVEL SECURITY"),
    "AT_NoForceRowSecurity": ("privilege", "NO FORCE ROW LEVEL SECURITY"),
    "AT_DisableTrig": ("privilege", "DISABLE TRIGGER"),
    "AT_DisableTrigAll": ("privilege", "DISABLE TRIGGER ALL"),
    "AT_DisableTrigUser": ("privilege", "DISABLE TRIGGER USER"),
}
