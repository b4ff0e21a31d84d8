"""The HTTP and WebSocket routes of `qasr serve` (Starlette), over a `WorkerPool`.

Uploads are decoded and validated here, in the parent, as everywhere in qasr; the worker gets raw
16 kHz float32 in a file we named, in a private directory (GUIDE §2: the engine never sees a user's
file name). Every failure is an OpenAI-shaped JSON error (``{"error": {"message", "type", "param",
"code"}}``) with its status: 400 bad input, 401 no or wrong key, 413 too large, 429 queue full
(with ``Retry-After``), 500 a worker that died mid-request, 503 not ready. Never a traceback.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from qasr.serve.formats import RESPONSE_FORMATS, render
from qasr.serve.metrics import Metrics
from qasr.text.languages import CODE_TO_NAME
from qasr.serve.pool import QueueFull, WorkerDied, WorkerPool


@dataclass(frozen=True)
class ServeOptions:
    model_name: str
    api_key: str | None = None
    max_upload: int = 100 * 1024 * 1024
    has_aligner: bool = False
    languages: tuple[str, ...] = ()


def error(status: int, message: str, kind: str = "invalid_request_error", param: str | None = None, code: str | None = None,
          headers: dict[str, str] | None = None) -> JSONResponse:  # fmt: skip
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}}, status, headers=headers)


def _authorized(key: str | None, header: str | None) -> bool:
    if key is None:
        return True
    given = (header or "").removeprefix("Bearer ").strip()
    return hmac.compare_digest(given.encode(), key.encode())  # constant time


class _Upload:
    """A private directory for one request's audio: the upload as received, then raw float32 for the worker."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="qasr-upload-"))  # 0700

    async def prepare(self, data: bytes) -> Path:
        from qasr.audio import load_audio

        raw, f32 = self.dir / "upload", self.dir / "audio.f32"
        raw.write_bytes(data)

        def decode() -> None:
            samples = load_audio(raw, max_seconds=None).samples
            samples.astype("<f4").tofile(f32)

        await asyncio.to_thread(decode)
        return f32

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def create_app(pool: WorkerPool, options: ServeOptions) -> Starlette:
    metrics = Metrics(pool)

    def guarded(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        """The route behind the API key (every route but /health and the page, which holds no data)."""

        async def route(request: Request) -> Response:
            if not _authorized(options.api_key, request.headers.get("authorization")):
                return error(401, "missing or wrong API key (Authorization: Bearer ...)", "invalid_api_key", code="invalid_api_key")
            return await handler(request)

        return route

    async def transcriptions(request: Request) -> Response:
        started = time.perf_counter()
        response = await _transcriptions(request)
        metrics.observe(response.status_code, time.perf_counter() - started)
        return response

    @guarded
    async def _transcriptions(request: Request) -> Response:
        length = int(request.headers.get("content-length") or 0)
        if length > options.max_upload + 65536:
            return error(413, f"upload too large: {length:,} bytes; the limit is {options.max_upload:,}", code="file_too_large")
        try:
            form = await request.form(max_part_size=options.max_upload + 1)
        except Exception as exc:  # noqa: BLE001 - multipart parser errors are the client's
            return error(400, f"cannot read the form: {exc}")
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            return error(400, "the 'file' field (the audio) is required", param="file")
        data = await upload.read()
        if len(data) > options.max_upload:
            return error(413, f"upload too large: {len(data):,} bytes; the limit is {options.max_upload:,}", param="file", code="file_too_large")
        fmt = str(form.get("response_format") or "json")
        if fmt not in RESPONSE_FORMATS:
            return error(400, f"response_format must be one of {', '.join(RESPONSE_FORMATS)}", param="response_format")
        granularities = [str(g) for g in form.getlist("timestamp_granularities[]")]
        words = "word" in granularities
        if words and not options.has_aligner:
            return error(400, "word timestamps need the server started with an aligner (qasr serve -a ALIGNER)", param="timestamp_granularities[]")
        language = str(form.get("language") or "")
        if language and language.lower() not in CODE_TO_NAME and language.capitalize() not in options.languages:
            return error(400, f"unsupported language {language!r}", param="language")
        opencc = str(form.get("opencc") or "") or None
        if opencc:
            from qasr.text.convert import OPENCC_TARGETS

            if opencc not in OPENCC_TARGETS:
                return error(400, f"opencc must be one of {', '.join(OPENCC_TARGETS)}", param="opencc")
        stream = str(form.get("stream") or "").lower() in ("true", "1")
        job = _Upload()
        try:
            audio = await job.prepare(data)
        except Exception as exc:  # noqa: BLE001 - AudioError and friends: one message, 400
            job.close()
            said = str(exc).replace(str(job.dir / "upload"), upload.filename or "the upload")  # no server paths
            return error(400, f"bad audio: {said}", param="file", code="invalid_audio")
        message = {"op": "transcribe", "audio": str(audio), "stream": stream, "options": {
            "context": str(form.get("prompt") or "") or None, "itn": str(form.get("itn") or "").lower() in ("true", "1"),
            "opencc": opencc, "words": words}}  # fmt: skip
        try:
            worker = await pool.acquire()
        except QueueFull:
            job.close()
            return error(429, "all workers are busy and the queue is full; retry shortly", "rate_limit_error",
                         code="queue_full", headers={"Retry-After": "1"})  # fmt: skip
        message["id"] = metrics.next_id()
        if stream:
            return StreamingResponse(_sse(worker, message, job), media_type="text/event-stream")
        try:
            answers = [a async for a in pool.request(message, worker)]
        except WorkerDied as exc:
            return error(500, str(exc), "server_error", code="worker_died")
        finally:
            job.close()
        await pool.release(worker)
        last = answers[-1]
        if last["type"] == "error":
            return error(int(last.get("status") or 500), last["message"], "invalid_request_error" if last.get("status") == 400 else "server_error")
        body, media = render(last["result"], fmt, words)
        return JSONResponse(body) if isinstance(body, dict) else PlainTextResponse(body, media_type=media)

    async def _sse(worker: Any, message: dict[str, Any], job: _Upload):  # type: ignore[no-untyped-def]
        def event(record: dict[str, Any]) -> str:
            return f"data: {json.dumps(record, ensure_ascii=False)}\n\n"

        finished = False
        try:
            async for answer in pool.request(message, worker):
                if answer["type"] == "delta":
                    yield event({"type": "transcript.text.delta", "delta": answer["text"]})
                elif answer["type"] == "result":
                    finished = True
                    yield event({"type": "transcript.text.done", "text": answer["result"]["text"]})
                else:
                    finished = True
                    yield event({"type": "error", "error": {"message": answer.get("message"), "type": "server_error"}})
        except WorkerDied as exc:
            yield event({"type": "error", "error": {"message": str(exc), "type": "server_error", "code": "worker_died"}})
            return
        finally:
            job.close()
        if finished:
            await pool.release(worker)

    async def realtime(ws: WebSocket) -> None:
        if not _authorized(options.api_key, ws.headers.get("authorization") or ("Bearer " + ws.query_params.get("key", ""))):
            await ws.close(code=1008)
            return
        await ws.accept()
        try:
            worker = await pool.acquire()
        except QueueFull:
            await ws.send_json({"type": "error", "error": {"message": "all workers are busy", "code": "queue_full"}})
            await ws.close(code=1013)
            return
        opts = {"itn": ws.query_params.get("itn") in ("1", "true"), "opencc": ws.query_params.get("opencc") or None,
                "context": ws.query_params.get("prompt") or None}  # fmt: skip
        rid = metrics.next_id()
        await pool.send(worker, {"id": rid, "op": "stream", "options": opts})

        async def pump() -> None:  # browser -> worker
            try:
                while True:
                    got = await ws.receive()
                    if got.get("type") == "websocket.disconnect" or got.get("text") == "end":
                        break
                    if got.get("bytes"):
                        await pool.send(worker, {"id": rid, "op": "audio", "data": base64.b64encode(got["bytes"]).decode()})
            except WebSocketDisconnect:
                pass
            await pool.send(worker, {"id": rid, "op": "end"})

        feeder = asyncio.create_task(pump())
        try:
            while True:
                answer = await pool.receive(worker)
                if answer["type"] == "done":
                    break
                try:
                    if answer["type"] == "error":  # the worker cannot stream: say why, and end
                        await ws.send_json({"type": "error", "error": {"message": answer.get("message"), "code": "cannot_stream"}})
                        break
                    await ws.send_json(answer.get("event") or answer)
                except (WebSocketDisconnect, RuntimeError):
                    pass  # the browser left: keep draining until the worker is done
            await feeder
            await pool.release(worker)
            await ws.close()
        except WorkerDied as exc:
            feeder.cancel()
            try:
                await ws.send_json({"type": "error", "error": {"message": str(exc), "code": "worker_died"}})
                await ws.close(code=1011)
            except (WebSocketDisconnect, RuntimeError):
                pass

    @guarded
    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": options.model_name, "object": "model", "created": 0, "owned_by": "qasr"}]})

    async def health(_: Request) -> Response:
        ready = sum(w.ready for w in pool.workers.values())
        return JSONResponse({"status": "ok" if ready else "starting", "workers": ready}, 200 if ready else 503)

    @guarded
    async def metrics_route(request: Request) -> Response:
        body, media = metrics.render()
        return Response(body, media_type=media)

    async def page(_: Request) -> Response:
        return HTMLResponse(resources.files("qasr.serve").joinpath("page.html").read_text(encoding="utf-8"))

    routes = [
        Route("/", page),
        Route("/v1/audio/transcriptions", transcriptions, methods=["POST"]),
        Route("/v1/models", models),
        Route("/health", health),
        Route("/metrics", metrics_route),
        WebSocketRoute("/v1/realtime", realtime),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette):  # type: ignore[no-untyped-def]
        try:
            yield  # the pool was started by the caller, so a model that fails to load is its error
        finally:
            await pool.close()

    return Starlette(routes=routes, lifespan=lifespan)


def env_api_key(given: str | None) -> str | None:
    return given or os.environ.get("QASR_API_KEY") or None
