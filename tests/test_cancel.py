"""The providers' cancel hook (`qasr.cancel`): a cancelled call stops early and raises `Aborted`.

qwen3-chatllm (``cancels_mid_call``) is checked on the test double: the engine's abort is called the
moment the cancel is set, and no chunk after it is passed on. faster-whisper cannot be interrupted:
with a stand-in model that decodes lazily, a cancel is heard between segments and no further segment
is decoded.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import use_double
from qasr.cancel import Cancel, guarded
from qasr.errors import Aborted
from qasr.providers import make_provider
from qasr.spec import CallOptions, EngineSpec

FULL_TEXT = "hello world from the test double"


def test_guarded_checks_between_items_and_interrupts_while_they_run() -> None:
    made: list[int] = []
    interrupts: list[str] = []

    def items():  # type: ignore[no-untyped-def]
        for i in range(5):
            made.append(i)
            yield i

    cancel = Cancel()
    got = []
    with pytest.raises(Aborted):
        for item in guarded(items(), cancel, lambda: interrupts.append("abort")):
            got.append(item)
            if item == 1:
                cancel.set()
    assert got == [0, 1] and made == [0, 1]  # the next item was never made
    assert interrupts == ["abort"]
    cancel.set()  # set twice, after the call: nothing more is interrupted
    assert interrupts == ["abort"]
    assert list(guarded(iter([1, 2]), None)) == [1, 2]  # no cancel: the items as they are
    with pytest.raises(Aborted):
        next(guarded(iter([1]), cancel))  # set before the call: it does not start


def test_a_qwen_stream_cancelled_mid_way_aborts_the_engine_and_stops(double_lib: Path, asr_model_file: Path, wav_file: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    use_double(double_lib, monkeypatch)
    monkeypatch.setenv("QASR_DOUBLE_TOKEN_DELAY_MS", "300")
    qwen = make_provider(EngineSpec(model=str(asr_model_file)))
    assert qwen.cancels_mid_call is True
    aborts: list[float] = []
    engine_abort = qwen.model.abort  # type: ignore[attr-defined]
    qwen.model.abort = lambda: (aborts.append(time.monotonic()), engine_abort())  # type: ignore[attr-defined]
    cancel = Cancel()
    stream = qwen.stream(wav_file, CallOptions(), cancel=cancel)
    pieces = iter(stream)
    first = next(pieces)
    timer = threading.Timer(0.05, cancel.set)  # set from another thread while the engine computes a chunk
    timer.start()
    t0 = time.monotonic()
    with pytest.raises(Aborted):
        for _ in pieces:
            pass
    timer.join()
    assert len(aborts) == 1 and aborts[0] - t0 < 0.3  # the engine was told at once, not at the next chunk
    assert time.monotonic() - t0 < 0.3 + 0.5  # and the call stopped within the chunk it was computing
    assert stream.result is None and first  # no result: a cancelled call is not a short transcript
    monkeypatch.delenv("QASR_DOUBLE_TOKEN_DELAY_MS")
    assert qwen.transcribe(wav_file, cancel=Cancel()).text == FULL_TEXT  # the next call is whole


class _LazyWhisper:
    """A stand-in WhisperModel whose segments are decoded as they are consumed, as faster-whisper's are."""

    supported_languages = ["en"]
    decoded: list[int] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def transcribe(self, samples: Any, **kwargs: Any) -> tuple[Any, Any]:
        def segments():  # type: ignore[no-untyped-def]
            for i in range(4):
                self.decoded.append(i)
                yield SimpleNamespace(text=f" word{i}", start=float(i) / 4, end=float(i + 1) / 4, tokens=[i])

        return segments(), SimpleNamespace(language="en")


def test_a_provider_that_cannot_stop_mid_call_is_checked_between_segments(wav_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from qasr.providers import whisper

    monkeypatch.setattr(whisper, "_whisper_model_class", lambda: _LazyWhisper)
    monkeypatch.setattr(_LazyWhisper, "decoded", [])
    provider = make_provider(EngineSpec(provider="faster-whisper", whisper_model="tiny"))
    assert provider.cancels_mid_call is False
    assert provider.transcribe(wav_file, cancel=Cancel()).text == "word0 word1 word2 word3"  # not set: the whole call
    _LazyWhisper.decoded.clear()
    cancel = Cancel()
    got = []
    with pytest.raises(Aborted):
        for piece in provider.stream(wav_file, cancel=cancel):
            got.append(piece)
            cancel.set()
    assert got == [" word0"] and _LazyWhisper.decoded == [0]  # heard before the next segment was decoded
    with pytest.raises(Aborted):
        provider.transcribe(wav_file, cancel=cancel)  # already set: nothing is decoded
    assert _LazyWhisper.decoded == [0]


def test_word_times_are_asked_per_call(wav_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from qasr.errors import UsageError
    from qasr.providers import whisper

    monkeypatch.setattr(whisper, "_whisper_model_class", lambda: _LazyWhisper)
    provider = make_provider(EngineSpec(provider="faster-whisper", whisper_model="tiny"))
    with pytest.raises(UsageError, match="word timestamps need a provider with an aligner"):
        provider.stream(wav_file, CallOptions(words=True))
    assert provider.transcribe(wav_file, CallOptions(words=False)).text  # False: no alignment asked
