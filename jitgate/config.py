"""The gateway's configuration: one YAML file, validated once at start, then frozen.

``${VAR}`` in any string value reads the environment; secrets live only there. Every
problem raises :class:`~jitgate.errors.ConfigError` naming the dotted key, so
``jitgate serve`` can exit with one line such as
``resources.prod.access.engineers.write: 'maybe' is not one of allow, review, deny``.
Unknown keys are errors too: a typo in a security policy must not pass silently.
"""

from __future__ import annotations

import hashlib
import importlib.util
import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

from jitgate.errors import ConfigError
from masking.config import policy_from_mapping
from masking.policy import MaskingPolicy
from mcp_gateway.settings import McpServer, mcp_server

STATEMENT_CLASSES = ("read", "write", "ddl", "destructive", "privilege", "opaque")
ACTIONS = ("allow", "review", "deny")
# The key of a resource's ``access`` that caps what agents get, not a group's name.
AGENTS_KEY = "agents"
Action = Literal["allow", "review", "deny"]

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_ENTRA_OBJECT_ID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
TEAMS_OPENID_METADATA = "https://login.botframework.com/v1/.well-known/openidconfiguration"
TEAMS_TOKEN_ENDPOINT = "https://login.microsoftonline.com/botframework.com/oauth2/v2.0/token"
TEAMS_HOSTINGS = ("agents_sdk", "botbuilder")
_TEAMS_TOKEN_ENDPOINT = re.compile(r"^https://[^/?#]+/[^/?#]+/oauth2/v2\.0/token$")
_CLAIM_NAME = re.compile(r"^[A-Za-z0-9_:-]+$")
DEFAULT_SCOPES = ("openid", "email", "profile")


@dataclass(frozen=True, slots=True)
class Listen:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class UpstreamURL:
    """Where a resource lives and the credentials the gateway uses there. A ``host`` that
    starts with ``/`` is the directory of the server's Unix socket, as in libpq."""

    host: str
    port: int
    database: str
    user: str
    password: str | None = field(repr=False)
    sslmode: str = "prefer"

    @property
    def socket_path(self) -> str | None:
        """The server's Unix socket (``<dir>/.s.PGSQL.<port>``), or None over TCP."""
        return socket_path(self.host, self.port)

    @property
    def address(self) -> str:
        """Where the gateway connects, for messages: ``host:port`` or the socket's path."""
        return self.socket_path or f"{self.host}:{self.port}"


def socket_path(host: str, port: int) -> str | None:
    """libpq's rule: a host that is an absolute path names the socket's directory."""
    return f"{host.rstrip('/') or '/'}/.s.PGSQL.{port}" if host.startswith("/") else None


