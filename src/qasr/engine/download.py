"""Download model files over HTTP(S): resumable, checked, and atomic.

Model files are 0.5–2.5 GB, so an interrupted transfer must not start over: bytes accumulate in
``<file>.part`` and the next attempt asks for the rest with an HTTP ``Range`` request. A server that
ignores ``Range`` answers 200 with the whole file; then the partial file is truncated and the
transfer restarts from zero rather than appending a second copy. Only a file with the expected size
that passes the caller's check (for models: the ggmm header and the model kind) is renamed into
place, so a corrupt download never sits under the final name. Every failure is one `DownloadError`
line that says what happened and what to do; the standard library's ``urllib`` is enough.
"""

from __future__ import annotations

import errno
import http.client
import os
import shutil
import socket
import ssl
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Sequence
from urllib.parse import urlsplit

from qasr import __version__
from qasr.engine.registry import (
    RegistryModel,
    check_file,
    expected_size,
    local_path,
    local_state,
    models_dir,
    partial_path,
    record_download,
    source_urls,
)
from qasr.errors import DownloadError, QasrError, UsageError
from qasr.progress import Progress, make_progress

CHUNK_BYTES = 1 << 20
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3


# Worth another try: the server or the path to it may recover; a refusal or a 404 will not.
_TRANSIENT = (TimeoutError, socket.timeout, ConnectionResetError, ConnectionAbortedError, http.client.HTTPException)


class _Retry(Exception):
    """A transient failure (timeout, dropped connection, 5xx): try again, resuming from the .part."""


@dataclass(frozen=True)
class Download:
    """What a finished download did."""

    path: Path
    url: str
    size: int
    resumed_from: int  # bytes already on disk when the transfer that completed the file began
    restarted: bool  # a server ignored Range, so a partial file was discarded
    seconds: float


# --- messages ---------------------------------------------------------------------------------

def _host(url: str) -> str:
    return urlsplit(url).netloc or url


def _network_message(reason: object, url: str, timeout: float) -> str:
    host = _host(url)
    if isinstance(reason, ConnectionRefusedError):
        return f"connection refused by {host}: is the server or mirror up? ({url})"
    if isinstance(reason, socket.gaierror):
        return f"cannot resolve {host} (no network or DNS; behind a mirror? set QASR_MODELS_MIRROR) ({url})"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return f"timed out after {timeout:g} s waiting for {host} ({url})"
    if isinstance(reason, (ConnectionResetError, ConnectionAbortedError, http.client.HTTPException)):
        return f"connection to {host} dropped ({reason.__class__.__name__}) ({url})"
    if isinstance(reason, ssl.SSLError):
        return f"TLS error with {host}: {reason} ({url})"
    if isinstance(reason, OSError) and reason.strerror:
        return f"cannot reach {host}: {reason.strerror} ({url})"
    return f"cannot reach {host}: {reason} ({url})"


def _http_message(code: int, reason: str, url: str) -> str:
    what = {404: "not found", 401: "access denied", 403: "access denied", 410: "gone"}.get(code, reason or "error")
    return f"{what} (HTTP {code}) at {url}"


def _content_range(header: str | None) -> tuple[int | None, int | None]:
    """(first byte, total) from ``bytes 100-999/1000`` or ``bytes */1000``; None where absent."""
    if not header or not header.strip().lower().startswith("bytes"):
        return None, None
    spec = header.strip()[5:].strip()
    span, _, total = spec.partition("/")
    first = span.split("-", 1)[0]
    return (int(first) if first.isdigit() else None), (int(total) if total.isdigit() else None)


def _free_bytes(directory: Path) -> int:
    return shutil.disk_usage(directory).free


def _open_part(path: Path, mode: str) -> BinaryIO:
    return open(path, mode)  # noqa: SIM115  (a seam for tests that simulate a full disk)


