"""Receiving an upload: the body read as it streams in, bounded in size and in time, never whole in memory.

Why not ``request.form()``: the limit must hold whatever the headers say. A body sent without
Content-Length (``Transfer-Encoding: chunked``) was read whole before the size was known (measured
on 33743e7: a 300 MB chunked body took the server from 52 MB to 346 MB, then 413). Here every
chunk is counted as it arrives and reading stops at the limit; the multipart parser spools the
file part to disk past 1 MiB; a client that trickles its body past the deadline is dropped (408).

The audio then lands in a private directory under a name qasr chose (GUIDE §2), is decoded and
validated here in the parent, and the worker reads raw float32 from it.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request

from qasr.serve.lease import Cancel

#: Room for the form's other fields and the multipart framing around the file.
FORM_SLACK = 64 * 1024


class UploadRefused(Exception):
    """The body cannot be taken: ``status`` (400, 408, 413) and a message for the client."""

    def __init__(self, status: int, message: str, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.param = status, code, param


def too_large(size: str, limit: int) -> UploadRefused:
    return UploadRefused(413, f"upload too large: {size} bytes; the limit is {limit:,}", "file_too_large", "file")


async def _bounded(request: Request, limit: int, deadline: float, cancel: Cancel) -> AsyncIterator[bytes]:
    """The body's chunks until ``limit`` bytes (413 past it), the loop time ``deadline`` (408) or
    ``cancel`` (503: the server is shutting down)."""
    loop = asyncio.get_running_loop()
    chunks = request.stream().__aiter__()
    stop = asyncio.ensure_future(cancel.wait())
    received = 0
    try:
        while True:
            chunk = asyncio.ensure_future(chunks.__anext__())
            await asyncio.wait({chunk, stop}, timeout=max(0.0, deadline - loop.time()), return_when=asyncio.FIRST_COMPLETED)
            if not chunk.done():
                chunk.cancel()
                if cancel.is_set():
                    raise UploadRefused(503, "the server is shutting down; the upload was stopped", "shutting_down")
                raise UploadRefused(408, f"the upload did not arrive in time ({received:,} bytes received before the deadline)",
                                    "upload_timeout")  # fmt: skip
            try:
                data = chunk.result()
            except StopAsyncIteration:
                return
            received += len(data)
            if received > limit:
                raise too_large(f"more than {limit - FORM_SLACK:,}", limit - FORM_SLACK)
            yield data
    finally:
        stop.cancel()


async def read_form(request: Request, limit: int, seconds: float, cancel: Cancel) -> FormData:
    """The multipart form of ``request``, its body read within ``limit`` (+ framing) bytes and ``seconds``.

    Raises `UploadRefused`; a client that goes away mid-body raises starlette's ``ClientDisconnect``.
    """
    from starlette.formparsers import MultiPartException, MultiPartParser

    kind = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if kind != "multipart/form-data":
        raise UploadRefused(400, "the body must be multipart/form-data with the audio in a 'file' field", param="file")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + FORM_SLACK:
        raise too_large(f"{int(declared):,}", limit)
    deadline = asyncio.get_running_loop().time() + seconds
    parser = MultiPartParser(request.headers, _bounded(request, limit + FORM_SLACK, deadline, cancel), max_files=4, max_fields=64,
                             max_part_size=FORM_SLACK)  # fmt: skip
    try:
        return await parser.parse()
    except MultiPartException as exc:
        raise UploadRefused(400, f"malformed multipart body: {exc.message}") from None


class Upload:
    """A private directory (0700) for one request's audio: the upload as received, then raw float32 for the worker."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="qasr-upload-"))

    async def prepare(self, upload: UploadFile, limit: int) -> Path:
        """Copy the spooled upload here, decode and validate it (`qasr.audio`, no one-call limit: long
        audio is chunked in the worker), and write the samples for the worker. Raises what the decoder
        raises, with this directory's paths replaced by the upload's own name."""
        from qasr.audio import load_audio

        raw, f32 = self.dir / "upload", self.dir / "audio.f32"

        def store() -> None:  # one trip to a thread for all of it: each trip costs a wake-up under load
            upload.file.seek(0)
            with raw.open("wb") as out:
                shutil.copyfileobj(upload.file, out, 1 << 20)
                size = out.tell()
            if size > limit:
                raise too_large(f"{size:,}", limit)
            try:
                samples = load_audio(raw, max_seconds=None).samples
            except Exception as exc:  # noqa: BLE001 - AudioError and friends: one message, 400
                said = str(exc).replace(str(raw), upload.filename or "the upload")  # no server paths
                raise UploadRefused(400, f"bad audio: {said}", "invalid_audio", "file") from None
            samples.astype("<f4").tofile(f32)

        await asyncio.to_thread(store)
        return f32

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
