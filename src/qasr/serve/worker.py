"""A server worker: ``python -m qasr.serve.worker SPEC_JSON``. One model, one request at a time.

The parent writes one JSON object per line on stdin and reads JSON lines from stdout:

* on start: ``{"type": "ready", "pid", "load_seconds"}`` once the model is loaded, or
  ``{"type": "fatal", "message", "exit_code"}`` and the process ends;
* ``{"id", "op": "transcribe", "audio": PATH, "options": {...}, "stream": bool}``: PATH is raw
  16 kHz float32 that the parent wrote after decoding and validating the upload (the engine never
  sees a user's file). Answers: ``{"id", "type": "delta", "text"}`` while generating (stream only),
  then ``{"id", "type": "result", "result": {...}}`` or ``{"id", "type": "error", "status", "message"}``;
* ``{"id", "op": "stream"}``, then ``{"id", "op": "audio", "data": BASE64}`` lines (s16le 16 kHz
  mono) and ``{"id", "op": "end"}``: live streaming; answers ``{"id", "type": "event", "event"}``
  lines and ``{"id", "type": "done"}``.

A worker never destroys its model (upstream aborts): it leaves memory by exiting, which the parent
asks for by closing stdin. It ends with ``os._exit`` (upstream aborts at interpreter exit).
"""

from __future__ import annotations

import base64
import json
import os
import sys
from collections.abc import Iterator
from typing import Any, TextIO

import numpy as np


def _send(out: TextIO, record: dict[str, Any]) -> None:
    out.write(json.dumps(record, ensure_ascii=False) + "\n")
    out.flush()


def _load(spec: dict[str, Any]):  # type: ignore[no-untyped-def]
    """(engine Model or another provider, aligner file). ``provider``: as `qasr.providers.make_provider`."""
    from qasr.engine.model import Model

    if spec.get("provider") not in (None, "qwen3-chatllm"):
        from qasr.providers import ProviderOptions, make_provider

        chosen = make_provider(spec["provider"], ProviderOptions(
            model=spec.get("model"), whisper_model=spec.get("whisper_model"), language=spec.get("language"),
            threads=spec.get("threads"), max_length=spec.get("max_length"), engine=spec.get("engine"),
            max_tokens=spec.get("max_tokens")))  # fmt: skip
        if chosen.name != "qwen3-chatllm":
            return chosen, None  # another recogniser: requests go through its own interface
        model = chosen.model  # type: ignore[attr-defined]
        return model, spec.get("aligner")
    model = Model(spec["model"], language=spec.get("language"), threads=spec.get("threads"),
                  max_length=spec.get("max_length"), engine=spec.get("engine"))  # fmt: skip
    # The aligner runs in a process of its own per request (qasr.pipeline.align_child): upstream
    # silences the first of two models loaded in one process.
    return model, spec.get("aligner")


def _transcribe(model, aligner, request: dict[str, Any], out: TextIO) -> None:  # type: ignore[no-untyped-def]
    """One transcription: text deltas while generating (when asked), then the result record.

    ``model`` is our engine `Model`, or another provider (faster-whisper), whose text then gets the
    same ITN / OpenCC here; it has no word times and no context.
    """
    from qasr.engine.model import Model
    from qasr.errors import UsageError
    from qasr.pipeline.transcribe import TranscriptionStream
    from qasr.text.post import postprocess

    rid, options = request["id"], request.get("options") or {}
    itn, opencc = bool(options.get("itn")), options.get("opencc")
    samples = np.fromfile(request["audio"], dtype="<f4")
    ours = isinstance(model, Model)
    if ours:
        job = TranscriptionStream(model, samples, load_seconds=0.0, context=options.get("context"), itn=itn, opencc=opencc,
                                  aligner=aligner if options.get("words") else None, max_tokens=options.get("max_tokens"))  # fmt: skip
    elif options.get("words"):
        raise UsageError(f"word timestamps need qwen3-chatllm with an aligner; this server runs {model.name}")
    else:
        job = model.stream(samples)
    for piece in job:
        if request.get("stream"):
            _send(out, {"id": rid, "type": "delta", "text": piece})
    assert job.result is not None
    record = job.result.to_dict()
    if not ours:
        lang = record.get("language")
        record["text"] = postprocess(record["text"], itn=itn, opencc=opencc, language=lang)
        for segment in record.get("segments") or []:
            segment["text"] = postprocess(segment["text"], itn=itn, opencc=opencc, language=lang)
    _send(out, {"id": rid, "type": "result", "result": record})


def _stream(model, request: dict[str, Any], lines: Iterator[str], out: TextIO) -> None:  # type: ignore[no-untyped-def]
    from qasr.pipeline.stream import StreamOptions, stream

    rid, options = request["id"], request.get("options") or {}
    from qasr.engine.model import Model
    from qasr.errors import UsageError

    if not isinstance(model, Model):
        for line in lines:  # drain what the parent sends until the end of the stream
            if json.loads(line).get("op") != "audio":
                break
        raise UsageError(f"live streaming needs qwen3-chatllm (it re-decodes with forced prefixes); this server runs {model.name}")

    def blocks() -> Iterator[np.ndarray]:
        for line in lines:
            message = json.loads(line)
            if message.get("op") != "audio":
                return
            pcm = np.frombuffer(base64.b64decode(message["data"]), dtype="<i2")
            yield pcm.astype(np.float32) / 32768.0

    opts = StreamOptions(itn=bool(options.get("itn")), opencc=options.get("opencc"), context=options.get("context"),
                         max_tokens=options.get("max_tokens"))
    for event in stream(model, blocks(), opts):
        _send(out, {"id": rid, "type": "event", "event": event.to_dict()})
    _send(out, {"id": rid, "type": "done"})


def serve(spec: dict[str, Any], stdin: TextIO, out: TextIO) -> int:
    from qasr.errors import QasrError

    try:
        model, aligner = _load(spec)
    except QasrError as exc:
        _send(out, {"type": "fatal", "message": str(exc), "exit_code": exc.exit_code})
        return exc.exit_code
    _send(out, {"type": "ready", "pid": os.getpid(), "load_seconds": round(model.load_seconds, 4),
                "provider": getattr(model, "name", "qwen3-chatllm")})
    lines = iter(stdin.readline, "")
    for line in lines:
        request = json.loads(line)
        if spec.get("max_tokens"):  # the server's cap, not a client's choice
            request.setdefault("options", {})["max_tokens"] = spec["max_tokens"]
        try:
            if request.get("op") == "stream":
                _stream(model, request, lines, out)
            else:
                _transcribe(model, aligner, request, out)
        except QasrError as exc:
            status = 400 if exc.exit_code == 2 else 500
            _send(out, {"id": request.get("id"), "type": "error", "status": status, "message": str(exc)})
        except ValueError as exc:
            _send(out, {"id": request.get("id"), "type": "error", "status": 400, "message": str(exc)})
    return 0


def main() -> None:
    code = serve(json.loads(sys.argv[1]), sys.stdin, sys.stdout)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
