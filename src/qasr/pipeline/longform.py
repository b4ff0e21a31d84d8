"""Subtitles for audio of any length: VAD chunks, transcribe all, align all, cues, written as we go.

The design (docs/subtitles.md has the reasoning and the measurements):

1. This process decodes the input once, writes it to a private work directory as raw float32
   (children read one chunk at a time from it), and cuts it into chunks of at most ``max_chunk`` seconds with the VAD.
   No speech at all is an `AudioError` before any model is loaded.
2. One child process (`qasr.pipeline.chunk_child`) loads Qwen3-ASR and transcribes every chunk; then
   it exits and another child loads the ForcedAligner and aligns every chunk's transcript. So exactly
   one model is in memory at any time, and no model is ever destroyed (that aborts upstream).
   Results come back over the child channel (`qasr.channel`), one record per chunk, which this
   process reads as they come; a durable copy in the work directory keeps them if a child dies.
3. As each chunk is transcribed, its text is already written out with times spread evenly over
   the chunk (marked unaligned); as each chunk is aligned, those cues are replaced by aligned ones.
   Alignment runs on the raw transcript; ITN and OpenCC run afterwards and `textmap` carries the
   times over. The output file is rewritten atomically after every chunk, so a crash or Ctrl-C
   leaves a complete, valid file with everything done so far.
4. A chunk the aligner cannot take (a detected language it does not support, an engine error)
   keeps its evenly spread times and is reported; the others go on.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qasr.audio.vad import Span, VadOptions
from qasr.channel import Receiver
from qasr.errors import AudioError, EngineError, UsageError
from qasr.processes import Child, peak_rss_bytes
from qasr.progress import Progress
from qasr.pipeline.align import AlignedUnit, Alignment, aligner_language, even_alignment
from qasr.pipeline.subtitles import Cue, CueRules, cut, fix_timing
from qasr.pipeline.textmap import apply
from qasr.pipeline.jobfile import AUDIO_FILE, Job
from qasr.pipeline.writers import SubtitleWriter, write_atomic
from qasr.spec import EngineSpec
from qasr.text.post import PostProcess

#: Replaces the VAD in tests: (samples, options) -> (speech spans, chunks), in seconds.
Chunker = Callable[[np.ndarray, VadOptions], tuple[list[Span], list[Span]]]

#: Characters of the previous chunk's transcript given as context to the next (0: none; see docs).
DEFAULT_CONTEXT_CHARS = 0
#: Progress is reported in seconds of audio, per phase, under these labels.
PHASE_LABELS = {"vad": "finding speech", "transcribe": "transcribing", "align": "aligning"}


@dataclass(frozen=True)
class LongformOptions:
    """What to run and how. ``spec`` names both models (``model``: Qwen3-ASR, ``aligner``) and how to
    load them (engine, threads, context length, token cap, forced language); ``post`` is the text's
    ITN and OpenCC, applied after alignment with the times carried over. Paths are the user's,
    never handed to the engine."""

    spec: EngineSpec
    post: PostProcess = field(default_factory=PostProcess)
    context_chars: int = DEFAULT_CONTEXT_CHARS
    vad: VadOptions = field(default_factory=VadOptions)
    rules: CueRules = field(default_factory=CueRules)

    @classmethod
    def from_keywords(cls, asr_model: str | os.PathLike[str], aligner_model: str | os.PathLike[str], **kw: Any) -> LongformOptions:
        """The keyword form `subtitles()` takes: ``language``, ``itn``, ``opencc`` (or ``zh_tw=True``,
        meaning ``opencc="s2twp"``), ``threads``, ``max_length``, ``max_tokens``, ``engine``,
        ``context_chars``, ``vad``, ``rules``."""
        unknown = set(kw) - {"language", "itn", "opencc", "zh_tw", "threads", "max_length", "max_tokens", "engine",
                             "context_chars", "vad", "rules"}  # fmt: skip
        if unknown:
            raise UsageError(f"unknown subtitles option(s): {', '.join(sorted(unknown))}")
        engine = kw.pop("engine", None)
        spec = EngineSpec(model=os.fspath(asr_model), aligner=os.fspath(aligner_model), engine=os.fspath(engine) if engine else None,
                          language=kw.pop("language", None), threads=kw.pop("threads", None),
                          max_length=kw.pop("max_length", None), max_tokens=kw.pop("max_tokens", None))  # fmt: skip
        opencc = kw.pop("opencc", None) or ("s2twp" if kw.pop("zh_tw", False) else None)
        kw.pop("zh_tw", None)
        return cls(spec=spec, post=PostProcess(bool(kw.pop("itn", False)), opencc), **kw)


@dataclass
class LongformResult:
    """What a run did, how long each phase took and how much memory each process used at its peak."""

    source: str
    output: str
    format: str
    audio_seconds: float
    speech_seconds: float = 0.0
    chunks: int = 0
    longest_chunk_seconds: float = 0.0
    cues: int = 0
    aligned_chunks: int = 0
    unaligned: list[dict[str, Any]] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    decode_seconds: float = 0.0
    vad_seconds: float = 0.0
    transcribe_seconds: float = 0.0
    align_seconds: float = 0.0
    wall_seconds: float = 0.0
    parent_peak_rss_bytes: int = 0
    transcribe_peak_rss_bytes: int = 0
    align_peak_rss_bytes: int = 0
    context_chars: int = 0
    written: bool = False  # False: the run stopped before its first chunk; an existing file was not touched
    complete: bool = False

    @property
    def peak_rss_bytes(self) -> int:
        return max(self.parent_peak_rss_bytes, self.transcribe_peak_rss_bytes, self.align_peak_rss_bytes)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "peak_rss_bytes": self.peak_rss_bytes}


class LongformInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run; ``result`` describes the partial output that was kept."""

    def __init__(self, result: LongformResult) -> None:
        super().__init__("interrupted")
        self.result = result


