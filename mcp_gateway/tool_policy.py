"""Policy for a governed server's tools: who may call which tool, and what a call's
arguments add.

:func:`tool_action` is the tool's own rule: per group the exact name first, then the globs
in the order written; across groups the most permissive; a tool no rule names is denied.
An agent gets its human's action, never more than the resource's cap for agents
(``access.agents``), and nothing on a resource its delegation does not name.

:func:`argument_action` looks inside the arguments: every string (keys included, at any
depth) against the resource's patterns, and, for a tool marked as taking SQL, that
argument through the same classifier as psql (the strictest statement decides, through
``guard.sql_access``). The call gets the strictest of the two actions.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from guard import Classifier
from identity import Principal
from mcp_gateway.settings import McpAction, McpServer

_RANK: Mapping[McpAction, int] = {"deny": 0, "review": 1, "allow": 2}


@dataclass(frozen=True, slots=True)
class Judgement:
    action: McpAction
    reasons: tuple[str, ...] = ()


def tool_action(server: McpServer, groups: Iterable[str], tool: str, who: Principal) -> McpAction:
    best: McpAction = "deny"
    for group in groups:
        action = rule_for(server.access.get(group, {}), tool)
        if action is not None and _RANK[action] > _RANK[best]:
            best = action
    if who.actor is None:
        return best
    if not who.may_use(server.name):
        return "deny"
    cap = rule_for(server.agent_caps, tool)
    return best if cap is None else strictest((best, cap))


def rule_for(rules: Mapping[str, McpAction], tool: str) -> McpAction | None:
    if tool in rules:
        return rules[tool]
    return next((a for pattern, a in rules.items() if fnmatchcase(tool, pattern)), None)


def strictest(actions: Iterable[McpAction]) -> McpAction:
    return min(actions, key=_RANK.__getitem__, default="deny")


def argument_action(
    server: McpServer, classifier: Classifier, tool: str, arguments: Mapping[str, Any]
) -> Judgement:
    actions: list[McpAction] = ["allow"]
    reasons: list[str] = []
    if server.patterns:
        for text in _strings(arguments):
            for rule in server.patterns:
                if rule.pattern.search(text):
                    actions.append(rule.action)
                    reasons.append(f"an argument matches {rule.pattern.pattern!r}")
    argument = server.sql_arguments.get(tool)
    if argument is not None:
        sql = arguments.get(argument)
        if not isinstance(sql, str) or not sql.strip():
            actions.append("deny")
            reasons.append(f"{tool} takes SQL in {argument!r}, and none was given")
        else:
            verdicts = classifier.classify(sql)
            worst = Classifier.strictest(verdicts)
            actions.append(server.sql_access.get(worst.statement_class, "deny"))
            why = "; ".join(dict.fromkeys(r for v in verdicts for r in v.reasons))
            reasons.append(
                f"{argument} is {worst.statement_class} SQL" + (f" ({why})" if why else "")
            )
    action = strictest(actions)
    return Judgement(action, tuple(dict.fromkeys(reasons)) if action != "allow" else ())


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
