"""One way for a child process to talk to its parent: JSON lines, one ``kind`` key, errors as records.

Every child qasr starts (the long-form phases, the aligner beside a transcription, the benchmark's
providers, the server's workers, the lab's runs, Silero) speaks this framing, both ways:

* a message is one line of JSON holding ``"kind"`` (what it is) and its fields;
* a message that carries binary data says ``"bytes": N`` and the N raw bytes follow its newline
  (Silero's frames: no base64 on a path that runs every 32 ms);
* an error is ``{"kind": "error", "error_class": ..., "message": ..., "exit_code": ...}``
  (`qasr.errors.to_record`), which the parent rebuilds as the same class (`qasr.errors.from_record`)
  instead of guessing it from an exit code;
* a child whose records must survive its own crash (a long-form phase: every finished chunk is
  kept) also appends each record to a **durable copy**, a JSONL file flushed line by line.

`Sender.for_stdout()` takes the process's stdout for the channel and points file descriptor 1 at
stderr, so anything a native library prints lands in the child's log, never in the channel. A child
ends with `exit_now(code)`: flush, then ``os._exit``, because upstream chatllm.cpp aborts in its
static destructors once a model was loaded.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

from qasr.errors import QasrError, from_record, to_record

if TYPE_CHECKING:  # only the server's event loop reads a channel asynchronously; every command imports this module
    import asyncio

KIND = "kind"
ERROR = "error"


class Message(dict):  # type: ignore[type-arg]
    """One received record: a dict of its fields, plus ``payload`` (bytes, or None without one)."""

    payload: bytes | None = None

    @property
    def kind(self) -> str:
        return str(self.get(KIND, ""))

    def error(self) -> QasrError:
        """The error an ``error`` record carries, as its own class."""
        return from_record(self)


def encode(kind: str, fields: dict[str, Any], payload: bytes | None = None) -> bytes:
    """One message as bytes: the JSON line, then the payload if any."""
    record = {KIND: kind, **fields}
    if payload is not None:
        record["bytes"] = len(payload)
    line = (json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str) + "\n").encode("utf-8")
    return line + payload if payload is not None else line


class Sender:
    """The child's side: messages to a binary stream, and a durable JSONL copy when asked for."""

    def __init__(self, stream: IO[bytes] | None, durable: Path | None = None) -> None:
        self.stream = stream
        self._durable = open(durable, "ab") if durable is not None else None  # noqa: SIM115 - lives with the sender

    @classmethod
    def for_stdout(cls, durable: Path | None = None) -> Sender:
        """The process's stdout as the channel; fd 1 then points at stderr (stray native prints go to the log)."""
        sys.stdout.flush()
        fd = os.dup(1)
        os.dup2(2, 1)
        return cls(os.fdopen(fd, "wb"), durable)

    def send(self, kind: str, payload: bytes | None = None, **fields: Any) -> None:
        data = encode(kind, fields, payload)
        if self._durable is not None and payload is None:
            self._durable.write(data)
            self._durable.flush()
        if self.stream is not None:
            try:
                self.stream.write(data)
                self.stream.flush()
            except (BrokenPipeError, ValueError):  # the parent went away: the durable copy still holds it
                self.stream = None

    def error(self, exc: BaseException, **fields: Any) -> None:
        """Send an error as a record (`qasr.errors.to_record`), with ``fields`` (a request's ``id``)."""
        self.send(ERROR, **fields, **to_record(exc))

    def close(self) -> None:
        for fh in (self._durable, self.stream):
            if fh is not None:
                try:
                    fh.close()
                except OSError:
                    pass


class Receiver:
    """The parent's side: messages from a child's binary stdout, until it closes.

    Lines that are not JSON objects with a ``kind`` are skipped (a library that printed to stdout
    before the child took it over): they are not ours.
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream

    def receive(self) -> Message | None:
        """The next message, or None when the child closed its end."""
        steps = _framing()
        want = next(steps)
        try:
            while True:
                want = steps.send(self.stream.readline() if want is None else self.stream.read(want))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[Message]:
        while True:
            message = self.receive()
            if message is None:
                return
            yield message


async def receive_async(stream: asyncio.StreamReader) -> Message | None:
    """`Receiver.receive` for a parent whose pipes belong to an event loop (the server's workers)."""
    steps = _framing()
    want = next(steps)
    try:
        while True:
            want = steps.send(await (stream.readline() if want is None else stream.read(want)))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def _framing() -> Generator[int | None, bytes, Message | None]:
    """The framing, apart from any I/O (so blocking and event-loop readers share it): yields None
    for the next line or N for the next N bytes, is sent what was read, returns the message (None
    once the stream ended, or ended mid-message: the child died)."""
    while True:
        line = yield None
        if not line:
            return None
        message = _parse(line)
        if message is None:
            continue
        size = message.get("bytes")
        if isinstance(size, int) and size >= 0:
            payload = b""
            while len(payload) < size:  # a pipe may give a payload in pieces
                piece = yield size - len(payload)
                if not piece:
                    return None
                payload += piece
            message.payload = payload
        return message


def _parse(line: bytes) -> Message | None:
    try:
        data = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or KIND not in data:
        return None
    return Message(data)


def read_durable(path: Path, kind: str | None = None) -> list[Message]:
    """Every complete record of a durable copy, or those of one ``kind`` (a half-written last line,
    from a crash, is ignored)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    records = (m for m in (_parse(line) for line in data.split(b"\n")[:-1] if line.strip()) if m is not None)
    return [m for m in records if kind is None or m.kind == kind]


def exit_now(code: int) -> NoReturn:
    """Flush Python's streams and leave without static destructors (upstream aborts in them)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
