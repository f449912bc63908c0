"""A gateway whose web console signs in with :class:`tests.fakeidp.FakeIdp`.

Static groups: alice is an engineer. ``dba`` has no static members: IdP group
``jitgate-dba`` maps to it and ``jitgate-eng`` to ``engineers`` (``oidc.group_map``)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from approvals.model import Alert
from tests.fakeidp import FakeIdp
from tests.harness import GatewayThread, gateway_config

GROUP_MAP = {"jitgate-dba": "dba", "jitgate-eng": ["engineers"]}


class RecordedAlerts:
    """An alert sink that keeps what it is sent."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    async def alert(self, alert: Alert) -> None:
        self.alerts.append(alert)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def oidc_gateway(
    make_database: Callable[[str], str], target_dsn: str, idp: FakeIdp, **oidc: Any
) -> tuple[GatewayThread, RecordedAlerts]:
    port = free_port()
    public_url = f"http://127.0.0.1:{port}"
    idp.redirect_uris.add(f"{public_url}/login/callback")
    config = gateway_config(
        make_database("jg_oidc_store"),
        target_dsn,
        public_url=public_url,
        http={"listen": f"127.0.0.1:{port}"},
        groups={"engineers": ["alice@example.com"], "dba": [], "outsiders": []},
        oidc={
            "issuer": idp.issuer,
            "client_id": idp.client_id,
            "client_secret": idp.client_secret,
            "groups_claim": "groups",
            "group_map": GROUP_MAP,
            "session_ttl": "1h",
            **oidc,
        },
    )
    gateway = GatewayThread(config)
    alerts = RecordedAlerts()
    gateway.gateway.approvals.alerts.append(alerts)
    return gateway, alerts
