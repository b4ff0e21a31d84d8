"""Build the libchatllm test double (libchatllm_double.c) into a shared library.

This compiles a TEST DOUBLE of chatllm.cpp's C ABI, not the engine; see README.md next to this file.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SOURCE = Path(__file__).resolve().with_name("libchatllm_double.c")
LIBRARY_NAME = "libchatllm.so"


def build_double(out_dir: Path, defaults: dict[str, str] | None = None) -> Path:
    """Compile the double to ``out_dir/libchatllm.so`` and return that path.

    ``defaults`` compiles knob values in (``{"ABORT_IN_DESTROY": "1"}`` for
    ``QASR_DOUBLE_ABORT_IN_DESTROY``; the environment still wins), so two builds can behave
    differently under one environment, as two engine builds do. Skips the compiler when the library
    is already newer than the source and was built with the same defaults. Raises RuntimeError with
    the compiler's stderr when compilation fails (or when there is no ``cc``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / LIBRARY_NAME
    words = " ".join(f"QASR_DOUBLE_{k.upper()}={v}" for k, v in sorted((defaults or {}).items()))
    if any(" " in str(v) or "=" in str(v) or '"' in str(v) for v in (defaults or {}).values()):
        raise ValueError(f"compiled-in knob values cannot hold spaces, '=' or quotes: {defaults}")
    stamp = out_dir / f"{LIBRARY_NAME}.defaults"
    fresh = target.exists() and target.stat().st_mtime_ns > SOURCE.stat().st_mtime_ns
    if fresh and (stamp.read_text() if stamp.exists() else "") == words:
        return target

    _compile(SOURCE, target, [f'-DQASR_DOUBLE_DEFAULTS="{words}"'] if words else [], "the libchatllm test double")
    stamp.write_text(words)
    return target


def _compile(source: Path, target: Path, flags: list[str], what: str) -> None:
    """cc -shared ``source`` into ``target``, under a private name first and renamed, so concurrent
    builders never load a half-written file. RuntimeError with the compiler's stderr on failure."""
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    cmd = ["cc", "-shared", "-fPIC", "-O1", "-g", "-Wall", "-Werror", *flags, "-o", str(partial), str(source), "-lpthread", "-lm"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise RuntimeError(f"cannot build {what}: {exc}") from exc
    if proc.returncode != 0:
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"building {what} failed ({' '.join(cmd)}):\n{proc.stderr}")
    os.replace(partial, target)


LEAK_CASES_SOURCE = SOURCE.with_name("leak_cases.c")


def build_leak_cases(out_dir: Path) -> Path:
    """Compile leak_cases.c (the leak tools comparison's native cases) to ``out_dir/libleak_cases.so``.

    Reused when newer than its source. Not the double and not the engine (see leak_cases.c)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "libleak_cases.so"
    if not (target.exists() and target.stat().st_mtime_ns > LEAK_CASES_SOURCE.stat().st_mtime_ns):
        _compile(LEAK_CASES_SOURCE, target, [], "the leak cases library")
    return target
