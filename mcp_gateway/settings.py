"""Resources of ``type: mcp``: other MCP servers the gateway governs, as the configuration
names them (parsed by :func:`jitgate.config.parse_config`, kept in ``Config.mcp_servers``).

::

    resources:
      tickets:
        type: mcp
        url: http://127.0.0.1:9000/mcp          # its streamable HTTP endpoint, or:
        # command: [python, -m, tickets.server]  # a process the gateway runs (stdio)
        # env: {TICKETS_KEY: "${TICKETS_KEY}"}   # its environment, beside PATH, HOME …
        # cwd: /srv/tickets
        headers: {Authorization: "Bearer ${TICKETS_TOKEN}"}   # outbound, per resource
        # auth: {type: token_exchange, ...}     # or a token per person (RFC 8693)
        timeout: 30s
        access:                                 # group -> tool (or glob) -> action
          engineers: {"*": allow, close_ticket: review, delete_project: deny}
          agents: {"*": review}                 # the most an agent gets, per tool
        approvers: [dba]
        approval_ttl: 10m                       # an approved call is usable this long
        guard:
          patterns: {"(?i)\\bdrop\\s+table\\b": deny}
          sql: {run_query: sql}                 # tool -> the argument holding SQL
          sql_access: {read: allow, write: review}
        server_requests: {sampling: deny, elicitation: deny}

``url`` and ``command`` exclude each other, as do ``headers``' Authorization and ``auth``;
``auth`` and ``headers`` apply to a server reached by ``url`` only.

A tool is matched by its exact name first, then by the globs in the order written; a tool
no rule names is denied. Across groups the most permissive action wins, as for databases.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, cast
from urllib.parse import urlsplit

from jitgate.errors import ConfigError

if TYPE_CHECKING:
    from jitgate.config import _Node

McpAction = Literal["allow", "review", "deny"]
_ACTIONS = ("allow", "review", "deny")
_AGENTS = "agents"
_CLASSES = ("read", "write", "ddl", "destructive", "privilege", "opaque")
# A tool taking SQL: what each statement class gets unless ``guard.sql_access`` says.
DEFAULT_SQL_ACCESS: Mapping[str, McpAction] = {
    "read": "allow", "write": "review", "ddl": "review", "destructive": "review",
    "privilege": "deny", "opaque": "review",
}  # fmt: skip
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
# Hop-by-hop and transport headers the gateway sets itself.
_RESERVED_HEADERS = frozenset(
    ("host", "content-type", "content-length", "accept", "connection", "transfer-encoding",
     "mcp-session-id", "mcp-protocol-version")
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ArgumentPattern:
    """A regular expression searched in every string argument, and what a match gets."""

    pattern: re.Pattern[str]
    action: McpAction


@dataclass(frozen=True, slots=True)
class StdioCommand:
    """A server the gateway runs itself and speaks to over stdin and stdout."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(repr=False)
    cwd: str | None = None


@dataclass(frozen=True, slots=True)
class TokenExchange:
    """Per-person credentials: a token for the server obtained by RFC 8693 token exchange
    at the server's authorization server (:mod:`mcp_gateway.downstream_tokens`)."""

    token_endpoint: str
    client_id: str
    client_secret: str = field(repr=False)
    audience: str | None = None
    scope: str | None = None


@dataclass(frozen=True, slots=True)
class McpServer:
    name: str
    url: str | None
    headers: Mapping[str, str] = field(repr=False)
    access: Mapping[str, Mapping[str, McpAction]]
    approvers: tuple[str, ...]
    approvals_required: int = 1
    request_ttl: float = 3600.0
    approval_ttl: float = 600.0
    notify_slack: str | None = None
    notify_teams: str | None = None
    masking: str = "default"
    timeout: float = 30.0
    max_response_size: int = 8 << 20
    agent_caps: Mapping[str, McpAction] = field(default_factory=dict)
    patterns: tuple[ArgumentPattern, ...] = ()
    sql_arguments: Mapping[str, str] = field(default_factory=dict)
    sql_access: Mapping[str, McpAction] = field(default_factory=lambda: dict(DEFAULT_SQL_ACCESS))
    sampling: McpAction = "deny"
    elicitation: McpAction = "deny"
    command: StdioCommand | None = None
    auth: TokenExchange | None = None
    type: str = "mcp"


