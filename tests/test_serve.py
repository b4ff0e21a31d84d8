"""`qasr serve` on 127.0.0.1 with the test double as the engine, driven by the official `openai` client.

Each server is a real `qasr serve` child process on a free loopback port; requests are bounded in
number and time. Covered: every response format, streaming (SSE), word times, 400/401/413/429, a
worker killed with SIGKILL mid-request, an engine abort, concurrency, replacement after N requests,
the WebSocket, and the web page in a real browser (Debian's Chromium through Playwright).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import double_env, sine
from serving import DEFAULT_TEXT, SAMPLES, Server, clip, free_port, serve, wait_until  # noqa: F401 - fixtures

openai = pytest.importorskip("openai")

def test_every_response_format_with_the_openai_client(serve, clip: Path) -> None:  # type: ignore[no-untyped-def]
    server = serve(aligner=True)
    client = server.client()
    with clip.open("rb") as f:
        assert client.audio.transcriptions.create(model="qwen3-asr", file=f).text == DEFAULT_TEXT
    with clip.open("rb") as f:
        assert client.audio.transcriptions.create(model="qwen3-asr", file=f, response_format="text").strip() == DEFAULT_TEXT
    with clip.open("rb") as f:
        srt = client.audio.transcriptions.create(model="qwen3-asr", file=f, response_format="srt")
    assert srt.startswith("1\n00:00:00,000 --> ") and DEFAULT_TEXT.split()[0] in srt
    with clip.open("rb") as f:
        vtt = client.audio.transcriptions.create(model="qwen3-asr", file=f, response_format="vtt")
    assert vtt.startswith("WEBVTT")
    with clip.open("rb") as f:
        verbose = client.audio.transcriptions.create(model="qwen3-asr", file=f, response_format="verbose_json",
                                                     timestamp_granularities=["word", "segment"], language="en")  # fmt: skip
    assert verbose.duration == 2.0 and verbose.language == "english" and verbose.segments[0].end == 2.0
    assert [w.word for w in verbose.words] == DEFAULT_TEXT.split() and verbose.words[-1].end <= 2.0
    assert [m.id for m in client.models.list().data] == ["test-asr"]


def test_streaming_answers_with_server_sent_events(serve, clip: Path) -> None:  # type: ignore[no-untyped-def]
    server = serve()
    with clip.open("rb") as f:
        events = list(server.client().audio.transcriptions.create(model="qwen3-asr", file=f, stream=True))
    kinds = [e.type for e in events]
    assert kinds[-1] == "transcript.text.done" and kinds.count("transcript.text.delta") >= 5
    assert "".join(e.delta for e in events[:-1]) == events[-1].text == DEFAULT_TEXT


def test_errors_have_openais_shape_and_never_kill_the_server(serve, clip: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = serve("--api-key", "s3cret", "--max-upload", "64 KiB")
    with clip.open("rb") as f, pytest.raises(openai.AuthenticationError):
        server.client("wrong").audio.transcriptions.create(model="m", file=f)
    assert server.get("/health")[0] == 200 and server.get("/metrics")[0] == 401 and server.get("/metrics", "s3cret")[0] == 200
    good = server.client("s3cret")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF not really audio" * 10)
    with junk.open("rb") as f, pytest.raises(openai.BadRequestError) as bad:
        good.audio.transcriptions.create(model="m", file=f)
    body = bad.value.body
    assert body["code"] == "invalid_audio" and body["param"] == "file" and "junk.wav" in body["message"]
    assert "/tmp/" not in body["message"]  # no server paths in answers
    with clip.open("rb") as f, pytest.raises(openai.BadRequestError, match="response_format"):
        good.audio.transcriptions.create(model="m", file=f, response_format="mp3")  # type: ignore[arg-type]
    big = tmp_path / "big.wav"
    soundfile.write(str(big), sine(5.0), 16_000)  # 160 kB
    with big.open("rb") as f, pytest.raises(openai.APIStatusError) as err:
        good.audio.transcriptions.create(model="m", file=f)
    assert err.value.status_code == 413
    with clip.open("rb") as f:
        assert good.audio.transcriptions.create(model="m", file=f).text == DEFAULT_TEXT  # still serving


def test_a_full_queue_is_429_with_retry_after(serve, clip: Path) -> None:  # type: ignore[no-untyped-def]
    server = serve("--workers", "1", "--queue", "0", token_delay_ms="300")
    results: list[object] = []

    def slow() -> None:
        with clip.open("rb") as f:
            results.append(server.client().audio.transcriptions.create(model="m", file=f).text)

    t = threading.Thread(target=slow)
    t.start()
    server.wait_metric("qasr_workers_busy", 1)  # the first request now holds the only worker
    with clip.open("rb") as f, pytest.raises(openai.RateLimitError) as err:
        server.client().audio.transcriptions.create(model="m", file=f)
    assert err.value.response.headers["retry-after"] == "1"
    t.join(30)
    assert results == [DEFAULT_TEXT]


def test_a_worker_killed_mid_request_is_retried_on_a_fresh_one(serve, clip: Path) -> None:  # type: ignore[no-untyped-def]
    server = serve(token_delay_ms="400")
    pid = server.worker_pids()[0]
    texts: list[str] = []

    def doomed() -> None:
        with clip.open("rb") as f:
            texts.append(server.client().audio.transcriptions.create(model="m", file=f).text)

    t = threading.Thread(target=doomed)
    t.start()
    server.wait_metric("qasr_workers_busy", 1)
    os.kill(pid, signal.SIGKILL)
    t.join(30)
    assert texts == [DEFAULT_TEXT]  # nothing had been sent to the client: it never knew
    assert server.worker_pids() != [pid] and server.metric("qasr_worker_restarts_total", reason="died") == 1
    assert server.metric("qasr_request_retries_total") == 1


def test_an_engine_abort_costs_no_request(serve, clip: Path) -> None:  # type: ignore[no-untyped-def]
    server = serve(abort_at_call="2")
    client = server.client()
    for _ in range(3):  # every worker's second call aborts it; the request runs again on the replacement
        with clip.open("rb") as f:
            assert client.audio.transcriptions.create(model="m", file=f).text == DEFAULT_TEXT
    assert server.metric("qasr_worker_restarts_total", reason="died") == 2  # requests 2 and 3 (a replacement's 2nd call)
    assert server.metric("qasr_request_retries_total") == 2


def test_concurrent_requests_and_replacement_after_n_requests(serve, clip: Path) -> None:  # type: ignore[no-untyped-def]
    server = serve("--workers", "2", "--max-requests", "2")
    texts: list[str] = []
    lock = threading.Lock()

    def one() -> None:
        with clip.open("rb") as f:
            text = server.client().audio.transcriptions.create(model="m", file=f).text
        with lock:
            texts.append(text)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert texts == [DEFAULT_TEXT] * 6
    assert server.metric("qasr_worker_restarts_total", reason="requests") >= 2
    assert server.metric("qasr_requests_total", status="200") == 6


def test_the_websocket_streams_partials_and_finals(serve) -> None:  # type: ignore[no-untyped-def]
    from websockets.sync.client import connect

    server = serve(words="audio")
    speech, rate = soundfile.read(str(SAMPLES / "en-hello.wav"), dtype="float32")
    pcm = (np.concatenate([np.zeros(rate, np.float32), speech, np.zeros(rate, np.float32)]) * 32767).astype("<i2").tobytes()
    events = []
    with connect(f"ws://127.0.0.1:{server.port}/v1/realtime") as ws:
        for i in range(0, len(pcm), 3200):
            ws.send(pcm[i : i + 3200])
        ws.send("end")
        for message in ws:
            events.append(json.loads(message))
    finals = [e for e in events if e["type"] == "final"]
    assert finals and all(e["text"] for e in finals) and {"stable", "unstable", "utterance"} <= finals[0].keys()


def test_the_web_page_transcribes_an_upload_in_a_real_browser(serve, clip: Path) -> None:  # type: ignore[no-untyped-def]
    playwright = pytest.importorskip("playwright.sync_api")
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    server = serve()
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run", "--disable-sync"])  # fmt: skip
        page = browser.new_page()
        page.goto(server.url + "/")
        assert page.title().startswith("qasr")
        page.set_input_files("#file", str(clip))
        page.click("#send")
        page.wait_for_function("document.getElementById('done').textContent.length > 0", timeout=30_000)
        assert page.text_content("#done") == DEFAULT_TEXT
        assert page.is_enabled("#srt")
        browser.close()


def test_serve_refuses_a_bad_model_in_one_line(double_lib: Path, tmp_path: Path) -> None:
    bad = tmp_path / "x.bin"
    bad.write_bytes(b"not a model")
    r = subprocess.run([sys.executable, "-m", "qasr", "serve", "-m", str(bad), "--port", str(free_port())],
                       capture_output=True, text=True, env=double_env(double_lib), timeout=60)  # fmt: skip
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1


def test_serve_with_faster_whisper_and_auto_fallback(double_lib: Path, asr_model_file: Path, clip: Path, tmp_path: Path) -> None:
    pytest.importorskip("faster_whisper")
    from whisper_tiny import TEXT, build

    whisper = build(tmp_path / "tiny-whisper")
    server = Server(["--provider", "faster-whisper", "--whisper-model", str(whisper)], double_env(double_lib))
    try:
        client = server.client()
        with clip.open("rb") as f:
            assert client.audio.transcriptions.create(model="m", file=f).text == TEXT
        with clip.open("rb") as f:
            srt = client.audio.transcriptions.create(model="m", file=f, response_format="srt")
        assert "-->" in srt and TEXT.split()[0] in srt
        with clip.open("rb") as f, pytest.raises(openai.BadRequestError, match="word timestamps need"):
            client.audio.transcriptions.create(model="m", file=f, response_format="verbose_json", timestamp_granularities=["word"])
        with clip.open("rb") as f:  # a language per request reaches faster-whisper too
            verbose = client.audio.transcriptions.create(model="m", file=f, response_format="verbose_json", language="de")
        assert verbose.language == "german"
    finally:
        server.stop()
    # auto: the engine cannot be found, so the workers fall back to faster-whisper
    env = double_env(double_lib)
    env["QASR_CHATLLM_LIB"] = str(tmp_path / "no-such-libchatllm.so")
    server = Server(["-m", str(asr_model_file), "--provider", "auto", "--whisper-model", str(whisper)], env)
    try:
        with clip.open("rb") as f:
            assert server.client().audio.transcriptions.create(model="m", file=f).text == TEXT
    finally:
        server.stop()
