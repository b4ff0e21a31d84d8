"""``crispasr``: Qwen3-ASR through CrispASR (``pip install 'qasr[crispasr]'``), a second engine for the same model.

CrispASR (ggml, GGUF files, `CrispStrobe/CrispASR`) runs Qwen3-ASR and its ForcedAligner through its
``qwen3`` backend; its wheel bundles ``libcrispasr`` and its own ggml. That ggml has the sonames of
libchatllm's and pysilero's, and CrispASR aborts the process on some inputs, so the library lives
in a child process of its own (`qasr.providers.crispasr_child`, started through
`qasr.processes.Child`); this module is the parent side and never imports ``crispasr``.

Everything around the engine is qwen3-chatllm's: audio is decoded and validated by `qasr.audio`
(the same refusals, the same samples), long audio is cut at pauses by the same VAD plan
(`qasr.pipeline.transcribe.plan_calls`), loops are repaired and counted by `qasr.text.parse`, a
segment that only repeats the context is dropped, ITN then OpenCC run as `qasr.text.post` says,
and word times go through the same unit split, checks and repair as the chatllm aligner
(`qasr.pipeline.align`). What CrispASR 0.8.45 does differently, measured with it (docs/engines.md):

* **No token streaming.** Its token callback fires for all tokens after decoding ends, so
  ``streams`` is False and ``ttft_seconds`` / ``tokens_per_second`` are None; ``tokens`` counts the
  transcript tokens it reports (the ``language X<asr_text>`` header is filtered out by CrispASR).
* **Language.** A forced language becomes its ``language X<asr_text>`` prefill, as in chatllm.cpp;
  with auto-detection CrispASR drops the detected language, so ``language`` is None.
* **Context.** CrispASR puts nothing in Qwen3-ASR's system turn; its contextual biasing is
  ``hotwords``, which it words as "The following words may appear in the audio: ..." after the
  audio in the user turn. qasr gives it the cleaned context that way (and says so in ``describe``).
* **Token cap.** ``max_tokens`` is its ``max_new_tokens`` (default 512 when unset).
* **Word times** need the Qwen3-ForcedAligner as a GGUF; CrispASR picks that aligner by file name,
  so the engine is handed a link named ``qwen3-forced-aligner.gguf`` in a private directory.

It is loaded from an `EngineSpec` (``model``, ``aligner``, ``threads``, ``max_tokens``, ``language``
as the default) and each call takes its `CallOptions` (``language``, ``context``, ``itn``,
``opencc``, ``max_chunk``): language and context travel with each request to the engine process, so
no call needs a reload. ``engine`` and ``max_length`` are chatllm.cpp's and are not used.
"""

from __future__ import annotations

import collections
import importlib.util
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qasr.audio import Audio
from qasr.cancel import Cancel, guarded
from qasr.engine.gguf import GgufInfo, inspect_gguf, require_qwen3
from qasr.engine.modelfile import SYNTHETIC_NOTE, ModelKind
from qasr.errors import EngineError, EngineNotFound, ModelFileError, QasrError, UsageError, warn_on_stderr
from qasr.pipeline.results import Figures, Segment, TranscriptionResult, Word
from qasr.providers.base import LoadTimeOnce, wants_words
from qasr.spec import CallOptions, EngineSpec
from qasr.text.languages import NAME_TO_CODE, canonical_name
from qasr.text.languages import language_code as iso_code

NAME = "crispasr"
#: CrispASR's aligner embeds this token id (``<timestamp>``) whatever the file says: a smaller vocabulary aborts it.
TIMESTAMP_TOKEN_ID = 151_705
#: The name CrispASR's ``align_words`` needs to see to pick the Qwen3-ForcedAligner.
ALIGNER_LINK = "qwen3-forced-aligner.gguf"
INSTALL_HINT = "pip install 'qasr[crispasr]'"


