"""Every error the gateway itself sends to a Postgres client, as a named constructor.

Each returns the wire bytes of an ErrorResponse. Severity ERROR leaves the session usable
(the relay follows it with ReadyForQuery); FATAL is reserved for when the connection must
end: failed authentication, an unknown resource, a broken protocol stream, shutdown.
"""

from __future__ import annotations

from collections.abc import Sequence

from proxy.messages import ErrorResponse, NoticeResponse


def _error(code: str, message: str, *, detail: str | None = None, hint: str | None = None) -> bytes:
    return ErrorResponse.build("ERROR", code, message, detail=detail, hint=hint).encode()


def _fatal(code: str, message: str, *, detail: str | None = None, hint: str | None = None) -> bytes:
    return ErrorResponse.build("FATAL", code, message, detail=detail, hint=hint).encode()


def _reasons(reasons: Sequence[str]) -> str | None:
    return "; ".join(reasons) if reasons else None


# -- during startup (FATAL: the connection ends) ---------------------------------------


def protocol_violation(message: str, sqlstate: str = "08P01") -> bytes:
    return _fatal(sqlstate, message)


def authentication_failed(user: str) -> bytes:
    return _fatal(
        "28P01",
        f'password authentication failed for user "{user}"',
        hint="Use a jitgate access token as the password (jitgate token issue).",
    )


def unknown_resource(name: str) -> bytes:
    return _fatal(
        "3D000",
        f'resource "{name}" does not exist',
        hint="The database name selects a jitgate resource from the gateway's configuration.",
    )


def no_access(user: str, resource: str) -> bytes:
    return _fatal("28000", f'user "{user}" has no access to resource "{resource}"')


def outside_delegation(principal: str, resource: str) -> bytes:
    return _fatal(
        "28000",
        f'{principal} may not use resource "{resource}"',
        detail="The agent's delegation does not name this resource.",
        hint="Ask the person who started the agent to grant it this resource.",
    )


def replication_refused() -> bytes:
    return _fatal("28000", "replication connections are not supported through jitgate")


def store_unavailable_at_startup() -> bytes:
    return _fatal(
        "57P03",
        "jitgate cannot record sessions right now: its store is unavailable",
        hint="Try again shortly; no statement runs unrecorded.",
    )


def tls_required() -> bytes:
    return _fatal(
        "28000",
        "jitgate requires TLS on this listener: the access token is sent as a password",
        hint="Connect with sslmode=require (or verify-full).",
    )


def token_revoked() -> bytes:
    return _fatal(
        "28000",
        "the access token of this session was revoked or has expired",
        hint="Nothing more runs on it. Sign in again with a live token.",
    )


def groups_lost(who: str, groups: Sequence[str]) -> bytes:
    return _fatal(
        "28000",
        f"{who} is no longer in {', '.join(sorted(groups))}, whose access this session had",
        hint="Nothing more runs on it. Connect again to work with the access you have now.",
    )


def encoding_refused(encoding: str) -> bytes:
    return _fatal(
        "22023",
        f'client_encoding "{encoding}" is not supported through jitgate',
        detail="jitgate reads every statement as UTF-8, the encoding its guardrails parse.",
        hint="Connect with client_encoding=UTF8 (e.g. PGCLIENTENCODING=UTF8).",
    )


def lexing_drifted(name: str, value: str) -> bytes:
    return _fatal(
        "0A000",
        f"the target changed {name} to {value!r}; jitgate ended the session",
        detail="jitgate reads SQL with client_encoding UTF8 and standard_conforming_strings"
        " on; a session that reads text otherwise cannot be guarded.",
    )


def upstream_unreachable(resource: str, reason: str) -> bytes:
    return _fatal("08006", f'could not connect to resource "{resource}": {reason}')


def upstream_lost(resource: str) -> bytes:
    return _fatal("08006", f'connection to resource "{resource}" was lost')


def shutting_down() -> bytes:
    return _fatal("57P01", "terminating connection: jitgate is shutting down")


def too_many_connections(limit: int, key: str, user: str | None = None) -> bytes:
    whose = f'for user "{user}"' if user is not None else "to this gateway"
    return _fatal(
        "53300",
        f"too many connections {whose}: the limit is {limit}",
        detail=f"The limit is set by {key}.",
        hint="Close idle sessions, or ask an operator to raise the limit.",
    )


def startup_timeout() -> bytes:
    return _fatal("08P01", "startup did not complete in time")


# -- during a session (ERROR: the session goes on) -------------------------------------


def statement_denied(reasons: Sequence[str]) -> bytes:
    return _error(
        "42501",
        "statement denied by jitgate policy",
        detail=_reasons(reasons),
        hint="Ask an approver to change the resource's access policy if this is needed.",
    )


def lexing_setting_refused(name: str, value: str) -> bytes:
    return _error(
        "0A000",
        f"setting {name} to {value!r} is not supported through jitgate",
        detail="jitgate reads SQL with client_encoding UTF8, standard_conforming_strings on"
        " and backslash_quote safe_encoding, as its guardrails parse it.",
        hint="Nothing was run.",
    )


def text_after_relex() -> bytes:
    return _error(
        "0A000",
        "SQL text sent after a statement that may change how the target reads text, before"
        " its Sync, is not supported through jitgate",
        detail="The target reports such a change only when it answers the Sync; until then"
        " jitgate cannot know how the target reads new text.",
        hint="Send a Sync after that statement. Nothing was run.",
    )


