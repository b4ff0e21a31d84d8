"""The HTTP routes of `qasr serve` (Starlette), over a `WorkerPool`; the WebSocket is `qasr.serve.realtime`.

Uploads are received (`qasr.serve.upload`: bounded in size and time while they stream in), decoded
and validated here, in the parent, as everywhere in qasr; the worker gets raw 16 kHz float32 in a
file we named, in a private directory (GUIDE §2: the engine never sees a user's file name). Every use
of a worker is one `qasr.serve.lease.Lease`. Every failure is an OpenAI-shaped JSON error
(``{"error": {"message", "type", "param", "code"}}``) with its status: 400 bad input, 401 no or wrong
key, 408 an upload too slow, 413 too large, 429 queue full (with ``Retry-After``), 500 an input that
killed two workers, 503 not ready or shutting down. Never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send

from qasr.channel import ERROR, Message
from qasr.errors import EXIT_USAGE, Aborted, QasrError
from qasr.serve.formats import RESPONSE_FORMATS, render
from qasr.serve.lease import Cancel, Cancelled, Lease
from qasr.serve.metrics import Metrics
from qasr.serve.realtime import realtime_route
from qasr.serve.pool import QueueFull, WorkerDied, WorkerPool
from qasr.serve.state import ServeOptions, ServerState, authorized
from qasr.serve.upload import Upload, UploadRefused, read_form
from qasr.text.languages import CODE_TO_NAME, NAME_TO_CODE


class PoisonInput(Exception):
    """The same input ended two workers in a row: it is not tried a third time."""


def status_of(failed: QasrError) -> int:
    """The HTTP status of an error a worker sent: 499 for a request stopped early, 400 for what the
    client can fix (a usage, audio or model-file error: exit code 2), 500 for the rest."""
    if isinstance(failed, Aborted):
        return 499
    return 400 if failed.exit_code == EXIT_USAGE else 500


def error(status: int, message: str, kind: str = "invalid_request_error", param: str | None = None, code: str | None = None,
          headers: dict[str, str] | None = None) -> JSONResponse:  # fmt: skip
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}}, status, headers=headers)


def refused(exc: UploadRefused) -> JSONResponse:
    """A refused upload; the connection closes, so a body we stopped reading is not read any further."""
    kind = "invalid_request_error" if exc.status < 500 else "server_error"
    return error(exc.status, str(exc), kind, exc.param, exc.code, headers={"Connection": "close"})


def request_language(value: str, options: ServeOptions) -> str | None:
    """The model's own spelling of the language a request asks for (an ISO code or a name); None
    detects. `UploadRefused` (400) when the model cannot take it, or the server forces another."""
    asked = value.strip()
    if not asked or asked.lower() == "auto":
        return None
    name = CODE_TO_NAME.get(asked.lower()) or (asked.capitalize() if asked.lower() in NAME_TO_CODE else None)
    known = {lang.lower(): lang for lang in options.languages}
    if known:
        if name is None and asked.lower() in known:
            name = asked
        if name is None or name.lower() not in known:
            raise UploadRefused(400, f"the model cannot take language {value!r}; it takes {', '.join(options.languages)}", param="language")
        name = known[name.lower()]
    elif name is None:
        raise UploadRefused(400, f"unknown language {value!r} (an ISO code such as 'en' or a name such as 'English')", param="language")
    if options.language and name.lower() != options.language.lower():
        raise UploadRefused(400, f"this server answers in {options.language} only (started with -l); cannot take {value!r}", param="language")
    return name


async def _watch_disconnect(request: Request, cancel: Cancel) -> None:
    """Once the body is read, the next ASGI message is the client going away."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
    cancel.set("disconnect")


class EventStream(StreamingResponse):
    """Server-sent events whose generator is closed, and ``on_close`` run, however the response ends
    (a client gone before the first event included), so its lease is always given back."""

    def __init__(self, events: AsyncIterator[str], on_close: Callable[[], None]) -> None:
        super().__init__(events, media_type="text/event-stream")
        self.on_close = [on_close]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        import anyio

        try:
            await super().__call__(scope, receive, send)
        except ClientDisconnect:
            pass
        finally:
            with anyio.CancelScope(shield=True):
                await self.body_iterator.aclose()  # type: ignore[attr-defined]
                for hook in self.on_close:
                    hook()