def language_code(language: str | None) -> str | None:
    """A language name (``English``) or code (``en``) as the ISO code CrispASR takes; None detects;
    a language Qwen3-ASR does not know is a usage error (CrispASR would silently prefill it)."""
    if not language or language.strip().lower() == "auto":
        return None
    code = iso_code(language)
    if code is None:
        names = ", ".join(sorted(n.capitalize() for n in NAME_TO_CODE))
        raise UsageError(f"language {language!r} is not one of Qwen3-ASR's; choose one of: {names} (or a code such as en)")
    return code


@dataclass(frozen=True)
class Call:
    """One transcription's options in this provider's terms (from its `CallOptions` and the spec)."""

    language: str | None  # ISO code; None detects
    context: str | None  # cleaned; given to CrispASR as hotwords
    post: Any  # qasr.text.post.PostProcess
    max_chunk: float

    @classmethod
    def of(cls, options: CallOptions, spec: EngineSpec) -> Call:
        from qasr.pipeline.transcribe import chunk_bound
        from qasr.text.context import clean_context
        from qasr.text.post import PostProcess

        # The same chunk bound as qwen3-chatllm's: 30 s by default, 0 for one call per input.
        return cls(language_code(options.language or spec.language), clean_context(options.context),
                   PostProcess(options.itn, options.opencc), chunk_bound(options.max_chunk))


def check_aligner(path: Path) -> GgufInfo:
    """A Qwen3-ForcedAligner GGUF whose vocabulary holds the timestamp token CrispASR embeds."""
    info = require_qwen3(inspect_gguf(path), ModelKind.ALIGNER)
    embed = info.tensors.get("token_embd.weight")
    if embed is None or len(embed.ne) != 2 or embed.ne[1] <= TIMESTAMP_TOKEN_ID:
        rows = embed.ne[1] if embed is not None and len(embed.ne) == 2 else 0
        raise ModelFileError(f"{path} has {rows} token rows; CrispASR's aligner needs the timestamp token "
                             f"{TIMESTAMP_TOKEN_ID} (it would abort): use a full-vocabulary aligner GGUF")
    return info


def merge_words(found: list[tuple[str, float, float]], units: list[str]) -> list[tuple[str, float, float]]:
    """CrispASR's aligned words folded onto our units, one to one.

    Its word split is finer than ours (it also cuts after punctuation inside a word: ``P!g+7`` comes
    back as ``P!``, ``g+``, ``7``), so consecutive pieces are joined while their letters and digits
    (`qasr.pipeline.align.comparable`) spell the unit; a unit then spans from its first piece's start
    to its last piece's end. Pieces that spell something else are an `EngineError`.
    """
    from qasr.pipeline.align import comparable

    out, k = [], 0
    for unit in units:
        want, got = comparable(unit), ""
        start = end = out[-1][2] if out else 0.0
        first = True
        while len(got) < len(want) and k < len(found):
            word, a, b = found[k]
            k += 1
            piece = comparable(word)
            if not piece:
                continue
            got += piece
            start, end, first = (a if first else start), b, False
        if got != want:
            raise EngineError(f"the aligner's words do not spell the transcript's {unit!r} (got {got!r})")
        out.append((unit, start, end))
    if any(comparable(w) for w, _, _ in found[k:]):
        raise EngineError(f"the aligner returned {len(found) - k} more words than the transcript has")
    return out