def session_limit_refused(what: str) -> bytes:
    return _error(
        "0A000",
        f"the statement {what}, which this resource's session_limits fix",
        detail="statement_timeout, lock_timeout and idle_in_transaction_session_timeout are"
        " set by jitgate for every session of this resource; RESET returns to them.",
        hint="Nothing was run.",
    )


def session_limit_startup_refused(parameter: str) -> bytes:
    return _fatal(
        "0A000",
        f"startup parameter {parameter} is not supported through jitgate",
        detail="This resource's session_limits fix the setting for every session.",
        hint="Connect without it.",
    )


def reader_session_cannot_hold(why: str) -> bytes:
    return _error(
        "25006",
        f"this statement needs approval but cannot be held: {why}",
        detail="This session runs on the resource's read-only credential; an approved"
        " statement runs once on a writer connection of its own.",
        hint="Nothing was run. Send it alone, outside a transaction block, as a simple query"
        " (psql), or ask with jitgate request.",
    )


def too_many_pending_requests(message: str) -> bytes:
    return _error(
        "53400",
        message,
        hint="Nothing was run. Wait for a decision on your pending requests, or cancel one.",
    )


def statement_too_large(size: int, limit: int) -> bytes:
    return _error(
        "54000",
        f"statement of {size} characters refused: jitgate reads at most {limit}",
        hint="Nothing was run. Split it, or load data with COPY … FROM STDIN.",
    )


def binary_copy_refused() -> bytes:
    return _error(
        "0A000",
        "binary COPY … TO STDOUT is not supported through jitgate on a resource that masks",
        detail="jitgate masks sensitive values in everything that leaves; it cannot read"
        " binary COPY data, so none of it was sent.",
        hint="Use COPY … TO STDOUT in text or CSV format.",
    )


def approval_required(reasons: Sequence[str]) -> bytes:
    return _error(
        "42501",
        "approval required: this statement must be reviewed before it runs",
        detail=_reasons(reasons),
    )


def approval_pending(request_id: int, where: Sequence[str], timeout: float) -> bytes:
    """The NOTICE a held client gets while its statement waits for a decision."""
    posted = " and ".join(where) or "the web inbox"
    return NoticeResponse.build(
        "NOTICE",
        "00000",
        f"approval required: request #{request_id} posted to {posted};"
        f" waiting up to {timeout:.0f} s",
        hint="Ctrl-C stops waiting, not the request.",
    ).encode()


def request_rejected(request_id: int, approver: str | None, reason: str | None) -> bytes:
    by = f" by {approver}" if approver else ""
    return _error(
        "42501",
        f"request #{request_id} was rejected{by}",
        detail=f"reason: {reason}" if reason else None,
        hint="Nothing was run.",
    )


def request_expired(request_id: int) -> bytes:
    return _error(
        "42501",
        f"request #{request_id} expired before anyone decided it",
        hint="Nothing was run. Send the statement again to open a new request.",
    )


def request_cancelled(request_id: int, why: str) -> bytes:
    return _error("57014", f"request #{request_id} was cancelled: {why}", hint="Nothing was run.")


def hold_ended(request_id: int, where: Sequence[str], interrupted: bool) -> bytes:
    """The client stopped waiting (Ctrl-C or the hold timeout); the request goes on."""
    posted = " and ".join(where) or "the web inbox"
    return _error(
        "57014",
        f"stopped waiting for request #{request_id}"
        + ("" if interrupted else " (hold timeout)")
        + "; the request stays pending",
        detail=f"Once approved it runs once on its own; the outcome appears in {posted}.",
        hint=f"Check it with: jitgate requests, or /jit status {request_id}",
    )


def request_not_executed(request_id: int, state: str) -> bytes:
    return _error(
        "55000",
        f"request #{request_id} is {state} and was not run on this connection",
        hint=f"Check it with: jitgate requests, or /jit status {request_id}",
    )


def writer_unreachable(request_id: int, why: str) -> bytes:
    return _error("08006", f"request #{request_id} was approved but not run: {why}",
                  hint="Nothing was run. Ask again when the target is reachable.")  # fmt: skip


def blast_radius_exceeded(request_id: int, rows: int, cap: int) -> bytes:
    return _error(
        "54000",
        f"request #{request_id} touched {rows} rows, more than the {cap} approved; rolled back",
        hint="Nothing was changed. Ask for a new approval with the real row count.",
    )


def internal_error() -> bytes:
    return _error("XX000", "internal error in jitgate", hint="Nothing was run.")


AUDIT_UNAVAILABLE = "57P03"


def audit_unavailable(*, fatal: bool = False) -> bytes:
    """The store (or, ``fatal``, the local audit spool mid-read) cannot record."""
    if fatal:
        return _fatal(
            AUDIT_UNAVAILABLE,
            "session ended: jitgate cannot write its audit spool",
            hint="Nothing of the last message was run. Reconnect when the gateway's disk"
            " takes writes again.",
        )
    return _error(
        AUDIT_UNAVAILABLE,
        "statement refused: jitgate cannot record it because its audit store is unavailable",
        hint="Nothing was run. Retry when the gateway's store is back.",
    )


def function_call_refused() -> bytes:
    return _error(
        "0A000",
        "the FunctionCall protocol message is not supported through jitgate",
        hint="Call the function with SELECT instead.",
    )


def notice(message: str, *, detail: str | None = None) -> bytes:
    return NoticeResponse.build("NOTICE", "00000", message, detail=detail).encode()
