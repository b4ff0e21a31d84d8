"""`qasr serve`'s engine-dependent fault handling against upstream chatllm.cpp and the tiny model: the
per-request language (an AI prefix, which the test double only imitates) and the engine's abort
when a client drops a stream. Skips without a real libchatllm (QASR_CHATLLM_LIB) and ../shared."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import SHARED_DATA, real_engine, requires_real_engine
from serving import Server, form_body, raw_request

pytestmark = [pytest.mark.real_engine, requires_real_engine]
JFK = SHARED_DATA / "jfk.wav"


@pytest.fixture()
def server():  # type: ignore[no-untyped-def]
    lib, model = real_engine()  # type: ignore[misc]
    started = Server(["-m", str(model), "--workers", "1"], {**os.environ, "QASR_CHATLLM_LIB": str(lib)})
    yield started
    said = started.stop()
    assert "Traceback" not in said, said


def test_the_language_field_reaches_the_engine(server: Server) -> None:
    client = server.client()
    with JFK.open("rb") as f:
        verbose = client.audio.transcriptions.create(model="m", file=f, response_format="verbose_json", language="de")
    assert verbose.language == "german"  # upstream printed the forced "language German<asr_text>"
    with JFK.open("rb") as f:
        assert client.audio.transcriptions.create(model="m", file=f, response_format="verbose_json").language == "english"


def test_a_dropped_stream_is_aborted_in_the_engine(server: Server, tmp_path: Path) -> None:
    speech, rate = soundfile.read(str(JFK), dtype="float32")
    long = tmp_path / "long.wav"  # 9 minutes: dozens of engine calls (VAD chunks), so it is still running when dropped
    piece = np.concatenate([speech, np.zeros(5 * rate, np.float32)])
    soundfile.write(str(long), np.tile(piece, 540 * rate // len(piece) + 1)[: 540 * rate], rate, subtype="PCM_16")
    body, kind = form_body(long.read_bytes(), stream="true")
    sock = raw_request(server.port, body, kind)
    got = b""
    while b"data:" not in got:
        got += sock.recv(4096)
    sock.shutdown(socket.SHUT_RDWR)
    sock.close()
    t0 = time.monotonic()
    server.wait_metric("qasr_workers_busy", 0, timeout=3)
    assert time.monotonic() - t0 < 1.5
    assert server.metric("qasr_requests_cancelled_total", reason="disconnect") == 1
    assert server.metric("qasr_worker_restarts_total", reason="stuck") == 0  # it stopped when asked
    with JFK.open("rb") as f:
        assert server.client().audio.transcriptions.create(model="m", file=f).text
