"""Transcription: a loaded model and audio in; text as it is generated, then a `TranscriptionResult`.

The one public entry is `transcribe(model, audio, ...)`; `TranscriptionStream(model, audio, ...)` is
the lazy form underneath it (faster-whisper's style: nothing runs until you iterate), which yields
the transcript text as the engine generates it and fills ``result`` when the iteration ends;
`TranscriptionStream.events` also yields each `Segment` as soon as its engine call ends.

Audio up to ``max_chunk`` seconds (default `qasr.audio.vad.DEFAULT_MAX_CHUNK`, 30 s) is one engine
call and one segment. Longer audio is cut at pauses by the VAD (`qasr.audio.chunking`; Silero runs
in a child process: pysilero's ggml and libchatllm's cannot share one) as the transcription goes:
the VAD runs one chunk ahead of the engine, so the first segment comes after one chunk's time
whatever the file's length (the first chunk is at most `qasr.audio.chunking.FIRST_CHUNK`, 10 s,
so that time is short), and no call holds more than ``max_chunk`` seconds (an engine call's
memory grows ~20 MiB per audio second). Each chunk is one engine call and one segment, whose ``cut``
says where it ended (a pause, or the quietest frame of speech with no pause within the bound), and
the texts are joined. ``max_chunk=0`` asks for one call per input, up to the engine's 8 minutes.
With an ``aligner`` model file, each segment also gets word times, from the ForcedAligner in a
child process (`qasr.pipeline.align_child`): upstream cannot hold two models in one process.

The context (hint text) goes into Qwen3-ASR's system turn for every call, cleaned of prompt markup
first; a segment whose text only repeats the context is dropped (`qasr.text.context`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Union

from qasr.audio import DEFAULT_MAX_CHUNK, MAX_SECONDS_PER_CALL, SAMPLE_RATE, Audio, as_audio, from_array
from qasr.engine.model import Model
from qasr.errors import UsageError
from qasr.pipeline.results import Figures, Segment, TranscriptionResult, Word
from qasr.spec import CallOptions
from qasr.text.context import clean_context, is_context_echo
from qasr.text.languages import canonical_name
from qasr.text.parse import ASR_TEXT_TAG, ParsedTranscript, StreamingTextView, parse_asr_output
from qasr.text.post import PostProcess
from qasr.text.script import is_cjk

if TYPE_CHECKING:  # the VAD's modules load only when audio is longer than one call (bench_transcribe (d))
    from qasr.audio.silero import Detector
    from qasr.cancel import Cancel


#: What `TranscriptionStream.events` yields: transcript text as generated, and each finished segment.
StreamEvent = Union[str, Segment]
#: Run the VAD for the next chunk while the engine decodes this one: True, False, or None to do it
#: when the engine's threads leave a core free (`qasr.audio.chunking.prefetch_pays`, which has the figures).
VAD_PREFETCH: bool | None = None


def chunk_bound(max_chunk: float | None) -> float:
    """The longest engine call in seconds for a ``max_chunk`` option: None is the default
    (`DEFAULT_MAX_CHUNK`), 0 one call per input; never more than one engine call takes."""
    if max_chunk is None:
        return DEFAULT_MAX_CHUNK
    if max_chunk < 0:
        raise UsageError(f"max_chunk must not be negative, got {max_chunk}")
    return min(max_chunk or MAX_SECONDS_PER_CALL, MAX_SECONDS_PER_CALL)


@dataclass
class _Call:
    """One engine call: its raw chunks and when they came."""

    start: float  # seconds into the audio
    end: float
    cut: str = "end"
    chunks: list[str] = field(default_factory=list)
    t0: float = 0.0
    first: float | None = None
    t_end: float = 0.0


def joint(last: str, first: str) -> str:
    """What goes between two segments' texts: nothing between CJK characters (or at a space), else a space."""
    if not last or not first or last.isspace() or first.isspace():
        return ""
    return "" if is_cjk(last) and is_cjk(first) else " "


def joined(parts: list[str]) -> str:
    """Segment texts joined by `joint`."""
    out = ""
    for part in (p.strip() for p in parts):
        if part:
            out += joint(out[-1:], part[0]) + part
    return out


def plan_calls(audio: Audio, max_chunk: float) -> list[tuple[float, float]]:
    """(start, end) in seconds of each engine call: the whole audio, or VAD chunks of at most
    ``max_chunk`` seconds (every provider that cuts long audio cuts it here)."""
    if audio.seconds <= max_chunk:
        return [(0.0, audio.seconds)]
    from qasr.audio.vad import VadOptions, find_chunks
    from qasr.errors import AudioError

    _, chunks = find_chunks(audio.samples, VadOptions(max_chunk=max(2.0, max_chunk)), isolated=True)
    if not chunks:
        raise AudioError(f"no speech found in {audio.source} (voice activity detection heard none in {audio.seconds:.1f} s)")
    return [(c.start, c.end) for c in chunks]


