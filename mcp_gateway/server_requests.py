"""Requests a governed server sends the agent while it answers a call: ``sampling/createMessage``
(the agent's model writes something) and ``elicitation/create`` (the agent's user is asked).

Each is decided by the resource's ``server_requests`` (default deny):

* denied: the server gets a JSON-RPC error saying so, an alert is raised, and the request
  is recorded in ``mcp_calls`` (decision ``deny``, outcome ``refused``);
* allowed: it is relayed to the agent on the call's event stream (:mod:`mcp_gateway.stream`),
  masked like every answer, under an id of the gateway's own; the agent answers it with a
  POST of its response to the same session, which :meth:`ServerRequests.settle` hands
  back, and the server gets that answer under its own id. The answer is recorded masked
  (decision ``allow``, outcome ``answered``, ``declined`` or ``error``). An agent whose
  client takes no event stream cannot be asked: the server is refused, and told why
  (``no_stream``); one that does not answer before the call ends is recorded
  ``unanswered``.

``ping`` is answered by the gateway; anything else (``roots/list``) is refused. A relayed
request waits in the gateway process that holds the stream; the agent's answer must
reach that process (a load balancer keeps a session on one process by its
``Mcp-Session-Id``), and is bounded by the server's ``timeout`` like the call itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from typing import Any

from approvals.model import Alert
from jitgate.errors import StoreUnavailable
from jitgate.gateway import Gateway
from masking import MaskingPolicy
from mcp_gateway import proxy_texts
from mcp_gateway.downstream import ServerRequestHandler
from mcp_gateway.masked_results import masked_answer, masked_text
from mcp_gateway.proxy_store import ProxySession, ProxyStore
from mcp_gateway.stream import AgentStream

_POLICY = {"sampling/createMessage": "sampling", "elicitation/create": "elicitation"}
_REFUSED = -1


class ServerRequests:
    def __init__(self, gateway: Gateway, store: ProxyStore) -> None:
        self.gateway = gateway
        self.store = store
        self._waiting: dict[str, tuple[str, asyncio.Future[dict[str, Any]]]] = {}

    def handler(
        self, session: ProxySession, stream: AgentStream | None, masking: MaskingPolicy | None
    ) -> ServerRequestHandler:
        server = self.gateway.config.mcp_servers[session.resource]

        async def answer(message: dict[str, Any]) -> dict[str, Any]:
            method, params = str(message.get("method")), message.get("params")
            if method == "ping":
                return {"jsonrpc": "2.0", "id": message["id"], "result": {}}
            setting = _POLICY.get(method)
            allowed = setting is not None and getattr(server, setting) == "allow"
            arguments = params if isinstance(params, dict) else {}
            call_id = await self.store.call_started(session, method, arguments)
            if not allowed:
                text = proxy_texts.refused_server_request(server.name, method)
                self.gateway.approvals.emit(
                    Alert("guardrail", text, session.principal.email, server.name)
                )
                return await self._refused(call_id, message, "deny", "refused", text)
            relayed = f"jitgate-{secrets.token_urlsafe(16)}"
            request = {"jsonrpc": "2.0", "id": relayed, "method": method, "params": arguments}
            shown, _ = masked_answer(json.dumps(request, ensure_ascii=False).encode(), masking)
            waiting = asyncio.get_running_loop().create_future()
            self._waiting[relayed] = (session.id, waiting)
            try:
                if stream is None or not await stream.send(shown):
                    text = proxy_texts.no_stream(server.name, method)
                    return await self._refused(call_id, message, "allow", "no_stream", text)
                reply = await waiting
            except asyncio.CancelledError:  # the call ended first (the server's timeout)
                text = proxy_texts.no_answer(server.name, method)
                ended = self._refused(call_id, message, "allow", "unanswered", text)
                self.gateway.approvals.spawn(ended)
                raise
            finally:
                self._waiting.pop(relayed, None)
            return await self._answered(call_id, message, reply)

        return answer

    def settle(self, session: ProxySession, body: bytes) -> bool:
        """Hand the agent's answer in ``body`` to the relayed request it answers; False
        when no request of this session waits for it here."""
        try:
            reply = json.loads(body)
        except ValueError:
            return False
        found = self._waiting.get(reply.get("id")) if isinstance(reply.get("id"), str) else None
        if found is None or found[0] != session.id or found[1].done():
            return False
        found[1].set_result(reply)
        return True

    async def _refused(
        self, call_id: int, message: dict[str, Any], decision: str, outcome: str, text: str
    ) -> dict[str, Any]:
        with contextlib.suppress(StoreUnavailable):
            await self.store.call_ended(call_id, decision, outcome, text, None)
        return {"jsonrpc": "2.0", "id": message["id"], "error": {"code": _REFUSED, "message": text}}

    async def _answered(
        self, call_id: int, message: dict[str, Any], reply: dict[str, Any]
    ) -> dict[str, Any]:
        answer: dict[str, Any] = {"jsonrpc": "2.0", "id": message["id"]}
        if isinstance(reply.get("result"), dict):
            answer["result"] = reply["result"]
            declined = reply["result"].get("action") in ("decline", "cancel")
            outcome = "declined" if declined else "answered"
        else:
            error = reply.get("error")
            if not isinstance(error, dict):
                error = {"code": _REFUSED, "message": "the agent sent no result"}
            answer["error"] = error
            outcome = "error"
        sent = reply.get("result", reply.get("error"))
        recorded = masked_text(json.dumps(sent, ensure_ascii=False), None)
        with contextlib.suppress(StoreUnavailable):
            await self.store.call_ended(call_id, "allow", outcome, recorded, None)
        return answer
