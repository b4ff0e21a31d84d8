"""A server worker: ``python -m qasr.serve.worker SPEC_JSON``. One model, one request at a time.

SPEC_JSON is the server's `qasr.spec.EngineSpec` (what to load), the same value every child gets.

The parent writes one JSON object per line on stdin and reads JSON lines from stdout:

* on start: ``{"type": "ready", "pid", "load_seconds"}`` once the model is loaded, or
  ``{"type": "fatal", "message", "exit_code"}`` and the process ends;
* ``{"id", "op": "transcribe", "audio": PATH, "options": {...}, "stream": bool}``: PATH is raw
  16 kHz float32 that the parent wrote after decoding and validating the upload (the engine never
  sees a user's file). ``options``: ``context``, ``itn``, ``opencc``, ``words``, ``language`` (the
  model's own spelling of a language name; None detects). Answers: ``{"id", "type": "delta", "text"}``
  while generating (stream only), then ``{"id", "type": "result", "result": {...}}`` or
  ``{"id", "type": "error", "status", "message"}``;
* ``{"id", "op": "stream"}``, then ``{"id", "op": "audio", "data": BASE64}`` lines (s16le 16 kHz
  mono) and ``{"id", "op": "end"}``: live streaming; answers ``{"id", "type": "event", "event"}``
  lines and ``{"id", "type": "done"}``;
* ``{"id", "op": "abort"}`` at any time: the request ``id`` stops as soon as it can (the engine's
  abort, `qasr.serve.control`) and its last answer is ``{"id", "type": "error", "status": 499,
  "aborted": true}``. An abort for a request already answered is ignored.

A worker never destroys its model (upstream aborts): it leaves memory by exiting, which the parent
asks for by closing stdin. It ends with ``os._exit`` (upstream aborts at interpreter exit), and
never outlives the server (`qasr.serve.control.watch_parent`).
"""

from __future__ import annotations

import base64
import json
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, TextIO

import numpy as np

from qasr.channel import exit_now
from qasr.serve.control import Control, watch_parent
from qasr.spec import EngineSpec


class Aborted(Exception):
    """The parent asked this request to stop (its client went away, or the server shuts down)."""


def _send(out: TextIO, record: dict[str, Any]) -> None:
    out.write(json.dumps(record, ensure_ascii=False) + "\n")
    out.flush()


def _load(spec: EngineSpec):  # type: ignore[no-untyped-def]
    """(engine Model or another provider, aligner file), from the server's engine spec.

    qwen3-chatllm stays a `Model` here: a request's abort is checked between the engine's chunks
    (`_ForRequest`), which the provider interface does not expose yet; any other provider (an
    ``auto`` chain's fallback included) is called through its own interface.
    """
    from qasr.engine.model import Model

    if spec.provider != "qwen3-chatllm":
        from qasr.providers import make_provider

        chosen = make_provider(spec.replace(aligner=None))
        if chosen.name != "qwen3-chatllm":
            return chosen, None  # another recogniser: requests go through its own interface
        return chosen.model, spec.aligner  # type: ignore[attr-defined]  # an auto chain's first choice
    # The aligner runs in a process of its own per request (qasr.pipeline.align_child).
    return Model.from_spec(spec), spec.aligner


class _ForRequest:
    """The model as the library sees it during one request (everything else is the model's own).

    * ``cancelled``: checked before each engine call and at each chunk, so an aborted request stops
      within one chunk even when the engine's abort landed before its turn began (upstream clears the
      flag when generation starts) and never starts another VAD chunk or a stream's final decode.
    * ``language``: each engine call's answer is forced to start with ``language X<asr_text>``, which
      is what ``--set language X`` makes upstream append to the prompt, so no reload is needed.
      (Issue 21 moves per-call options into the library; this is the server's stopgap until then.)
    """

    def __init__(self, model: Any, cancelled: Callable[[], bool], language: str | None = None) -> None:
        self._model, self._cancelled, self._forced = model, cancelled, language

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    @property
    def language(self) -> str | None:
        return self._forced or self._model.language

    def transcribe_raw(self, audio: object, **kwargs: Any) -> Iterator[str]:
        if self._cancelled():
            raise Aborted()
        if self._forced:
            kwargs["prefix"] = f"language {self._forced}<asr_text>"
        return self._checked(self._model.transcribe_raw(audio, **kwargs))

    def _checked(self, chunks: Iterator[str]) -> Iterator[str]:
        try:
            for chunk in chunks:
                if self._cancelled():
                    raise Aborted()
                yield chunk
        finally:
            chunks.close()  # type: ignore[attr-defined]  # leaving early aborts the engine's turn


def _audio(path: str):  # type: ignore[no-untyped-def]
    """The parent's samples as an `Audio` without the one-call limit: audio longer than one engine call
    goes through the library's VAD chunking (`TranscriptionStream`), as `qasr transcribe` does."""
    from qasr.audio import SAMPLE_RATE, from_array

    return from_array(np.fromfile(path, dtype="<f4"), SAMPLE_RATE, source="the upload", max_seconds=None)


