"""`qasr serve` under what production does to it (issue 22), on the test double, 127.0.0.1 only.

One test per fault: workers that die idle, mid-request, mid-stream, or on a poison input; clients
that go away during the upload, in the queue, mid-request, mid-SSE and mid-WebSocket; hostile
uploads (chunked past the limit, trickling, malformed); a burst beyond the queue; per-request
language; a 9-minute upload; SIGTERM idle, under load and past its timeout (a request, a stream),
Ctrl-C at a terminal, a second signal; the server SIGKILLed under load. Every wait is on something
the server says or does (a metric, a status, a process ending), bounded; nothing sleeps to decide
an order.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import soundfile
from conftest import sine
from serving import (DEFAULT_TEXT, SAMPLES, clip, form_body, raw_request, read_status, serve,  # noqa: F401 - fixtures
                     wait_until)  # fmt: skip

openai = pytest.importorskip("openai")

#: Per chunk: the double's 9 chunks (language, name, tag, 6 words) make a request last ~2.7 s.
SLOW = "300"


def _descendants(pid: int) -> list[int]:
    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _transcribe(server, path: Path, results: list[object], **kwargs: object) -> None:  # type: ignore[no-untyped-def]
    """One request from a thread: its text, or the exception it raised, appended to ``results``."""
    try:
        with path.open("rb") as f:
            results.append(server.client().audio.transcriptions.create(model="m", file=f, **kwargs).text)
    except Exception as exc:  # noqa: BLE001 - the test looks at what came back
        results.append(exc)


def _ok(server, path: Path, text: str | None = DEFAULT_TEXT) -> float:  # type: ignore[no-untyped-def]
    """One request that must succeed (with ``text``, unless None); its wall time."""
    t0 = time.monotonic()
    with path.open("rb") as f:
        got = server.client().audio.transcriptions.create(model="m", file=f).text
    assert got == text if text is not None else got
    return time.monotonic() - t0


# -- workers ---------------------------------------------------------------------------------


def test_a_worker_killed_while_idle_is_replaced_before_any_request_sees_it(serve, clip: Path) -> None:  # type: ignore[no-untyped-def]
    server = serve("--workers", "2")
    victim = max(server.worker_pids(), key=lambda p: psutil.Process(p).memory_info().rss)  # as the OOM killer picks
    os.kill(victim, signal.SIGKILL)
    server.wait_metric("qasr_worker_restarts_total", 1, reason="died")
    wait_until(lambda: len(server.worker_pids()) == 2 and victim not in server.worker_pids(), 30, "a replacement")
    for _ in range(4):
        _ok(server, clip)
    assert server.metric("qasr_request_retries_total") == 0  # no request ever went to the dead worker
    assert server.metric("qasr_requests_total", status="200") == 4


def test_a_poison_input_is_a_500_naming_it_and_the_pool_survives(serve, clip: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = serve("--workers", "2", abort_longer_than_ms="3000")
    poison = tmp_path / "poison.wav"
    soundfile.write(str(poison), sine(4.0), 16_000)
    with poison.open("rb") as f, pytest.raises(openai.InternalServerError) as err:
        server.client().audio.transcriptions.create(model="m", file=f)
    assert "two workers in a row" in str(err.value) and "SIGABRT" in str(err.value)
    assert err.value.body["code"] == "worker_died"  # type: ignore[union-attr]
    assert server.metric("qasr_worker_restarts_total", reason="died") == 2 and server.metric("qasr_request_retries_total") == 1
    wait_until(lambda: len(server.worker_pids()) == 2, 30, "both workers replaced")
    _ok(server, clip)


def test_a_worker_killed_mid_stream_ends_the_stream_with_an_error_event(serve, clip: Path) -> None:  # type: ignore[no-untyped-def]
    server = serve(token_delay_ms=SLOW)
    pid = server.worker_pids()[0]
    with clip.open("rb") as f:
        stream = server.client().audio.transcriptions.create(model="m", file=f, stream=True)
        events = iter(stream)
        first = next(events)
        assert first.type == "transcript.text.delta"
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(openai.APIError, match="SIGKILL"):  # the client's reading of an error event
            list(events)
    assert server.metric("qasr_request_retries_total") == 0  # text was already sent: no retry
    wait_until(lambda: server.worker_pids() and pid not in server.worker_pids(), 30, "a replacement")
    _ok(server, clip)


# -- clients that go away --------------------------------------------------------------------


def test_a_client_gone_during_its_upload_costs_nothing(serve, clip: Path) -> None:  # type: ignore[no-untyped-def]
    server = serve("--workers", "1")
    body, kind = form_body(clip.read_bytes())
    sock = raw_request(server.port, body, kind, send_body=False)
    sock.sendall(body[: len(body) // 2])
    sock.close()
    server.wait_metric("qasr_requests_cancelled_total", 1, reason="disconnect")
    assert _ok(server, clip) < 2.0


def test_a_client_gone_while_queued_leaves_the_queue(serve, clip: Path) -> None:  # type: ignore[no-untyped-def]
    server = serve("--workers", "1", token_delay_ms=SLOW)
    first: list[object] = []
    t = threading.Thread(target=_transcribe, args=(server, clip, first))
    t.start()
    server.wait_metric("qasr_workers_busy", 1)
    body, kind = form_body(clip.read_bytes())
    queued = raw_request(server.port, body, kind)
    server.wait_metric("qasr_queue_depth", 1)
    queued.close()
    server.wait_metric("qasr_queue_depth", 0, timeout=2)
    server.wait_metric("qasr_requests_cancelled_total", 1, reason="disconnect")
    t.join(30)
    assert first == [DEFAULT_TEXT]
    server.wait_metric("qasr_workers_busy", 0, timeout=2)  # the worker was never handed to the ghost
    assert _ok(server, clip) < 2.7 + 2.0  # its own ~2.7 s, and nothing queued before it


def test_a_client_gone_mid_request_frees_its_worker_within_a_second(serve, clip: Path) -> None:  # type: ignore[no-untyped-def]
    server = serve("--workers", "1", token_delay_ms=SLOW)
    body, kind = form_body(clip.read_bytes())
    sock = raw_request(server.port, body, kind)
    server.wait_metric("qasr_workers_busy", 1)
    sock.close()
    t0 = time.monotonic()
    server.wait_metric("qasr_workers_busy", 0, timeout=2)
    freed = time.monotonic() - t0
    assert freed < 1.5, f"the worker took {freed:.2f} s to come back"
    server.wait_metric("qasr_requests_cancelled_total", 1, timeout=2, reason="disconnect")  # counted just after the give-back
    assert server.metric("qasr_worker_restarts_total", reason="stuck") == 0  # the engine's abort stopped it
    _ok(server, clip)


def test_a_client_gone_mid_sse_frees_its_worker(serve, clip: Path) -> None:  # type: ignore[no-untyped-def]
    server = serve("--workers", "1", token_delay_ms=SLOW)
    with clip.open("rb") as f:
        stream = server.client().audio.transcriptions.create(model="m", file=f, stream=True)
        assert next(iter(stream)).type == "transcript.text.delta"
        stream.response.close()  # type: ignore[attr-defined]
    server.wait_metric("qasr_workers_busy", 0, timeout=2)
    server.wait_metric("qasr_requests_cancelled_total", 1, timeout=2, reason="disconnect")  # counted just after the give-back
    assert server.metric("qasr_queue_depth") == 0
    _ok(server, clip)


def test_a_browser_gone_mid_websocket_frees_its_worker(serve, clip: Path) -> None:  # type: ignore[no-untyped-def]
    from websockets.sync.client import connect

    server = serve("--workers", "1", words="audio", token_delay_ms="100")
    speech, rate = soundfile.read(str(SAMPLES / "en-hello.wav"), dtype="float32")
    pcm = (np.concatenate([np.zeros(rate, np.float32), speech, speech]) * 32767).astype("<i2").tobytes()
    with connect(f"ws://127.0.0.1:{server.port}/v1/realtime") as ws:
        for i in range(0, len(pcm), 3200):
            ws.send(pcm[i : i + 3200])
        server.wait_metric("qasr_workers_busy", 1)
        ws.socket.shutdown(socket.SHUT_RDWR)  # gone without a closing handshake, as a closed laptop lid
    server.wait_metric("qasr_workers_busy", 0, timeout=2)
    server.wait_metric("qasr_requests_cancelled_total", 1, timeout=2, reason="disconnect")  # counted just after the give-back
    assert _ok(server, clip, text=None) < 2.0  # (its words come from the audio: a tone is one "word")


def test_a_stuck_engine_is_killed_a_second_after_its_client_left(serve, clip: Path) -> None:  # type: ignore[no-untyped-def]
    server = serve("--workers", "1", token_delay_ms=SLOW, ignore_abort="1")
    body, kind = form_body(clip.read_bytes())
    sock = raw_request(server.port, body, kind)
    server.wait_metric("qasr_workers_busy", 1)
    sock.close()
    server.wait_metric("qasr_worker_restarts_total", 1, timeout=3, reason="stuck")
    _ok(server, clip)


# -- hostile and slow uploads ----------------------------------------------------------------


def test_a_chunked_upload_stops_being_read_at_the_limit(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("--max-upload", "5MB")
    parent = psutil.Process(server.proc.pid)
    before = parent.memory_info().rss
    sock = raw_request(server.port, b"", "multipart/form-data; boundary=x", send_body=False, chunked=True)
    sent = [0]

    def flood() -> None:  # up to 300 MB in 1 MiB chunks, until the server stops taking them
        piece = b"%x\r\n" % (1 << 20) + b"\0" * (1 << 20) + b"\r\n"
        head = b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n"
        try:
            sock.sendall(b"%x\r\n" % len(head) + head + b"\r\n")
            while sent[0] < 300 << 20:
                sock.sendall(piece)
                sent[0] += 1 << 20
        except OSError:
            pass

    t = threading.Thread(target=flood, daemon=True)
    t.start()
    status, headers, text = read_status(sock)
    sock.close()
    t.join(30)
    assert status == 413 and "limit" in text and headers.get("connection") == "close"
    assert sent[0] < 100 << 20, f"the client could send {sent[0] >> 20} MiB"
    grown = parent.memory_info().rss - before
    assert grown < 20 << 20, f"the server grew by {grown >> 20} MiB"
    assert server.get("/health")[0] == 200


def test_a_trickling_upload_is_dropped_with_408(serve, clip: Path) -> None:  # type: ignore[no-untyped-def]
    server = serve("--upload-timeout", "1")
    body, kind = form_body(clip.read_bytes())
    sock = raw_request(server.port, body, kind, send_body=False)
    sock.sendall(body[:100])  # and then nothing more
    t0 = time.monotonic()
    status, _, text = read_status(sock)
    sock.close()
    assert status == 408 and "did not arrive in time" in text and time.monotonic() - t0 < 5
    _ok(server, clip)


def test_malformed_bodies_are_400(serve, clip: Path) -> None:  # type: ignore[no-untyped-def]
    server = serve()
    body, kind = form_body(clip.read_bytes())
    cases = {
        "no file": form_body(b"", model="m")[0].replace(b'name="file"', b'name="other"'),
        "broken framing": body.replace(b"\r\n\r\n", b"\r\n", 1),
        "no boundary": body,
    }
    for name, data in cases.items():
        ctype = "multipart/form-data" if name == "no boundary" else kind
        sock = raw_request(server.port, data, ctype)
        status, _, text = read_status(sock)
        sock.close()
        assert status == 400, f"{name}: {status} {text}"
        assert "Traceback" not in text
    sock = raw_request(server.port, b'{"file": "x"}', "application/json")
    status, _, text = read_status(sock)
    sock.close()
    assert status == 400 and "multipart/form-data" in text
    _ok(server, clip)


def test_a_burst_beyond_the_queue_gets_429_never_a_500_or_a_hang(serve, clip: Path) -> None:  # type: ignore[no-untyped-def]
    server = serve("--workers", "1", "--queue", "1", token_delay_ms=SLOW)
    results: list[object] = []
    threads = [threading.Thread(target=_transcribe, args=(server, clip, results)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 6
    refused = [r for r in results if isinstance(r, Exception)]
    assert all(isinstance(r, openai.RateLimitError) and r.response.headers["retry-after"] == "1" for r in refused), refused
    assert results.count(DEFAULT_TEXT) >= 2 and refused  # one ran, one waited; the rest were told to retry


# -- language and long audio -------------------------------------------------------------------


def test_the_language_field_is_honoured_or_refused(serve, clip: Path) -> None:  # type: ignore[no-untyped-def]
    server = serve()
    client = server.client()
    with clip.open("rb") as f:
        verbose = client.audio.transcriptions.create(model="m", file=f, response_format="verbose_json", language="fr")
    assert verbose.language == "french" and verbose.text == DEFAULT_TEXT  # the engine was told: its answer says French
    for bad in ("es", "xx"):  # the test model takes no Spanish; xx is no language
        with clip.open("rb") as f, pytest.raises(openai.BadRequestError) as err:
            client.audio.transcriptions.create(model="m", file=f, language=bad)
        assert err.value.body["param"] == "language"  # type: ignore[index]


def test_a_server_forced_to_one_language_refuses_another(serve, clip: Path) -> None:  # type: ignore[no-untyped-def]
    server = serve("-l", "English")
    with clip.open("rb") as f, pytest.raises(openai.BadRequestError, match="English only"):
        server.client().audio.transcriptions.create(model="m", file=f, language="de")
    with clip.open("rb") as f:
        assert server.client().audio.transcriptions.create(model="m", file=f, language="en").text == DEFAULT_TEXT


def test_a_nine_minute_upload_goes_through_the_chunked_path(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = serve()
    speech, rate = soundfile.read(str(SAMPLES / "en-hello.wav"), dtype="float32")
    gap = np.zeros(20 * rate, np.float32)
    piece = np.concatenate([speech, gap])
    audio = np.tile(piece, int(np.ceil(540 * rate / len(piece))))[: 540 * rate]
    path = tmp_path / "nine.wav"
    soundfile.write(str(path), audio, rate, subtype="PCM_16")
    with path.open("rb") as f:
        verbose = server.client(timeout=240).audio.transcriptions.create(model="m", file=f, response_format="verbose_json")
    assert verbose.duration == pytest.approx(540.0, abs=0.01)
    assert len(verbose.segments) >= 2 and all(s.end - s.start <= 480.0 for s in verbose.segments)


# -- shutdown --------------------------------------------------------------------------------


def test_sigterm_when_idle_exits_0_and_leaves_no_worker(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("--workers", "2")
    workers = _descendants(server.proc.pid)
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=10) == 0
    assert all(_gone(p) for p in workers)


def test_sigterm_under_load_finishes_what_runs_then_exits_0(serve, clip: Path) -> None:  # type: ignore[no-untyped-def]
    server = serve("--workers", "2", "--queue", "4", "--shutdown-timeout", "20", token_delay_ms=SLOW)
    workers = _descendants(server.proc.pid)
    results: list[object] = []
    threads = [threading.Thread(target=_transcribe, args=(server, clip, results)) for _ in range(3)]
    for t in threads:
        t.start()
    server.wait_metric("qasr_workers_busy", 2)
    server.wait_metric("qasr_queue_depth", 1)
    t0 = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: server.get("/health")[0] == 503, 2, "/health 503 while draining")
    assert json.loads(server.get("/health")[1])["status"] == "draining"
    code = server.proc.wait(timeout=30)
    for t in threads:
        t.join(30)
    assert code == 0 and time.monotonic() - t0 < 20
    assert results == [DEFAULT_TEXT] * 3  # the queued one too: it was in progress when the signal came
    assert all(_gone(p) for p in workers)


def test_ctrl_c_at_a_terminal_drains_and_the_workers_keep_working(serve, clip: Path) -> None:  # type: ignore[no-untyped-def]
    """A terminal's Ctrl-C reaches the whole process group: the workers ignore it, the server drains."""
    server = serve("--workers", "1", token_delay_ms=SLOW, session=True)
    workers = _descendants(server.proc.pid)
    results: list[object] = []
    t = threading.Thread(target=_transcribe, args=(server, clip, results))
    t.start()
    server.wait_metric("qasr_workers_busy", 1)
    os.killpg(server.proc.pid, signal.SIGINT)
    assert server.proc.wait(timeout=20) == 0
    t.join(30)
    assert results == [DEFAULT_TEXT]
    assert all(_gone(p) for p in workers)


