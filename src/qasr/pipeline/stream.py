"""Live transcription: blocks of audio in, partial and final events out, at a cost that does not grow.

`stream(model, source)` reads 16 kHz mono blocks from any iterable (`qasr.audio.sources`), finds
utterances with the endpointer (`qasr.audio.endpoint`, Silero in a child process), and yields
`StreamEvent`s:

* while an utterance is open, a **partial** every ``step`` seconds of audio: the engine re-decodes
  the utterance so far. Its text is split into a **stable** part, which never changes once shown,
  and an **unstable** tail;
* when the utterance closes (silence, ``max_utterance`` or the end of the input), one **final**
  decode of the whole utterance, post-processed (ITN, OpenCC) and checked for a context echo.

Stable text follows Qwen3-ASR's own streaming recipe: from the ``unfixed_decodes``-th partial on,
the previous decode minus its last ``unfixed_tokens`` tokens is *forced* as the start of the next
answer (``chatllm_set_ai_prefix``: the engine prints it and continues after it), and the final
decode is forced to start with the stable text too. So stable text is never retracted, and each
decode only generates the tokens after it. With ``prefix=False`` the stable part is where the
last two decodes agree (local agreement) and only the final is forced. Every engine call sees at
most ``max_utterance`` seconds, so the cost per update is bounded however long the session runs.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np

from qasr.audio.decode import SAMPLE_RATE, from_array
from qasr.audio.endpoint import Boundary, Endpointer, EndpointOptions
from qasr.audio.silero import Detector
from qasr.audio.sources import Clock, WallClock
from qasr.cancel import Cancel
from qasr.text.context import clean_context, is_context_echo
from qasr.text.parse import ASR_TEXT_TAG, parse_asr_output, split_language
from qasr.text.post import PostProcess

#: Shortest audio worth a decode (the engine's own minimum is 0.1 s).
MIN_DECODE_SECONDS = 0.2


class LiveDecoder(Protocol):
    """What the stream decodes with: a `qasr.Model`, or a provider whose ``live_prefix`` is True."""

    language: str | None

    def transcribe_raw(self, audio: object, *, context: str | None = None, prefix: str | None = None,
                       max_tokens: int | None = None, cancel: Cancel | None = None) -> Iterator[str]: ...  # fmt: skip


@dataclass(frozen=True)
class StreamOptions:
    step: float = 1.0
    endpoint: EndpointOptions = field(default_factory=EndpointOptions)
    prefix: bool = True
    unfixed_tokens: int = 5
    unfixed_decodes: int = 2
    itn: bool = False
    opencc: str | None = None
    context: str | None = None
    #: A cap on each decode's tokens (None: until the model stops; synthetic models never do).
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        if not 0.2 <= self.step <= 30.0:
            raise ValueError(f"step must be between 0.2 and 30 s, got {self.step}")
        if self.unfixed_tokens < 0 or self.unfixed_decodes < 0:
            raise ValueError("unfixed_tokens and unfixed_decodes must not be negative")


@dataclass
class StreamEvent:
    """One partial or final transcript of an utterance.

    ``start``/``end``: the utterance so far, in seconds of the stream; ``audio_time``: how much of
    the stream had been heard when the event was made; ``lag``: wall-clock seconds between hearing
    that audio and the event (None for a source that is not live); ``decode_seconds``: the engine call.
    Partials carry the model's raw text; finals' ``text`` is post-processed, their ``stable`` raw.
    """

    type: str
    utterance: int
    start: float
    end: float
    stable: str
    unstable: str
    text: str
    language: str | None
    audio_time: float
    lag: float | None
    decode_seconds: float
    context_echo: bool = False

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class _Utterance:
    index: int
    start: int  # samples of the stream
    fixed: list[str] = field(default_factory=list)  # stable tokens
    previous: list[str] = field(default_factory=list)  # the last decode's tokens (local agreement)
    decodes: int = 0
    language: str | None = None
    shown: bool = False


def _tokens(chunks: list[str], prefix: str) -> tuple[str | None, list[str]]:
    """(language, text tokens) of one decode; a forced prefix counts as the tokens it stood for."""
    raw = "".join(chunks)
    language, _, _ = split_language(raw)
    out: list[str] = []
    started = False
    for i, chunk in enumerate(chunks):
        if i == 0 and prefix and chunk == prefix:
            started = True
            continue  # the caller's fixed tokens stand for it
        if not started:
            _, tag, tail = chunk.partition(ASR_TEXT_TAG)
            if tag:
                started = True
                if tail:
                    out.append(tail)
            continue
        out.append(chunk)
    return language, out


class _Session:
    """One stream's state: the audio kept, the endpointer, the open utterance, the clock."""

    def __init__(self, model: LiveDecoder, options: StreamOptions, detector: Detector, clock: Clock, live: bool,
                 cancel: Cancel | None = None) -> None:  # fmt: skip
        self.model, self.options, self.clock, self.live, self.cancel = model, options, clock, live, cancel
        self.endpointer = Endpointer(detector, options.endpoint)
        self.context = clean_context(options.context)
        self.max_tokens = options.max_tokens
        self.audio = np.zeros(0, np.float32)
        self.base = 0  # stream sample index of audio[0]
        self.heard = 0  # samples received
        self.t0: float | None = None
        self.open: _Utterance | None = None
        self.next_partial = 0
        self.count = 0

    # -- audio kept ---------------------------------------------------------------------------

    def add(self, block: np.ndarray) -> None:
        if self.t0 is None:  # wall time at audio time 0: the first block was whole when it arrived
            self.t0 = self.clock.now() - len(block) / SAMPLE_RATE
        self.audio = np.concatenate([self.audio, np.asarray(block, np.float32)])
        self.heard += len(block)
        keep_from = self.open.start if self.open else self.heard - int(SAMPLE_RATE * (self.options.endpoint.pad + 0.5))
        drop = max(0, keep_from - self.base)
        if drop:
            self.audio, self.base = self.audio[drop:], self.base + drop

    def samples(self, start: int, end: int) -> np.ndarray:
        return self.audio[max(0, start - self.base) : max(0, end - self.base)]

    # -- decoding -----------------------------------------------------------------------------

    def _prefix(self, u: _Utterance) -> str:
        if not u.fixed:
            return ""
        head = "" if self.model.language else f"language {u.language or ''}"
        return f"{head}{ASR_TEXT_TAG}{''.join(u.fixed)}"

    def _decode(self, u: _Utterance, end: int, force: bool) -> tuple[list[str], float, str]:
        audio = from_array(self.samples(u.start, end), SAMPLE_RATE, source=f"utterance {u.index}")
        prefix = self._prefix(u) if force else ""
        t0 = time.perf_counter()
        chunks = list(self.model.transcribe_raw(audio, context=self.context or "", prefix=prefix or None,
                                               max_tokens=self.max_tokens, cancel=self.cancel))
        took = time.perf_counter() - t0
        language, tokens = _tokens(chunks, prefix)
        if language and language.lower() != "none":
            u.language = u.language or language.strip()
        return (u.fixed + tokens if prefix else tokens), took, "".join(chunks)

    def lag(self) -> float | None:
        """Seconds the stream is behind real time (None when the source is not live)."""
        if not self.live or self.t0 is None:
            return None
        return (self.clock.now() - self.t0) - self.heard / SAMPLE_RATE

    def _event(self, kind: str, u: _Utterance, end: int, stable: str, unstable: str, text: str, took: float, echo: bool = False) -> StreamEvent:
        heard = self.heard / SAMPLE_RATE
        lag = self.lag()
        return StreamEvent(kind, u.index, round(u.start / SAMPLE_RATE, 3), round(end / SAMPLE_RATE, 3), stable, unstable, text,
                           u.language, round(heard, 3), None if lag is None else round(lag, 3), round(took, 4), echo)  # fmt: skip

    def partial(self, u: _Utterance, end: int) -> StreamEvent:
        o = self.options
        tokens, took, _ = self._decode(u, end, force=o.prefix)
        u.decodes += 1
        if u.decodes >= o.unfixed_decodes:
            if o.prefix:
                keep = len(tokens) - o.unfixed_tokens
            else:  # local agreement: as far as this decode and the previous one agree
                keep = next((i for i, (a, b) in enumerate(zip(tokens, u.previous)) if a != b), min(len(tokens), len(u.previous)))
            if keep > len(u.fixed) and tokens[: len(u.fixed)] == u.fixed:
                u.fixed = tokens[:keep]
        u.previous = tokens
        stable, rest = "".join(u.fixed), "".join(tokens[len(u.fixed) :])
        u.shown = True
        shown = (stable + rest).strip()
        return self._event("partial", u, end, stable.lstrip(), rest if stable.strip() else rest.lstrip(), shown, took)

    def final(self, u: _Utterance, end: int) -> StreamEvent | None:
        """The utterance's last word; None for a blip that showed nothing and held no speech."""
        if (end - u.start) / SAMPLE_RATE < MIN_DECODE_SECONDS:
            return self._event("final", u, end, "", "", "", 0.0) if u.shown else None
        _, took, raw = self._decode(u, end, force=bool(u.fixed))
        parsed = parse_asr_output(raw, self.model.language)  # a forced prefix is printed, so raw is whole
        text = parsed.text
        echo = bool(text) and is_context_echo(text, self.context)
        final = "" if echo else PostProcess(self.options.itn, self.options.opencc).apply(text, parsed.language or u.language)
        if not final and not u.shown:
            return None
        return self._event("final", u, end, "" if echo else text, "", final, took, echo)

    # -- the loop -----------------------------------------------------------------------------

    def on_boundary(self, b: Boundary) -> Iterator[StreamEvent]:
        if b.end is None:
            self.open = _Utterance(self.count, b.start)
            self.next_partial = b.start + int(self.options.step * SAMPLE_RATE)
            return
        u, self.open = self.open, None
        if u is None:
            return
        event = self.final(u, b.end)
        if event is not None:
            self.count += 1
            yield event

    def maybe_partial(self) -> Iterator[StreamEvent]:
        u = self.open
        judged = self.endpointer.samples_judged
        if u is None or judged < self.next_partial:
            return
        if self.endpointer.trailing_silence >= self.options.endpoint.min_silence / 2:
            return  # speech is likely ending: a partial now would hold up the final (tried again when speech resumes)
        self.next_partial = judged + int(self.options.step * SAMPLE_RATE)
        lag = self.lag()
        if lag is not None and lag > self.options.step:
            return  # behind real time: skip this partial and catch up (finals are never skipped)
        yield self.partial(u, judged)