def _job(model, aligner, options: dict[str, Any], audio, cancelled: Callable[[], bool]):  # type: ignore[no-untyped-def]
    """What to iterate for one transcription: text pieces, then ``.result``."""
    from qasr.engine.model import Model
    from qasr.errors import UsageError
    from qasr.pipeline.transcribe import TranscriptionStream

    language = options.get("language")
    if isinstance(model, Model):
        if language and model.language and language.lower() != model.language.lower():
            raise UsageError(f"this server answers in {model.language} only (started with -l); cannot take {language!r}")
        used = _ForRequest(model, cancelled, language if not model.language else None)
        return TranscriptionStream(used, audio, load_seconds=0.0, context=options.get("context"), itn=bool(options.get("itn")),
                                   opencc=options.get("opencc"), aligner=aligner if options.get("words") else None,
                                   max_tokens=options.get("max_tokens"))  # fmt: skip
    if options.get("words"):
        raise UsageError(f"word timestamps need qwen3-chatllm with an aligner; this server runs {model.name}")
    from qasr.spec import CallOptions

    # Another provider: the request's language, context, ITN and OpenCC as its per-call options.
    calls = CallOptions(language=language, context=options.get("context"), itn=bool(options.get("itn")), opencc=options.get("opencc"))
    return model.stream(audio, calls)


def _transcribe(model, aligner, request: dict[str, Any], out: TextIO, control: Control) -> None:  # type: ignore[no-untyped-def]
    """One transcription: text deltas while generating (when asked), then the result record.

    ``model`` is our engine `Model`, or another provider (faster-whisper, crispasr), called with the
    request's `CallOptions` (its own ITN / OpenCC); it has no word times.
    """
    rid, options = request["id"], request.get("options") or {}
    job = _job(model, aligner, options, _audio(request["audio"]), lambda: control.cancelled(rid))
    pieces = iter(job)
    try:
        for piece in pieces:
            if control.cancelled(rid):
                raise Aborted()
            if request.get("stream"):
                _send(out, {"id": rid, "type": "delta", "text": piece})
    finally:
        pieces.close()  # type: ignore[attr-defined]  # stops the engine's turn if we left early
    if control.cancelled(rid):
        raise Aborted()
    assert job.result is not None
    _send(out, {"id": rid, "type": "result", "result": job.result.to_dict()})


def _stream(model, request: dict[str, Any], messages: Iterator[dict[str, Any]], out: TextIO, control: Control) -> None:  # type: ignore[no-untyped-def]
    from qasr.engine.model import Model
    from qasr.errors import UsageError
    from qasr.pipeline.stream import StreamOptions, stream

    rid, options = request["id"], request.get("options") or {}
    if not isinstance(model, Model):
        for message in messages:  # drain what the parent sends until the end of the stream
            if message.get("op") != "audio":
                break
        raise UsageError(f"live streaming needs qwen3-chatllm (it re-decodes with forced prefixes); this server runs {model.name}")

    def blocks() -> Iterator[np.ndarray]:
        for message in messages:
            if message.get("op") != "audio" or control.cancelled(rid):
                return  # "end", or an abort of this stream (audio still queued before it is dropped)
            pcm = np.frombuffer(base64.b64decode(message["data"]), dtype="<i2")
            yield pcm.astype(np.float32) / 32768.0

    opts = StreamOptions(itn=bool(options.get("itn")), opencc=options.get("opencc"), context=options.get("context"),
                         max_tokens=options.get("max_tokens"))
    events = stream(_ForRequest(model, lambda: control.cancelled(rid)), blocks(), opts)  # type: ignore[arg-type]
    try:
        for event in events:
            if control.cancelled(rid):
                raise Aborted()
            _send(out, {"id": rid, "type": "event", "event": event.to_dict()})
    finally:
        events.close()
    if control.cancelled(rid):
        raise Aborted()
    _send(out, {"id": rid, "type": "done"})


class _Engine:
    """What an abort stops: the loaded model's running turn (nothing before the model is loaded)."""

    model: Any = None

    def abort(self) -> None:
        if hasattr(self.model, "abort"):
            self.model.abort()


def serve(spec: EngineSpec, stdin: TextIO, out: TextIO) -> int:
    from qasr.errors import QasrError

    engine = _Engine()
    control = Control(stdin, engine.abort)  # from here on, end of stdin ends the process
    try:
        model, aligner = _load(spec)
    except QasrError as exc:
        _send(out, {"type": "fatal", "message": str(exc), "exit_code": exc.exit_code})
        return exc.exit_code
    engine.model = model
    _send(out, {"type": "ready", "pid": os.getpid(), "load_seconds": round(model.load_seconds, 4),
                "provider": getattr(model, "name", "qwen3-chatllm")})
    messages = control.messages()
    for request in messages:
        if request.get("op") not in ("transcribe", "stream"):
            continue  # audio or "end" that crossed the end of an aborted stream
        if spec.max_tokens:  # the server's cap, not a client's choice
            request.setdefault("options", {})["max_tokens"] = spec.max_tokens
        rid = request.get("id")
        control.begin(rid)
        try:
            if control.cancelled(rid):
                raise Aborted()
            if request.get("op") == "stream":
                _stream(model, request, messages, out, control)
            else:
                _transcribe(model, aligner, request, out, control)
        except Aborted:
            _send(out, {"id": rid, "type": "error", "status": 499, "aborted": True, "message": "aborted"})
        except QasrError as exc:
            status = 400 if exc.exit_code == 2 else 500
            _send(out, {"id": rid, "type": "error", "status": status, "message": str(exc)})
        except ValueError as exc:
            _send(out, {"id": rid, "type": "error", "status": 400, "message": str(exc)})
        finally:
            control.end()
    return 0


def main() -> None:
    watch_parent()
    code = serve(EngineSpec.from_json(sys.argv[1]), sys.stdin, sys.stdout)
    exit_now(code)


if __name__ == "__main__":
    main()
