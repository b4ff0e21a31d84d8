"""Word times for the segments of a transcript, from the ForcedAligner in a child process of its own.

Why a child: upstream chatllm.cpp 4a4310e cannot hold two models in one process. Measured with the
tiny models: once the aligner is loaded beside a Qwen3-ASR model, the ASR model's turns come back
empty, with no error (and the same for two ASR models; tests/test_lab_chain.py pins it). So a
process that transcribes aligns elsewhere: this runs the long-form pipeline's own align phase
(`qasr.pipeline.chunk_child`, through `longform.PhaseRunner`) on a private work directory that
holds the audio and one transcript per segment.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from qasr.channel import Sender
from qasr.errors import QasrError
from qasr.pipeline.align import Alignment
from qasr.pipeline.longform import PhaseRunner, units_from_record
from qasr.pipeline.jobfile import AUDIO_FILE, RESULTS, Job
from qasr.spec import EngineSpec

#: (start, end, transcript, language) of one segment, in seconds of the audio.
SegmentText = tuple[float, float, str, "str | None"]


def align_segments(
    samples: np.ndarray,
    segments: Sequence[SegmentText],
    aligner: str | os.PathLike[str],
    *,
    language: str | None = None,
    engine: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    max_length: int | None = None,
) -> list[Alignment | str]:
    """One alignment per segment (times relative to the segment's start), or the reason it has none."""
    workdir = Path(tempfile.mkdtemp(prefix="qasr-align-"))
    try:
        np.asarray(samples, dtype="<f4").tofile(workdir / AUDIO_FILE)
        spec = EngineSpec(aligner=os.fspath(aligner), language=language, threads=threads, max_length=max_length,
                          engine=os.fspath(engine) if engine else None)  # fmt: skip
        Job(chunks=[(s, e) for s, e, _, _ in segments], spec=spec).save(workdir)
        # The transcripts as the transcribe phase's durable copy, which the align phase reads.
        transcripts = Sender(None, durable=workdir / RESULTS["transcribe"])
        for i, (_, _, text, lang) in enumerate(segments):
            transcripts.send("chunk", index=i, text=text, language=lang, no_speech=not text.strip())
        transcripts.close()
        records: dict[int, dict] = {}  # type: ignore[type-arg]
        try:
            PhaseRunner("align", workdir, {**os.environ, "TMPDIR": str(workdir)}).run(lambda r: records.__setitem__(int(r["index"]), r))
        except QasrError as exc:
            return [f"the aligner failed: {exc}"] * len(segments)
        out: list[Alignment | str] = []
        for i, (start, end, text, lang) in enumerate(segments):
            record = records.get(i, {})
            if "units" in record:
                out.append(units_from_record(record, text, record.get("language") or lang or "", end - start))
            else:
                out.append(str(record.get("error") or record.get("skipped") or "not aligned"))
        return out
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