def stream(
    model: LiveDecoder,
    source: Iterable[np.ndarray],
    options: StreamOptions | None = None,
    *,
    detector: Detector | None = None,
    clock: Clock | None = None,
    live: bool | None = None,
    cancel: Cancel | None = None,
) -> Iterator[StreamEvent]:
    """Events for the speech in ``source`` (see the module doc). Closing the iterator early, or the end
    of the input, closes the open utterance with a final event.

    ``detector``: the VAD (default: Silero in a child process, which this function starts and
    stops). ``clock``: the time base for lag (default: wall clock; tests pass one that jumps).
    ``live``: whether ``source`` delivers audio in real time (default: its ``realtime`` attribute,
    else True); lag is reported, and partials skipped when behind, only for live sources.
    ``cancel`` (`qasr.cancel.Cancel`) stops the stream: the running decode is aborted and
    `qasr.errors.Aborted` raised, with no final decode after it.
    """
    opts = options or StreamOptions()
    own = detector is None
    if detector is None:
        from qasr.audio.silero import IsolatedDetector

        detector = IsolatedDetector()
    is_live = live if live is not None else bool(getattr(source, "realtime", True))
    session = _Session(model, opts, detector, clock or getattr(source, "clock", None) or WallClock(), is_live, cancel)
    try:
        stopped: BaseException | None = None
        try:
            for block in source:
                session.add(block)
                for boundary in session.endpointer.feed(block):
                    yield from session.on_boundary(boundary)
                yield from session.maybe_partial()
        except GeneratorExit:
            raise  # the consumer stopped listening: nothing more can be given to it
        except (Exception, KeyboardInterrupt) as exc:  # the source failed or Ctrl-C: finals first
            stopped = exc
        for boundary in session.endpointer.flush():
            yield from session.on_boundary(boundary)
        if stopped is not None:
            raise stopped
    finally:
        if own:
            detector.close()