class _Engine:
    """The child process and its channel (`qasr.channel`): one request, one answer; an error record
    is raised as the error it carries, a dead process as an `EngineError` quoting its log."""

    def __init__(self, workdir: Path) -> None:
        from qasr.channel import Receiver, Sender
        from qasr.processes import Child

        if importlib.util.find_spec("crispasr") is None:
            raise EngineNotFound(f"{NAME}: the crispasr package is not installed: {INSTALL_HINT}")
        self.workdir = workdir
        # GGML_NO_BACKTRACE: on an abort ggml would attach gdb and print a backtrace: seconds, and a log
        # whose last line says nothing; without it the assert's own line is what the error quotes.
        env = {**os.environ, "GGML_NO_BACKTRACE": "1"}
        self.child = Child("qasr.providers.crispasr_child", [], log=workdir / "crispasr.log", env=env, stdout="pipe",
                           stdin=True, text=False)  # fmt: skip
        assert self.child.stdin is not None and self.child.stdout is not None
        self.sender, self.receiver = Sender(self.child.stdin), Receiver(self.child.stdout)
        self.version = str(self._read().get("version", "?"))

    def _fail(self, what: str) -> EngineError:
        self.child.stop(grace=1.0, wait_first=1.0)
        tail = [line for line in self.child.stderr_tail(40) if line.strip()]
        telling = [line for line in tail if re.search(r"GGML_ASSERT|error|failed|abort", line, re.I)]
        last = (telling or tail or ["no message"])[-1].strip()
        return EngineError(f"{NAME}: the engine process {what} ({self.child.exit_reason()}): {last}", "\n".join(tail))

    def _read(self) -> dict[str, Any]:
        message = self.receiver.receive()
        if message is None:
            raise self._fail("stopped")
        if message.kind == "error":
            raise message.error()
        return dict(message)

    def ask(self, kind: str, samples: np.ndarray | None = None, **fields: Any) -> dict[str, Any]:
        """A request (16 kHz samples travel as its payload: the engine never sees a user's path)."""
        payload = None if samples is None else np.ascontiguousarray(samples, dtype="<f4").tobytes()
        self.sender.send(kind, payload, **fields)
        if self.sender.stream is None:  # the pipe broke: the child is gone
            raise self._fail("stopped")
        self.child.poll()  # follows the child's peak RSS
        return self._read()

    def close(self) -> None:
        self.child.close()