def call_audio(audio: Audio, start: float, end: float) -> Audio:
    """The samples of one engine call (the audio itself when the call covers all of it)."""
    if start == 0.0 and end == audio.seconds:
        return audio
    a, b = int(round(start * SAMPLE_RATE)), int(round(end * SAMPLE_RATE))
    return from_array(audio.samples[a:b], SAMPLE_RATE, source=f"{audio.source}@{start:.2f}s")


class TranscriptionStream:
    """Iterate for transcript text as it is generated; `result` is filled when iteration ends.

    ``raw_chunks`` keeps what the engine printed (language header included), one entry per token
    callback, which is what ``tokens`` counts. ``load_seconds`` defaults to the model's own load
    time (pass 0.0 for the second file of a batch). ``fresh=False`` continues the conversation
    (the lab measures that), which is incompatible with a context. ``drop_echo=False`` keeps a
    segment that repeats the context: right when the context is the previous segment's own
    transcript, where saying the same sentence twice is speech, not an echo. ``language`` forces
    the language of these calls (a name or a code) on a model loaded without one, through the
    engine's answer prefix; a model loaded with a language takes only that one. ``max_chunk``: see
    `chunk_bound`. ``detector`` replaces Silero for cutting long audio (a `qasr.audio.silero.Detector`:
    tests use one that hears tones); ``vad_prefetch`` overlaps the VAD with the engine (None:
    `VAD_PREFETCH`, by default when the engine leaves a core free). ``cancel`` stops the transcription
    (`qasr.cancel`): the running engine call is aborted at once and `qasr.errors.Aborted` raised; no
    further chunk is decoded and no alignment starts.
    """

    def __init__(
        self,
        model: Model,
        audio: object,
        *,
        load_seconds: float | None = None,
        fresh: bool = True,
        itn: bool = False,
        opencc: str | None = None,
        context: str | None = None,
        aligner: str | os.PathLike[str] | Model | None = None,
        max_chunk: float | None = None,
        drop_echo: bool = True,
        max_tokens: int | None = None,
        language: str | None = None,
        detector: Detector | None = None,
        vad_prefetch: bool | None = None,
        cancel: Cancel | None = None,
    ) -> None:
        self.post = PostProcess(itn, opencc)  # an unknown OpenCC target fails before any engine call
        self.model, self.fresh, self.itn, self.opencc, self.aligner = model, fresh, itn, opencc, aligner
        self.context = clean_context(context)
        self.drop_echo = drop_echo
        self.max_tokens = max_tokens  # a cap on each engine call's tokens (synthetic models never stop)
        self.max_chunk = chunk_bound(max_chunk)
        self.detector = detector
        self._prefetch = VAD_PREFETCH if vad_prefetch is None else vad_prefetch
        self.cancel = cancel
        self.vad_seconds = 0.0  # time spent waiting for the VAD, outside engine calls
        self.prefix = self._language_prefix(language)
        self.audio: Audio = as_audio(audio)
        self.raw_chunks: list[str] = []
        self.result: TranscriptionResult | None = None
        self._load_seconds = model.load_seconds if load_seconds is None else load_seconds
        self._calls: list[_Call] = []
        self._segments: list[Segment] = []
        self._parsed: list[ParsedTranscript] = []
        self._echoes = 0

    @property
    def vad_prefetch(self) -> bool:
        """Whether the VAD runs for the next chunk while the engine decodes this one."""
        if self._prefetch is not None:
            return self._prefetch
        from qasr.audio.chunking import prefetch_pays

        return prefetch_pays(getattr(self.model, "threads", None))

    def _language_prefix(self, language: str | None) -> str | None:
        """The answer prefix that forces ``language`` for these calls (None: nothing to force)."""
        if not language or language.strip().lower() == "auto":
            return None
        wanted = canonical_name(language)
        known = {name.lower() for name in self.model.file.languages}
        if wanted is None or (known and wanted.lower() not in known):
            choices = ", ".join(self.model.file.languages) or "its languages"
            raise UsageError(f"language {language!r} is not supported by {self.model.file.name}; choose one of: {choices}")
        if self.model.language:
            if self.model.language.lower() == wanted.lower():
                return None  # loaded with it: the engine forces it already
            raise UsageError(f"this model was loaded for {self.model.language}; it cannot transcribe a call in {wanted} "
                             "(load it without a language to choose one per call)")  # fmt: skip
        return f"language {wanted}{ASR_TEXT_TAG}"

    def _plan(self) -> Iterator[tuple[float, float, str]]:
        """Each engine call's stretch of audio (start, end, cut), as the VAD finds it: the whole
        audio, or chunks cut at pauses (`qasr.audio.chunking.CUTS`)."""
        if self.audio.seconds <= self.max_chunk:
            yield 0.0, self.audio.seconds, "end"
            return
        from qasr.audio.chunking import FIRST_CHUNK, PauseChunker
        from qasr.audio.silero import IsolatedDetector
        from qasr.audio.vad import VadOptions


        options = VadOptions(max_chunk=max(2.0, self.max_chunk))
        first = FIRST_CHUNK if self.max_chunk < MAX_SECONDS_PER_CALL else None  # max_chunk=0 asked for the longest calls
        chunker = PauseChunker(self.audio.samples, self.detector or IsolatedDetector(), options, prefetch=self.vad_prefetch,
                               first_chunk=first)  # fmt: skip
        try:
            for chunk in chunker:
                yield chunk.start, chunk.end, chunk.cut
        finally:
            self.vad_seconds = chunker.vad_seconds

    def _samples(self, start: float, end: float) -> Audio:
        return call_audio(self.audio, start, end)

    def __iter__(self) -> Iterator[str]:
        """The transcript text as the engine generates it (`events` without the segments)."""
        for event in self.events():
            if isinstance(event, str):
                yield event

    def events(self) -> Iterator[StreamEvent]:
        """Text pieces as generated and, after each engine call, its `Segment` (final text, ``cut``;
        word times arrive in ``result`` only, after every call). ``result`` is filled at the end."""
        last = ""  # the last character shown, to join segments as `joined` does
        for start, end, cut in self._plan():
            call = _Call(start, end, cut)
            self._calls.append(call)
            view = StreamingTextView()
            context = None if not self.fresh else (self.context or "")
            opening = True  # the first text of this segment, which may need a space after the last one
            call.t0 = time.perf_counter()
            for chunk in self.model.transcribe_raw(self._samples(start, end), fresh=self.fresh, context=context,
                                                   max_tokens=self.max_tokens, prefix=self.prefix, cancel=self.cancel):  # fmt: skip
                if call.first is None:
                    call.first = time.perf_counter()
                call.chunks.append(chunk)
                shown = view.feed(chunk)
                if shown:
                    yield (joint(last, shown[0]) if opening else "") + shown
                    last, opening = shown[-1], False
            tail = view.finish()
            if tail:
                yield (joint(last, tail[0]) if opening else "") + tail
                last = tail[-1]
            call.t_end = time.perf_counter()
            yield self._finish_segment(len(self._calls) - 1, call)
        if self.cancel is not None:
            self.cancel.check()  # before the alignment, a process of its own
        self.result = self._build()

    def _finish_segment(self, i: int, call: _Call) -> Segment:
        segment, parsed, echo = self._segment(i, call)
        self._segments.append(segment)
        self._parsed.append(parsed)
        self._echoes += echo
        return segment

    def _segment(self, i: int, call: _Call) -> tuple[Segment, ParsedTranscript, bool]:
        parsed = parse_asr_output("".join(call.chunks), self.model.language)
        echo = self.drop_echo and bool(parsed.text) and is_context_echo(parsed.text, self.context)
        asr_text = "" if echo else parsed.text
        final = self.post.apply(asr_text, parsed.language)
        return Segment(i, round(call.start, 3), round(call.end, 3), final, asr_text, cut=call.cut), parsed, echo

    def _build(self) -> TranscriptionResult:
        segments, parsed_all, echoes = self._segments, self._parsed, self._echoes
        warnings: list[str] = []
        if not self._calls:
            warnings.append(f"no speech found (voice activity detection heard none in {self.audio.seconds:.1f} s)")
        if echoes:
            warnings.append(f"{echoes} segment(s) only repeated the context and were dropped")
        if self.aligner is not None and segments:
            warnings += self._align(segments, parsed_all)
        self.raw_chunks = [c for call in self._calls for c in call.chunks]
        languages = [p.language for p in parsed_all if p.language]
        first = self._calls[0] if self._calls else None
        inference = sum(c.t_end - c.t0 for c in self._calls)
        tokens = len(self.raw_chunks)
        decode = sum(c.t_end - c.first for c in self._calls if c.first is not None)
        decode_tokens = sum(len(c.chunks) - 1 for c in self._calls if len(c.chunks) > 1)
        figures = Figures(
            audio_seconds=round(self.audio.seconds, 3),
            load_seconds=round(self._load_seconds, 4),
            inference_seconds=round(inference, 4),
            ttft_seconds=round(first.first - first.t0, 4) if first is not None and first.first is not None else None,
            tokens=tokens,
            tokens_per_second=round(decode_tokens / decode, 2) if decode_tokens and decode > 0 else None,
            rtf=round(inference / self.audio.seconds, 4),
            engine_calls=len(self._calls),
            vad_seconds=round(self.vad_seconds, 4),
        )
        return TranscriptionResult(
            source=self.audio.source,
            language=languages[0] if languages else None,
            text=joined([s.text for s in segments]),
            asr_text=joined([s.asr_text for s in segments]),
            raw_text="\n".join("".join(c.chunks) for c in self._calls),
            segments=segments,
            figures=figures,
            no_speech=all(p.no_speech for p in parsed_all) or not any(s.asr_text for s in segments),
            loops_repaired=sum(p.loops_repaired for p in parsed_all),
            model=self.model.file.name,
            context=self.context,
            context_echo=bool(echoes),
            warnings=warnings,
        )

    def _align(self, segments: list[Segment], parsed: list[ParsedTranscript]) -> list[str]:
        """Word times for each segment from the aligner (in its own process), carried onto the final
        text; segments it cannot place get no words and a warning."""
        from qasr.pipeline.align_child import align_segments
        from qasr.pipeline.textmap import apply

        aligner = self.aligner
        path = aligner.file.path if isinstance(aligner, Model) else Path(aligner)  # type: ignore[arg-type]
        forced = aligner.language if isinstance(aligner, Model) else self.model.language
        todo = [(s.start, s.end, s.asr_text, p.language) for s, p in zip(segments, parsed)]
        found = align_segments(self.audio.samples, todo, path, language=forced, engine=self.model.engine.path)
        problems: list[str] = []
        for segment, alignment in zip(segments, found):
            segment.words = []
            if not segment.asr_text:
                continue
            if isinstance(alignment, str):
                problems.append(f"segment {segment.id} ({segment.start:.1f}-{segment.end:.1f} s) not aligned: {alignment}")
                continue
            if segment.text != segment.asr_text:
                alignment = apply(alignment, lambda _t, s=segment: s.text)
            segment.words = [Word(u.text, round(segment.start + u.start, 3), round(segment.start + u.end, 3)) for u in alignment.units]
        return problems

    def run(self) -> TranscriptionResult:
        """Consume the stream and return the result."""
        for _ in self:
            pass
        assert self.result is not None
        return self.result