def test_sigterm_stops_what_outlives_the_timeout_with_503(serve, clip: Path) -> None:  # type: ignore[no-untyped-def]
    server = serve("--workers", "1", "--shutdown-timeout", "1", token_delay_ms="2000")  # ~18 s per request
    workers = _descendants(server.proc.pid)
    results: list[object] = []
    t = threading.Thread(target=_transcribe, args=(server, clip, results))
    t.start()
    server.wait_metric("qasr_workers_busy", 1)
    t0 = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    code = server.proc.wait(timeout=15)
    t.join(30)
    took = time.monotonic() - t0
    assert code == 0 and took < 8, f"exit {code} after {took:.1f} s"
    assert len(results) == 1 and isinstance(results[0], openai.APIStatusError) and results[0].status_code == 503
    assert all(_gone(p) for p in workers)


def test_sigterm_ends_a_stream_past_the_timeout_with_an_error_event(serve, clip: Path) -> None:  # type: ignore[no-untyped-def]
    server = serve("--workers", "1", "--shutdown-timeout", "1", token_delay_ms="1000")  # ~9 s per request
    with clip.open("rb") as f:
        events = iter(server.client().audio.transcriptions.create(model="m", file=f, stream=True))
        assert next(events).type == "transcript.text.delta"
        server.proc.send_signal(signal.SIGTERM)
        with pytest.raises(openai.APIError, match="shutting down"):
            list(events)
    assert server.proc.wait(timeout=10) == 0