def mcp_server(
    node: _Node, groups: Mapping[str, frozenset[str]], masking_choices: Iterable[str]
) -> McpServer:
    """The ``type: mcp`` resource at ``node``; raises :class:`ConfigError` naming the key."""
    node.only(
        "type", "url", "headers", "timeout", "access", "approvers", "approvals_required",
        "request_ttl", "approval_ttl", "notify", "masking", "guard", "server_requests",
        "max_response_size", "command", "env", "cwd", "auth",
    )  # fmt: skip
    url, command, auth = _reached_by(node)
    access, caps = _access(node.child("access", {}), groups)
    approvers = node.str_list("approvers")
    for group in approvers:
        if group not in groups:
            raise ConfigError(node.key("approvers"), f"unknown group {group!r}")
    notify = node.child("notify", {})
    notify.only("slack", "teams")
    guard = node.child("guard", {})
    guard.only("patterns", "sql", "sql_access")
    requests = node.child("server_requests", {})
    requests.only("sampling", "elicitation")
    if command is not None:
        for kind in requests.names():
            if requests.choice(kind, ("deny", "allow")) == "allow":
                raise ConfigError(requests.key(kind), "cannot be allowed for a server run by"
                                  " command: one process serves every caller")  # fmt: skip
    sql_access = guard.child("sql_access", {})
    sql_access.only(*_CLASSES)
    return McpServer(
        name=node.path.rpartition(".")[2],
        url=url,
        command=command,
        auth=auth,
        headers=_headers(node.child("headers", {})),
        access=access,
        agent_caps=caps,
        approvers=tuple(approvers),
        approvals_required=node.integer("approvals_required", 1, minimum=1),
        request_ttl=node.duration("request_ttl", 3600.0),
        approval_ttl=node.duration("approval_ttl", 600.0),
        notify_slack=notify.optional_str("slack"),
        notify_teams=notify.optional_str("teams"),
        masking=node.choice("masking", ("default", "off", *masking_choices)),
        timeout=node.duration("timeout", 30.0),
        max_response_size=node.integer("max_response_size", 8 << 20, minimum=1024),
        patterns=_patterns(guard.child("patterns", {})),
        sql_arguments=_sql_arguments(guard.child("sql", {})),
        sql_access={
            **DEFAULT_SQL_ACCESS,
            **{c: cast(McpAction, sql_access.choice(c, _ACTIONS)) for c in sql_access.names()},
        },
        sampling=cast(McpAction, requests.choice("sampling", ("deny", "allow"))),
        elicitation=cast(McpAction, requests.choice("elicitation", ("deny", "allow"))),
    )


def _reached_by(node: _Node) -> tuple[str | None, StdioCommand | None, TokenExchange | None]:
    """``url`` (with ``headers`` and ``auth``) or ``command`` (with ``env`` and ``cwd``)."""
    if "url" in node.value and "command" in node.value:
        raise ConfigError(node.key("command"), "and url exclude each other: name one")
    if "command" not in node.value:
        for key in ("env", "cwd"):
            if key in node.value:
                raise ConfigError(node.key(key), "applies to a server run by command only")
        url = node.required_str("url")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(node.key("url"), "must be the server's http:// or https:// endpoint")
        auth = _token_exchange(node.child("auth")) if "auth" in node.value else None
        if auth is not None and any(h.lower() == "authorization" for h in _names(node, "headers")):
            raise ConfigError(node.key("auth"), "and headers.Authorization exclude each other")
        return url, None, auth
    for key in ("headers", "auth"):
        if key in node.value:
            raise ConfigError(node.key(key), "applies to a server reached by url only")
    argv = node.value["command"]
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise ConfigError(node.key("command"), "must be a list of strings: the program first")
    if not argv[0] or any("\0" in a for a in argv):
        raise ConfigError(node.key("command"), "holds an empty program or a NUL character")
    env = node.child("env", {})
    variables = {name: _string(env, name) for name in env.names()}
    for name in variables:
        if not name or "=" in name or "\0" in name + variables[name]:
            raise ConfigError(env.key(name), "is not an environment variable")
    return None, StdioCommand(tuple(argv), variables, node.optional_str("cwd")), None


def _token_exchange(node: _Node) -> TokenExchange:
    node.only("type", "token_endpoint", "client_id", "client_secret", "audience", "scope")
    if "type" not in node.value:
        raise ConfigError(node.key("type"), "is required: token_exchange")
    node.choice("type", ("token_exchange",))
    endpoint = node.required_str("token_endpoint")
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(node.key("token_endpoint"), "must be an http:// or https:// URL")
    secret = node.required_str("client_secret")
    if len(secret.encode()) < 16:
        raise ConfigError(node.key("client_secret"), "is shorter than 16 bytes")
    return TokenExchange(
        token_endpoint=endpoint,
        client_id=node.required_str("client_id"),
        client_secret=secret,
        audience=node.optional_str("audience"),
        scope=node.optional_str("scope"),
    )


def _names(node: _Node, key: str) -> list[str]:
    value = node.value.get(key)
    return [str(k) for k in value] if isinstance(value, dict) else []


def _string(node: _Node, name: str) -> str:
    value = node.optional_str(name)
    if value is None:
        raise ConfigError(node.key(name), "must be a string")
    return value


def _access(
    node: _Node, groups: Mapping[str, frozenset[str]]
) -> tuple[dict[str, dict[str, McpAction]], dict[str, McpAction]]:
    access: dict[str, dict[str, McpAction]] = {}
    caps: dict[str, McpAction] = {}
    for group in node.names():
        if group != _AGENTS and group not in groups:
            raise ConfigError(node.key(group), f"unknown group {group!r}")
        rules = node.child(group)
        actions = {tool: cast(McpAction, rules.choice(tool, _ACTIONS)) for tool in rules.names()}
        if group == _AGENTS:
            caps = actions
        else:
            access[group] = actions
    return access, caps


def _headers(node: _Node) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name in node.names():
        value = node.required_str(name)
        if not _HEADER_NAME.match(name) or name.lower() in _RESERVED_HEADERS:
            raise ConfigError(node.key(name), "is not a header the gateway may send")
        if "\r" in value or "\n" in value:
            raise ConfigError(node.key(name), "holds a line break")
        headers[name] = value
    return headers


def _patterns(node: _Node) -> tuple[ArgumentPattern, ...]:
    found = []
    for text in node.names():
        try:
            compiled = re.compile(text)
        except re.error as exc:
            raise ConfigError(node.key(text), f"is not a regular expression: {exc}") from exc
        found.append(ArgumentPattern(compiled, cast(McpAction, node.choice(text, _ACTIONS))))
    return tuple(found)


def _sql_arguments(node: _Node) -> dict[str, str]:
    return {tool: node.required_str(tool) for tool in node.names()}