class CrispAsrProvider:
    """Qwen3-ASR on CrispASR, loaded from ``spec`` (``model`` and ``aligner`` GGUF files, ``threads``,
    ``max_tokens``, ``language`` as the default); calls take language, context, ITN, OpenCC and
    max_chunk from their `CallOptions` (see the module doc)."""

    name = NAME
    streams = False
    live_prefix = False
    cancels_mid_call = False  # an engine call in the child runs to its end: a cancel is heard between segments

    def __init__(self, spec: EngineSpec, defaults: CallOptions | None = None) -> None:
        from qasr.engine.registry import resolve_model

        if not spec.model:
            raise ModelFileError(f"{NAME} needs a Qwen3-ASR GGUF model: --model FILE or a registry name (qasr models list)")
        self.spec, self.defaults = spec, defaults or CallOptions()
        Call.of(self.defaults, spec)  # a bad default language fails before anything loads
        self.model = require_qwen3(inspect_gguf(resolve_model(spec.model)), ModelKind.ASR)
        self.aligner = check_aligner(resolve_model(spec.aligner)) if spec.aligner else None
        self.word_times = self.aligner is not None
        self.threads = spec.threads or os.cpu_count() or 1
        if self.model.synthetic:
            cap = f"each call stops after {spec.max_tokens} tokens" if spec.max_tokens else "CrispASR stops each call at 512 new tokens"
            warn_on_stderr(f"{self.model.path.name} is a {SYNTHETIC_NOTE}; {cap}")
        self._dir = tempfile.TemporaryDirectory(prefix="qasr-crispasr-")
        workdir = Path(self._dir.name)
        t0 = time.perf_counter()
        try:
            self.engine: _Engine | None = _Engine(workdir)
            opened = self.engine.ask("open", model=str(self.model.path), threads=self.threads, max_tokens=spec.max_tokens)
        except BaseException:
            self.close()
            raise
        if self.aligner is not None:
            os.symlink(os.path.abspath(self.aligner.path), workdir / ALIGNER_LINK)
        self.startup_seconds = time.perf_counter() - t0
        self.opened = opened  # load time, and the engine process's RSS and peak right after the load
        self.backend = str(opened.get("backend", ""))
        self._load = LoadTimeOnce(float(opened["load_seconds"]))

    @property
    def load_seconds(self) -> float:
        return self._load.load_seconds

    def _loaded(self) -> _Engine:
        if self.engine is None:
            raise QasrError(f"the {NAME} provider was closed")
        return self.engine

    def stream(self, audio: object, options: CallOptions | None = None, *, cancel: Cancel | None = None) -> CrispStream:
        """Segment texts as each engine call ends; ``.result`` when the iteration ends."""
        o = options or self.defaults
        return CrispStream(self, audio, self._load.take(), Call.of(o, self.spec), wants_words(self, o), cancel)

    def transcribe(self, audio: object, options: CallOptions | None = None, *, cancel: Cancel | None = None) -> TranscriptionResult:
        return self.stream(audio, options, cancel=cancel).run()

    def call(self, samples: np.ndarray, call: Call | None = None, max_tokens: int | None = None) -> dict[str, Any]:
        """One engine call on 16 kHz samples: CrispASR's text, token count and time (in the child);
        ``max_tokens`` caps this call only (the benchmark's one-token run)."""
        c = call or Call.of(self.defaults, self.spec)
        return self._loaded().ask("transcribe", samples, language=c.language, hotwords=c.context, max_tokens=max_tokens)

    def align(self, samples: np.ndarray, text: str) -> list[tuple[str, float, float]]:
        """(word, start, end) for ``text`` (words separated by spaces) over ``samples``, from the aligner."""
        engine = self._loaded()
        found = engine.ask("align", samples, aligner=str(engine.workdir / ALIGNER_LINK), text=text)
        return [(str(w), float(a), float(b)) for w, a, b in found["words"]]

    @property
    def engine_pid(self) -> int | None:
        """The process CrispASR's memory lives in (what a memory sampler should read), None once closed."""
        return self.engine.child.pid if self.engine is not None else None

    def engine_memory(self, *, collect: bool = True, trim: bool = False) -> dict[str, Any]:
        """The engine process's glibc heap (``heap_live``, ``heap_free``, ``heap_mmap``; ``released``
        after ``malloc_trim(0)`` when ``trim``), as only that process can read it: what the leak lab
        samples beside ``/proc/engine_pid`` (`qasr.lab.engineproc`)."""
        return self._loaded().ask("stats", heap=True, collect=collect, trim=trim)

    def peak_rss_bytes(self) -> int:
        """The engine process's peak resident set (where the model lives), 0 once closed."""
        if self.engine is None:
            return 0
        try:
            return max(int(self.engine.ask("stats")["peak_rss_bytes"]), self.engine.child.peak)
        except QasrError:  # the engine process is gone: what was seen of it while it ran
            return self.engine.child.peak

    def describe(self) -> dict[str, Any]:
        engine = self._loaded()
        return {
            "provider": self.name, "engine": f"crispasr {engine.version} ({self.backend} backend, child process)",
            "model": str(self.model.path), "format": "gguf", "dtype": self.model.dtype, "synthetic": self.model.synthetic,
            "aligner": str(self.aligner.path) if self.aligner else None, "streams_tokens": False,
            "context_as": "hotwords (user turn, after the audio)", "threads": self.threads,
            "startup_seconds": round(self.startup_seconds, 4),
        }  # fmt: skip

    def close(self) -> None:
        """Stop the engine process (the model leaves memory with it); safe to call twice."""
        engine, self.engine = getattr(self, "engine", None), None
        try:
            if engine is not None:
                engine.close()
        finally:
            self._dir.cleanup()


