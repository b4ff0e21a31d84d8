"""The output manifest: one row per input, what a rerun resumes from.

``OUT_DIR/manifest.jsonl`` is written as the run goes, one line per finished input, through the
child channel's durable copy (`qasr.channel.Sender`: appended and flushed line by line, a half line
from a crash ignored on reading), so a run killed at any moment keeps every input it finished. When
the run ends the file is compacted to the latest row per input and ``manifest.parquet`` is written
beside it, both atomically. Rows of inputs that are not in this run stay: one OUT_DIR can take an
archive in several runs.

Columns: ``id``, ``path``, ``sha256`` (of the audio file's bytes), ``options_hash`` (what was loaded
and asked for, `options_hash`), ``status`` (``done``, ``failed``, ``skipped``), ``error``,
``signal`` (the one that killed the engine, for an input that did), ``audio_seconds``, ``rtf``,
``engine_calls``, ``inference_seconds``, ``language``, ``outputs`` (files under OUT_DIR),
``finished_at`` (UTC, ISO 8601). A rerun skips an input whose row is ``done`` or ``skipped`` with the
same SHA-256 and options hash, and keeps (does not retry) one that failed for a reason the same bytes
meet again (`Manifest.finished`; ``--retry-failed`` retries those).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from qasr.channel import Sender, read_durable
from qasr.fileio import atomic_file
from qasr.spec import CallOptions, EngineSpec

KIND = "input"
DONE, FAILED, SKIPPED = "done", "failed", "skipped"
COLUMNS = ("id", "path", "sha256", "options_hash", "status", "error", "signal", "audio_seconds", "rtf", "engine_calls",
           "inference_seconds", "language", "outputs", "finished_at")  # fmt: skip
#: EngineSpec fields that do not change a transcript: a rerun with other threads or another copy of
#: the engine library still resumes.
_NOT_IN_HASH = frozenset({"threads", "engine"})


def file_sha256(path: str | Path, block: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, read a block at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def model_identity(name_or_path: str | None) -> str | None:
    """A model as the hash sees it: its file name and size (hashing 500 MB per run would cost more than it tells)."""
    if not name_or_path:
        return None
    path = Path(name_or_path)
    try:
        return f"{path.name}:{path.stat().st_size}"
    except OSError:
        return name_or_path


def options_hash(spec: EngineSpec, calls: CallOptions, formats: tuple[str, ...]) -> str:
    """What decides an input's outputs, hashed: the spec (models by name and size, not threads),
    the call options and the output formats."""
    loaded = {k: v for k, v in spec.to_dict().items() if k not in _NOT_IN_HASH}
    loaded["model"], loaded["aligner"] = model_identity(spec.model), model_identity(spec.aligner)
    asked = {k: v for k, v in calls.to_dict().items() if not (k == "words" and v is None)}  # unset: hashes made before it existed hold
    text = json.dumps({"spec": loaded, "calls": asked, "formats": sorted(formats)}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def row(item_id: str, path: str, status: str, **fields: Any) -> dict[str, Any]:
    """A manifest row with every column (None where unknown)."""
    out: dict[str, Any] = dict.fromkeys(COLUMNS)
    out.update(id=item_id, path=path, status=status, finished_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    out.update({k: v for k, v in fields.items() if k in out})
    out["outputs"] = list(out["outputs"] or [])
    return out


class Manifest:
    """The rows of ``out_dir``'s manifest (the latest per input), and a writer for new ones."""

    def __init__(self, out_dir: Path) -> None:
        self.jsonl = out_dir / "manifest.jsonl"
        self.parquet = out_dir / "manifest.parquet"
        self.rows: dict[str, dict[str, Any]] = {}
        for record in read_durable(self.jsonl, KIND):
            self.rows[str(record.get("id"))] = {k: record.get(k) for k in COLUMNS}
        self._sender: Sender | None = None

    def finished(self, item_id: str, sha256: str, opts_hash: str, *, retry_failed: bool = False) -> dict[str, Any] | None:
        """The earlier row that settles this input for the same audio and options: ``done`` or
        ``skipped``, or ``failed`` for a reason these bytes will meet again (it could not be decoded,
        or it killed the engine ``retries + 1`` times: such rows carry the SHA-256), unless
        ``retry_failed``. A failure with no SHA-256 (the file could not be read, the run stopped)
        settles nothing."""
        old = self.rows.get(item_id)
        if not old or old.get("sha256") != sha256 or old.get("options_hash") != opts_hash:
            return None
        if old.get("status") in (DONE, SKIPPED) or (old.get("status") == FAILED and not retry_failed):
            return old
        return None

    def record(self, new: dict[str, Any]) -> None:
        """Append a row now (durable at once: a crash after this keeps it)."""
        if self._sender is None:
            self.jsonl.parent.mkdir(parents=True, exist_ok=True)
            self._sender = Sender(None, durable=self.jsonl)
        self._sender.send(KIND, **new)
        self.rows[str(new["id"])] = new

    def finish(self) -> None:
        """Compact the JSONL to one row per input and write the Parquet copy (both atomically)."""
        if self._sender is not None:
            self._sender.close()
            self._sender = None
        rows = list(self.rows.values())
        with atomic_file(self.jsonl) as fh:
            for r in rows:
                fh.write(json.dumps({"kind": KIND, **r}, ensure_ascii=False) + "\n")
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:  # pragma: no cover - pyarrow comes with ray[data]
            return
        table = pa.Table.from_pylist([{k: r.get(k) for k in COLUMNS} for r in rows], schema=_schema(pa))
        with atomic_file(self.parquet, "wb") as fh:
            pq.write_table(table, fh)


def _schema(pa: Any) -> Any:
    text, number = pa.string(), pa.float64()
    types = {"engine_calls": pa.int64(), "audio_seconds": number, "rtf": number, "inference_seconds": number,
             "outputs": pa.list_(text)}  # fmt: skip
    return pa.schema([(c, types.get(c, text)) for c in COLUMNS])
