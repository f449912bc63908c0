"""Server-sent events as MCP's streamable HTTP transport uses them, sans-IO: bytes in,
the ``data`` of each complete event out (WHATWG HTML, "Server-sent events", 9.2.6).

Only ``data`` matters to MCP; ``event``, ``id`` and ``retry`` fields are read and dropped,
comment lines are skipped, and an event without data (a priming event) yields nothing.
Lines end in CRLF, LF or CR.
"""

from __future__ import annotations


class EventStream:
    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        """The data of every event ``chunk`` completes, in order."""
        self._buffer += chunk
        events: list[bytes] = []
        while True:
            line, ending = _next_line(self._buffer)
            if ending is None:
                return events
            self._buffer = self._buffer[len(line) + len(ending) :]
            if not line:
                if self._data:
                    events.append(b"\n".join(self._data))
                    self._data = []
                continue
            if line.startswith(b":"):
                continue
            name, _, value = line.partition(b":")
            if name == b"data":
                self._data.append(value[1:] if value.startswith(b" ") else value)

    @property
    def pending(self) -> int:
        """Bytes read that no complete event holds yet."""
        return len(self._buffer) + sum(len(d) for d in self._data)


def _next_line(buffer: bytes) -> tuple[bytes, bytes | None]:
    """The first line of ``buffer`` and its ending, or the buffer and None while the line
    is incomplete (a CR at the very end may be the first half of a CRLF)."""
    cr, lf = buffer.find(b"\r"), buffer.find(b"\n")
    if lf >= 0 and (cr < 0 or lf < cr):
        return buffer[:lf], b"\n"
    if cr >= 0:
        if cr + 1 == len(buffer):
            return buffer, None
        return buffer[:cr], b"\r\n" if buffer[cr + 1 : cr + 2] == b"\n" else b"\r"
    return buffer, None
