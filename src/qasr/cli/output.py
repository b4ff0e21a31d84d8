"""Render transcription results as txt, json or jsonl, to stdout or one file per input."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import TextIO

from qasr.fileio import write_atomic


class OutputFormat(str, Enum):
    txt = "txt"
    json = "json"
    jsonl = "jsonl"


def dumps(record: dict[str, object]) -> str:
    return json.dumps(record, ensure_ascii=False)


def render(records: list[dict[str, object]], fmt: OutputFormat, *, many: bool) -> str:
    """All records as one document: txt lines, a JSON object (or array when ``many``), or JSON lines."""
    if fmt is OutputFormat.json:
        body = records if many else records[0]
        return json.dumps(body, ensure_ascii=False, indent=2) + "\n"
    if fmt is OutputFormat.jsonl:
        return "".join(dumps(r) + "\n" for r in records)
    lines = [f"{r['source']}: {r['text']}" if many else str(r["text"]) for r in records if "error" not in r]
    return "".join(line + "\n" for line in lines)


def output_path(out_dir: Path, source: str, fmt: OutputFormat, taken: set[Path]) -> Path:
    """``<out_dir>/<stem>.<format>``, replacing an earlier run's file; a second input of the same
    run with the same stem gets ``<stem>-2``, ``-3``..."""
    base = out_dir / f"{Path(source).stem or 'audio'}.{fmt.value}"
    candidate, n = base, 2
    while candidate in taken:
        candidate = base.with_name(f"{base.stem}-{n}{base.suffix}")
        n += 1
    taken.add(candidate)
    return candidate


def write_record(out_dir: Path, record: dict[str, object], fmt: OutputFormat, taken: set[Path]) -> Path:
    """Write one result to its own file atomically (temp name, then rename)."""
    path = output_path(out_dir, str(record["source"]), fmt, taken)
    write_atomic(path, render([record], fmt, many=False))
    return path


def emit(text: str, stream: TextIO | None = None) -> None:
    (stream or sys.stdout).write(text)
    (stream or sys.stdout).flush()