# -- the output document ----------------------------------------------------------------------


class SubtitleDocument:
    """The cues of every chunk so far, rewritten atomically to one file after each change."""

    def __init__(self, path: Path, writer: SubtitleWriter, duration: float, rules: CueRules, info: dict[str, Any]) -> None:
        self.path, self.writer, self.duration, self.rules, self.info = path, writer, duration, rules, info
        self._chunks: dict[int, list[Cue]] = {}

    def put(self, index: int, alignment: Alignment) -> None:
        self._chunks[index] = cut(alignment, self.rules)

    def cues(self) -> list[Cue]:
        ordered = [c for i in sorted(self._chunks) for c in self._chunks[i]]
        return fix_timing(ordered, self.duration, self.rules)

    def write(self, **info: Any) -> int:
        cues = self.cues()
        self.info.update(info)
        write_atomic(self.path, self.writer.render(cues, self.info))
        return len(cues)


def finalize(alignment: Alignment, steps: list[Callable[[str], str]]) -> Alignment:
    for step in steps:
        alignment = apply(alignment, step)
    return alignment


# -- child processes --------------------------------------------------------------------------


class PhaseCrashed(EngineError):
    """A chunk process ended without its final record (killed, or a native abort)."""

    def __init__(self, message: str, returncode: int | None, stderr_tail: list[str]) -> None:
        super().__init__(message)
        self.returncode, self.stderr_tail = returncode, stderr_tail


