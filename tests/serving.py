"""Helpers for the server's tests: a real `qasr serve` child process on a free loopback port, with the
test double as its engine, and ways to wait for what it says (never a fixed sleep)."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import soundfile
from conftest import double_env, sigint_as_ctrl_c, sine

DEFAULT_TEXT = "hello world from the test double"
SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> object:
    """Poll ``condition`` (every 20 ms) until it is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


class Server:
    def __init__(self, args: list[str], env: dict[str, str], *, session: bool = False) -> None:
        """``session``: in a session (and process group) of its own, as at a terminal, so the test can
        send a signal to the whole group as Ctrl-C does."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "qasr", "serve", "--port", str(self.port), *args], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=session,
                                     preexec_fn=sigint_as_ctrl_c)  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {self.proc.stderr.read()}")  # type: ignore[union-attr]
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("server did not become healthy in 60 s")

    def client(self, key: str = "unused", timeout: float = 60):  # type: ignore[no-untyped-def]
        import openai

        return openai.OpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0, timeout=timeout)

    def get(self, path: str, key: str | None = None) -> tuple[int, str]:
        req = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {key}"} if key else {})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def worker_pids(self) -> list[int]:
        _, text = self.get("/metrics")
        return sorted({int(p) for p in re.findall(r'qasr_worker_rss_bytes\{pid="(\d+)"', text)} or {
            int(p) for p in re.findall(r'pid="(\d+)"', text)})  # fmt: skip

    def metric(self, name: str, **labels: str) -> float:
        _, text = self.get("/metrics")
        for line in text.splitlines():
            if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def wait_metric(self, name: str, value: float, timeout: float = 10, **labels: str) -> None:
        wait_until(lambda: self.metric(name, **labels) == value, timeout, f"{name}{labels} == {value}")

    def stop(self) -> str:
        """Ctrl-C it (if it still runs) and return what it wrote on stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        said = self.proc.stderr.read() if self.proc.stderr is not None else ""
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return said


@pytest.fixture()
def serve(double_lib: Path, asr_model_file: Path, aligner_model_file: Path) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(*args: str, aligner: bool = False, session: bool = False, **knobs: str) -> Server:
        env = double_env(double_lib, abort_at_exit="1", **knobs)
        extra = ["-a", str(aligner_model_file)] if aligner else []
        server = Server(["-m", str(asr_model_file), *extra, *args], env, session=session)
        started.append(server)
        return server

    yield start
    for server in started:
        said = server.stop()
        assert "Traceback" not in said and "Task exception" not in said, said  # never a traceback, whatever happened


@pytest.fixture()
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "clip.wav"
    soundfile.write(str(path), sine(2.0), 16_000)
    return path


def form_body(audio: bytes, filename: str = "clip.wav", **fields: str) -> tuple[bytes, str]:
    """A multipart/form-data body with ``file`` and the given fields, and its Content-Type."""
    boundary = "qasrtestboundary"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                 "Content-Type: application/octet-stream\r\n\r\n".encode() + audio + b"\r\n")  # fmt: skip
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def raw_request(port: int, body: bytes, content_type: str, *, send_body: bool = True, chunked: bool = False) -> socket.socket:
    """Open a connection and send a POST to /v1/audio/transcriptions as a client that controls its socket."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    length = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}"
    head = (f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\n"
            f"{length}\r\n\r\n").encode()  # fmt: skip
    sock.sendall(head + (body if send_body else b""))
    return sock


def read_status(sock: socket.socket) -> tuple[int, dict[str, str], str]:
    """Status, headers and body of one HTTP/1.1 response (Content-Length bodies; enough for our errors)."""
    data = b""
    while b"\r\n\r\n" not in data:
        got = sock.recv(65536)
        if not got:
            break
        data += got
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        got = sock.recv(65536)
        if not got:
            break
        rest += got
    return int(lines[0].split()[1]), headers, rest.decode("utf-8", "replace")