# Timeouts a resource's ``session_limits`` may fix (PostgreSQL's names).
SESSION_LIMIT_SETTINGS = (
    "statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Resource:
    """A target. ``url`` is the reader's credential when ``write_url`` names a writer;
    without ``write_url`` it is the only one, used for everything."""

    name: str
    type: str
    url: UpstreamURL
    access: Mapping[str, Mapping[str, Action]]
    approvers: tuple[str, ...]
    approvals_required: int
    request_ttl: float
    notify_slack: str | None
    notify_teams: str | None
    masking: str
    blast_radius_factor: float = 10.0
    blast_radius_floor: int = 10
    write_url: UpstreamURL | None = None
    # Functions outside the built-in allow-list that the classifier counts as reads.
    allowed_functions: tuple[str, ...] = ()
    # ``access.agents``: the most an agent acting for someone may get per class, whatever
    # its human's groups allow (approvals.policy.action_for).
    agent_caps: Mapping[str, Action] = field(default_factory=dict)
    # ``session_limits``: timeouts (milliseconds by PostgreSQL setting name) every target
    # connection is opened with and no session may lift (guard.session_limits).
    session_limits: Mapping[str, int] = field(default_factory=dict)

    @property
    def writer(self) -> UpstreamURL:
        """The credential approved statements (and writers' sessions) run with."""
        return self.write_url or self.url


@dataclass(frozen=True, slots=True)
class Limits:
    """``postgres.limits``: what one client or user may hold at once, and how failed
    password attempts slow down. Connections are counted by each gateway process."""

    connections: int = 1000
    connections_per_user: int = 100
    # Pending requests per user and resource, from psql holds, chat, the CLI and agents.
    pending_requests_per_user: int = 20
    pending_requests_per_resource: int = 200
    # Failed attempts per user (and per client address) within ``failure_window`` before
    # each further one waits ``backoff`` doubled per failure, up to ``max_backoff``.
    failures_before_backoff: int = 5
    failure_window: float = 600.0
    backoff: float = 1.0
    max_backoff: float = 60.0
    # This many failed or refused attempts within ``alert_window`` raise one alert.
    alert_after: int = 20
    alert_window: float = 60.0


@dataclass(frozen=True, slots=True)
class PostgresListener:
    listen: Listen
    hold_timeout: float
    tls_cert: Path | None
    tls_key: Path | None
    client_auth: Literal["password", "scram"]
    max_message_size: int
    # Longer statements are refused before they are classified (about 1 s of CPU a MiB).
    max_statement_size: int = 1 << 20
    limits: Limits = field(default_factory=Limits)
    # What a client may send before it has proved a token (startup, password, SASL).
    max_startup_message_size: int = 16 << 10
    # Clients must negotiate TLS before their startup packet (their token is a password).
    tls_required: bool = False


@dataclass(frozen=True, slots=True)
class SlackSettings:
    bot_token: str | None = field(repr=False)
    signing_secret: str | None = field(repr=False)
    app_token: str | None = field(repr=False)
    api_url: str
    # Slack user id -> jitgate identity (email), ahead of the email on the Slack profile.
    users: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TeamsSettings:
    """``teams``: the Microsoft Teams bot (see :mod:`bot.teams`). ``openid_metadata`` is where
    the Bot Framework's signing keys are announced and ``token_endpoint`` where the bot gets
    its own tokens (an Entra authority's ``.../oauth2/v2.0/token``); both default to
    Microsoft's public cloud. ``hosting`` names the SDK the bot is hosted on
    (:mod:`bot.teams_hosting`)."""

    app_id: str
    app_password: str | None = field(repr=False)
    tenant_id: str | None = None
    # Entra object id -> jitgate identity (email), ahead of the member's own email or UPN.
    users: Mapping[str, str] = field(default_factory=dict)
    openid_metadata: str = TEAMS_OPENID_METADATA
    token_endpoint: str = TEAMS_TOKEN_ENDPOINT
    hosting: str = "agents_sdk"


@dataclass(frozen=True, slots=True)
class OidcSettings:
    """``oidc``: web sign-in with the company's IdP (see :mod:`identity.oidc`)."""

    issuer: str
    client_id: str
    client_secret: str | None = field(repr=False)
    # Where the groups are in the ID token (("realm_access", "roles") for Keycloak);
    # empty when the IdP sends none and only the static groups count.
    groups_claim: tuple[str, ...] = ("groups",)
    # IdP group -> policy groups. Empty: an IdP group counts when its name is a policy
    # group's; otherwise only the groups named here count.
    group_map: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    email_claim: str = "email"
    # How long a web session, and the IdP groups read at its sign-in, last.
    session_ttl: float = 8 * 3600.0
    clock_skew: float = 60.0
    cookie_secret: str | None = field(default=None, repr=False)
    # The IdP's public (native) client ``jitgate login`` signs in with; client_id if unset.
    cli_client_id: str | None = None
    # How long a token the gateway issues after an IdP sign-in (CLI, token exchange) lasts.
    token_ttl: float = 8 * 3600.0

    @property
    def audiences(self) -> frozenset[str]:
        """The client ids an ID token may be issued to: the console's and the CLI's."""
        return frozenset({self.client_id, self.cli_client_id or self.client_id})

    @property
    def redirect_path(self) -> str:
        return "/login/callback"


@dataclass(frozen=True, slots=True)
class Config:
    database_url: str = field(repr=False)
    public_url: str
    http_listen: Listen
    demo: bool
    postgres: PostgresListener
    groups: Mapping[str, frozenset[str]]
    resources: Mapping[str, Resource]
    alerts_slack: str | None
    slack: SlackSettings
    audit_flush_interval: float
    audit_batch_size: int
    audit_spool: Path
    audit_max_lag: float = 10.0
    masking_policies: Mapping[str, MaskingPolicy] = field(default_factory=dict)
    oidc: OidcSettings | None = None
    alerts_teams: str | None = None
    teams: TeamsSettings | None = None
    # Resources of ``type: mcp``: other MCP servers the gateway governs (mcp_gateway.settings).
    mcp_servers: Mapping[str, McpServer] = field(default_factory=dict)


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read, expand and validate the YAML file at ``path``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("", f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError("", f"{path} is not valid YAML: {exc}".replace("\n", " ")) from exc
    return parse_config(raw, os.environ if environ is None else environ)


def parse_config(raw: object, environ: Mapping[str, str]) -> Config:
    """Validate an already-parsed YAML document into a frozen :class:`Config`."""
    root = _Node("", _expand(raw, "", environ))
    root.only(
        "database_url", "public_url", "http", "postgres", "groups", "resources",
        "alerts", "slack", "teams", "audit", "masking_policies", "oidc",
    )  # fmt: skip
    http = root.child("http", {})
    http.only("listen", "demo")
    pg = root.child("postgres", {})
    pg.only(
        "listen", "hold_timeout", "tls", "client_auth", "max_message_size",
        "max_statement_size", "limits", "max_startup_message_size",
    )  # fmt: skip
    tls = pg.child("tls", {})
    tls.only("cert", "key", "require")
    cert, key = tls.optional_str("cert"), tls.optional_str("key")
    if (cert is None) != (key is None):
        raise ConfigError(tls.path or "postgres.tls", "needs both cert and key")
    groups = _groups(root.child("groups", {}))
    policies_node = root.child("masking_policies", {})
    policies = {
        name: policy_from_mapping(policies_node.value.get(name) or {}, policies_node.key(name))
        for name in policies_node.names()
    }
    alerts = root.child("alerts", {})
    alerts.only("slack", "teams")
    slack = root.child("slack", {})
    slack.only("bot_token", "signing_secret", "app_token", "api_url", "users")
    audit = root.child("audit", {})
    audit.only("flush_interval", "batch_size", "spool", "max_lag")
    config = Config(
        database_url=root.required_str("database_url"),
        public_url=root.text("public_url", "http://127.0.0.1:8080").rstrip("/"),
        http_listen=http.listen("listen", "127.0.0.1:8080"),
        demo=_demo(http),
        postgres=PostgresListener(
            listen=pg.listen("listen", "127.0.0.1:15432"),
            hold_timeout=pg.duration("hold_timeout", 120.0),
            tls_cert=Path(cert) if cert else None,
            tls_key=Path(key) if key else None,
            tls_required=_tls_required(pg, tls, cert is not None),
            client_auth=cast(
                Literal["password", "scram"], pg.choice("client_auth", ("password", "scram"))
            ),
            max_message_size=pg.integer("max_message_size", 64 << 20, minimum=1024),
            max_statement_size=pg.integer("max_statement_size", 1 << 20, minimum=1024),
            max_startup_message_size=_startup_size(pg),
            limits=_limits(pg.child("limits", {})),
        ),
        groups=groups,
        resources=_resources(root.child("resources", {}), groups, policies.keys()),
        mcp_servers=_mcp_servers(root.child("resources", {}), groups, policies.keys()),
        alerts_slack=alerts.optional_str("slack"),
        slack=_slack(slack),
        audit_flush_interval=audit.duration("flush_interval", 0.05),
        audit_batch_size=audit.integer("batch_size", 1000, minimum=1),
        audit_spool=_spool_directory(audit, root.required_str("database_url"), environ),
        audit_max_lag=audit.duration("max_lag", 10.0),
        masking_policies=policies,
        oidc=_oidc(root, groups),
        alerts_teams=alerts.optional_str("teams"),
        teams=_teams(root),
    )
    return _teams_needed(config)


def _startup_size(pg: _Node) -> int:
    size = pg.integer("max_startup_message_size", 16 << 10, minimum=1024)
    if size > 1 << 20:
        raise ConfigError(pg.key("max_startup_message_size"), "must be at most 1 MiB")
    return size


def _spool_directory(audit: _Node, store: str, environ: Mapping[str, str]) -> Path:
    """``audit.spool``, else ``$XDG_STATE_HOME/jitgate/spool`` (``~/.local/state`` when
    unset); either way one subdirectory per store, named by a digest of its address
    without the password, so spools are recovered only into the store that holds
    their keys."""
    configured = audit.optional_str("spool")
    if configured is not None:
        base = Path(configured).expanduser()
    else:
        state = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        base = Path(state) / "jitgate" / "spool"
    parts = urlsplit(store)
    host = parts.hostname or ""
    where = f"{parts.username}@{host}:{parts.port}{parts.path}?{parts.query}"
    return base / hashlib.sha256(where.encode()).hexdigest()[:16]


def parse_duration(value: object, key: str) -> float:
    """``"120s"``, ``"1h"``, ``"500ms"``, ``"8h"`` or a number of seconds."""
    if isinstance(value, bool):
        raise ConfigError(key, f"{value!r} is not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ConfigError(key, f"{value!r} is not a duration (use e.g. 120s, 30m, 8h, 1d)")
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds <= 0:
        raise ConfigError(key, "must be positive")
    return seconds


def parse_upstream_url(url: str, key: str) -> UpstreamURL:
    """A libpq connection URL. The host may be a Unix socket's directory, percent-encoded
    (``postgresql://u@%2Fvar%2Frun%2Fpostgresql/db``) or as ``?host=/var/run/postgresql``;
    ``?port=`` sets the port as in libpq."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ConfigError(key, f"scheme must be postgresql://, not {parts.scheme!r}")
    query = parse_qs(parts.query)
    try:
        port = int(query["port"][-1]) if "port" in query else parts.port or 5432
    except ValueError as exc:
        raise ConfigError(key, "has an invalid port") from exc
    if not 0 < port < 65536:
        raise ConfigError(key, "has an invalid port")
    sslmode = query.get("sslmode", ["prefer"])[-1]
    if sslmode not in ("disable", "allow", "prefer", "require", "verify-ca", "verify-full"):
        raise ConfigError(key, f"sslmode {sslmode!r} is not a libpq sslmode")
    host = query["host"][-1] if "host" in query else _url_host(parts.netloc, parts.hostname)
    if host.startswith("/") and sslmode in ("require", "verify-ca", "verify-full"):
        # libpq would ignore sslmode on a Unix socket: a URL asking for TLS gets it or fails.
        raise ConfigError(key, f"sslmode={sslmode} cannot be met over the Unix socket {host}")
    database = unquote(parts.path.lstrip("/"))
    if not host or not database or not parts.username:
        raise ConfigError(key, "must name a user, a host and a database (postgresql://u@h/db)")
    return UpstreamURL(
        host=host,
        port=port,
        database=database,
        user=unquote(parts.username),
        password=unquote(parts.password) if parts.password is not None else None,
        sslmode=sslmode,
    )


def _url_host(netloc: str, hostname: str | None) -> str:
    """The URL's host; a percent-encoded socket directory keeps its case (``hostname``
    lowers it)."""
    raw = netloc.rpartition("@")[2]
    if raw[:3].upper() == "%2F":
        return unquote(raw.rpartition(":")[0] if ":" in raw else raw)
    return hostname or ""


def is_loopback(host: str) -> bool:
    """Whether a listener on ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _tls_required(pg: _Node, tls: _Node, has_cert: bool) -> bool:
    """``postgres.tls.require``: true by default on a listener that is not loopback (tokens
    travel as passwords); true without a cert and key is a configuration error."""
    listen = pg.listen("listen", "127.0.0.1:15432")
    required = tls.flag("require", not is_loopback(listen.host))
    if required and not has_cert:
        raise ConfigError(
            tls.key("require"),
            f"clients must use TLS (the default on {listen.host}, not a loopback address),"
            " so postgres.tls needs cert and key",
        )
    return required


def _demo(http: _Node) -> bool:
    """``http.demo``, refused unless ``http.listen`` is a loopback address: demo pages let
    anyone who reaches them act as any configured user."""
    demo = http.flag("demo", False)
    host = http.listen("listen", "127.0.0.1:8080").host
    if demo and not is_loopback(host):
        raise ConfigError(http.key("demo"), "lets anyone act as any user, so http.listen"
                          f" must be a loopback address, not {host!r}")  # fmt: skip
    return demo


def _oidc(root: _Node, groups: Mapping[str, frozenset[str]]) -> OidcSettings | None:
    if root.value.get("oidc") is None:
        return None
    node = root.child("oidc")
    node.only(
        "issuer", "client_id", "client_secret", "groups_claim", "group_map", "scopes",
        "email_claim", "session_ttl", "clock_skew", "cookie_secret", "cli_client_id",
        "token_ttl",
    )  # fmt: skip
    if root.child("http", {}).flag("demo", False):
        raise ConfigError(node.path, "cannot be combined with http.demo (demo has no sign-in)")
    issuer = node.required_str("issuer")
    parts = urlsplit(issuer)
    loopback = parts.scheme == "http" and is_loopback(parts.hostname or "")
    if parts.scheme != "https" and not loopback:
        raise ConfigError(node.key("issuer"), "must be an https:// URL (http:// only on loopback)")
    if parts.query or parts.fragment or not parts.hostname:
        raise ConfigError(node.key("issuer"), "must be the IdP's issuer URL, without ? or #")
    scopes = tuple(node.str_list("scopes")) or DEFAULT_SCOPES
    if "openid" not in scopes:
        raise ConfigError(node.key("scopes"), "must include openid")
    cookie_secret = node.optional_str("cookie_secret")
    if cookie_secret is not None and len(cookie_secret) < 32:
        raise ConfigError(node.key("cookie_secret"), "must be at least 32 characters")
    skew = node.duration("clock_skew", 60.0)
    if skew > 300:
        raise ConfigError(node.key("clock_skew"), "must be at most 5m (it lets late tokens in)")
    email_claim = node.text("email_claim", "email")
    if not _CLAIM_NAME.match(email_claim):
        raise ConfigError(node.key("email_claim"), f"{email_claim!r} is not a claim name")
    return OidcSettings(
        issuer=issuer,
        client_id=node.required_str("client_id"),
        client_secret=node.optional_str("client_secret") or None,
        groups_claim=_claim_path(node, "groups_claim"),
        group_map=_group_map(node.child("group_map", {}), groups),
        scopes=scopes,
        email_claim=email_claim,
        session_ttl=node.duration("session_ttl", 8 * 3600.0),
        clock_skew=skew,
        cookie_secret=cookie_secret,
        cli_client_id=node.optional_str("cli_client_id") or None,
        token_ttl=node.duration("token_ttl", 8 * 3600.0),
    )


def _claim_path(node: _Node, name: str) -> tuple[str, ...]:
    """A claim name, or a dotted path into nested claims (``realm_access.roles``); a name
    that is a URL (Auth0's namespaced claims) is taken whole. Empty or null: no claim."""
    if name in node.value and not node.value[name]:
        return ()
    path = node.text(name, "groups")
    segments = (path,) if "://" in path else tuple(path.split("."))
    if "://" not in path and not all(_CLAIM_NAME.match(s) for s in segments):
        raise ConfigError(node.key(name), f"{path!r} is not a claim name or a dotted claim path")
    return segments


def _group_map(node: _Node, groups: Mapping[str, frozenset[str]]) -> dict[str, tuple[str, ...]]:
    mapped: dict[str, tuple[str, ...]] = {}
    for idp_group in node.names():
        value = node.value[idp_group]
        targets = [value] if isinstance(value, str) else value
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            raise ConfigError(node.key(idp_group), "must be a group or a list of groups")
        for target in targets:
            if target not in groups:
                raise ConfigError(node.key(idp_group), f"unknown group {target!r}")
        mapped[idp_group] = tuple(targets)
    return mapped


def _limits(node: _Node) -> Limits:
    node.only(
        "connections", "connections_per_user", "pending_requests_per_user",
        "pending_requests_per_resource", "passwords",
    )  # fmt: skip
    passwords = node.child("passwords", {})
    passwords.only(
        "failures_before_backoff", "window", "backoff", "max_backoff", "alert_after",
        "alert_window",
    )  # fmt: skip
    default = Limits()
    limits = Limits(
        connections=node.integer("connections", default.connections, minimum=1),
        connections_per_user=node.integer(
            "connections_per_user", default.connections_per_user, minimum=1
        ),
        pending_requests_per_user=node.integer(
            "pending_requests_per_user", default.pending_requests_per_user, minimum=1
        ),
        pending_requests_per_resource=node.integer(
            "pending_requests_per_resource", default.pending_requests_per_resource, minimum=1
        ),
        failures_before_backoff=passwords.integer(
            "failures_before_backoff", default.failures_before_backoff, minimum=1
        ),
        failure_window=passwords.duration("window", default.failure_window),
        backoff=passwords.duration("backoff", default.backoff),
        max_backoff=passwords.duration("max_backoff", default.max_backoff),
        alert_after=passwords.integer("alert_after", default.alert_after, minimum=1),
        alert_window=passwords.duration("alert_window", default.alert_window),
    )
    if limits.max_backoff < limits.backoff:
        raise ConfigError(passwords.key("max_backoff"), "must be at least backoff")
    return limits


def _groups(node: _Node) -> dict[str, frozenset[str]]:
    groups: dict[str, frozenset[str]] = {}
    for name in node.names():
        members = node.value.get(name) or []
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise ConfigError(node.key(name), "must be a list of email addresses")
        if name == AGENTS_KEY:
            raise ConfigError(node.key(name), "is reserved: access.agents caps what agents get")
        groups[name] = frozenset(m.strip().lower() for m in members)
    return groups


def _slack(node: _Node) -> SlackSettings:
    settings = SlackSettings(
        bot_token=node.optional_str("bot_token"),
        signing_secret=node.optional_str("signing_secret"),
        app_token=node.optional_str("app_token"),
        api_url=node.text("api_url", "https://slack.com/api/"),
        users=_slack_users(node.child("users", {})),
    )
    if settings.bot_token and not (settings.signing_secret or settings.app_token):
        # Without either, nothing Slack sends could be trusted or even received.
        raise ConfigError(node.key("signing_secret"), "is required unless app_token is set")
    if settings.app_token and not settings.app_token.startswith("xapp-"):
        raise ConfigError(node.key("app_token"), "must be an app-level token (xapp-...)")
    return settings


def _teams_needed(config: Config) -> Config:
    """``notify.teams`` and ``alerts.teams`` name Teams conversations: without ``teams`` there
    is no bot to post there, which is said at start rather than ignored."""
    if config.teams is None:
        if config.alerts_teams:
            raise ConfigError("alerts.teams", "needs the teams section (app_id, app_password)")
        for name, resource in config.resources.items():
            if resource.notify_teams:
                raise ConfigError(
                    f"resources.{name}.notify.teams",
                    "needs the teams section (app_id, app_password)",
                )
        for name, server in config.mcp_servers.items():
            if server.notify_teams:
                raise ConfigError(
                    f"resources.{name}.notify.teams",
                    "needs the teams section (app_id, app_password)",
                )
    return config


def _teams(root: _Node) -> TeamsSettings | None:
    """``teams``, or None."""
    node = root.child("teams", {})
    node.only("app_id", "app_password", "tenant_id", "users", "openid_metadata", "token_endpoint",
              "hosting")  # fmt: skip
    if not node.value:
        return None
    users: dict[str, str] = {}
    users_node = node.child("users", {})
    for object_id in users_node.names():
        email = users_node.value[object_id]
        if not _ENTRA_OBJECT_ID.match(object_id):
            raise ConfigError(users_node.key(object_id), "is not an Entra object id (a GUID)")
        if not isinstance(email, str) or "@" not in email:
            raise ConfigError(users_node.key(object_id), "must be the email of a jitgate identity")
        users[object_id.lower()] = email.strip().lower()
    settings = TeamsSettings(
        app_id=node.required_str("app_id"),
        app_password=node.optional_str("app_password"),
        tenant_id=node.optional_str("tenant_id"),
        users=users,
        openid_metadata=node.text("openid_metadata", TEAMS_OPENID_METADATA),
        token_endpoint=node.text("token_endpoint", TEAMS_TOKEN_ENDPOINT),
        hosting=node.choice("hosting", TEAMS_HOSTINGS),
    )
    if settings.hosting == "botbuilder" and not _installed("botbuilder.core"):
        raise ConfigError(node.key("hosting"), "botbuilder is not installed (the botbuilder"
                          " extra: pip install 'jitgate[botbuilder]')")  # fmt: skip
    if not _TEAMS_TOKEN_ENDPOINT.match(settings.token_endpoint):
        raise ConfigError(node.key("token_endpoint"),
                          "must be an Entra authority's token endpoint,"
                          " https://HOST/TENANT/oauth2/v2.0/token")  # fmt: skip
    if not settings.app_password:
        raise ConfigError(node.key("app_password"), "is required (from the environment: ${VAR})")
    return settings


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _slack_users(node: _Node) -> dict[str, str]:
    users: dict[str, str] = {}
    for user_id in node.names():
        email = node.value[user_id]
        if not _SLACK_USER_ID.match(user_id):
            raise ConfigError(node.key(user_id), "is not a Slack user id (U… or W…)")
        if not isinstance(email, str) or "@" not in email:
            raise ConfigError(node.key(user_id), "must be the email of a jitgate identity")
        users[user_id] = email.strip().lower()
    return users


def _resources(
    node: _Node, groups: Mapping[str, frozenset[str]], policies: Iterable[str]
) -> dict[str, Resource]:
    masking_choices = ("default", "off", *policies)
    resources: dict[str, Resource] = {}
    for name in node.names():
        res = node.child(name)
        if res.value.get("type") == "mcp":
            continue
        res.only(
            "type", "url", "access", "approvers", "approvals_required", "request_ttl",
            "notify", "masking", "blast_radius", "write_url", "functions", "session_limits",
        )  # fmt: skip
        kind = res.choice("type", ("postgres", "mcp"))
        access_node = res.child("access", {})
        access: dict[str, dict[str, Action]] = {}
        agent_caps: dict[str, Action] = {}
        for group in access_node.names():
            if group == AGENTS_KEY:
                caps = access_node.child(group)
                caps.only(*STATEMENT_CLASSES)
                agent_caps = {c: cast(Action, caps.choice(c, ACTIONS)) for c in caps.names()}
                continue
            if group not in groups:
                raise ConfigError(access_node.key(group), f"unknown group {group!r}")
            rules = access_node.child(group)
            rules.only(*STATEMENT_CLASSES)
            access[group] = {c: cast(Action, rules.choice(c, ACTIONS)) for c in rules.names()}
        approvers = res.str_list("approvers")
        for group in approvers:
            if group not in groups:
                raise ConfigError(res.key("approvers"), f"unknown group {group!r}")
        notify = res.child("notify", {})
        notify.only("slack", "teams")
        blast = res.child("blast_radius", {})
        blast.only("factor", "floor")
        functions = res.child("functions", {})
        functions.only("allow")
        write_url = res.optional_str("write_url")
        limits = res.child("session_limits", {})
        limits.only(*SESSION_LIMIT_SETTINGS)
        resources[name] = Resource(
            name=name,
            type=kind,
            url=parse_upstream_url(res.required_str("url"), res.key("url")),
            access=access,
            approvers=tuple(approvers),
            approvals_required=res.integer("approvals_required", 1, minimum=1),
            request_ttl=res.duration("request_ttl", 3600.0),
            notify_slack=notify.optional_str("slack"),
            notify_teams=notify.optional_str("teams"),
            masking=res.choice("masking", masking_choices),
            blast_radius_factor=blast.number("factor", 10.0, minimum=1.0),
            blast_radius_floor=blast.integer("floor", 10, minimum=0),
            write_url=None
            if write_url is None
            else parse_upstream_url(write_url, res.key("write_url")),
            allowed_functions=tuple(functions.str_list("allow")),
            agent_caps=agent_caps,
            session_limits={
                setting: max(1, round(limits.duration(setting, 0) * 1000))
                for setting in limits.names()
            },
        )
    return resources


def _mcp_servers(
    node: _Node, groups: Mapping[str, frozenset[str]], policies: Iterable[str]
) -> dict[str, McpServer]:
    names = [n for n in node.names() if node.child(n).value.get("type") == "mcp"]
    return {name: mcp_server(node.child(name), groups, policies) for name in names}


def _expand(value: object, key: str, environ: Mapping[str, str]) -> object:
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in environ:
                raise ConfigError(key, f"environment variable {name} is not set")
            return environ[name]

        return _ENV_REF.sub(substitute, value)
    if isinstance(value, dict):
        return {k: _expand(v, f"{key}.{k}" if key else str(k), environ) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, f"{key}[{i}]", environ) for i, v in enumerate(value)]
    return value


class _Node:
    """A mapping in the YAML document, with the dotted path used in error messages."""

    def __init__(self, path: str, value: object) -> None:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise ConfigError(path, "must be a mapping")
        self.path = path
        self.value: dict[str, Any] = value

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def names(self) -> list[str]:
        return [str(k) for k in self.value]

    def only(self, *allowed: str) -> None:
        for name in self.value:
            if name not in allowed:
                raise ConfigError(self.key(str(name)), "unknown key")

    def child(self, name: str, default: object = None) -> _Node:
        if name not in self.value and default is None:
            raise ConfigError(self.key(name), "is required")
        return _Node(self.key(name), self.value.get(name, default))

    def optional_str(self, name: str) -> str | None:
        value = self.value.get(name)
        if value is None:
            return None
        if not isinstance(value, str | int):
            raise ConfigError(self.key(name), "must be a string")
        return str(value)

    def text(self, name: str, default: str) -> str:
        value = self.optional_str(name)
        return default if value is None else value

    def required_str(self, name: str) -> str:
        value = self.optional_str(name)
        if not value:
            raise ConfigError(self.key(name), "is required")
        return value

    def str_list(self, name: str) -> list[str]:
        value = self.value.get(name) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(self.key(name), "must be a list of strings")
        return value

    def choice(self, name: str, choices: tuple[str, ...]) -> str:
        value = self.value.get(name, choices[0])
        if value not in choices:
            raise ConfigError(self.key(name), f"{value!r} is not one of {', '.join(choices)}")
        return cast(str, value)

    def integer(self, name: str, default: int, *, minimum: int) -> int:
        value = self.value.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(self.key(name), f"{value!r} is not an integer")
        if value < minimum:
            raise ConfigError(self.key(name), f"must be at least {minimum}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        value = self.value.get(name, default)
        if not isinstance(value, bool):
            raise ConfigError(self.key(name), f"{value!r} is not true or false")
        return value

    def number(self, name: str, default: float, *, minimum: float) -> float:
        value = self.value.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(self.key(name), f"{value!r} is not a number")
        if value < minimum:
            raise ConfigError(self.key(name), f"must be at least {minimum:g}")
        return float(value)

    def duration(self, name: str, default: float) -> float:
        return parse_duration(self.value.get(name, default), self.key(name))

    def listen(self, name: str, default: str) -> Listen:
        value = self.text(name, default)
        host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ConfigError(self.key(name), f"{value!r} is not host:port")
        return Listen(host.strip("[]") or "127.0.0.1", int(port))