def create_app(pool: WorkerPool, options: ServeOptions) -> Starlette:
    state = ServerState(pool, options, Metrics(pool))
    metrics = state.metrics

    def guarded(handler: Callable[..., Awaitable[Response]]) -> Callable[..., Awaitable[Response]]:
        """The route behind the API key (every route but /health and the page, which holds no data)."""

        async def route(request: Request, *args: Any) -> Response:
            if not authorized(options.api_key, request.headers.get("authorization")):
                return error(401, "missing or wrong API key (Authorization: Bearer ...)", "invalid_api_key", code="invalid_api_key")
            return await handler(request, *args)

        return route

    async def run(message: dict[str, Any], cancel: Cancel) -> Message:
        """The request's last answer, from a second worker if the first died (nothing was sent yet)."""
        died: WorkerDied | None = None
        for _ in range(2):
            message["id"] = metrics.next_id()
            try:
                async with Lease(pool, cancel) as lease:
                    answers = [a async for a in lease.request("transcribe", **message)]
                return answers[-1]
            except WorkerDied as exc:
                if died is not None:
                    raise PoisonInput(f"this input ended two workers in a row ({died}; then {exc}); it is not tried again") from None
                died = exc
                metrics.retries.inc()
        raise AssertionError("unreachable")

    async def transcriptions(request: Request) -> Response:
        started = time.perf_counter()
        cancel = state.inflight.begin()
        handed = False
        try:
            response = await _transcriptions(request, cancel)
            if isinstance(response, EventStream):
                response.on_close.append(lambda: state.inflight.end(cancel))
                handed = True
        finally:
            if not handed:
                state.inflight.end(cancel)
        metrics.observe(response.status_code, time.perf_counter() - started)
        return response

    @guarded
    async def _transcriptions(request: Request, cancel: Cancel) -> Response:
        if state.draining:
            return error(503, "the server is shutting down; retry on another", "server_error", code="shutting_down",
                         headers={"Retry-After": "1", "Connection": "close"})  # fmt: skip
        if pool.full:  # refused before its body is read
            return error(429, "all workers are busy and the queue is full; retry shortly", "rate_limit_error",
                         code="queue_full", headers={"Retry-After": "1", "Connection": "close"})  # fmt: skip
        try:
            form = await read_form(request, options.max_upload, options.upload_seconds, cancel)
        except UploadRefused as exc:
            return refused(exc)
        except ClientDisconnect:
            metrics.cancelled.labels(reason="disconnect").inc()
            return error(499, "the client went away during the upload")
        job = Upload()
        try:
            message = await _message(form, job)
        except UploadRefused as exc:
            job.close()
            return refused(exc)
        except BaseException:
            job.close()
            raise
        finally:
            await form.close()
        fmt, words = str(form.get("response_format") or "json"), message["options"]["words"]
        if message["stream"]:
            return EventStream(_sse(message, job, cancel), on_close=job.close)
        watcher = asyncio.ensure_future(_watch_disconnect(request, cancel))
        try:
            last = await run(message, cancel)
        except QueueFull:
            return error(429, "all workers are busy and the queue is full; retry shortly", "rate_limit_error",
                         code="queue_full", headers={"Retry-After": "1"})  # fmt: skip
        except PoisonInput as exc:
            return error(500, str(exc), "server_error", code="worker_died")
        except Cancelled as exc:
            metrics.cancelled.labels(reason=exc.reason).inc()
            if exc.reason == "shutdown":
                return error(503, "the server is shutting down; the request was stopped", "server_error", code="shutting_down")
            return error(499, "the client went away")
        finally:
            watcher.cancel()
            job.close()
        if last.kind == ERROR:
            failed = last.error()  # the worker's error, as its own class (`qasr.channel`)
            status = status_of(failed)
            return error(status, str(failed), "invalid_request_error" if status == 400 else "server_error")
        body, media = render(last["result"], fmt, words)
        return JSONResponse(body) if isinstance(body, dict) else PlainTextResponse(body, media_type=media)

    async def _message(form: Any, job: Upload) -> dict[str, Any]:
        """The worker's request for a valid form, its audio decoded into ``job``; `UploadRefused` (400) otherwise."""
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise UploadRefused(400, "the 'file' field (the audio) is required", param="file")
        fmt = str(form.get("response_format") or "json")
        if fmt not in RESPONSE_FORMATS:
            raise UploadRefused(400, f"response_format must be one of {', '.join(RESPONSE_FORMATS)}", param="response_format")
        words = "word" in [str(g) for g in form.getlist("timestamp_granularities[]")]
        if words and not options.has_aligner:
            raise UploadRefused(400, "word timestamps need the server started with an aligner (qasr serve -a ALIGNER)",
                                param="timestamp_granularities[]")  # fmt: skip
        language = request_language(str(form.get("language") or ""), options)
        opencc = str(form.get("opencc") or "") or None
        if opencc:
            from qasr.text.convert import OPENCC_TARGETS

            if opencc not in OPENCC_TARGETS:
                raise UploadRefused(400, f"opencc must be one of {', '.join(OPENCC_TARGETS)}", param="opencc")
        audio = await job.prepare(upload, options.max_upload)
        return {"audio": str(audio), "stream": str(form.get("stream") or "").lower() in ("true", "1"),
                "options": {"context": str(form.get("prompt") or "") or None, "language": language,
                            "itn": str(form.get("itn") or "").lower() in ("true", "1"), "opencc": opencc, "words": words}}  # fmt: skip

    async def _sse(message: dict[str, Any], job: Upload, cancel: Cancel) -> AsyncIterator[str]:
        def event(record: dict[str, Any]) -> str:
            return f"data: {json.dumps(record, ensure_ascii=False)}\n\n"

        def failure(text: str, code: str) -> str:
            return event({"type": "error", "error": {"message": text, "type": "server_error", "code": code}})

        sent = False
        died: WorkerDied | None = None
        try:
            for _ in range(2):
                message["id"] = metrics.next_id()
                try:
                    async with Lease(pool, cancel) as lease:
                        async for answer in lease.request("transcribe", **message):
                            if answer.kind == "delta":
                                yield event({"type": "transcript.text.delta", "delta": answer["text"]})
                            elif answer.kind == "result":
                                yield event({"type": "transcript.text.done", "text": answer["result"]["text"]})
                            else:
                                yield event({"type": "error", "error": {"message": str(answer.error()), "type": "server_error"}})
                            sent = True
                    return
                except WorkerDied as exc:
                    if sent:
                        yield failure(str(exc), "worker_died")
                        return
                    if died is not None:
                        yield failure(f"this input ended two workers in a row ({died}; then {exc}); it is not tried again", "worker_died")
                        return
                    died = exc
                    metrics.retries.inc()
        except QueueFull:
            yield failure("all workers are busy and the queue is full; retry shortly", "queue_full")
        except Cancelled as exc:
            metrics.cancelled.labels(reason=exc.reason).inc()
            if exc.reason == "shutdown":
                yield failure("the server is shutting down; the request was stopped", "shutting_down")
        except (asyncio.CancelledError, GeneratorExit):
            metrics.cancelled.labels(reason="disconnect").inc()  # the client went away: starlette stopped us
            raise

    @guarded
    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": options.model_name, "object": "model", "created": 0, "owned_by": "qasr"}]})

    async def health(_: Request) -> Response:
        if state.draining:
            return JSONResponse({"status": "draining", "workers": 0}, 503)
        ready = sum(w.ready and w.alive for w in pool.workers.values())
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
        WebSocketRoute("/v1/realtime", realtime_route(state)),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette):  # type: ignore[no-untyped-def]
        try:
            yield  # the pool was started by the caller, so a model that fails to load is its error
        finally:
            await pool.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.qasr = state
    return app


def env_api_key(given: str | None) -> str | None:
    return given or os.environ.get("QASR_API_KEY") or None
