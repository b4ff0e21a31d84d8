"""``WS /v1/realtime``: live audio in (binary s16le 16 kHz mono frames, then the text ``end``), the
events of `qasr stream` out (``partial`` / ``final`` JSON), through one worker's ``stream`` request
(the frames reach the worker as `qasr.channel` payloads).

The browser may leave at any moment: its worker is then given back at once (the lease aborts the
stream in the worker instead of finishing it), so the next request is served within a second or so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from starlette.websockets import WebSocket, WebSocketDisconnect

from qasr.channel import ERROR
from qasr.serve.lease import Cancel, Cancelled, Lease
from qasr.serve.pool import QueueFull, WorkerDied
from qasr.serve.state import ServerState, authorized


async def _error(ws: WebSocket, message: str, code: str, close: int) -> None:
    try:
        await ws.send_json({"type": "error", "error": {"message": message, "code": code}})
        await ws.close(code=close)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the browser is gone already


def realtime_route(state: ServerState) -> Callable[[WebSocket], Awaitable[None]]:
    pool, metrics = state.pool, state.metrics

    async def realtime(ws: WebSocket) -> None:
        if not authorized(state.options.api_key, ws.headers.get("authorization") or ("Bearer " + ws.query_params.get("key", ""))):
            await ws.close(code=1008)
            return
        if state.draining:
            await ws.close(code=1001)  # going away: the server is shutting down
            return
        await ws.accept()
        opts = {"itn": ws.query_params.get("itn") in ("1", "true"), "opencc": ws.query_params.get("opencc") or None,
                "context": ws.query_params.get("prompt") or None}  # fmt: skip
        with state.inflight.track() as cancel:
            try:
                async with Lease(pool, cancel) as lease:
                    await _session(ws, lease, metrics.next_id(), opts, cancel)
                await ws.close()
            except QueueFull:
                await _error(ws, "all workers are busy", "queue_full", 1013)
            except WorkerDied as exc:
                await _error(ws, str(exc), "worker_died", 1011)
            except Cancelled as exc:
                metrics.cancelled.labels(reason=exc.reason).inc()
                if exc.reason == "shutdown":
                    await _error(ws, "the server is shutting down; the stream was stopped", "shutting_down", 1001)
            except (WebSocketDisconnect, RuntimeError, OSError):
                pass  # closed under us after the stream ended

    return realtime


async def _session(ws: WebSocket, lease: Lease, rid: int, opts: dict[str, object], cancel: Cancel) -> None:
    """Browser audio to the worker while its events go back; a browser gone sets ``cancel``."""

    async def pump() -> None:  # browser -> worker
        try:
            while True:
                got = await ws.receive()
                if got.get("type") == "websocket.disconnect":
                    break
                if got.get("text") == "end":
                    lease.send("end", id=rid)
                    return
                if got.get("bytes"):
                    lease.send("audio", got["bytes"], id=rid)  # the frames as the message's payload
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass
        cancel.set("disconnect")

    await lease.start("stream", id=rid, options=opts)
    feeder = asyncio.ensure_future(pump())
    try:
        async for answer in lease.answers():
            if answer.kind == "done":
                break
            try:
                if answer.kind == ERROR:  # the worker cannot stream: say why, and end
                    await ws.send_json({"type": "error", "error": {"message": str(answer.error()), "code": "cannot_stream"}})
                    break
                await ws.send_json(answer.get("event") or answer)
            except (WebSocketDisconnect, RuntimeError, OSError):
                cancel.set("disconnect")  # the browser left: the lease aborts the stream
    finally:
        feeder.cancel()
