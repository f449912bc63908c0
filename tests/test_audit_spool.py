"""The audit spool: frames both writers seal the same way, a spool that cannot be written
refuses (nothing reaches the target unrecorded), segments are released once stored, and
a spool whose key the store lacks is left alone."""

from __future__ import annotations

import asyncio
import errno
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from audit.events import StatementEvent
from audit.recovery import recover
from audit.spool import (
    PySpoolWriter,
    SpoolWriter,
    done_frame,
    intent_frame,
    new_writer,
    read_frames,
)
from proxy.fastpath import NATIVE_AVAILABLE
from tests.harness import GatewayThread, ask_api, gateway_config, scalar

ALICE = "alice@example.com"
WRITES = {"read": "allow", "write": "allow"}


def _event(sql: str, outcome: str = "ok") -> StatementEvent:
    event = StatementEvent(uuid.uuid4(), 1, sql, "simple", time.time())
    event.ended_at, event.rows, event.outcome = event.started_at + 0.002, 3, outcome
    event.command_tag, event.sqlstate = b"UPDATE 3", None
    return event


@pytest.mark.parametrize("native", [True, False] if NATIVE_AVAILABLE else [False])
def test_frames_read_back_as_written(native: bool, tmp_path: Path) -> None:
    key, path = os.urandom(32), tmp_path / "segment"
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.posix_fallocate(fd, 0, 4096)
    writer: SpoolWriter = (
        new_writer(key, os.urandom(4)) if native else PySpoolWriter(key, os.urandom(4))
    )
    assert (type(writer).__name__ == "Spool") is native
    with pytest.raises(OSError) as none:
        writer.write([intent_frame(_event("select 1"))])
    assert none.value.errno == errno.EBADF  # no segment yet: refused, nothing lost silently
    writer.swap(fd, 4096)
    first, second = _event("update t set card = '4111 1111 1111 1111'"), _event("x" * 300)
    writer.write([intent_frame(first)])
    writer.write([done_frame(first), intent_frame(second)])
    with pytest.raises(OSError) as full:
        writer.write([intent_frame(_event("y" * 4000))])
    assert full.value.errno == errno.ENOBUFS
    os.close(writer.swap(-1, 0))
    data = path.read_bytes()
    assert len(data) == 4096
    assert b"4111" not in data and b"update" not in data  # encrypted at rest
    intents: list = []
    dones: dict = {}
    read_frames(data, key, intents, dones)
    assert [(i.session_id, i.sql) for i in intents] == [
        (first.session_id, first.sql.encode()),
        (second.session_id, second.sql.encode()),
    ]
    assert intents[0].started_us == int(first.started_at * 1_000_000)
    done = dones[(first.session_id, intents[0].started_us)]
    assert (done.outcome, done.rows, done.command_tag) == ("ok", 3, b"UPDATE 3")
    assert abs(done.duration_us - 2000) <= 1  # µs of float seconds
    # A frame cut short (the machine stopped mid-write) ends the segment, and so does a
    # zero length (an append the process died in); a wrong key fails.
    end = data.rstrip(b"\0")
    cut: list = []
    read_frames(end[:-5], key, cut, {})
    assert len(cut) == 1
    died: list = []
    read_frames(b"\0\0\0\0" + data[4:], key, died, {})
    assert died == []
    with pytest.raises(ValueError):
        read_frames(data, os.urandom(32), [], {})


