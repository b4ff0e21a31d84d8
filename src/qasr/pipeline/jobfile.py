"""The work directory that the long-form pipeline shares with its chunk processes: file names and
the job description. Imports nothing of the pipeline, so both sides (and the lab's step processes)
can use it without an import circle."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from qasr.spec import EngineSpec

JOB_FILE = "job.json"
AUDIO_FILE = "audio.f32"
#: Each phase's durable copy of its channel (`qasr.channel`): one record per finished chunk.
RESULTS = {"transcribe": "transcripts.jsonl", "align": "alignments.jsonl"}
PHASES = tuple(RESULTS)


@dataclass
class Job:
    """Everything a chunk process needs, as JSON in the work directory.

    ``spec`` is the one engine spec: ``model`` for the transcribe phase, ``aligner`` for the align
    phase, and the engine, threads, context length, token cap and forced language for both.
    """

    chunks: list[tuple[float, float]]
    spec: EngineSpec = field(default_factory=EngineSpec)
    context_chars: int = 0  # >0: the previous chunk's last N characters become the next chunk's context
    sample_rate: int = 16_000

    def save(self, workdir: Path) -> None:
        data = {"chunks": self.chunks, "spec": self.spec.to_dict(), "context_chars": self.context_chars, "sample_rate": self.sample_rate}
        (workdir / JOB_FILE).write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, workdir: Path) -> Job:
        data = json.loads((workdir / JOB_FILE).read_text(encoding="utf-8"))
        return cls(
            chunks=[(float(a), float(b)) for a, b in data["chunks"]],
            spec=EngineSpec.from_dict(data["spec"]),
            context_chars=int(data.get("context_chars", 0)),
            sample_rate=int(data.get("sample_rate", 16_000)),
        )