def test_a_second_signal_stops_at_once(serve, clip: Path) -> None:  # type: ignore[no-untyped-def]
    server = serve("--workers", "1", "--shutdown-timeout", "60", token_delay_ms="2000")
    workers = _descendants(server.proc.pid)
    results: list[object] = []
    t = threading.Thread(target=_transcribe, args=(server, clip, results))
    t.start()
    server.wait_metric("qasr_workers_busy", 1)
    server.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: server.get("/health")[0] == 503, 2, "draining")
    t0 = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    code = server.proc.wait(timeout=5)
    assert code == 128 + signal.SIGTERM and time.monotonic() - t0 < 2
    wait_until(lambda: all(_gone(p) for p in workers), 2, "the workers to end")
    t.join(30)
    assert len(results) == 1 and isinstance(results[0], Exception)


# -- the server itself killed ------------------------------------------------------------------


def test_no_worker_outlives_a_sigkilled_server(serve, clip: Path) -> None:  # type: ignore[no-untyped-def]
    for round_ in range(3):  # some workers idle, some mid-decode when their server dies
        server = serve("--workers", "2", token_delay_ms=SLOW)
        workers = _descendants(server.proc.pid)
        assert len(workers) >= 2
        results: list[object] = []
        t = threading.Thread(target=_transcribe, args=(server, clip, results))
        t.start()
        server.wait_metric("qasr_workers_busy", 1)
        server.proc.kill()
        server.proc.wait(timeout=5)
        t0 = time.monotonic()
        wait_until(lambda: all(_gone(p) for p in workers), 2, f"round {round_}: workers to die with their server")
        assert time.monotonic() - t0 < 1.0 + 0.2  # within a second (plus this poll's own period)
        t.join(30)
        assert len(results) == 1 and isinstance(results[0], openai.APIConnectionError)


def test_a_workers_own_children_do_not_outlive_a_sigkilled_server(serve) -> None:  # type: ignore[no-untyped-def]
    """A live stream's worker runs the VAD in a child of its own: that one must not be orphaned either."""
    from websockets.sync.client import connect

    server = serve("--workers", "1", words="audio")
    speech, rate = soundfile.read(str(SAMPLES / "en-hello.wav"), dtype="float32")
    pcm = (np.concatenate([speech, speech]) * 32767).astype("<i2").tobytes()
    with connect(f"ws://127.0.0.1:{server.port}/v1/realtime") as ws:
        for i in range(0, len(pcm), 3200):
            ws.send(pcm[i : i + 3200])
        tree = wait_until(lambda: (lambda t: t if len(t) >= 2 else None)(_descendants(server.proc.pid)), 30,
                          "the worker's VAD child")  # fmt: skip
        server.proc.kill()
        server.proc.wait(timeout=5)
        t0 = time.monotonic()
        wait_until(lambda: all(_gone(p) for p in tree), 2, "the worker and its child to die with the server")
        assert time.monotonic() - t0 < 1.0 + 0.2
