"""The work directory that the long-form pipeline shares with its worker processes: file names, the
job description, and how a worker reports how it ended. Imports nothing of the pipeline, so both
sides (and the lab's step processes) can use it without an import circle."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

JOB_FILE = "job.json"
AUDIO_FILE = "audio.f32"
RESULTS = {"transcribe": "transcripts.jsonl", "align": "alignments.jsonl"}
PHASES = tuple(RESULTS)


def status_file(phase: str) -> str:
    return f"{phase}.status.json"


@dataclass
class ModelSpec:
    """A model file and how to load it."""

    path: str
    language: str | None = None
    threads: int | None = None
    max_length: int | None = None
    max_tokens: int | None = None  # per engine call (ASR only; synthetic models never stop by themselves)


@dataclass
class Job:
    """Everything a worker needs, as JSON in the work directory."""

    chunks: list[tuple[float, float]]
    asr: ModelSpec
    aligner: ModelSpec
    engine: str | None = None
    context_chars: int = 0  # >0: the previous chunk's last N characters become the next chunk's context
    sample_rate: int = 16_000

    def save(self, workdir: Path) -> None:
        (workdir / JOB_FILE).write_text(json.dumps(asdict(self), ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, workdir: Path) -> Job:
        data = json.loads((workdir / JOB_FILE).read_text(encoding="utf-8"))
        return cls(
            chunks=[(float(a), float(b)) for a, b in data["chunks"]],
            asr=ModelSpec(**data["asr"]),
            aligner=ModelSpec(**data["aligner"]),
            engine=data.get("engine"),
            context_chars=int(data.get("context_chars", 0)),
            sample_rate=int(data.get("sample_rate", 16_000)),
        )


@dataclass
class Status:
    """How a worker ended; read by the parent after the process exits."""

    ok: bool
    phase: str
    peak_rss_bytes: int = 0
    load_seconds: float = 0.0
    chunks: int = 0
    error: str | None = None
    exit_code: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every complete line of a JSONL file (a half-written last line is ignored)."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.split("\n")[:-1] if line.strip()]
