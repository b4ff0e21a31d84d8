"""`qasr.serve.worker` on its own pipes, and what its error records become at the client.

The worker speaks `qasr.channel` like every other child: these tests talk to it with the channel's
own Sender and Receiver (a request's answers, an abort, the end of stdin, an error record rebuilt
as its class), then check that an engine error in a worker reaches an HTTP client with the status
and type it always had.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import double_env, sine
from qasr.channel import Message, Receiver, Sender
from qasr.errors import Aborted, EngineError, EngineNotFound, UsageError
from qasr.spec import EngineSpec
from serving import DEFAULT_TEXT, clip, serve  # noqa: F401 - fixtures

openai = pytest.importorskip("openai")


class WorkerProcess:
    """``python -m qasr.serve.worker SPEC`` with the channel on both of its pipes."""

    def __init__(self, spec: EngineSpec, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "qasr.serve.worker", spec.to_json()], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)  # fmt: skip
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.out, self.answers = Sender(self.proc.stdin), Receiver(self.proc.stdout)

    def next(self) -> Message:
        message = self.answers.receive()
        assert message is not None, "the worker closed its output"
        return message

    def close(self) -> int:
        """End of stdin (how the pool retires a worker); its exit code."""
        self.out.close()
        code = self.proc.wait(timeout=5)
        self.answers.stream.close()
        return code


@pytest.fixture()
def worker(double_lib: Path, asr_model_file: Path) -> Iterator:  # type: ignore[type-arg]
    started: list[WorkerProcess] = []

    def start(spec: EngineSpec | None = None, **knobs: str) -> WorkerProcess:
        process = WorkerProcess(spec or EngineSpec(model=str(asr_model_file)), double_env(double_lib, **knobs))
        started.append(process)
        return process

    yield start
    for process in started:
        if process.proc.poll() is None:
            process.proc.kill()
            process.proc.wait()


@pytest.fixture()
def f32(asr_model_file: Path) -> str:
    """One second of tone as the raw float32 the parent hands a worker."""
    path = asr_model_file.parent / "a.f32"
    sine(1.0).astype("<f4").tofile(path)
    return str(path)


def test_a_worker_exits_when_its_pipes_close_without_a_signal(worker, f32: str, asr_model_file: Path) -> None:  # type: ignore[no-untyped-def]
    """The second watch, for where PR_SET_PDEATHSIG is absent: end of stdin ends the worker even mid-decode."""
    w = worker(EngineSpec(model=str(asr_model_file), threads=1), token_delay_ms="500")
    assert w.next().kind == "ready"
    w.out.send("transcribe", id=1, audio=f32, stream=True, options={})
    assert w.next().kind == "delta"  # mid-decode now
    w.out.close()
    assert w.proc.wait(timeout=1.5) == 0
    w.answers.stream.close()


def test_an_abort_message_stops_a_decode_at_once(worker, f32: str) -> None:  # type: ignore[no-untyped-def]
    w = worker(token_delay_ms="500")
    ready = w.next()
    assert ready.kind == "ready" and ready["provider"] == "qwen3-chatllm" and ready["pid"] == w.proc.pid
    w.out.send("transcribe", id=1, audio=f32, stream=True, options={})
    assert w.next().kind == "delta"
    t0 = time.monotonic()
    w.out.send("abort", id=0)  # an old id: ignored
    w.out.send("abort", id=1)
    last = w.next()
    while last.kind == "delta":
        last = w.next()
    assert last.kind == "error" and last["id"] == 1 and isinstance(last.error(), Aborted)
    assert time.monotonic() - t0 < 0.5 + 1.0  # the double hears it after the 0.5 s chunk it is "computing"
    w.out.send("transcribe", id=2, audio=f32, stream=False, options={})
    result = w.next()
    assert result.kind == "result" and result["id"] == 2 and result["result"]["text"] == DEFAULT_TEXT  # not aborted
    assert w.close() == 0


def test_an_abort_that_arrives_before_its_request_starts_answers_aborted(worker, f32: str) -> None:  # type: ignore[no-untyped-def]
    w = worker(token_delay_ms="100")
    assert w.next().kind == "ready"
    w.out.send("transcribe", id=1, audio=f32, stream=False, options={})
    w.out.send("transcribe", id=2, audio=f32, stream=False, options={})
    w.out.send("abort", id=2)  # queued behind request 1: it never reaches the engine
    first, second = w.next(), w.next()
    assert first.kind == "result" and first["id"] == 1
    assert second.kind == "error" and second["id"] == 2 and isinstance(second.error(), Aborted)
    assert w.close() == 0


def test_errors_travel_as_records_of_their_class(worker, f32: str, asr_model_file: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    w = worker(error_at="inference")
    assert w.next().kind == "ready"
    w.out.send("transcribe", id=1, audio=f32, stream=False, options={})
    failed = w.next()
    assert failed.kind == "error" and failed["id"] == 1
    error = failed.error()
    assert isinstance(error, EngineError) and "injected error at inference" in str(error) and error.exit_code == 4
    w.out.send("transcribe", id=2, audio=f32, stream=False, options={"words": True})  # no aligner loaded
    refused = w.next()
    assert refused["id"] == 2 and isinstance(refused.error(), UsageError) and "word timestamps" in str(refused.error())
    assert w.close() == 0
    broken = worker(EngineSpec(model=str(asr_model_file), engine=str(tmp_path / "no-libchatllm.so")))
    said = broken.next()  # loading failed: one error record, then the process ends with its code
    assert said.kind == "error" and "id" not in said and isinstance(said.error(), EngineNotFound)
    assert broken.proc.wait(timeout=10) == said.error().exit_code == 3


def test_an_engine_error_in_a_worker_is_a_500_server_error_at_the_client(serve, clip: Path) -> None:  # type: ignore[no-untyped-def]
    server = serve(error_at="inference")
    with clip.open("rb") as f, pytest.raises(openai.InternalServerError) as err:
        server.client().audio.transcriptions.create(model="m", file=f)
    assert err.value.status_code == 500 and err.value.body["type"] == "server_error"  # type: ignore[index]
    assert "injected error at inference" in err.value.body["message"]  # type: ignore[index]
    with clip.open("rb") as f, pytest.raises(openai.APIError, match="injected error at inference"):  # an SSE error event
        list(server.client().audio.transcriptions.create(model="m", file=f, stream=True))
    assert server.metric("qasr_requests_total", status="500") == 1
    assert server.get("/health")[0] == 200  # the worker answered the error and serves on

