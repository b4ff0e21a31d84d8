"""What the routes, the WebSocket and the shutdown of `qasr serve` share: its options, its state, the key check."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

from qasr.serve.lease import Inflight
from qasr.serve.metrics import Metrics
from qasr.serve.pool import WorkerPool


@dataclass(frozen=True)
class ServeOptions:
    model_name: str
    api_key: str | None = None
    max_upload: int = 100 * 1024 * 1024
    has_aligner: bool = False
    languages: tuple[str, ...] = ()
    language: str | None = None  # forced for every request (-l): another one per request is a 400
    upload_seconds: float = 120.0  # the deadline for receiving an upload (408 past it)


@dataclass
class ServerState:
    """The server's moving parts; ``draining`` from the first shutdown signal on (`qasr.serve.server`)."""

    pool: WorkerPool
    options: ServeOptions
    metrics: Metrics
    inflight: Inflight = field(default_factory=Inflight)
    draining: bool = False


def authorized(key: str | None, header: str | None) -> bool:
    if key is None:
        return True
    given = (header or "").removeprefix("Bearer ").strip()
    return hmac.compare_digest(given.encode(), key.encode())  # constant time
