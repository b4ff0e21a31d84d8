"""Serve the engine's ffmpeg call from samples qasr already decoded (``shim/ffmpeg``).

chatllm.cpp runs ``ffmpeg`` for every audio it reads; starting it costs about 90 ms per call (measured
here: 112 ms for ffmpeg against 4 ms for the shim on an 11 s clip, identical bytes). qasr has already
decoded and validated the audio, so `activate` puts a small POSIX-sh shim first on ``PATH``: for a
file that qasr staged (``.../qasr-XXXX/audio.wav`` with its raw twin ``audio.f32``) and exactly the
engine's arguments, it streams the raw samples; anything else goes to the real ffmpeg: ``$QASR_FFMPEG``,
else the next ``ffmpeg`` on PATH (Debian's), else the static one of the optional ``imageio-ffmpeg``
wheel (``pip install 'qasr[ffmpeg]'``), which `activate` puts in ``$QASR_FFMPEG``. Set
``QASR_FFMPEG_SHIM=0`` to turn the shim off (the engine then needs ffmpeg on PATH, as upstream does).
"""

from __future__ import annotations

import atexit
import os
import shutil
import stat
import tempfile
import threading
from pathlib import Path

ENV_SWITCH = "QASR_FFMPEG_SHIM"
ENV_FFMPEG = "QASR_FFMPEG"
PACKAGED = Path(__file__).with_name("shim") / "ffmpeg"

_lock = threading.Lock()
_active: Path | None = None


def _executable_copy() -> Path:
    """The packaged shim if an installer kept its exec bit; else an executable copy in this user's
    cache (reused by every later process, so nothing piles up), or in a temporary directory."""
    if os.access(PACKAGED, os.X_OK):
        return PACKAGED.parent
    content = PACKAGED.read_bytes()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "qasr" / "shim"
    try:
        cache.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = cache / "ffmpeg"
        if not target.is_file() or target.read_bytes() != content:
            tmp = cache / f".ffmpeg.{os.getpid()}"
            tmp.write_bytes(content)
            tmp.chmod(stat.S_IRWXU)
            tmp.replace(target)
        return cache
    except OSError:
        directory = Path(tempfile.mkdtemp(prefix="qasr-shim-"))
        atexit.register(shutil.rmtree, directory, True)
        target = directory / "ffmpeg"
        target.write_bytes(content)
        target.chmod(stat.S_IRWXU)
        return directory


def enabled() -> bool:
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def activate() -> Path | None:
    """Prepend the shim's directory to this process's PATH once; return it (None when disabled)."""
    global _active
    if not enabled():
        return None
    with _lock:
        if _active is None:
            _active = _executable_copy()
        path = os.environ.get("PATH", "")
        if path.split(os.pathsep)[0] != str(_active):
            os.environ["PATH"] = os.pathsep.join([str(_active), path]) if path else str(_active)
        if not os.environ.get(ENV_FFMPEG) and _path_ffmpeg() is None:
            bundled = _bundled_ffmpeg()
            if bundled:  # the shim hands non-staged requests (the aligner's audio) to it
                os.environ[ENV_FFMPEG] = bundled
        return _active


def is_active() -> bool:
    """True when this process put the shim first on ``PATH`` and it is still there (the engine's
    ffmpeg calls for staged audio then never reach a real ffmpeg)."""
    active = _active
    return active is not None and enabled() and os.environ.get("PATH", "").split(os.pathsep)[0] == str(active)


def _path_ffmpeg() -> str | None:
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != str(_active))
    return shutil.which("ffmpeg", path=path)


def _bundled_ffmpeg() -> str | None:
    """The static ffmpeg of the optional imageio-ffmpeg wheel (``pip install 'qasr[ffmpeg]'``)."""
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    try:
        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:
        return None
    return exe if os.access(exe, os.X_OK) else None


def real_ffmpeg() -> str | None:
    """The ffmpeg the shim hands other requests to: ``$QASR_FFMPEG``, one further along PATH, or the
    bundled one of imageio-ffmpeg; None when there is none."""
    explicit = os.environ.get(ENV_FFMPEG)
    if explicit and os.access(explicit, os.X_OK):
        return explicit
    return _path_ffmpeg() or _bundled_ffmpeg()
