"""A server worker: ``python -m qasr.serve.worker SPEC_JSON``. One provider, one request at a time.

SPEC_JSON is the server's `qasr.spec.EngineSpec` (what to load), the same value every child gets;
the worker loads it with `qasr.providers.make_provider` and calls the provider it gets, whichever it
is, with each request's `qasr.spec.CallOptions` and a `qasr.cancel.Cancel` (its abort).

It speaks `qasr.channel` both ways (JSON lines with a ``kind``; binary data as a payload; errors as
records, `qasr.errors.to_record`, which the parent rebuilds as the same class):

* on start: ``ready`` (``pid``, ``load_seconds``, ``provider``) once the model is loaded, or an
  ``error`` record and the process ends with the error's exit code;
* ``transcribe`` (``id``, ``audio``: PATH, ``options``, ``stream``): PATH is raw 16 kHz float32 that
  the parent wrote after decoding and validating the upload (the engine never sees a user's file).
  ``options``: ``context``, ``itn``, ``opencc``, ``words``, ``language`` (the model's own spelling of
  a language name; None detects). Answers: ``delta`` (``id``, ``text``) while generating (stream
  only), then ``result`` (``id``, ``result``) or an ``error`` record with the ``id``;
* ``stream`` (``id``, ``options``), then ``audio`` messages (``id``; the payload is s16le 16 kHz
  mono) and ``end``: live streaming (a provider with ``live_prefix``); answers ``event`` (``id``,
  ``event``) and ``done``;
* ``abort`` (``id``) at any time: that request stops as soon as it can (its cancel,
  `qasr.serve.control`) and its last answer is an ``error`` record of class ``Aborted``. An abort
  for a request already answered is ignored.

A worker never destroys its model (upstream aborts): it leaves memory by exiting, which the parent
asks for by closing stdin. It ends with `qasr.channel.exit_now` (upstream aborts at interpreter
exit), and never outlives the server (`qasr.serve.control.watch_parent`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from qasr.cancel import Cancel
from qasr.channel import Message, Sender, exit_now
from qasr.errors import QasrError, UsageError
from qasr.providers.base import Provider
from qasr.serve.control import Control, watch_parent
from qasr.spec import CallOptions, EngineSpec


def _audio(path: str):  # type: ignore[no-untyped-def]
    """The parent's samples as an `Audio` without the one-call limit: audio longer than one engine call
    goes through the provider's VAD chunking, as `qasr transcribe` does."""
    from qasr.audio import SAMPLE_RATE, from_array

    return from_array(np.fromfile(path, dtype="<f4"), SAMPLE_RATE, source="the upload", max_seconds=None)


def _calls(options: dict[str, Any]) -> CallOptions:
    """A request's options as the provider's per-call options (word times only when asked for)."""
    return CallOptions(language=options.get("language"), context=options.get("context"), itn=bool(options.get("itn")),
                       opencc=options.get("opencc"), words=bool(options.get("words")))  # fmt: skip


def _transcribe(provider: Provider, request: Message, out: Sender, cancel: Cancel) -> None:
    """One transcription: text deltas while generating (when asked), then the result record."""
    rid = request["id"]
    job = provider.stream(_audio(request["audio"]), _calls(request.get("options") or {}), cancel=cancel)
    pieces = iter(job)
    try:
        for piece in pieces:
            if request.get("stream"):
                out.send("delta", id=rid, text=piece)
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()  # stops the engine's turn if we left early
    cancel.check()
    assert job.result is not None
    out.send("result", id=rid, result=job.result.to_dict())


def _stream(provider: Provider, spec: EngineSpec, request: Message, messages: Iterator[Message], out: Sender, cancel: Cancel) -> None:
    """A live stream: the parent's audio messages in, the pipeline's events out (`qasr.pipeline.stream`)."""
    from qasr.pipeline.stream import StreamOptions, stream

    rid, options = request["id"], request.get("options") or {}
    if not provider.live_prefix:
        for message in messages:  # drain what the parent sends until the end of the stream
            if message.kind != "audio":
                break
        raise UsageError(f"live streaming needs qwen3-chatllm (it re-decodes with forced prefixes); this server runs {provider.name}")

    def blocks() -> Iterator[np.ndarray]:
        for message in messages:
            if message.kind != "audio" or cancel.is_set():
                return  # "end", or an abort of this stream (audio still queued before it is dropped)
            yield np.frombuffer(message.payload or b"", dtype="<i2").astype(np.float32) / 32768.0

    opts = StreamOptions(itn=bool(options.get("itn")), opencc=options.get("opencc"), context=options.get("context"),
                         max_tokens=spec.max_tokens)  # fmt: skip
    events = stream(provider, blocks(), opts, cancel=cancel)  # type: ignore[arg-type]  # live_prefix: a LiveDecoder
    try:
        for event in events:
            cancel.check()
            out.send("event", id=rid, event=event.to_dict())
    finally:
        events.close()
    cancel.check()
    out.send("done", id=rid)


def serve(spec: EngineSpec, control: Control, out: Sender) -> int:
    """Load the provider, say ``ready``, answer requests until stdin closes (`Control` then ends us)."""
    from qasr.providers import make_provider

    try:
        provider = make_provider(spec)
    except QasrError as exc:
        out.error(exc)
        return exc.exit_code
    out.send("ready", pid=os.getpid(), load_seconds=round(provider.load_seconds, 4), provider=provider.name)
    messages = control.messages()
    for request in messages:
        if request.kind not in ("transcribe", "stream"):
            continue  # audio or "end" that crossed the end of an aborted stream
        rid = request.get("id")
        cancel = control.begin(rid)
        try:
            cancel.check()
            if request.kind == "stream":
                _stream(provider, spec, request, messages, out, cancel)
            else:
                _transcribe(provider, request, out, cancel)
        except QasrError as exc:  # Aborted included: the parent answers 499, or nothing (its client left)
            out.error(exc, id=rid)
        except ValueError as exc:  # a bad value the request carried: the client's to fix
            out.error(UsageError(str(exc)), id=rid)
        finally:
            control.end()
    return 0


def main() -> None:
    watch_parent()
    out = Sender.for_stdout()  # fd 1 now points at stderr: native prints land in the worker's log
    code = serve(EngineSpec.from_json(sys.argv[1]), Control(sys.stdin.buffer), out)
    exit_now(code)


if __name__ == "__main__":
    main()
