"""``functions.allow`` is checked against the target's catalog: a name it does not
define, a VOLATILE function and a SECURITY DEFINER one are each a start-up warning naming
the key; a STABLE function the target defines is not."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

import psycopg
import pytest

from guard.resources import allowed_function_doubts
from tests.harness import GatewayThread, gateway_config


def test_doubtful_allowed_functions_are_warned_about_at_start(
    make_database: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    store, target = make_database("jg_allowfn_store"), make_database("jg_allowfn_target")
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA reporting")
        conn.execute("CREATE TABLE t (id int)")
        conn.execute(
            "CREATE FUNCTION reporting.totals() RETURNS bigint STABLE"
            " LANGUAGE sql AS 'SELECT count(*) FROM t'"
        )
        conn.execute(
            "CREATE FUNCTION reporting.purge() RETURNS void LANGUAGE sql AS 'DELETE FROM t'"
        )
        conn.execute(
            "CREATE FUNCTION reporting.peek() RETURNS bigint STABLE SECURITY DEFINER"
            " LANGUAGE sql AS 'SELECT count(*) FROM t'"
        )
    caplog.set_level(logging.WARNING, logger="jitgate.guard")
    config = gateway_config(store, target)
    allowed = ("reporting.totals", "reporting.purge", "peek", "reporting.gone")
    prod = dataclasses.replace(config.resources["prod"], allowed_functions=allowed)
    gateway = GatewayThread(
        dataclasses.replace(config, resources={**config.resources, "prod": prod})
    )
    gateway.stop()
    doubts = [r.__dict__.get("doubt", "") for r in caplog.records]
    assert "reporting.purge is VOLATILE: a read that calls it may change data" in doubts
    assert "reporting.peek is SECURITY DEFINER: it runs with its owner's rights" in doubts
    assert "reporting.gone: the target defines no such function" in doubts
    assert not any("totals" in d for d in doubts), doubts
    assert all(
        r.__dict__.get("key") == "resources.prod.functions.allow"
        for r in caplog.records
        if r.__dict__.get("doubt")
    )


def test_doubts_are_read_from_the_catalog_rows() -> None:
    rows = [("public", "f", "s", False), ("app", "f", "v", False), ("app", "g", "i", True)]
    assert allowed_function_doubts(["public.f", "app.g"], rows) == (
        "app.g is SECURITY DEFINER: it runs with its owner's rights",
    )
    assert allowed_function_doubts(["f"], rows) == (
        "app.f is VOLATILE: a read that calls it may change data",
    )
