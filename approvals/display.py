"""What may be shown of a request or an outcome outside the store: the last masking pass at
every edge (REST API, pages, chat). Whatever path produced an outcome, no raw value leaves
through an adapter."""

from __future__ import annotations

import dataclasses

from approvals.model import Outcome, RequestView, State
from jitgate.config import Config
from masking import mask_text


def shown_outcome(config: Config, resource: str, outcome: Outcome) -> Outcome:
    """``outcome`` masked once more at the edge: the preview by the default policy (unless the
    resource says ``masking: off``) and the error message always (a database error can quote a
    value). Whatever path produced the outcome, no raw value leaves through the web."""
    error = mask_text(outcome.error).value if outcome.error else outcome.error
    settings = config.resources.get(resource)
    if settings is not None and settings.masking == "off":
        return dataclasses.replace(outcome, error=error)
    masked = dict(outcome.masked)
    preview = []
    for row in outcome.preview:
        cells: list[str | None] = []
        for column, cell in zip(outcome.columns, row, strict=False):
            result = None if cell is None else mask_text(cell, column=column)
            for entity in result.entities if result else ():
                masked[entity] = masked.get(entity, 0) + 1
            cells.append(result.value if result else None)
        preview.append(tuple(cells))
    return dataclasses.replace(outcome, error=error, preview=tuple(preview), masked=masked)


def shown(config: Config, view: RequestView) -> RequestView:
    """``view`` as the API and the pages show it: the outcome masked, and the state reason
    of a failed request, which is the database's error message."""
    outcome = shown_outcome(config, view.resource, view.outcome) if view.outcome else None
    reason = view.state_reason
    if reason and view.state == State.FAILED:
        reason = mask_text(reason).value
    return dataclasses.replace(view, outcome=outcome, state_reason=reason)
