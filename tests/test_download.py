"""The downloader against a loopback HTTP server: resume, servers that ignore Range, every failure.

The server binds 127.0.0.1 on a free port, serves generated ggmm files from memory, and is shut down
by the fixture (and by a timer, should a test hang), so nothing leaves this machine.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest
from conftest import run_qasr
from modelfiles import model_bytes

from qasr.engine import download, registry
from qasr.engine.download import DownloadError, fetch, pull
from qasr.progress import RichProgress, SilentProgress, make_progress
from qasr.engine.modelfile import MODEL_TYPE_QWEN3_FORCED_ALIGNER, ModelKind

# Big enough to span several reads, small enough to be instant.
PAYLOAD = model_bytes(tensors=[(f"t{i}.weight", (64, 256), 0) for i in range(6)])
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


class FileServer:
    """What the handler serves and how it misbehaves; it records every request."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.honor_range = True
        self.send_length = True
        self.drop_after: dict[str, int] = {}  # path -> stop after this byte of the file, once
        self.stall = 0.0
        self.requests: list[tuple[str, str | None, int]] = []
        self.stop = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._deadline = threading.Timer(120, self.close)  # never outlive a hung test
        self._deadline.daemon = True

    def url(self, path: str) -> str:
        return self.base + path

    def start(self) -> "FileServer":
        self._thread.start()
        self._deadline.start()
        return self

    def close(self) -> None:
        self.stop.set()
        self._deadline.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    timeout = 10  # a stuck client cannot hold a server thread for long

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        srv: FileServer = self.server.owner  # type: ignore[attr-defined]
        rng = self.headers.get("Range")
        body = srv.files.get(self.path)
        if body is None:
            srv.requests.append((self.path, rng, 404))
            self.send_error(404)
            return
        start = 0
        if rng and srv.honor_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", rng)[1])  # type: ignore[index]
            if start >= len(body):
                srv.requests.append((self.path, rng, 416))
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            srv.requests.append((self.path, rng, 206))
        else:
            self.send_response(200)
            srv.requests.append((self.path, rng, 200))
        if srv.send_length:
            self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if srv.stall:
            srv.stop.wait(srv.stall)
            return
        cut = srv.drop_after.pop(self.path, len(body))
        try:
            self.wfile.write(body[start:cut])
        except OSError:
            pass  # the client gave up first


@pytest.fixture()
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FileServer]:
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    srv = FileServer().start()
    srv.files["/m.bin"] = PAYLOAD
    try:
        yield srv
    finally:
        srv.close()


def _check_asr(path: Path) -> None:
    registry.check_file(path, registry.get("qwen3-asr-0.6b-q4_0"), None)


# --- fetch ------------------------------------------------------------------------------------

