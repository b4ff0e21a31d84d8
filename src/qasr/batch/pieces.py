"""Inputs into pieces (before the actors), and pieces back into one result per input (after them).

`prepare` runs as a Ray task, never in an actor: it hashes the file, decodes it once (the same
checks and messages as ``qasr transcribe``) and, when it is longer than ``max_chunk``, cuts it at
pauses with Silero VAD (`qasr.audio.vad.find_chunks`, in its own child process: Silero's bundled
ggml must never share a process with libchatllm, and a task's worker process may later become an
actor). Each piece becomes a row of its own that any actor can take, so one long file spreads over
the cluster. A file that cannot be read becomes one ``failed`` row; nothing here raises.

`assemble` puts the pieces' results back in order: segments shifted to the file's time, texts
joined as `qasr.pipeline.transcribe` joins a long file's segments, figures summed.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from qasr.errors import AudioError, QasrError
from qasr.pipeline.results import Figures, Segment, TranscriptionResult, Word

TODO, DONE, FAILED = "todo", "done", "failed"


def piece_row(base: dict[str, Any], status: str, **fields: Any) -> dict[str, Any]:
    """One row of the piece table: every column present (Arrow wants one schema), defaults where unset."""
    out = {"id": base["id"], "path": base["path"], "key": base.get("key", ""), "options": base["options"], "sha256": "",
           "seconds": 0.0, "piece": 0, "pieces": 1, "start": 0.0, "end": 0.0, "samples": b"", "status": status, "error": ""}  # fmt: skip
    out.update(fields)
    return out


def prepare(row: dict[str, Any]) -> list[dict[str, Any]]:
    """Hash, decode and split one input (a Ray task's work): its piece rows, or one failed row."""
    from qasr.audio import SAMPLE_RATE, load_audio
    from qasr.batch.manifest import file_sha256

    try:
        sha = file_sha256(row["path"])
    except OSError as exc:
        return [piece_row(row, FAILED, error=f"cannot read {row['path']}: {exc.strerror or exc}")]
    # The input's own key (two inputs with the same bytes count their attempts apart).
    key = f"{hashlib.sha256(str(row['id']).encode('utf-8')).hexdigest()[:12]}-{sha[:16]}-{row['options_hash']}"
    base = {**row, "key": key}
    try:
        audio = load_audio(row["path"])
        spans = split(audio.samples, float(row["max_chunk"]), audio.source)
    except QasrError as exc:  # the SHA-256 only for a fault of these bytes (`Manifest.finished` keeps those)
        return [piece_row(base, FAILED, sha256=sha if isinstance(exc, AudioError) else "", error=str(exc))]
    pieces = []
    for k, (start, end) in enumerate(spans):
        a, b = int(round(start * SAMPLE_RATE)), int(round(end * SAMPLE_RATE))
        pieces.append(piece_row(base, TODO, sha256=sha, seconds=audio.seconds, piece=k, pieces=len(spans), start=start, end=end,
                                samples=np.ascontiguousarray(audio.samples[a:b], dtype=np.float32).tobytes()))  # fmt: skip
    return pieces


def split(samples: np.ndarray, max_chunk: float, source: str) -> list[tuple[float, float]]:
    """(start, end) seconds of each engine call: the whole audio when it fits ``max_chunk``, else VAD chunks."""
    from qasr.audio import SAMPLE_RATE
    from qasr.audio.vad import VadOptions, find_chunks

    seconds = len(samples) / SAMPLE_RATE
    if seconds <= max_chunk:
        return [(0.0, seconds)]
    _, chunks = find_chunks(samples, VadOptions(max_chunk=max_chunk), isolated=True)
    if not chunks:  # the words `qasr transcribe` uses for the same audio
        raise AudioError(f"no speech found in {source} (voice activity detection heard none in {seconds:.1f} s)")
    return [(c.start, c.end) for c in chunks]


def _words(words: list[dict[str, Any]] | None, offset: float) -> list[Word] | None:
    if words is None:
        return None
    return [Word(w["text"], round(w["start"] + offset, 3), round(w["end"] + offset, 3)) for w in words]


def assemble(source: str, seconds: float, parts: list[tuple[float, dict[str, Any]]]) -> TranscriptionResult:
    """One result from the pieces' results (``(start, result dict)`` in any order)."""
    from qasr.pipeline.transcribe import joined

    parts = sorted(parts, key=lambda p: p[0])
    segments: list[Segment] = []
    for start, r in parts:
        for s in r["segments"]:
            segments.append(Segment(len(segments), round(s["start"] + start, 3), round(s["end"] + start, 3), s["text"],
                                    s["asr_text"], _words(s.get("words"), start)))  # fmt: skip
    results = [r for _, r in parts]
    inference = sum(float(r["inference_seconds"]) for r in results)
    decode_rates = [r["tokens_per_second"] for r in results if r.get("tokens_per_second")]
    figures = Figures(
        audio_seconds=round(seconds, 3),
        load_seconds=round(max(float(r["load_seconds"]) for r in results), 4),
        inference_seconds=round(inference, 4),
        ttft_seconds=results[0].get("ttft_seconds"),
        tokens=sum(int(r["tokens"]) for r in results),
        tokens_per_second=round(sum(decode_rates) / len(decode_rates), 2) if decode_rates else None,
        rtf=round(inference / seconds, 4) if seconds > 0 else 0.0,
        engine_calls=sum(int(r.get("engine_calls", 1)) for r in results),
    )
    languages = [r["language"] for r in results if r.get("language")]
    return TranscriptionResult(
        source=source, language=languages[0] if languages else None, text=joined([s.text for s in segments]),
        asr_text=joined([s.asr_text for s in segments]), raw_text="\n".join(r["raw_text"] for r in results), segments=segments,
        figures=figures, no_speech=all(r["no_speech"] for r in results), loops_repaired=sum(int(r["loops_repaired"]) for r in results),
        model=results[0].get("model", ""), context=results[0].get("context"), context_echo=any(r["context_echo"] for r in results),
        warnings=[w for r in results for w in r.get("warnings", [])],
    )  # fmt: skip