def _disk_full(part: Path, done: int, total: int | None) -> DownloadError:
    of = f" of {total:,}" if total else ""
    return DownloadError(
        f"disk full writing {part} ({done:,}{of} bytes so far); free space in {part.parent} "
        "(or set QASR_MODELS_DIR elsewhere) and run the same command again to resume",
        fatal=True,
    )


# --- one transfer -----------------------------------------------------------------------------

def _transfer(url: str, part: Path, expected: int | None, progress: Progress, timeout: float, key: str) -> tuple[int, bool]:
    """Bring ``part`` to the whole file: (bytes before this request, whether a partial was discarded)."""
    offset = part.stat().st_size if part.is_file() else 0
    if expected is not None and offset > expected:  # not a prefix of the file we want
        part.unlink()
        offset = 0
    if expected is not None and offset == expected and offset:
        return offset, False
    headers = {"User-Agent": f"qasr/{__version__}", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            _, total = _content_range(exc.headers.get("Content-Range"))
            if total == offset:
                return offset, False  # the partial file is already whole
            part.unlink()
            raise _Retry(f"{_host(url)} cannot resume from byte {offset:,}; starting over") from None
        if exc.code >= 500 or exc.code == 429:
            raise _Retry(_http_message(exc.code, exc.reason, url)) from None
        raise DownloadError(_http_message(exc.code, str(exc.reason), url)) from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, _TRANSIENT):
            raise _Retry(_network_message(exc.reason, url, timeout)) from None
        raise DownloadError(_network_message(exc.reason, url, timeout)) from None
    except _TRANSIENT as exc:
        raise _Retry(_network_message(exc, url, timeout)) from None

    with response:
        restarted = False
        if response.status == 206:
            first, total = _content_range(response.headers.get("Content-Range"))
            if first != offset:
                part.unlink(missing_ok=True)
                raise _Retry(f"{_host(url)} resumed at the wrong byte ({first}, asked {offset}); starting over")
            mode = "ab"
        elif response.status == 200:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            restarted, offset, mode = offset > 0, 0, "wb"  # Range ignored: the body is the whole file
        else:
            raise DownloadError(f"unexpected HTTP {response.status} from {url}")
        if expected is not None and total is not None and total != expected:
            raise DownloadError(
                f"{url} offers {total:,} bytes but the file should have {expected:,}: wrong URL or mirror, "
                "or the file changed upstream"
            )
        if total is not None and _free_bytes(part.parent) < total - offset:
            raise DownloadError(
                f"not enough disk space in {part.parent}: need {total - offset:,} bytes, "
                f"{_free_bytes(part.parent):,} free; free space or set QASR_MODELS_DIR elsewhere",
                fatal=True,
            )
        progress.start(key, total, done=offset)
        done = offset
        with _open_part(part, mode) as out:
            while True:
                try:
                    chunk = response.read(CHUNK_BYTES)
                except (TimeoutError, socket.timeout):
                    raise _Retry(f"timed out after {timeout:g} s receiving from {_host(url)} ({done:,} bytes so far)") from None
                except (http.client.HTTPException, OSError) as exc:
                    raise _Retry(f"connection to {_host(url)} lost after {done:,} bytes ({exc.__class__.__name__})") from None
                if not chunk:
                    break
                try:
                    out.write(chunk)
                except OSError as exc:
                    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                        raise _disk_full(part, done, total) from None
                    raise DownloadError(f"cannot write {part}: {exc.strerror}", fatal=True) from None
                done += len(chunk)
                progress.advance(key, len(chunk))
            try:
                out.flush()
                os.fsync(out.fileno())
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise _disk_full(part, done, total) from None
                raise DownloadError(f"cannot write {part}: {exc.strerror}", fatal=True) from None
        if total is not None and done < total:
            raise _Retry(f"connection to {_host(url)} closed after {done:,} of {total:,} bytes")
        return offset, restarted


