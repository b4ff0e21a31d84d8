"""``qasr serve``: start the workers, then the HTTP server (uvicorn) on 127.0.0.1 by default."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from qasr.cli.options import ALIGNER, ENGINE, MAX_LENGTH, MAX_TOKENS, MODEL
from qasr.cli.provider_options import PROVIDER, WHISPER_MODEL


def serve(
    model: Optional[str] = MODEL,
    provider: str = PROVIDER,
    whisper_model: Optional[str] = WHISPER_MODEL,
    aligner: Optional[str] = ALIGNER,
    language: Optional[str] = typer.Option(None, "--language", "-l", help="Force a language for every request (another asked per request is a 400); default: each request's language field, else detect."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (127.0.0.1: this machine only)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    workers: int = typer.Option(1, "--workers", min=1, max=64, help="Worker processes, each with the model loaded once."),
    queue: int = typer.Option(16, "--queue", min=0, help="Requests that may wait for a worker; more get 429."),
    max_worker_rss: Optional[str] = typer.Option(None, "--max-worker-rss", help="Replace a worker whose RSS passes this, e.g. '2 GiB'."),
    max_requests: Optional[int] = typer.Option(None, "--max-requests", min=1, help="Replace a worker after this many requests."),
    max_upload: str = typer.Option("100 MiB", "--max-upload", help="Largest upload accepted (413 above), counted as the body streams in."),
    upload_timeout: float = typer.Option(120.0, "--upload-timeout", min=0.1, help="Seconds to receive an upload (408 after)."),
    shutdown_timeout: float = typer.Option(10.0, "--shutdown-timeout", min=0.0, help="On SIGTERM or Ctrl-C: seconds requests in progress get to finish before they are stopped."),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="QASR_API_KEY", help="Require 'Authorization: Bearer KEY' (all but /health)."),
    threads: Optional[int] = typer.Option(None, "--threads", "-t", min=1, help="CPU threads per worker (default: the cores shared out among the workers)."),
    max_length: Optional[int] = MAX_LENGTH,
    max_tokens: Optional[int] = MAX_TOKENS,
    engine: Optional[Path] = ENGINE,
) -> None:
    """Serve an OpenAI-compatible transcription API, a WebSocket for live audio and a web page.

    Endpoints: POST /v1/audio/transcriptions, GET /v1/models, GET /health, GET /metrics,
    WS /v1/realtime, GET / (the page). SIGTERM or Ctrl-C drains (/health 503, requests in progress
    get --shutdown-timeout seconds) and exits 0; a second one stops at once.
    Exit codes: 0 stopped, 2 bad options or model, 3 engine missing, 128+N a second signal N.
    """
    import asyncio
    import os

    from qasr.cli.options import engine_spec
    from qasr.engine.modelfile import ModelKind, warn_if_synthetic
    from qasr.engine.registry import model_file
    from qasr.errors import QasrError, UsageError
    from qasr.lab.units import parse_size

    try:
        rss_limit = parse_size(max_worker_rss) if max_worker_rss else None
        upload_limit = parse_size(max_upload)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if provider == "crispasr":  # a GGUF file, checked the same way before a worker starts
        from qasr.engine.gguf import inspect_gguf, require_qwen3
        from qasr.engine.registry import resolve_model

        if aligner:
            raise UsageError("the server gives word times with --provider qwen3-chatllm only (qasr transcribe --provider crispasr takes --aligner)")
        crisp = require_qwen3(inspect_gguf(resolve_model(model)), ModelKind.ASR) if model else None
        model = str(crisp.path) if crisp else None
    asr = model_file(model, ModelKind.ASR) if model and provider != "crispasr" else None
    if asr is None and provider == "qwen3-chatllm":
        raise UsageError("give a model: --model FILE (or QASR_MODEL), or --provider faster-whisper --whisper-model DIR")
    warn_if_synthetic(asr, max_tokens)
    aligner_path = None
    if aligner:
        aligner_path = model_file(aligner, ModelKind.ALIGNER).path
    if threads is None:
        # ggml's threads spin while they wait: more threads than cores in all makes every request
        # slower (measured: 2 workers x 2 threads on 2 cores served 1.8 requests/s, p50 2 s).
        threads = max(1, (os.cpu_count() or 1) // workers)
    # The one engine spec every worker receives (as JSON), with the files resolved once here.
    spec = engine_spec(provider=provider, model=str(asr.path) if asr else model, aligner=str(aligner_path) if aligner_path else None,
                       language=language, threads=threads, max_length=max_length, max_tokens=max_tokens, engine=engine,
                       whisper_model=whisper_model)  # fmt: skip

    from qasr.serve.app import create_app
    from qasr.serve.pool import PoolOptions, WorkerFailed, WorkerPool
    from qasr.serve.server import run_server
    from qasr.serve.state import ServeOptions

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
                               languages=tuple(asr.languages) if asr else (), language=language,
                               upload_seconds=upload_timeout)  # fmt: skip
        app = create_app(pool, options)
        print(f"qasr serve: http://{host}:{port}/ ({workers} worker(s), {pool.provider or provider}, model {name})", flush=True)
        await run_server(app, host, port, shutdown_timeout)

    asyncio.run(run())
