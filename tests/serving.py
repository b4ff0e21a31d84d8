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
from conftest import double_env, sine

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
    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "qasr", "serve", "--port", str(self.port), *args],
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
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

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture()
def serve(double_lib: Path, asr_model_file: Path, aligner_model_file: Path) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(*args: str, aligner: bool = False, **knobs: str) -> Server:
        env = double_env(double_lib, abort_at_exit="1", **knobs)
        extra = ["-a", str(aligner_model_file)] if aligner else []
        server = Server(["-m", str(asr_model_file), *extra, *args], env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture()
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "clip.wav"
    soundfile.write(str(path), sine(2.0), 16_000)
    return path
