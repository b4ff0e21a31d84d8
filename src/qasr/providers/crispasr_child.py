"""``python -m qasr.providers.crispasr_child``: CrispASR's library in a process of its own.

Why a process of its own: the ``crispasr`` wheel bundles its ggml under the sonames libchatllm's and
pysilero's ggml also use (``libggml-base.so.0``, ``libggml.so.0``, ``libggml-cpu.so.0``), and the
copies do not coexist. Measured with crispasr 0.8.45 and upstream chatllm.cpp 4a4310e in one
process: with libchatllm loaded first, ``libcrispasr.so`` fails to load (``undefined symbol:
ggml_prec_set_acc``); with CrispASR loaded first, libchatllm fails (``undefined symbol:
ggml_backend_sched_dump_dot``); tests/test_crispasr.py pins both. And CrispASR aborts the whole process on some bad inputs (a ggml assert: an aligner whose vocabulary
lacks the timestamp token id 151705 dies in ``ggml_get_rows``), which here costs a child, never the
caller.

One channel, JSON lines with a ``kind`` key. In on stdin: ``open`` (model, threads, max_tokens,
hotwords; an open session is closed first), ``transcribe`` (a float32 file we wrote, language code,
optionally this call's max_tokens), ``align`` (aligner, float32 file, text), ``close`` (the
session; the process stays), ``stats``. Out on the original stdout: ``ready``, ``opened``,
``result``, ``aligned``, ``closed``, ``stats`` (``opened``, ``closed`` and ``stats`` carry the
process's RSS and peak), or ``error`` (``what``: missing | model | engine, and a message). File descriptor 1 is
pointed at stderr before the library loads, so nothing native can write into the channel.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import IO, Any

import numpy as np


def _emit(out: IO[str], kind: str, **fields: Any) -> None:
    out.write(json.dumps({"kind": kind, **fields}, ensure_ascii=False) + "\n")
    out.flush()


def _short(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


class _Engine:
    """The opened session and what each request does with it."""

    def __init__(self, crispasr: Any, request: dict[str, Any]) -> None:
        t0 = time.perf_counter()
        self.session = crispasr.Session(request["model"], n_threads=int(request["threads"]))
        self.load_seconds = time.perf_counter() - t0
        self.crispasr = crispasr
        self.backend = self.session.backend
        self.max_tokens = int(request.get("max_tokens") or 0)  # 0: CrispASR's own default (512)
        self.session.set_max_new_tokens(self.max_tokens)
        if request.get("hotwords"):
            self.session.set_hotwords(request["hotwords"])
        self.threads = int(request["threads"])

    def transcribe(self, request: dict[str, Any]) -> dict[str, Any]:
        pcm = np.fromfile(request["pcm"], dtype="<f4")
        if request.get("max_tokens"):  # this call only (a benchmark's one-token run)
            self.session.set_max_new_tokens(int(request["max_tokens"]))
        times: list[float] = []
        self.session.set_token_callback(lambda _piece, _i: times.append(time.perf_counter()))
        t0 = time.perf_counter()
        segments = self.session.transcribe(pcm, 16000, language=request.get("language") or None)
        seconds = time.perf_counter() - t0
        self.session.set_max_new_tokens(self.max_tokens)
        return {"seconds": seconds, "text": " ".join(s.text for s in segments).strip(), "tokens": len(times),
                "first_token_after": times[0] - t0 if times else None, "last_token_after": times[-1] - t0 if times else None}

    def align(self, request: dict[str, Any]) -> dict[str, Any]:
        pcm = np.fromfile(request["pcm"], dtype="<f4")
        t0 = time.perf_counter()
        words = self.crispasr.align_words(request["aligner"], request["text"], pcm, n_threads=self.threads)
        return {"seconds": time.perf_counter() - t0, "words": [[w.text, w.start, w.end] for w in words]}


def _stats() -> dict[str, Any]:
    from qasr.processes import peak_rss_bytes, status_bytes

    return {"peak_rss_bytes": peak_rss_bytes(), "rss_bytes": status_bytes("VmRSS") or 0}


def serve(channel: IO[str]) -> int:
    """Answer requests until stdin closes; every failure is an ``error`` record, never a traceback."""
    try:
        import crispasr
    except ImportError as exc:
        _emit(channel, "error", what="missing", message=f"the crispasr package is not installed ({exc.name or exc})")
        return 3
    _emit(channel, "ready", version=getattr(crispasr, "__version__", "?"))
    engine: _Engine | None = None
    for line in sys.stdin:
        request = json.loads(line)
        kind = request.get("kind")
        try:
            if kind == "open":
                if engine is not None:
                    engine.session.close()
                engine = _Engine(crispasr, request)
                _emit(channel, "opened", load_seconds=engine.load_seconds, backend=engine.backend, **_stats())
            elif kind == "close":  # the session goes, the process stays: load/close cycles in one process
                if engine is not None:
                    engine.session.close()
                engine = None
                _emit(channel, "closed", **_stats())
            elif kind == "stats":
                _emit(channel, "stats", **_stats())
            elif engine is None:
                _emit(channel, "error", what="engine", message=f"{kind} before open")
            elif kind == "transcribe":
                _emit(channel, "result", **engine.transcribe(request))
            elif kind == "align":
                _emit(channel, "aligned", **engine.align(request))
            else:
                _emit(channel, "error", what="engine", message=f"unknown request {kind!r}")
        except Exception as exc:  # crispasr raises RuntimeError / ValueError / OSError with its own words
            _emit(channel, "error", what="model" if kind == "open" else "engine", message=_short(exc))
    if engine is not None:
        engine.session.close()
    return 0


def main() -> None:
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # native prints land in the log, not in the channel
    sys.stdout = sys.stderr
    code = 1
    try:
        code = serve(channel)
    finally:
        channel.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    main()
