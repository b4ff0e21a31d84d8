"""``python -m qasr.providers.crispasr_child``: CrispASR's library in a process of its own.

Why a process of its own: the ``crispasr`` wheel bundles its ggml under the sonames libchatllm's and
pysilero's ggml also use (``libggml-base.so.0``, ``libggml.so.0``, ``libggml-cpu.so.0``), and the
copies do not coexist. Measured with crispasr 0.8.45 and upstream chatllm.cpp 4a4310e in one
process: with libchatllm loaded first, ``libcrispasr.so`` fails to load (``undefined symbol:
ggml_prec_set_acc``); with CrispASR loaded first, libchatllm fails (``undefined symbol:
ggml_backend_sched_dump_dot``); tests/test_crispasr.py pins both. And CrispASR aborts the whole
process on some bad inputs (a ggml assert: an aligner whose vocabulary lacks the timestamp token id
151705 dies in ``ggml_get_rows``), which here costs a child, never the caller.

It speaks `qasr.channel` (JSON lines with a ``kind``; the audio as a message's payload, 16 kHz
float32, so the engine never sees a user's path). In on stdin: ``open`` (model, threads,
max_tokens; an open session is closed first), ``transcribe`` (payload, language code, hotwords,
optionally this call's max_tokens), ``align`` (payload, aligner, text), ``close`` (the session; the
process stays), ``stats``. Out: ``ready``, ``opened``, ``result``, ``aligned``, ``closed``,
``stats`` (``opened``, ``closed`` and ``stats`` carry the process's RSS and peak; a ``stats``
request with ``heap`` also gets mallinfo2's live and free heap, for the leak lab), or an error
record (`qasr.errors.to_record`: `EngineNotFound` when the package is missing, `ModelFileError`
when CrispASR cannot open the model, `EngineError` otherwise).
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np

from qasr.channel import Message, Receiver, Sender, exit_now
from qasr.errors import EngineError, EngineNotFound, ModelFileError
from qasr.providers.crispasr import INSTALL_HINT


def _short(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


class _Engine:
    """The opened session and what each request does with it."""

    def __init__(self, crispasr: Any, request: Message) -> None:
        t0 = time.perf_counter()
        self.session = crispasr.Session(request["model"], n_threads=int(request["threads"]))
        self.load_seconds = time.perf_counter() - t0
        self.crispasr = crispasr
        self.backend = self.session.backend
        self.max_tokens = int(request.get("max_tokens") or 0)  # 0: CrispASR's own default (512)
        self.session.set_max_new_tokens(self.max_tokens)
        self.threads = int(request["threads"])

    def transcribe(self, request: Message) -> dict[str, Any]:
        pcm = np.frombuffer(request.payload or b"", dtype="<f4")
        if request.get("max_tokens"):  # this call only (a benchmark's one-token run)
            self.session.set_max_new_tokens(int(request["max_tokens"]))
        self.session.set_hotwords(request.get("hotwords") or "")  # this call's context ("" clears it)
        times: list[float] = []
        self.session.set_token_callback(lambda _piece, _i: times.append(time.perf_counter()))
        t0 = time.perf_counter()
        segments = self.session.transcribe(pcm, 16000, language=request.get("language") or None)
        seconds = time.perf_counter() - t0
        self.session.set_max_new_tokens(self.max_tokens)
        return {"seconds": seconds, "text": " ".join(s.text for s in segments).strip(), "tokens": len(times),
                "first_token_after": times[0] - t0 if times else None, "last_token_after": times[-1] - t0 if times else None}

    def align(self, request: Message) -> dict[str, Any]:
        pcm = np.frombuffer(request.payload or b"", dtype="<f4")
        t0 = time.perf_counter()
        words = self.crispasr.align_words(request["aligner"], request["text"], pcm, n_threads=self.threads)
        return {"seconds": time.perf_counter() - t0, "words": [[w.text, w.start, w.end] for w in words]}


def _stats(request: Message | None = None) -> dict[str, Any]:
    """RSS and peak; with ``heap`` in the request, glibc's mallinfo2 figures of this process (after
    ``gc.collect()`` when ``collect``, after ``malloc_trim(0)`` when ``trim``: ``released``), which
    the leak lab cannot read from outside (`qasr.lab.engineproc`)."""
    from qasr.processes import peak_rss_bytes, status_bytes

    stats: dict[str, Any] = {"peak_rss_bytes": peak_rss_bytes(), "rss_bytes": status_bytes("VmRSS") or 0}
    if request is not None and request.get("heap"):
        import gc

        from qasr.lab.memory import mallinfo2, malloc_trim

        if request.get("collect"):
            gc.collect()
        if request.get("trim"):
            stats["released"] = malloc_trim(0)
        info = mallinfo2()
        if info is not None:
            stats.update(heap_live=info.uordblks + info.hblkhd, heap_free=info.fordblks, heap_mmap=info.hblkhd)
    return stats


def serve(out: Sender) -> int:
    """Answer requests until stdin closes; every failure is an error record, never a traceback."""
    try:
        import crispasr
    except ImportError as exc:
        out.error(EngineNotFound(f"crispasr: the crispasr package is not installed ({exc.name or exc}): {INSTALL_HINT}"))
        return 3
    out.send("ready", version=getattr(crispasr, "__version__", "?"))
    engine: _Engine | None = None
    for request in Receiver(sys.stdin.buffer):
        kind = request.kind
        try:
            if kind == "open":
                if engine is not None:
                    engine.session.close()
                    engine = None
                try:
                    engine = _Engine(crispasr, request)
                except Exception as exc:  # CrispASR could not open it (the header check passed)
                    raise ModelFileError(f"crispasr: {_short(exc)}") from None
                out.send("opened", load_seconds=engine.load_seconds, backend=engine.backend, **_stats())
            elif kind == "close":  # the session goes, the process stays: load/close cycles in one process
                if engine is not None:
                    engine.session.close()
                engine = None
                out.send("closed", **_stats())
            elif kind == "stats":
                out.send("stats", **_stats(request))
            elif engine is None:
                raise EngineError(f"crispasr: {kind} before open")
            elif kind == "transcribe":
                out.send("result", **engine.transcribe(request))
            elif kind == "align":
                out.send("aligned", **engine.align(request))
            else:
                raise EngineError(f"crispasr: unknown request {kind!r}")
        except (ModelFileError, EngineError) as exc:
            out.error(exc)
        except Exception as exc:  # crispasr raises RuntimeError / ValueError / OSError with its own words
            out.error(EngineError(f"crispasr: {_short(exc)}"))
    if engine is not None:
        engine.session.close()
    return 0


def main() -> None:
    code = 1
    try:
        code = serve(Sender.for_stdout())
    finally:
        exit_now(code)


if __name__ == "__main__":
    main()