class CrispStream:
    """One input through CrispASR: iterate for each segment's text, then read ``result``."""

    def __init__(self, provider: CrispAsrProvider, audio: object, load_seconds: float, call: Call, words: bool = True,
                 cancel: Cancel | None = None) -> None:  # fmt: skip
        from qasr.audio import as_audio

        self.provider, self.load_seconds, self.call, self.words, self.cancel = provider, load_seconds, call, words, cancel
        self.audio: Audio = as_audio(audio)
        self.result: TranscriptionResult | None = None

    def __iter__(self) -> Iterator[str]:
        from qasr.pipeline.transcribe import call_audio, joint, plan_calls
        from qasr.text.context import is_context_echo
        from qasr.text.parse import repair_loops

        p, c = self.provider, self.call
        segments: list[Segment] = []
        self.raw: list[str] = []  # CrispASR's own text per call (it has already cut the language header)
        seconds, tokens, loops, echoes, last = 0.0, 0, 0, 0, ""
        language = canonical_name(c.language)
        for i, (start, end) in enumerate(guarded(plan_calls(self.audio, c.max_chunk), self.cancel)):
            t0 = time.perf_counter()
            answer = p.call(call_audio(self.audio, start, end).samples, c)
            seconds += time.perf_counter() - t0
            tokens += int(answer.get("tokens") or 0)
            self.raw.append(str(answer.get("text", "")))
            asr_text, repaired = repair_loops(self.raw[-1].strip())
            loops += repaired
            if asr_text and is_context_echo(asr_text, c.context):
                asr_text, echoes = "", echoes + 1
            text = c.post.apply(asr_text, language)
            segments.append(Segment(i, round(start, 3), round(end, 3), text, asr_text))
            if text:
                yield joint(last, text[0]) + text
                last = text[-1]
        warnings = [f"{echoes} segment(s) only repeated the context and were dropped"] if echoes else []
        if p.aligner is not None and self.words:
            warnings += self._align(segments, language)
        self.result = self._build(segments, seconds, tokens, loops, echoes, warnings, language)

    def _align(self, segments: list[Segment], language: str | None) -> list[str]:
        """Word times per segment, as the chatllm aligner path gives them (`qasr.pipeline.align`)."""
        from qasr.pipeline.align import build_alignment, engine_text, guess_language, unit_spans
        from qasr.pipeline.textmap import apply
        from qasr.pipeline.transcribe import call_audio

        problems = []
        for seg in segments:
            seg.words = []
            spans = unit_spans(seg.asr_text)
            if not spans:
                continue
            try:
                found = self.provider.align(call_audio(self.audio, seg.start, seg.end).samples, engine_text(seg.asr_text, spans))
                merged = merge_words(found, [seg.asr_text[a:b] for a, b in spans])
                raw = json.dumps([{"text": w, "start": a * 1000, "end": b * 1000} for w, a, b in merged])
                alignment = build_alignment(seg.asr_text, spans, raw, language or guess_language(seg.asr_text), seg.end - seg.start)
            except QasrError as exc:
                problems.append(f"segment {seg.id} ({seg.start:.1f}-{seg.end:.1f} s) not aligned: {exc}")
                continue
            if seg.text != seg.asr_text:
                alignment = apply(alignment, lambda _t, s=seg: s.text)
            seg.words = [Word(u.text, round(seg.start + u.start, 3), round(seg.start + u.end, 3)) for u in alignment.units]
        return problems

    def _build(self, segments: list[Segment], seconds: float, tokens: int, loops: int, echoes: int,
               warnings: list[str], language: str | None) -> TranscriptionResult:
        from qasr.pipeline.transcribe import joined

        figures = Figures(
            audio_seconds=round(self.audio.seconds, 3), load_seconds=round(self.load_seconds, 4),
            inference_seconds=round(seconds, 4), ttft_seconds=None, tokens=tokens, tokens_per_second=None,
            rtf=round(seconds / self.audio.seconds, 4), engine_calls=len(segments),
        )  # fmt: skip
        asr_text = joined([seg.asr_text for seg in segments])
        return TranscriptionResult(
            source=self.audio.source, language=language, text=joined([seg.text for seg in segments]), asr_text=asr_text,
            raw_text="\n".join(self.raw), segments=segments, figures=figures,
            no_speech=not asr_text, loops_repaired=loops, model=self.provider.model.path.name,
            context=self.call.context, context_echo=bool(echoes), warnings=warnings,
        )  # fmt: skip

    def run(self) -> TranscriptionResult:
        """Every segment, then the result (what `CrispAsrProvider.transcribe` returns)."""
        collections.deque(self, maxlen=0)
        assert self.result is not None
        return self.result