def _fetch_one(url: str, part: Path, expected: int | None, progress: Progress, timeout: float, retries: int,
               backoff: float, key: str) -> tuple[int, bool]:
    restarted = False
    for attempt in range(retries + 1):
        try:
            resumed_from, again = _transfer(url, part, expected, progress, timeout, key)
            return resumed_from, restarted or again
        except _Retry as exc:
            if attempt == retries:
                kept = part.stat().st_size if part.is_file() else 0
                tail = f"; {kept:,} bytes are kept in {part}: run the same command again to resume" if kept else ""
                raise DownloadError(f"{exc}{tail}") from None
            time.sleep(backoff * 2**attempt)
    raise AssertionError("unreachable")


def fetch(
    urls: str | Sequence[str],
    dest: str | os.PathLike[str],
    *,
    expected_size: int | None = None,
    check: Callable[[Path], None] | None = None,
    progress: bool | None = None,
    label: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    backoff: float = 1.0,
) -> Download:
    """Download to ``dest`` through ``dest.part``, trying ``urls`` in order; resume what is there.

    ``check(path)`` runs on the complete file before the rename; if it raises `QasrError` the file
    is deleted. Transient failures are retried ``retries`` times per URL, resuming each time.
    """
    dest = Path(dest)
    urls = (urls,) if isinstance(urls, str) else tuple(urls)
    for url in urls:
        if urlsplit(url).scheme not in ("http", "https"):
            raise UsageError(f"only http:// and https:// URLs can be downloaded, not {url!r}")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create {dest.parent}: {exc.strerror}", fatal=True) from None
    part = partial_path(dest)
    bar = make_progress(progress, "bytes")
    failures: list[str] = []
    started = time.monotonic()
    try:
        for url in urls:
            try:
                resumed_from, restarted = _fetch_one(url, part, expected_size, bar, timeout, retries, backoff, label or dest.name)
            except DownloadError as exc:
                if exc.fatal or len(urls) == 1:
                    raise
                failures.append(str(exc))
                continue
            break
        else:
            raise DownloadError("every source failed: " + "; ".join(failures))
    finally:
        bar.stop()
    size = part.stat().st_size
    if expected_size is not None and size != expected_size:
        part.unlink()
        raise DownloadError(f"{url} gave {size:,} bytes but the file should have {expected_size:,}; deleted the download")
    if check is not None:
        try:
            check(part)
        except QasrError as exc:
            part.unlink(missing_ok=True)
            raise DownloadError(f"the file from {url} failed its check and was deleted: {exc}") from None
    os.replace(part, dest)
    return Download(dest, url, size, resumed_from, restarted, time.monotonic() - started)


# --- registry models --------------------------------------------------------------------------

@dataclass(frozen=True)
class Pulled:
    """The outcome of `pull`: the file, and the download if one happened."""

    model: RegistryModel
    path: Path
    download: Download | None  # None: a valid copy was already there


def pull(
    model: RegistryModel,
    directory: Path | None = None,
    *,
    url: str | None = None,
    mirror: str | None = None,
    force: bool = False,
    progress: bool | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    backoff: float = 1.0,
) -> Pulled:
    """Make ``model`` present and valid in ``directory``: keep a valid copy unless ``force``, else
    download (resuming a ``.part``), check size, header and kind, and record a size seen first."""
    directory = directory or models_dir()
    dest = local_path(model, directory)
    if not force and local_state(model, directory).valid:
        return Pulled(model, dest, None)
    if force:
        partial_path(dest).unlink(missing_ok=True)
    size = model.size if force else expected_size(model, directory)
    done = fetch(
        (url,) if url else source_urls(model, mirror),
        dest,
        expected_size=size,
        check=lambda path: check_file(path, model, size),
        progress=progress,
        label=model.name,
        timeout=timeout,
        retries=retries,
        backoff=backoff,
    )
    if model.size is None:
        record_download(directory, model, done.size, done.url)
    return Pulled(model, dest, done)
