"""Hand the engine a WAV file that we wrote, under a name we chose.

chatllm.cpp decodes audio by running ``ffmpeg -i "<name>"`` through ``popen`` (a shell), so a file
name holding ``"``, ``$(...)`` or a backquote would run commands. The engine therefore never sees a
user's path: only a 16 kHz mono float WAV in a fresh private directory (mode 0700) whose full path
is checked to contain nothing a shell treats specially.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from qasr.audio.decode import SAMPLE_RATE
from qasr.errors import AudioError

# Characters that stay literal inside double quotes in a POSIX shell, and are harmless to ffmpeg.
_SHELL_SAFE = re.compile(r"^[A-Za-z0-9/._+-]+$")


def is_shell_safe(path: str) -> bool:
    """True when ``path`` can sit inside ``"..."`` on a shell command line without effect."""
    return bool(_SHELL_SAFE.match(path))


def _private_dir() -> Path:
    """A new 0700 directory under a temp root whose path is shell-safe ($TMPDIR, else /tmp)."""
    for root in (tempfile.gettempdir(), "/tmp"):
        if is_shell_safe(root) and Path(root).is_dir():
            d = Path(tempfile.mkdtemp(prefix="qasr-", dir=root))
            if is_shell_safe(str(d)):
                return d
            d.rmdir()
    raise AudioError("no temporary directory with a shell-safe path is available (set TMPDIR to a plain path)")


def write_wav(samples: np.ndarray, target: Path | BinaryIO) -> None:
    """Write 16 kHz mono IEEE-float WAV: lossless, so the engine decodes exactly what we validated."""
    import soundfile

    soundfile.write(target if not isinstance(target, Path) else str(target), samples, SAMPLE_RATE, subtype="FLOAT", format="WAV")


@contextlib.contextmanager
def staged_wav(samples: np.ndarray, *, raw_only: bool | None = None) -> Iterator[Path]:
    """Yield the path the engine is given for ``samples``; remove it (and its directory) afterwards.

    The samples are written once. With qasr's ffmpeg shim active (`qasr.engine.ffmpeg_shim`), only
    ``audio.f32`` is written: raw little-endian float32, exactly the bytes ffmpeg would print for the
    engine, which the shim serves when the engine asks ffmpeg for ``audio.wav`` (the engine never
    opens that file itself). Without the shim, ``audio.wav`` is a real WAV for the real ffmpeg.
    ``raw_only`` forces one or the other (None: ask the shim).
    """
    if raw_only is None:
        from qasr.engine import ffmpeg_shim

        raw_only = ffmpeg_shim.is_active()
    directory = _private_dir()
    try:
        path = directory / "audio.wav"
        if raw_only:
            np.asarray(samples, dtype="<f4").tofile(directory / "audio.f32")
        else:
            write_wav(samples, path)
        yield path
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def wav_bytes(samples: np.ndarray) -> bytes:
    """The same WAV in memory (for the aligner's base64 multimedia message)."""
    buf = io.BytesIO()
    write_wav(samples, buf)
    return buf.getvalue()
