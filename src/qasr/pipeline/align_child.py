"""Word times for the segments of a transcript, from the ForcedAligner in a child process of its own.

Why a child: upstream chatllm.cpp 4a4310e cannot hold two models in one process. Measured with the
tiny models: once the aligner is loaded beside a Qwen3-ASR model, the ASR model's turns come back
empty, with no error (and the same for two ASR models; tests/test_lab_chain.py pins it). So a
process that transcribes aligns elsewhere: this runs the long-form pipeline's own align worker
(`qasr.pipeline.worker`, through `longform.Worker` and `qasr.processes.Child`) on a private work
directory that holds the audio and one transcript per segment.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from qasr.errors import QasrError
from qasr.pipeline.align import Alignment
from qasr.pipeline.longform import Worker, units_from_record
from qasr.pipeline.jobfile import AUDIO_FILE, RESULTS, Job, ModelSpec

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
        Job(chunks=[(s, e) for s, e, _, _ in segments], asr=ModelSpec(""),
            aligner=ModelSpec(str(aligner), language, threads, max_length), engine=str(engine) if engine else None).save(workdir)  # fmt: skip
        with open(workdir / RESULTS["transcribe"], "w", encoding="utf-8") as fh:
            for i, (_, _, text, lang) in enumerate(segments):
                fh.write(json.dumps({"index": i, "text": text, "language": lang, "no_speech": not text.strip()}, ensure_ascii=False) + "\n")
        records: dict[int, dict] = {}  # type: ignore[type-arg]
        try:
            Worker("align", workdir, {**os.environ, "TMPDIR": str(workdir)}).run(lambda r: records.__setitem__(int(r["index"]), r))
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
