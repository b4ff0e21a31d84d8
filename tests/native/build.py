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

    # Compile under a private name and rename, so concurrent builders never load a half-written file.
    partial = out_dir / f".{LIBRARY_NAME}.{os.getpid()}.tmp"
    cmd = ["cc", "-shared", "-fPIC", "-O1", "-g", "-Wall", "-Werror", *([f'-DQASR_DOUBLE_DEFAULTS="{words}"'] if words else []),
           "-o", str(partial), str(SOURCE), "-lpthread", "-lm"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise RuntimeError(f"cannot build the libchatllm test double: {exc}") from exc
    if proc.returncode != 0:
        partial.unlink(missing_ok=True)
        raise RuntimeError(
            f"building the libchatllm test double failed ({' '.join(cmd)}):\n{proc.stderr}"
        )
    os.replace(partial, target)
    stamp.write_text(words)
    return target