class PhaseRunner:
    """One phase (transcribe or align) in a chunk process (`qasr.pipeline.chunk_child`).

    Its records arrive over the child channel as they are sent; ``peak_rss_bytes`` is followed
    from the child's /proc status with each one, so it is known even when the child is stopped
    before it can report it. An ``error`` record is raised as the error the child raised.
    """

    def __init__(self, phase: str, workdir: Path, env: dict[str, str] | None = None) -> None:
        self.phase, self.workdir, self.env = phase, workdir, env
        self.peak_rss_bytes = 0
        #: How the child ended and its last stderr lines (the lab reports a step that crashed).
        self.returncode: int | None = None
        self.stderr_tail: list[str] = []

    def run(self, on_record: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Run the phase, feeding each chunk record to ``on_record`` as it comes; return its ``done`` record."""
        log_path = self.workdir / f"{self.phase}.log"
        final: dict[str, Any] | None = None
        # Interrupted or failed here: leaving the block stops the child (it ignores SIGINT).
        with Child("qasr.pipeline.chunk_child", [self.phase, str(self.workdir)], log=log_path, env=self.env,
                   stdout="pipe", text=False) as child:  # fmt: skip
            try:
                assert child.stdout is not None
                for message in Receiver(child.stdout):
                    child.poll()  # follows the child's peak RSS
                    if message.kind == "chunk":
                        on_record(dict(message))
                    elif message.kind in ("done", "error"):
                        final = message
                child.wait()
            finally:
                self.peak_rss_bytes = max(self.peak_rss_bytes, child.peak)
                self.returncode, self.stderr_tail = child.returncode, child.stderr_tail(10)
        if final is None:
            lines = self.stderr_tail[-1:]
            raise PhaseCrashed(f"the {self.phase} process died ({child.exit_reason()}): {lines[-1] if lines else 'no message'}",
                               self.returncode, self.stderr_tail)  # fmt: skip
        if final.kind == "error":
            raise final.error()  # type: ignore[attr-defined]
        self.peak_rss_bytes = max(self.peak_rss_bytes, int(final.get("peak_rss_bytes") or 0))
        return dict(final)


# -- the run ----------------------------------------------------------------------------------


def _check_models(options: LongformOptions) -> None:
    """Fail before any work if a model file is wrong or the aligner cannot take the language."""
    from qasr.engine.modelfile import ModelKind
    from qasr.engine.registry import model_file

    model_file(options.spec.model or "", ModelKind.ASR)
    model_file(options.spec.aligner or "", ModelKind.ALIGNER)
    if options.spec.language:
        aligner_language(options.spec.language)


def units_from_record(record: dict[str, Any], text: str, language: str, seconds: float) -> Alignment:
    """The alignment an align worker wrote for one chunk (times relative to the chunk)."""
    units = tuple(AlignedUnit(t, float(s), float(e), int(a), int(b)) for t, s, e, a, b in record["units"])
    return Alignment(text, units, language, seconds, repaired=int(record.get("repaired", 0)), clamped=int(record.get("clamped", 0)))


def run_longform(
    audio_path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    writer: SubtitleWriter,
    options: LongformOptions,
    progress: Progress | None = None,
    chunker: Chunker | None = None,
) -> LongformResult:
    """Transcribe and align ``audio_path`` in chunks; write ``output`` as it goes; return the summary.

    ``chunker`` replaces the VAD (tests): it takes the samples and `VadOptions` and returns
    (speech spans, chunks) in seconds. Raises `LongformInterrupted` on Ctrl-C, after the partial
    output is safely on disk.
    """
    from qasr.audio import load_audio

    t_start = time.perf_counter()
    _check_models(options)
    out_path = Path(output)
    if not out_path.parent.is_dir():
        raise UsageError(f"output directory does not exist: {out_path.parent}")
    audio = load_audio(audio_path, max_seconds=None)
    result = LongformResult(source=str(audio_path), output=str(out_path), format=writer.name,
                            audio_seconds=round(audio.seconds, 3), context_chars=options.context_chars)  # fmt: skip
    result.decode_seconds = round(time.perf_counter() - t_start, 3)
    workdir = Path(tempfile.mkdtemp(prefix="qasr-long-"))
    try:
        run = _Run(workdir, audio.seconds, SubtitleDocument(out_path, writer, audio.seconds, options.rules, {}), options, result, progress)
        try:
            np.asarray(audio.samples, dtype="<f4").tofile(workdir / AUDIO_FILE)
            run.plan(audio.samples, chunker)
            del audio  # from here on the samples live in the file; children read one chunk at a time
            run.transcribe()
            run.align()
        except KeyboardInterrupt:
            run.finish(t_start)
            raise LongformInterrupted(result) from None
        run.finish(t_start)
        return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


class _Run:
    """One run's state: the chunks, the transcripts so far, the document, the summary."""

    def __init__(self, workdir: Path, duration: float, doc: SubtitleDocument, options: LongformOptions,
                 result: LongformResult, progress: Progress | None) -> None:  # fmt: skip
        self.workdir, self.duration, self.doc, self.options = workdir, duration, doc, options
        self.result, self.progress = result, progress
        self.chunks: list[Span] = []
        self.speech: list[Span] = []
        self.transcripts: dict[int, dict[str, Any]] = {}
        # The children stage their engine WAVs inside the work directory, which we always remove,
        # so nothing is left behind even if a child is killed mid-turn.
        self.env = {**os.environ, "TMPDIR": str(workdir)}

    def _start(self, phase: str, total: float) -> None:
        if self.progress:
            self.progress.start(phase, total, label=PHASE_LABELS.get(phase, phase))

    def _advance(self, phase: str, seconds: float) -> None:
        if self.progress:
            self.progress.advance(phase, seconds)

    def plan(self, samples: np.ndarray, chunker: Chunker | None) -> None:
        """VAD chunks, the job file, the document header; `AudioError` when there is no speech."""
        from qasr.audio import SAMPLE_RATE
        from qasr.audio.vad import find_chunks

        t0 = time.perf_counter()
        self._start("vad", self.duration)
        if chunker is None:
            done = [0.0]

            def on_progress(seconds: float) -> None:
                self._advance("vad", seconds - done[0])
                done[0] = seconds

            spans, self.chunks = find_chunks(samples, self.options.vad, on_progress)
        else:
            spans, self.chunks = chunker(samples, self.options.vad)
            self._advance("vad", self.duration)
        self.speech = list(spans)
        r, o = self.result, self.options
        r.vad_seconds = round(time.perf_counter() - t0, 3)
        if not self.chunks:
            raise AudioError(f"no speech found in {r.source} (voice activity detection heard none in {self.duration:.1f} s)")
        r.speech_seconds = round(sum(s.seconds for s in spans), 3)
        r.chunks = len(self.chunks)
        r.longest_chunk_seconds = round(max(c.seconds for c in self.chunks), 3)
        from qasr.engine.registry import resolve_model

        language = aligner_language(o.spec.language) if o.spec.language else None
        # The children get resolved paths: a registry name means the same file in every process.
        spec = o.spec.replace(model=str(resolve_model(o.spec.model or "")), aligner=str(resolve_model(o.spec.aligner or "")), language=language)
        Job(chunks=[(c.start, c.end) for c in self.chunks], spec=spec, context_chars=o.context_chars, sample_rate=SAMPLE_RATE).save(self.workdir)
        self.doc.info.update({
            "source": r.source, "duration": r.audio_seconds, "language": language,
            "asr_model": Path(spec.model or "").name, "aligner_model": Path(spec.aligner or "").name,
            "chunks": len(self.chunks), "complete": False,
        })  # fmt: skip

    def _steps(self, record: dict[str, Any]) -> list[Callable[[str], str]]:
        return self.options.post.steps(self.options.spec.language or record.get("language"))

    def _on_transcript(self, record: dict[str, Any]) -> None:
        i = record["index"]
        self.transcripts[i] = record
        span = self.chunks[i]
        if record.get("text"):
            text = record["text"]
            for step in self._steps(record):
                text = step(text)
            speech = [(s.start, s.end) for s in self.speech if s.end > span.start and s.start < span.end]
            self.doc.put(i, even_alignment(text, span.start, span.end, record.get("language") or "", speech))
            self.result.cues = self.doc.write(chunks_transcribed=len(self.transcripts))
            self.result.written = True
        self._advance("transcribe", span.seconds)

    def _on_alignment(self, record: dict[str, Any]) -> None:
        i = record["index"]
        span, tr, r = self.chunks[i], self.transcripts.get(i, {}), self.result
        if "units" in record:
            aligned = units_from_record(record, tr.get("text", ""), record.get("language", ""), span.seconds).shifted(span.start)
            if aligned.unreliable:  # keep the even spread already written: it is no worse a guess
                n = len(aligned.units)
                r.unaligned.append({"index": i, "start": round(span.start, 3), "reason":
                                    f"aligner output unreliable: {aligned.repaired} of {n} word times lay outside the chunk or out of order"})
            else:
                self.doc.put(i, finalize(aligned, self._steps(tr)))
                r.aligned_chunks += 1
                r.cues = self.doc.write(chunks_aligned=r.aligned_chunks)
        elif "error" in record:
            r.unaligned.append({"index": i, "start": round(span.start, 3), "reason": record["error"]})
        self._advance("align", span.seconds)

    def _phase(self, phase: str, on_record: Callable[[dict[str, Any]], None]) -> None:
        """Run one worker phase; its time and its child's peak RSS are recorded even if it is stopped."""
        t0 = time.perf_counter()
        self._start(phase, sum(c.seconds for c in self.chunks))
        worker = PhaseRunner(phase, self.workdir, self.env)
        try:
            worker.run(on_record)
        finally:
            setattr(self.result, f"{phase}_seconds", round(time.perf_counter() - t0, 3))
            setattr(self.result, f"{phase}_peak_rss_bytes", worker.peak_rss_bytes)

    def transcribe(self) -> None:
        """Every chunk through Qwen3-ASR in one child; `AudioError` if no chunk had any words."""
        self._phase("transcribe", self._on_transcript)
        r = self.result
        r.languages = sorted({t["language"] for t in self.transcripts.values() if t.get("language")})
        self.doc.info["languages"] = r.languages
        if not any((t.get("text") or "").strip() for t in self.transcripts.values()):
            raise AudioError(
                f"no speech recognised in {r.source}: the model heard no words in {len(self.chunks)} chunk(s) "
                f"holding {r.speech_seconds:.1f} s of possible speech"
            )

    def align(self) -> None:
        """Every transcript through the ForcedAligner in another child; the output is complete after."""
        self._phase("align", self._on_alignment)
        self.result.complete = True
        self.result.cues = self.doc.write(complete=True)
        self.result.written = True

    def finish(self, t_start: float) -> None:
        self.result.parent_peak_rss_bytes = peak_rss_bytes()
        self.result.wall_seconds = round(time.perf_counter() - t_start, 3)


def subtitles(
    audio: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    asr_model: str | os.PathLike[str],
    aligner_model: str | os.PathLike[str],
    format: str | None = None,
    progress: Progress | None = None,
    **options: Any,
) -> LongformResult:
    """Subtitles for ``audio`` written to ``output``: the public, one-call form of `run_longform`.

    ``format`` is srt, vtt, json, tsv or txt (default: the output's suffix, else srt); ``options``
    are those of `LongformOptions.from_keywords` (``language``, ``itn``, ``opencc`` or ``zh_tw``,
    ``threads``, ``vad``, ``rules``...). Both models run in child processes, one after the other, so
    this process never loads the engine.
    """
    from qasr.pipeline.writers import get_writer

    name = (format or Path(output).suffix.lstrip(".") or "srt").lower()
    opts = LongformOptions.from_keywords(asr_model, aligner_model, **options)
    return run_longform(audio, output, get_writer(name), opts, progress)
