"""A stand-in for the ``crispasr`` package, for tests only: no native code, scripted answers.

`qasr.providers.crispasr_child` imports ``crispasr`` in its own process; tests put this directory
first on the child's ``PYTHONPATH`` to get known text (for ITN, OpenCC, echo and loop checks) and
known failures (an open error, an engine error, a crash). The real package is tested against tiny
GGUF files written by the tests (tests/test_crispasr.py); this one only replaces it where the real
engine's random-weight output could not show what is checked.

Knobs (environment): ``QASR_FAKE_CRISP_TEXT`` the transcript (default "hello world");
``QASR_FAKE_CRISP_FAIL`` = ``open`` | ``transcribe`` | ``abort``; ``QASR_FAKE_CRISP_LOG`` a file
that gets one JSON line per call (what the engine was given, and the engine process's pid on open);
``QASR_FAKE_CRISP_LEAK`` bytes that each transcription keeps for good, written (resident), in the
engine's process: a leak the lab must find there, not in its own process.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

__version__ = "0.0-fake"
_KEPT: list[bytearray] = []  # what QASR_FAKE_CRISP_LEAK keeps


def _log(**record: object) -> None:
    path = os.environ.get("QASR_FAKE_CRISP_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")


def _fail(stage: str) -> None:
    how = os.environ.get("QASR_FAKE_CRISP_FAIL")
    if how == stage:
        raise RuntimeError(f"injected {stage} failure")
    if how == "abort" and stage == "transcribe":
        os.abort()


@dataclass
class SessionSegment:
    text: str
    start: float
    end: float


@dataclass
class AlignedWord:
    text: str
    start: float
    end: float


class Session:
    def __init__(self, model_path: str, lib_path: str | None = None, n_threads: int = 4, **_: object) -> None:
        _fail("open")
        self.backend, self.model_path, self.threads = "qwen3", model_path, n_threads
        self.max_new_tokens, self.hotwords, self._callback = 0, "", None
        _log(call="open", model=model_path, threads=n_threads, pid=os.getpid())

    def set_max_new_tokens(self, n: int) -> None:
        self.max_new_tokens = n

    def set_hotwords(self, hotwords: str, boost: float = 2.0) -> None:
        self.hotwords = hotwords

    def set_token_callback(self, callback) -> None:  # type: ignore[no-untyped-def]
        self._callback = callback

    def transcribe(self, pcm, sample_rate: int = 16000, *, language: str | None = None) -> list[SessionSegment]:  # type: ignore[no-untyped-def]
        _fail("transcribe")
        leak = int(os.environ.get("QASR_FAKE_CRISP_LEAK") or 0)
        if leak:
            _KEPT.append(bytearray(b"\x01") * leak)  # every page written: resident, and live in malloc's books
        text = os.environ.get("QASR_FAKE_CRISP_TEXT", "hello world")
        _log(call="transcribe", samples=len(pcm), rate=sample_rate, language=language, hotwords=self.hotwords,
             max_new_tokens=self.max_new_tokens, checksum=float(sum(float(x) for x in pcm[:1000])))
        for i, piece in enumerate(text.split(" ")):
            if self._callback is not None:
                self._callback(piece.encode(), i)
        return [SessionSegment(text, 0.0, len(pcm) / sample_rate)]

    def close(self) -> None:
        _log(call="close")


def align_words(aligner_model: str, transcript: str, pcm, *, n_threads: int = 4, **_: object) -> list[AlignedWord]:  # type: ignore[no-untyped-def]
    """Words spread evenly over the audio, as the real aligner's JSON would place them."""
    words = transcript.split()
    _log(call="align", aligner=os.path.basename(aligner_model), words=words)
    step = len(pcm) / 16000 / max(1, len(words))
    return [AlignedWord(w, round(i * step, 3), round((i + 1) * step, 3)) for i, w in enumerate(words)]
