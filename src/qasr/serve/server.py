"""Running the app under uvicorn, and stopping it the way a container runtime or an operator does.

The first SIGTERM or Ctrl-C drains: ``/health`` answers 503 at once (a load balancer stops sending),
new work gets 503, requests in progress get up to ``shutdown_timeout`` seconds to finish; what is
still running then is aborted (each gets its 503 or its stream's error event), the workers end and
the process exits 0. A second signal stops at once: every worker is killed and the process exits
128 + the signal. Uvicorn's own handling would re-raise the signal after its shutdown (SIGTERM then
ends the process with -15, not 0) and knows nothing of the workers, hence this subclass.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

import uvicorn

from qasr.serve.lease import ABORT_GRACE
from qasr.serve.state import ServerState


class GracefulServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, state: ServerState, shutdown_timeout: float) -> None:
        super().__init__(config)
        self.state, self.shutdown_timeout = state, shutdown_timeout
        self._draining: asyncio.Future[Any] | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    def _on_signal(self, sig: int) -> None:
        if self._draining is None:
            self._draining = asyncio.ensure_future(self._drain(sig))
            return
        print(f"qasr serve: {signal.Signals(sig).name} again: stopping at once", file=sys.stderr, flush=True)
        self.state.pool.kill_all()
        sys.stdout.flush()
        os._exit(128 + sig)

    async def _drain(self, sig: int) -> None:
        state = self.state
        state.draining = True
        busy = len(state.inflight)
        print(f"qasr serve: {signal.Signals(sig).name}: shutting down; {busy} request(s) in progress get up to "
              f"{self.shutdown_timeout:g} s (send it again to stop at once)", file=sys.stderr, flush=True)  # fmt: skip
        if not await state.inflight.wait_idle(self.shutdown_timeout):
            print(f"qasr serve: stopping {len(state.inflight)} request(s) still running", file=sys.stderr, flush=True)
            state.inflight.cancel_all("shutdown")
            await state.inflight.wait_idle(ABORT_GRACE + 1.0)
        self.should_exit = True  # uvicorn closes the connections, then the app's lifespan ends the workers


async def run_server(app: Any, host: str, port: int, shutdown_timeout: float) -> None:
    """Serve ``app`` (from `qasr.serve.app.create_app`) until a signal has drained it."""
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on", timeout_graceful_shutdown=3)
    await GracefulServer(config, app.state.qasr, shutdown_timeout).serve()
