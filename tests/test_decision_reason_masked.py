"""An approver's reason is kept, shown and alerted masked, as a requester's is: a card
number pasted into a rejection never reaches the store, the card or the security channel."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from approvals.model import Alert, State
from tests.harness import GatewayThread, gateway_config
from tests.test_approvals import decide

ALICE, BOB = "alice@example.com", "bob@example.com"
CARD = "4111 1111 1111 1111"


@pytest.fixture(scope="module")
def gw(make_database: Callable[[str], str]) -> Iterator[GatewayThread]:
    target = make_database("jg_reason_target")
    gateway = GatewayThread(gateway_config(make_database("jg_reason_store"), target))
    yield gateway
    gateway.stop()


class Alerts:
    """An alerts channel that keeps what it is sent."""

    def __init__(self) -> None:
        self.sent: list[Alert] = []

    async def alert(self, alert: Alert) -> None:
        self.sent.append(alert)


def test_a_rejection_reason_is_masked_everywhere_it_goes(gw: GatewayThread) -> None:
    channel = Alerts()
    gw.gateway.approvals.alerts.append(channel)
    asked = gw.call(
        gw.gateway.approvals.ask(
            resource_name="prod", identity=ALICE, source="cli", sql="DELETE FROM t WHERE id = 1"
        )
    )
    request_id = asked.request.id
    view = decide(gw, request_id, BOB, "reject", reason=f"no: card {CARD} is in the ticket")
    assert view.state == State.REJECTED
    store = gw.gateway.pool
    stored = gw.call(
        store.fetchval("SELECT reason FROM decisions WHERE request_id = $1", request_id)
    )
    shown = gw.call(store.fetchval("SELECT state_reason FROM requests WHERE id = $1", request_id))
    assert CARD not in stored and "no: card" in stored
    assert CARD not in shown
    rejected = [a for a in channel.sent if a.kind == "rejected"]
    assert rejected and all(CARD not in a.summary for a in rejected)
