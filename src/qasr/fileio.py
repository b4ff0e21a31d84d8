"""Writing result files so that a crash or Ctrl-C never leaves half a document under the real name."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from qasr.errors import UsageError


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], mode: str = "w", *, fsync: bool = True) -> Iterator[IO]:  # type: ignore[type-arg]
    """Yield a file opened in ``mode`` beside ``path``; when the block ends normally it replaces
    ``path`` in one rename, when it raises it is deleted. Readers see the old file or the new, never
    half. A path that cannot be written (missing directory, a directory, no permission) is a
    `UsageError` naming it, not a traceback. ``fsync=False`` skips the flush to disk (for large
    files that can be regenerated)."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"cannot write {path}: it is a directory")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=str(path.parent or Path(".")))
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise


def write_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Replace ``path`` with ``text`` in one rename (see `atomic_file`)."""
    with atomic_file(path) as fh:
        fh.write(text)
