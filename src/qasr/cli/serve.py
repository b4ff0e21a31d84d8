"""``qasr serve``: start the workers, then the HTTP server (uvicorn) on 127.0.0.1 by default."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def serve(
    model: Optional[str] = typer.Option(None, "--model", "-m", envvar="QASR_MODEL", help="Qwen3-ASR model: a file or a registry name."),
    provider: str = typer.Option("qwen3-chatllm", "--provider", help="qwen3-chatllm, crispasr (GGUF models), faster-whisper, or auto (the first that starts; auto:A,B for an order)."),
    whisper_model: Optional[str] = typer.Option(None, "--whisper-model", help="faster-whisper model directory (for --provider faster-whisper or auto)."),
    aligner: Optional[str] = typer.Option(None, "--aligner", "-a", help="ForcedAligner model: enables word timestamps."),
    language: Optional[str] = typer.Option(None, "--language", "-l", help="Force a language for every request; default: detect."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (127.0.0.1: this machine only)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    workers: int = typer.Option(1, "--workers", min=1, max=64, help="Worker processes, each with the model loaded once."),
    queue: int = typer.Option(16, "--queue", min=0, help="Requests that may wait for a worker; more get 429."),
    max_worker_rss: Optional[str] = typer.Option(None, "--max-worker-rss", help="Replace a worker whose RSS passes this, e.g. '2 GiB'."),
    max_requests: Optional[int] = typer.Option(None, "--max-requests", min=1, help="Replace a worker after this many requests."),
    max_upload: str = typer.Option("100 MiB", "--max-upload", help="Largest upload accepted (413 above)."),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="QASR_API_KEY", help="Require 'Authorization: Bearer KEY' (all but /health)."),
    threads: Optional[int] = typer.Option(None, "--threads", "-t", min=1, help="CPU threads per worker (default: the cores shared out among the workers)."),
    max_length: Optional[int] = typer.Option(None, "--max-length", min=256, help="Context length per worker (memory)."),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", min=1, help="Stop each engine call after N tokens (a synthetic model never stops by itself)."),
    engine: Optional[Path] = typer.Option(None, "--engine", help="libchatllm.so or its directory."),
) -> None:
    """Serve an OpenAI-compatible transcription API, a WebSocket for live audio and a web page.

    Endpoints: POST /v1/audio/transcriptions, GET /v1/models, GET /health, GET /metrics,
    WS /v1/realtime, GET / (the page). Exit codes: 0 stopped, 2 bad options or model, 3 engine missing.
    """
    import asyncio
    import os

    from qasr.engine.modelfile import ModelKind, inspect_model_file, require_kind, warn_if_synthetic
    from qasr.engine.registry import resolve_model
    from qasr.errors import QasrError, UsageError
    from qasr.lab.units import parse_size

    try:
        rss_limit = parse_size(max_worker_rss) if max_worker_rss else None
        upload_limit = parse_size(max_upload)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if provider == "crispasr":  # a GGUF file, checked the same way before a worker starts
        from qasr.engine.gguf import inspect_gguf, require_qwen3

        if aligner:
            raise UsageError("the server gives word times with --provider qwen3-chatllm only (qasr transcribe --provider crispasr takes --aligner)")
        crisp = require_qwen3(inspect_gguf(resolve_model(model)), ModelKind.ASR) if model else None
        model = str(crisp.path) if crisp else None
    asr = require_kind(inspect_model_file(resolve_model(model)), ModelKind.ASR) if model and provider != "crispasr" else None
    if asr is None and provider == "qwen3-chatllm":
        raise UsageError("give a model: --model FILE (or QASR_MODEL), or --provider faster-whisper --whisper-model DIR")
    warn_if_synthetic(asr, max_tokens)
    aligner_path = None
    if aligner:
        aligner_path = require_kind(inspect_model_file(resolve_model(aligner)), ModelKind.ALIGNER).path
    if threads is None:
        # ggml's threads spin while they wait: more threads than cores in all makes every request
        # slower (measured: 2 workers x 2 threads on 2 cores served 1.8 requests/s, p50 2 s).
        threads = max(1, (os.cpu_count() or 1) // workers)
    spec = {"model": str(asr.path) if asr else model, "aligner": str(aligner_path) if aligner_path else None, "language": language,
            "threads": threads, "max_length": max_length, "max_tokens": max_tokens, "engine": str(engine) if engine else None,
            "provider": provider, "whisper_model": whisper_model}  # fmt: skip

    import uvicorn

    from qasr.serve.app import ServeOptions, create_app
    from qasr.serve.pool import PoolOptions, WorkerFailed, WorkerPool

    async def run() -> None:
        pool = WorkerPool(PoolOptions(spec, workers=workers, queue=queue, max_worker_rss=rss_limit, max_requests=max_requests))
        try:
            await pool.start()
        except WorkerFailed as exc:
            await pool.close()
            err = QasrError(f"the workers could not start: {exc}")
            err.exit_code = exc.exit_code
            raise err from None
        name = asr.name if asr else Path(whisper_model or "faster-whisper").name
        options = ServeOptions(name, api_key=api_key, max_upload=upload_limit, has_aligner=aligner_path is not None,
                               languages=tuple(asr.languages) if asr else ())  # fmt: skip
        config = uvicorn.Config(create_app(pool, options), host=host, port=port, log_level="warning", lifespan="on")
        print(f"qasr serve: http://{host}:{port}/ ({workers} worker(s), {pool.provider or provider}, model {name})", flush=True)
        await uvicorn.Server(config).serve()

    asyncio.run(run())
