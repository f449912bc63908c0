"""jitgate's exception tree.

Every error jitgate raises on purpose is a :class:`JitgateError`. The tree separates
"the caller misused jitgate" from "a peer misbehaved", so a handler can tell a bug or a
bad configuration from a hostile or broken client, upstream or store::

    JitgateError
    ├── UsageError                 the caller misused jitgate (operator, CLI, config)
    │   ├── ConfigError            the configuration file is invalid; names the key
    │   ├── DecisionRefused        an approve/reject/request that the rules refuse
    │   └── GrantRefused           a token the gateway was asked to issue is refused
    ├── IllegalTransition          a request state move the transition table forbids
    └── PeerError                  something outside jitgate misbehaved
        ├── ProtocolError          malformed bytes on a Postgres wire (client or upstream)
        ├── AuthenticationError    a client or an upstream failed authentication
        ├── UpstreamError          the target database is unreachable or refused us
        ├── StoreUnavailable       the gateway's own store cannot be reached
        ├── SignInRefused          a web sign-in failed a check (token, state, cookie)
        ├── IdentityProviderError  the IdP cannot be reached or answered nonsense
        ├── RpcError               an MCP client sent a malformed or unknown JSON-RPC message
        └── McpServerError         a governed MCP server failed, hung or answered garbage

Errors that travel to a Postgres client carry a SQLSTATE; the constructors that turn
them into ErrorResponse messages live in :mod:`proxy.pgerrors`.
"""

from __future__ import annotations


class JitgateError(Exception):
    """Base of every error jitgate raises on purpose."""


class UsageError(JitgateError):
    """The caller misused jitgate: a bad argument, command or configuration."""


class ConfigError(UsageError):
    """The configuration is invalid. ``key`` is the dotted path of the offending key."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}" if key else problem)
        self.key = key
        self.problem = problem


class DecisionRefused(UsageError):
    """A request or decision the approval rules refuse (self-approval, not an approver,
    already decided, expired, unknown request or user). ``code`` names the rule for
    adapters that phrase it for their surface; the message is already readable. A ``denied``
    statement also carries its ``statement_class`` and ``reasons``."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        statement_class: str | None = None,
        reasons: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.code = code
        self.statement_class = statement_class
        self.reasons = reasons


class GrantRefused(UsageError):
    """A token the gateway was asked to issue (``/oauth/token``, an agent's delegation)
    is refused. ``error`` is the OAuth error code it is answered with (RFC 6749 §5.2,
    RFC 8693 §2.2.2: ``invalid_request``, ``invalid_grant``, ``unsupported_grant_type``,
    ``invalid_scope``, ``invalid_target``, ``access_denied``); the message is the reason."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error


class IllegalTransition(JitgateError):
    """A move the request state machine does not allow: names the state and the event."""

    def __init__(self, state: str, event: str) -> None:
        super().__init__(f"cannot {event} a request that is {state}")
        self.state = state
        self.event = event


class PeerError(JitgateError):
    """Something outside jitgate misbehaved or went away."""


class ProtocolError(PeerError):
    """Malformed bytes on a Postgres wire. ``sqlstate`` is what the client is told."""

    def __init__(self, message: str, sqlstate: str = "08P01") -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class AuthenticationError(PeerError):
    """A client presented bad credentials, or an upstream rejected ours."""

    def __init__(self, message: str, sqlstate: str = "28P01") -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class UpstreamError(PeerError):
    """The target database could not be reached or refused the connection."""

    def __init__(self, message: str, sqlstate: str = "08006") -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class StoreUnavailable(PeerError):
    """The gateway's own store cannot be reached; the proxy fails closed."""


class SignInRefused(PeerError):
    """A web sign-in or session failed a check. ``reason`` is shown to the user; ``attack``
    is True when only a forger or a replay could cause it (it raises an alert)."""

    def __init__(self, reason: str, *, attack: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.attack = attack


class IdentityProviderError(PeerError):
    """The IdP could not be reached, or its discovery document, keys or token endpoint
    answered something unusable."""


class RpcError(PeerError):
    """A JSON-RPC message from an MCP client that cannot be served: malformed, of an
    unknown method, or with invalid params. ``code`` is the JSON-RPC error code it is
    answered with; ``request_id`` the id of the request it answers, when one was read;
    ``data`` what the error's ``data`` member carries (e.g. the versions a server speaks)."""

    def __init__(
        self, code: int, message: str, request_id: str | int | None = None, data: object = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.request_id = request_id
        self.data = data


class McpServerError(PeerError):
    """A governed MCP server (a ``type: mcp`` resource) could not be reached, did not
    answer in time, or answered something that is not MCP. Nothing it sent is relayed;
    ``session_gone`` is True when it no longer knows the session (HTTP 404)."""

    def __init__(self, message: str, *, session_gone: bool = False) -> None:
        super().__init__(message)
        self.session_gone = session_gone
