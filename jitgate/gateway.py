"""The composition root: builds every part from the config and runs them in order.

Start-up: store pool → migrations → the IdP memberships (with ``oidc``) → the target
catalogs → the audit spool (and recovery of the spools of stopped processes) → the masked
columns learned so far → audit recorder → approvals (heartbeat, reconciler, LISTEN, the
sweep) → the chats: Slack when ``slack.bot_token`` is set (outbox sender, Socket Mode),
Microsoft Teams when ``teams`` is (outbox sender) →
Postgres listener → HTTP listener. Shut-down runs the reverse: stop
accepting, drain sessions, finish running approved statements, flush the audit trail,
close the pool. Everything a gateway process knows that matters lives in the store, so any
number of processes can share one.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from aiohttp import web

from approvals.execute import fetch_rows
from approvals.inbox import InboxNotifier
from approvals.service import Approvals
from audit.recorder import AuditRecorder
from audit.recovery import recover
from audit.spool import AuditSpool
from bot.slack import SlackAdapter
from bot.teams import TeamsAdapter
from guard.classify import Classifier
from guard.sensitive import SensitiveColumns
from guard.view_transforms import TargetDefinitions
from identity import Directory
from identity.idp_groups import IdpGroups
from identity.oidc import OidcClient
from identity.web_sessions import WebSessions
from jitgate.config import Config, Resource
from jitgate.errors import ConfigError
from jitgate.metrics import GatewayMetrics
from masking import DEFAULT_POLICY, MaskingPolicy
from proxy.hooks import default_chain
from proxy.server import ProxyServer
from store.db import connect_pool, migrate

log = logging.getLogger("jitgate")

# How often each target's functions and views are read again (guard.resources).
CATALOG_REFRESH = 60.0
# How often the columns masking learned are saved and read back (guard.sensitive).
MASKED_COLUMNS_SYNC = 10.0


class Gateway:
    def __init__(self, config: Config, pool: asyncpg.Pool) -> None:
        self.config = config
        self.pool = pool
        self.metrics = GatewayMetrics()
        self.recorder = AuditRecorder(
            pool,
            flush_interval=config.audit_flush_interval,
            batch_size=config.audit_batch_size,
            max_lag=config.audit_max_lag,
        )
        self.masked_columns = SensitiveColumns(pool)
        # the targets' views and SQL functions, read through for transforms of their columns
        self.definitions = TargetDefinitions(tuple(config.resources))
        self.masked_columns.definitions = self.definitions
        # With oidc: the groups the IdP named at sign-in count beside the static ones.
        self.idp_groups = IdpGroups(pool) if config.oidc is not None else None
        self.directory = Directory(config, pool, [self.idp_groups] if self.idp_groups else [])
        self.oidc = OidcClient(config.oidc, config.public_url) if config.oidc else None
        self.web_sessions = WebSessions(pool, config.oidc.cookie_secret if config.oidc else None)
        self._idp_groups_task: asyncio.Task[None] | None = None
        self.approvals = Approvals(
            config, pool, self.recorder, notifiers=[InboxNotifier()], masking=self.masking_for,
            directory=self.directory,
        )  # fmt: skip
        self.proxy = ProxyServer(
            config,
            pool,
            self.recorder,
            default_chain(
                self.recorder,
                self.approvals.classifiers,
                max_statement_size=config.postgres.max_statement_size,
                alert=self.approvals.emit,
                masked_columns=self.masked_columns,
                masking=self.masking_for,
            ),
            self.metrics,
            self.approvals,
        )
        # The chat adapters: each hands the core a notifier (and an alert sink) and mounts
        # its endpoint on the HTTP listener.
        self.slack = SlackAdapter(config, self.approvals) if config.slack.bot_token else None
        self.teams = TeamsAdapter(config, self.approvals) if config.teams else None
        self.chats: list[SlackAdapter | TeamsAdapter] = [
            chat for chat in (self.slack, self.teams) if chat is not None
        ]
        for chat in self.chats:
            self.approvals.notifiers.append(chat.notifier)
            if chat.alerts is not None:
                self.approvals.alerts.append(chat.alerts)
        self._recorder_task: asyncio.Task[None] | None = None
        self._http_runner: web.AppRunner | None = None
        self._catalog_task: asyncio.Task[None] | None = None
        self.spool = AuditSpool(config.audit_spool, pool)
        self._spool_task: asyncio.Task[None] | None = None
        self.proxy.masked_columns = self.masked_columns
        self.approvals.sensitive = self.masked_columns
        self.masked_columns.on_learned(self.proxy.forget_admitted)
        self.definitions.on_change(self.proxy.forget_admitted)
        self._definitions_task: asyncio.Task[None] | None = None
        self._masked_task: asyncio.Task[None] | None = None

    def masking_for(self, resource: Resource) -> MaskingPolicy | None:
        """The masking policy of ``resource``: ``default``, a named policy from
        ``masking_policies``, or None for ``off``."""
        if resource.masking == "off":
            return None
        return self.config.masking_policies.get(resource.masking, DEFAULT_POLICY)

    @classmethod
    async def open(cls, config: Config) -> Gateway:
        pool = await connect_pool(config.database_url)
        await migrate(pool)
        return cls(config, pool)

    @property
    def http_port(self) -> int:
        assert self._http_runner is not None
        return int(self._http_runner.addresses[0][1])

    async def start(self) -> None:
        from jitgate.doctor import check_at_start
        from jitgate.web import build_http_app

        await check_at_start(self.config)
        if self.idp_groups is not None:
            await self.idp_groups.load()
            self._idp_groups_task = asyncio.create_task(
                self.idp_groups.run(), name="idp-memberships"
            )
        classifiers = self.approvals.classifiers
        await classifiers.load(self.target_rows)
        self._catalog_task = asyncio.create_task(
            classifiers.refresh(self.target_rows, CATALOG_REFRESH), name="catalog-refresh"
        )
        await self.definitions.load(self.target_rows)
        self._definitions_task = asyncio.create_task(
            self.definitions.refresh(self.target_rows, CATALOG_REFRESH), name="definitions"
        )

        await self._open_spool()
        await self.masked_columns.sync()
        self._masked_task = asyncio.create_task(
            self.masked_columns.run(MASKED_COLUMNS_SYNC), name="masked-columns"
        )
        self._recorder_task = asyncio.create_task(self.recorder.run(), name="audit-recorder")
        await self.approvals.start()
        for chat in self.chats:
            await chat.start()
        await self.proxy.start()
        self._http_runner = web.AppRunner(build_http_app(self), access_log=None)
        await self._http_runner.setup()
        listen = self.config.http_listen
        await web.TCPSite(self._http_runner, listen.host, listen.port).start()
        log.info("http listener up", extra={"listen": f"{listen.host}:{self.http_port}"})

    async def _open_spool(self) -> None:
        """Open this process's spool, then record what stopped processes left in theirs:
        before any client connects, so nothing is recorded twice."""
        spool = self.spool
        try:
            await spool.open(self.proxy.gateway_id)
        except OSError as exc:
            raise ConfigError(
                "audit.spool", f"cannot write the audit spool in {spool.directory}: {exc}"
            ) from exc
        await recover(self.pool, spool.directory, spool.id, self._classify_recovered)
        self.proxy.spool = spool
        self.approvals.spool = spool
        self.recorder.attach_spool(spool, self.proxy.oldest_open)
        self._spool_task = asyncio.create_task(spool.run(), name="audit-spool")

    def _classify_recovered(self, resource: str, sql: str) -> tuple[str, tuple[str, ...]]:
        verdict = Classifier.strictest(self.approvals.classifiers.of(resource).classify(sql))
        return verdict.statement_class, verdict.reasons

    async def target_rows(self, resource: str, query: str) -> list[tuple[object, ...]]:
        """``query``'s rows on ``resource``'s target, as its reader sees it."""
        return await fetch_rows(self.config.resources[resource].url, query)

    async def stop(self, drain_timeout: float = 10.0) -> None:
        if self._catalog_task is not None:
            self._catalog_task.cancel()
        if self._definitions_task is not None:
            self._definitions_task.cancel()
        if self._masked_task is not None:
            self._masked_task.cancel()
        if self._idp_groups_task is not None:
            self._idp_groups_task.cancel()
        await self.proxy.stop(drain_timeout)
        if self._http_runner is not None:
            await self._http_runner.cleanup()
        if self.oidc is not None:
            await self.oidc.close()
        await self.approvals.stop(drain_timeout)
        for chat in self.chats:
            # After the core: what it queued while stopping stays in the outbox for later.
            await chat.stop()
        closing = asyncio.create_task(self.recorder.close())
        if self._recorder_task is not None:
            await self._recorder_task
        await closing
        if self._spool_task is not None:
            self._spool_task.cancel()
            await self.spool.close(everything_stored=self.recorder.pending == 0)
        await self.pool.close()
        log.info("gateway stopped")

    async def store_reachable(self) -> bool:
        try:
            await self.pool.fetchval("SELECT 1", timeout=2)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False
        return True
