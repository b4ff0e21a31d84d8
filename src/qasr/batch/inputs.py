"""What a batch reads: INPUT arguments expanded into `InputItem` values, each checked before any work.

An argument is a file, a directory (searched recursively for the audio extensions qasr decodes), a
glob (``calls/**/*.wav``, quoted so the shell leaves it to us), or a manifest table (``.jsonl``,
``.csv`` or ``.parquet``) with a ``path`` column and optional ``id``, ``language`` and ``context``
columns. Every input gets a stable ``id``, the key the output manifest resumes by: the path relative
to the directory or glob root it was found under (a plain file: its name; a table row: its ``id``, or
its path as written). Outputs keep that relative path under OUT_DIR.

A missing input, an unreadable table or two inputs with one id are a `UsageError` here, before Ray
starts: nothing is half done because of a typo.
"""

from __future__ import annotations

import glob
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from qasr.errors import UsageError

#: File name endings a directory or glob search takes as audio (what soundfile or PyAV decode).
AUDIO_EXTENSIONS = frozenset(
    {".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".mp4", ".aac", ".webm", ".mka", ".mkv", ".aif", ".aiff", ".wma"}
)
#: Table formats read as a list of inputs instead of as audio.
TABLE_EXTENSIONS = frozenset({".jsonl", ".csv", ".parquet"})


@dataclass(frozen=True)
class InputItem:
    """One input: its resume key ``id``, the file, where its outputs go under OUT_DIR (``rel``,
    without extension), and per-input overrides of the call options (from a table)."""

    id: str
    path: str
    rel: str
    language: str | None = None
    context: str | None = None


def _is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def _rel(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` as a POSIX string, without its extension."""
    rel = PurePosixPath(path.relative_to(root).as_posix())
    return str(rel.with_suffix("")) if rel.suffix else str(rel)


def _from_directory(root: Path) -> list[InputItem]:
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
    if not files:
        raise UsageError(f"no audio files ({', '.join(sorted(AUDIO_EXTENSIONS))}) under {root}")
    return [InputItem(f.relative_to(root).as_posix(), str(f.resolve()), _rel(f, root)) for f in files]


def _from_glob(pattern: str) -> list[InputItem]:
    matches = sorted(Path(m) for m in glob.glob(pattern, recursive=True))
    files = [m for m in matches if m.is_file()]
    if not files:
        raise UsageError(f"no file matches {pattern}")
    parts = Path(pattern).parts
    fixed = [p for p in parts[: next(i for i, p in enumerate(parts) if _is_glob(p))]]
    root = Path(*fixed) if fixed else Path(".")
    return [InputItem(f.relative_to(root).as_posix(), str(f.resolve()), _rel(f, root)) for f in files]


def _table_rows(table: Path) -> list[dict[str, object]]:
    """The rows of a JSONL, CSV or Parquet table, as dicts."""
    suffix = table.suffix.lower()
    try:
        if suffix == ".jsonl":
            rows = []
            for n, line in enumerate(table.read_text(encoding="utf-8").splitlines(), 1):
                if line.strip():
                    row = json.loads(line)
                    if not isinstance(row, dict):
                        raise UsageError(f"{table}:{n}: each line must be a JSON object")
                    rows.append(row)
            return rows
        if suffix == ".csv":
            import csv

            with table.open(newline="", encoding="utf-8") as fh:
                return [dict(r) for r in csv.DictReader(fh)]
        import pyarrow.parquet as pq

        return pq.read_table(table).to_pylist()  # type: ignore[no-any-return]
    except ImportError:
        raise UsageError(f"reading {table} needs pyarrow: pip install 'qasr[cluster]'") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the input table {table}: {exc}") from None


def _text(row: dict[str, object], key: str) -> str | None:
    value = row.get(key)
    if value is None or (isinstance(value, float) and value != value):  # missing, or NaN from a table
        return None
    text = str(value).strip()
    return text or None


def _from_table(table: Path) -> list[InputItem]:
    rows = _table_rows(table)
    if not rows:
        raise UsageError(f"the input table {table} has no rows")
    items = []
    for n, row in enumerate(rows, 1):
        path_text = _text(row, "path")
        if path_text is None:
            raise UsageError(f"{table}: row {n} has no 'path' (the column every input table needs)")
        path = Path(path_text)
        full = path if path.is_absolute() else table.parent / path
        key = _text(row, "id") or path_text
        rel = str(PurePosixPath(key).with_suffix("")) if not Path(key).is_absolute() else Path(key).stem
        if ".." in PurePosixPath(rel).parts:
            raise UsageError(f"{table}: row {n}: the id {key!r} would write outside OUT_DIR (no '..' in ids)")
        items.append(InputItem(key, str(full.resolve()), rel.lstrip("/") or "audio", _text(row, "language"), _text(row, "context")))
    return items


def expand_inputs(arguments: list[str]) -> list[InputItem]:
    """Every input the arguments name, in order, each once; `UsageError` for anything missing."""
    items: list[InputItem] = []
    for arg in arguments:
        path = Path(arg)
        if path.is_dir():
            items += _from_directory(path)
        elif path.is_file():
            if path.suffix.lower() in TABLE_EXTENSIONS:
                items += _from_table(path)
            else:
                items.append(InputItem(path.name, str(path.resolve()), _rel(path, path.parent)))
        elif _is_glob(arg):
            items += _from_glob(arg)
        else:
            raise UsageError(f"input not found: {arg}")
    return _checked(items)


def _checked(items: list[InputItem]) -> list[InputItem]:
    """Drop repeats of one file under one id; refuse missing files and one id for two files."""
    seen: dict[str, InputItem] = {}
    out = []
    for item in items:
        if item.id in seen:
            if seen[item.id].path == item.path:
                continue
            raise UsageError(f"two inputs have the id {item.id!r}: {seen[item.id].path} and {item.path} (pass their directory, or a table with an id column)")
        if not Path(item.path).is_file():
            raise UsageError(f"input not found: {item.path}")
        seen[item.id] = item
        out.append(item)
    taken: set[str] = set()
    unique = []
    for item in out:  # two ids may map to one output name (a.wav and a.mp3): the later gets "-2"
        rel, n = item.rel, 2
        while rel in taken:
            rel, n = f"{item.rel}-{n}", n + 1
        taken.add(rel)
        unique.append(item if rel == item.rel else InputItem(item.id, item.path, rel, item.language, item.context))
    return unique
