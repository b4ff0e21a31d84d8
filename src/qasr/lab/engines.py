"""Which libchatllm builds a lab matrix or an experiment runs on, and how each one is told apart.

Comparing engines means comparing files: two builds of chatllm.cpp can carry the same name in
different folders, and the same folder can hold a rebuilt library tomorrow. So every engine is
resolved to its ``.so`` once, before the first run (a missing one is a usage error then, not a
crash in the third child), and identified by what the file is: the first 12 hex digits of its
SHA-256, its size and its modification time. Which commit it was built from cannot be read off a
``.so`` (and a source tree beside it may have moved on), so it is never guessed: ``LABEL=PATH``
lets the user name it, e.g. ``upstream-4a4310e=/opt/chatllm/bindings/libchatllm.so``.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from qasr.errors import UsageError

_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class EngineBuild:
    """One libchatllm build: the label rows carry, the resolved library and its identity."""

    label: str
    path: Path
    sha256: str  # first 12 hex digits
    size: int
    mtime: str  # local time, ISO 8601 to the second

    def to_dict(self) -> dict[str, object]:
        return {"label": self.label, "path": str(self.path), "sha256": self.sha256, "size": self.size, "mtime": self.mtime}


def split_label(spec: str) -> tuple[str | None, str]:
    """``LABEL=PATH`` -> (LABEL, PATH); a bare path -> (None, PATH).

    A label is what stands before the first ``=`` when that part has no path separator, so
    ``/opt/a=b/libchatllm.so`` stays a path.
    """
    label, sep, rest = spec.partition("=")
    if sep and label and os.sep not in label and rest:
        return label, rest
    return None, spec


def _library_file(path: str) -> Path:
    """The ``.so`` a path names (a directory means its ``libchatllm.so``, as everywhere in qasr)."""
    from qasr.engine.library import candidate_paths

    tried = candidate_paths(path) if path else candidate_paths()
    for candidate in tried:
        if candidate.is_file():
            return candidate
    where = f"--engine {path}" if path else "no --engine given"
    raise UsageError(f"libchatllm not found ({where}; tried {', '.join(str(t) for t in tried)})")


def identify(path: Path, label: str | None = None) -> EngineBuild:
    """Hash and stat one library file."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_HASH_CHUNK):
            digest.update(block)
    st = path.stat()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(st.st_mtime))
    return EngineBuild(label or str(path), path.resolve(), digest.hexdigest()[:12], st.st_size, stamp)


def resolve_engines(specs: list[str]) -> list[EngineBuild]:
    """Every ``[LABEL=]PATH`` resolved and identified, in order; no spec means the default engine
    (``QASR_CHATLLM_LIB``, then ./chatllm.cpp). Raises `UsageError` for a missing library or a label
    used twice, before anything runs."""
    builds = []
    for spec in specs or [""]:
        label, path = split_label(spec)
        library = _library_file(path)
        builds.append(identify(library, label or (path or None)))
    labels = [b.label for b in builds]
    twice = sorted({x for x in labels if labels.count(x) > 1})
    if twice:
        raise UsageError(f"engine label(s) given twice: {', '.join(twice)} (name each build: --engine LABEL=PATH)")
    return builds


def engine_table(builds: list[dict[str, object]]) -> list[str]:
    """Markdown lines naming each build (label, library, hash, size, time) for a report."""
    lines = ["| engine | library | sha256 (12) | bytes | modified |", "|---|---|---|---|---|"]
    for e in builds:
        lines.append(f"| {e.get('label')} | `{e.get('path')}` | `{e.get('sha256')}` | {e.get('size')} | {e.get('mtime')} |")
    return lines