def transcribe(
    model: Model,
    audio: object,
    *,
    context: str | None = None,
    itn: bool = False,
    opencc: str | None = None,
    aligner: str | os.PathLike[str] | Model | None = None,
    max_chunk: float | None = None,
    language: str | None = None,
    options: CallOptions | None = None,
) -> TranscriptionResult:
    """Transcribe one input with a loaded model: the public, one-call way (see the module doc).

    ``audio`` is a path, a `qasr.audio.Audio` or 16 kHz mono samples, of any length (longer than
    ``max_chunk``, it is cut at pauses). ``context``: hint text (names, terms) for Qwen3-ASR's
    system turn. ``itn`` and ``opencc`` post-process the text (ITN first; OpenCC converts Chinese
    text). ``aligner``: a ForcedAligner model file for word times; it runs in a child process of its
    own (upstream cannot hold two models in one process: the first one loaded goes silent).
    ``max_chunk``: longest engine call in seconds (default 30, `DEFAULT_MAX_CHUNK`; 0: one call per
    input, up to the engine's 8 minutes; see `chunk_bound`).
    ``language``: force it for this call (see `TranscriptionStream`). ``options``: all of these as
    one `CallOptions` value (it replaces the separate arguments).

    The 0.1 argument order ``transcribe(audio, model)`` still works, with a DeprecationWarning.
    """
    if not isinstance(model, Model) and isinstance(audio, Model):
        import warnings

        warnings.warn("transcribe(audio, model) is now transcribe(model, audio) (the old order goes in 0.3)",
                      DeprecationWarning, stacklevel=2)  # fmt: skip
        model, audio = audio, model
    if options is not None:
        context, itn, opencc, max_chunk, language = options.context, options.itn, options.opencc, options.max_chunk, options.language
    return TranscriptionStream(
        model, audio, context=context, itn=itn, opencc=opencc, aligner=aligner, max_chunk=max_chunk, language=language
    ).run()