def test_full_download(server: FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "sub" / "m.bin"
    got = fetch(server.url("/m.bin"), dest, expected_size=len(PAYLOAD), check=_check_asr, progress=False)
    assert dest.read_bytes() == PAYLOAD and not registry.partial_path(dest).exists()
    assert (got.size, got.resumed_from, got.restarted, got.url) == (len(PAYLOAD), 0, False, server.url("/m.bin"))
    assert server.requests == [("/m.bin", None, 200)]


def test_interrupted_download_resumes_with_range(server: FileServer, tmp_path: Path) -> None:
    cut = len(PAYLOAD) // 3
    server.drop_after["/m.bin"] = cut
    dest = tmp_path / "m.bin"
    with pytest.raises(DownloadError) as err:
        fetch(server.url("/m.bin"), dest, progress=False, retries=0)
    assert f"closed after {cut:,} of {len(PAYLOAD):,} bytes" in str(err.value)
    assert "run the same command again to resume" in str(err.value)
    assert registry.partial_path(dest).stat().st_size == cut and not dest.exists()

    got = fetch(server.url("/m.bin"), dest, progress=False, retries=0, check=_check_asr)
    assert dest.read_bytes() == PAYLOAD and got.resumed_from == cut and not got.restarted
    assert server.requests[-1] == ("/m.bin", f"bytes={cut}-", 206)


def test_a_dropped_connection_is_retried_and_resumed_within_one_call(server: FileServer, tmp_path: Path) -> None:
    server.drop_after["/m.bin"] = 1000
    got = fetch(server.url("/m.bin"), tmp_path / "m.bin", progress=False, retries=1, backoff=0)
    assert got.resumed_from == 1000 and (tmp_path / "m.bin").read_bytes() == PAYLOAD
    assert [r[1:] for r in server.requests] == [(None, 200), ("bytes=1000-", 206)]


def test_server_ignoring_range_restarts_cleanly(server: FileServer, tmp_path: Path) -> None:
    server.honor_range = False
    dest = tmp_path / "m.bin"
    registry.partial_path(dest).write_bytes(b"\xff" * 777)  # would corrupt the file if appended to
    got = fetch(server.url("/m.bin"), dest, progress=False, check=_check_asr)
    assert dest.read_bytes() == PAYLOAD
    assert got.restarted and got.resumed_from == 0
    assert server.requests == [("/m.bin", "bytes=777-", 200)]


def test_a_complete_partial_file_is_not_downloaded_again(server: FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "m.bin"
    registry.partial_path(dest).write_bytes(PAYLOAD)
    got = fetch(server.url("/m.bin"), dest, progress=False, check=_check_asr)  # size unknown: the server says 416
    assert dest.read_bytes() == PAYLOAD and got.resumed_from == len(PAYLOAD)
    assert server.requests == [("/m.bin", f"bytes={len(PAYLOAD)}-", 416)]
    registry.partial_path(dest).write_bytes(PAYLOAD)
    fetch(server.url("/m.bin"), dest, expected_size=len(PAYLOAD), progress=False)  # size known: no request at all
    assert len(server.requests) == 1


def test_404_is_one_clear_error(server: FileServer, tmp_path: Path) -> None:
    with pytest.raises(DownloadError) as err:
        fetch(server.url("/missing.bin"), tmp_path / "x.bin", progress=False)
    assert str(err.value) == f"not found (HTTP 404) at {server.url('/missing.bin')}"
    assert err.value.exit_code == 1
    assert list(tmp_path.iterdir()) == []


def test_next_source_after_a_failing_one(server: FileServer, tmp_path: Path) -> None:
    got = fetch([server.url("/gone.bin"), server.url("/m.bin")], tmp_path / "m.bin", progress=False)
    assert got.url == server.url("/m.bin") and (tmp_path / "m.bin").read_bytes() == PAYLOAD
    server.files.clear()
    with pytest.raises(DownloadError, match=r"every source failed: not found \(HTTP 404\).*; not found \(HTTP 404\)"):
        fetch([server.url("/a"), server.url("/b")], tmp_path / "n.bin", progress=False)


def test_size_announced_by_the_server_must_match(server: FileServer, tmp_path: Path) -> None:
    with pytest.raises(DownloadError) as err:
        fetch(server.url("/m.bin"), tmp_path / "m.bin", expected_size=len(PAYLOAD) + 5, progress=False)
    assert f"offers {len(PAYLOAD):,} bytes but the file should have {len(PAYLOAD) + 5:,}" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_size_received_without_content_length_must_match(server: FileServer, tmp_path: Path) -> None:
    server.send_length = False  # HTTP/1.0, body until close: only the count after the fact can tell
    with pytest.raises(DownloadError, match=f"gave {len(PAYLOAD):,} bytes but the file should have {len(PAYLOAD) - 1:,}; deleted"):
        fetch(server.url("/m.bin"), tmp_path / "m.bin", expected_size=len(PAYLOAD) - 1, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_wrong_header_is_deleted_and_never_takes_the_final_name(server: FileServer, tmp_path: Path) -> None:
    server.files["/html.bin"] = b"<html>sign in to download</html>".ljust(4096, b" ")
    dest = tmp_path / "m.bin"
    dest.write_bytes(b"previous contents")
    with pytest.raises(DownloadError) as err:
        fetch(server.url("/html.bin"), dest, check=_check_asr, progress=False)
    assert "failed its check and was deleted" in str(err.value) and "bad magic b'<htm'" in str(err.value)
    assert dest.read_bytes() == b"previous contents" and not registry.partial_path(dest).exists()


def test_wrong_kind_is_refused(server: FileServer, tmp_path: Path) -> None:
    server.files["/aligner.bin"] = model_bytes(MODEL_TYPE_QWEN3_FORCED_ALIGNER)
    with pytest.raises(DownloadError, match="is a Qwen3-ForcedAligner model, but a Qwen3-ASR model is needed"):
        fetch(server.url("/aligner.bin"), tmp_path / "m.bin", check=_check_asr, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_rename_is_atomic_the_final_name_holds_old_or_new_never_partial(server: FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "m.bin"
    dest.write_bytes(b"old")
    seen: list[tuple[bytes, int]] = []

    def check(part: Path) -> None:  # runs on the complete download, before the rename
        seen.append((dest.read_bytes(), part.stat().st_size))

    fetch(server.url("/m.bin"), dest, check=check, progress=False)
    assert seen == [(b"old", len(PAYLOAD))] and dest.read_bytes() == PAYLOAD


def test_connection_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    with socket.socket() as s:  # a port that was free a moment ago and has no listener now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError) as err:
        fetch(f"http://127.0.0.1:{port}/m.bin", tmp_path / "m.bin", progress=False)
    assert str(err.value).startswith(f"connection refused by 127.0.0.1:{port}")


def test_timeout(server: FileServer, tmp_path: Path) -> None:
    server.stall = 30  # headers, then silence (released when the fixture stops the server)
    with pytest.raises(DownloadError, match=r"timed out after 0.3 s receiving from 127\.0\.0\.1"):
        fetch(server.url("/m.bin"), tmp_path / "m.bin", progress=False, timeout=0.3, retries=0)


def test_not_enough_space_is_said_before_downloading(server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download, "_free_bytes", lambda directory: 100)
    with pytest.raises(DownloadError, match=f"not enough disk space in {tmp_path}: need {len(PAYLOAD):,} bytes, 100 free"):
        fetch(server.url("/m.bin"), tmp_path / "m.bin", progress=False)


def test_disk_full_while_writing_keeps_the_part_for_resume(server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = download._open_part

    class FillsUp:
        def __init__(self, path: Path, mode: str) -> None:
            self.f = real_open(path, mode)
            self.written = 0

        def write(self, data: bytes) -> int:
            if self.written + len(data) > 5000:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.written += len(data)
            return self.f.write(data)

        def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
            return getattr(self.f, name)

        def __enter__(self):  # type: ignore[no-untyped-def]
            return self

        def __exit__(self, *exc: object) -> None:
            self.f.close()

    monkeypatch.setattr(download, "CHUNK_BYTES", 4096)
    monkeypatch.setattr(download, "_open_part", FillsUp)
    dest = tmp_path / "m.bin"
    with pytest.raises(DownloadError) as err:
        fetch(server.url("/m.bin"), dest, progress=False, retries=3, backoff=0)
    assert str(err.value).startswith(f"disk full writing {registry.partial_path(dest)} (4,096 of {len(PAYLOAD):,} bytes")
    assert len(server.requests) == 1  # a full disk is not retried
    assert registry.partial_path(dest).stat().st_size == 4096 and not dest.exists()


def test_only_http_urls() -> None:
    from qasr.errors import UsageError

    with pytest.raises(UsageError, match="only http:// and https://"):
        fetch("file:///etc/passwd", Path("/nonexistent/x"), progress=False)


# --- progress ---------------------------------------------------------------------------------

def test_progress_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(make_progress(None, "bytes"), SilentProgress)  # pytest captures stderr: not a tty
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    assert isinstance(make_progress(None, "bytes"), RichProgress)
    assert isinstance(make_progress(False, "bytes"), SilentProgress)


# --- pull (registry entries) and the CLI ------------------------------------------------------

def test_pull_records_an_unknown_size_then_keeps_the_valid_copy(server: FileServer, tmp_path: Path) -> None:
    asr = registry.get("qwen3-asr-0.6b-q4_0")
    server.files["/" + asr.filename] = PAYLOAD
    pulled = pull(asr, tmp_path, mirror=server.base, progress=False)
    assert pulled.path == tmp_path / asr.filename and pulled.download is not None
    records = registry.read_records(tmp_path)
    assert records[asr.name]["bytes"] == len(PAYLOAD) and records[asr.name]["url"] == server.url("/" + asr.filename)
    assert registry.local_state(asr, tmp_path).valid
    assert pull(asr, tmp_path, mirror=server.base, progress=False).download is None  # nothing fetched again
    assert len(server.requests) == 1
    assert pull(asr, tmp_path, mirror=server.base, force=True, progress=False).download is not None
    assert len(server.requests) == 2


def test_pull_holds_a_published_file_to_its_size(server: FileServer, tmp_path: Path) -> None:
    q8 = registry.get("qwen3-asr-0.6b-q8_0")
    server.files["/" + q8.filename] = PAYLOAD
    with pytest.raises(DownloadError, match="should have 1,005,656,864: wrong URL or mirror"):
        pull(q8, tmp_path, url=server.url("/" + q8.filename), progress=False)
    assert not (tmp_path / q8.filename).exists()


def test_pull_checks_the_kind(server: FileServer, tmp_path: Path) -> None:
    aligner = registry.get("qwen3-aligner-0.6b-q4_0")
    assert aligner.kind is ModelKind.ALIGNER
    server.files["/" + aligner.filename] = PAYLOAD  # an ASR file under the aligner's name
    with pytest.raises(DownloadError, match="is a Qwen3-ASR model, but a Qwen3-ForcedAligner model is needed"):
        pull(aligner, tmp_path, mirror=server.base + "/", progress=False)
    assert registry.read_records(tmp_path) == {} and not (tmp_path / aligner.filename).exists()


def _cli_env(server: FileServer, models: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    return {**env, registry.ENV_MODELS_DIR: str(models), registry.ENV_MIRROR: server.base}


def test_cli_pull_resume_and_path(server: FileServer, tmp_path: Path) -> None:
    asr = registry.get("qwen3-asr-0.6b-q4_0")
    server.files["/" + asr.filename] = PAYLOAD
    models = tmp_path / "models"
    models.mkdir()
    (models / (asr.filename + ".part")).write_bytes(PAYLOAD[:3000])
    r = run_qasr(["models", "pull", asr.name], _cli_env(server, models))
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{models / asr.filename}\n"
    assert f"downloading {asr.name} from {server.base}/{asr.filename}" in r.stderr
    assert "resumed from 3,000 bytes" in r.stderr and "size and header checked" in r.stderr
    assert "━" not in r.stderr and "\r" not in r.stderr  # no bar: stderr is a pipe
    assert server.requests == [("/" + asr.filename, "bytes=3000-", 206)]
    assert (models / asr.filename).read_bytes() == PAYLOAD
    r = run_qasr(["models", "pull", asr.name], _cli_env(server, models))
    assert r.returncode == 0 and "already here and valid" in r.stderr and len(server.requests) == 1
    r = run_qasr(["models", "path", asr.name], _cli_env(server, models))
    assert r.stdout == f"{models / asr.filename}\n"


def test_cli_pull_failures_are_one_line(server: FileServer, tmp_path: Path) -> None:
    env = _cli_env(server, tmp_path)
    r = run_qasr(["models", "pull", "qwen3-asr-1.7b-q4_0"], env)  # the server does not have it
    assert r.returncode == 1 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert lines[-1] == f"qasr: error: not found (HTTP 404) at {server.base}/qwen3-asr-1.7b-q4_0.bin"
    assert "Traceback" not in r.stderr
    r = run_qasr(["models", "pull", "qwen3-asr-9b"], env)
    assert r.returncode == 2 and "unknown model 'qwen3-asr-9b'" in r.stderr
    r = run_qasr(["models", "pull", "qwen3-asr-0.6b-q4_0", "--url", "ftp://x/y"], env)
    assert r.returncode == 2 and "only http:// and https://" in r.stderr