@pytest.mark.parametrize("repeat", [1, 5])
def test_a_spool_that_cannot_be_written_refuses_the_statement(
    make_database: Callable[[str], str], tmp_path: Path, repeat: int
) -> None:
    """``repeat`` 5: the statement's shape is admitted by then, so the native engine takes
    it (and finds the spool failing) rather than the Python relay."""
    store, target = make_database("jg_spool_full_store"), make_database("jg_spool_full_target")
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int)")
    gateway = GatewayThread(
        gateway_config(store, target, engineers=WRITES, audit={"spool": str(tmp_path)})
    )
    try:
        dsn = gateway.dsn(ALICE, gateway.token(ALICE))
        with psycopg.connect(dsn, autocommit=True) as conn:
            for n in range(repeat):
                conn.execute(f"INSERT INTO t VALUES ({n})", prepare=False)
            # The current segment full, and no new one can be made (the directory is gone,
            # as a full disk refuses one).
            spool = gateway.gateway.spool
            assert spool.writer is not None
            tiny = os.open(tmp_path / "tiny", os.O_CREAT | os.O_RDWR, 0o600)
            os.posix_fallocate(tiny, 0, 64)
            os.close(spool.writer.swap(tiny, 64))
            spool.directory.rename(tmp_path / "gone")
            with pytest.raises(psycopg.OperationalError) as refused:
                conn.execute("INSERT INTO t VALUES (99)", prepare=False)
        assert refused.value.sqlstate == "57P03"
        assert scalar(target, "SELECT count(*) FROM t WHERE id = 99") == 0
        assert scalar(target, "SELECT count(*) FROM t") == repeat
    finally:
        gateway.stop()


def test_segments_are_released_once_their_statements_are_stored(
    make_database: Callable[[str], str], tmp_path: Path
) -> None:
    store, target = make_database("jg_spool_rotate_store"), make_database("jg_spool_rotate_target")
    gateway = GatewayThread(
        gateway_config(store, target, engineers=WRITES, audit={"spool": str(tmp_path)})
    )
    try:
        spool = gateway.gateway.spool
        dsn = gateway.dsn(ALICE, gateway.token(ALICE))
        with psycopg.connect(dsn, autocommit=True) as conn:
            for round_ in range(3):
                for n in range(20):
                    conn.execute(f"SELECT {round_ * 100 + n}")
                gateway.call(asyncio.to_thread(spool.rotate))
            gateway.flush_audit()
            gateway.flush_audit()
        segments = sorted(spool.directory.glob("*.seg"))
        # Only the segment being written is left: the closed ones held nothing unstored.
        assert len(segments) == 1, segments
    finally:
        gateway.stop()
    assert not list(spool.directory.glob("*")), "a clean stop leaves nothing behind"


def test_a_spool_whose_key_is_not_in_the_store_is_left_unread(
    make_database: Callable[[str], str], tmp_path: Path
) -> None:
    store = make_database("jg_spool_nokey_store")
    gateway = GatewayThread(
        gateway_config(store, store, engineers=WRITES, audit={"spool": str(tmp_path)})
    )
    try:
        directory = gateway.gateway.spool.directory
        stranger = uuid.uuid4()
        (directory / f"{stranger}.lock").touch()
        (directory / f"{stranger}.00000001.seg").write_bytes(b"\x10\0\0\0" + os.urandom(16))
        recovered = gateway.call(
            recover(gateway.gateway.pool, directory, uuid.uuid4(), lambda r, s: ("read", ()))
        )
        assert recovered.spools == 0
        assert (directory / f"{stranger}.00000001.seg").exists()
    finally:
        gateway.stop()


def test_statements_run_for_requests_are_spooled_too(
    make_database: Callable[[str], str], tmp_path: Path
) -> None:
    """A statement the REST API (chat, the CLI, agents) runs on a connection of its own is
    written to the spool before it runs, and how it ended after."""
    store, target = make_database("jg_spool_api_store"), make_database("jg_spool_api_target")
    gateway = GatewayThread(
        gateway_config(store, target, engineers=WRITES, audit={"spool": str(tmp_path)})
    )
    try:
        status, body = ask_api(gateway, gateway.token(ALICE), "SELECT 41 + 1")
        assert status == 200, body
        spool = gateway.gateway.spool
        key = bytes(scalar(store, f"SELECT key FROM audit_spools WHERE id = '{spool.id}'"))
        intents: list = []
        dones: dict = {}
        for segment in sorted(spool.directory.glob(f"{spool.id}.*.seg")):
            read_frames(segment.read_bytes(), key, intents, dones)
        (asked,) = [i for i in intents if i.sql == b"SELECT 41 + 1"]
        assert dones[(asked.session_id, asked.started_us)].outcome == "ok"
    finally:
        gateway.stop()
