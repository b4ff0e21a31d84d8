"""A user's program that loaded a model ends with its own exit status (qasr.engine.exit_guard).

The double's QASR_DOUBLE_ABORT_AT_EXIT=1 aborts in a library destructor at normal exit, as upstream
does in its static destructors once a model was loaded; each program below runs in a fresh process.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import double_env

PROGRAM = """
import sys, threading, time
import qasr
model = qasr.Model({model!r})
result = qasr.transcribe(model, {wav!r})
sys.stdout.write("text=" + result.text)   # no newline: must still be flushed
{tail}
"""


def run(double_lib: Path, model: Path, wav: Path, tail: str, **env: str) -> subprocess.CompletedProcess[str]:
    code = PROGRAM.format(model=str(model), wav=str(wav), tail=textwrap.dedent(tail))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**double_env(double_lib, abort_at_exit="1"), **env})  # fmt: skip


@pytest.mark.parametrize(
    ("tail", "code"),
    [
        ("", 0),
        ("sys.exit(3)", 3),
        ("threading.Thread(target=lambda: time.sleep(0.3)).start()", 0),  # a non-daemon thread that ends later
        ("threading.Thread(target=lambda: [c for c in model.transcribe_raw({wav!r})], daemon=True).start()", 0),
    ],
    ids=["returns", "sys.exit(3)", "thread", "daemon-thread-decoding"],
)
def test_a_program_that_loaded_a_model_exits_with_its_own_status(double_lib, asr_model_file, wav_file, tail, code) -> None:  # type: ignore[no-untyped-def]
    proc = run(double_lib, asr_model_file, wav_file, tail.replace("{wav!r}", repr(str(wav_file))))
    assert proc.returncode == code, proc.stderr
    assert proc.stdout == "text=hello world from the test double"
    assert "free(): invalid pointer" not in proc.stderr and proc.stderr == ""


def test_an_uncaught_exception_keeps_its_traceback_and_exit_1(double_lib, asr_model_file, wav_file) -> None:  # type: ignore[no-untyped-def]
    proc = run(double_lib, asr_model_file, wav_file, "raise RuntimeError('boom')")
    assert proc.returncode == 1
    assert "RuntimeError: boom" in proc.stderr and "free(): invalid pointer" not in proc.stderr


def test_without_the_guard_the_destructors_abort(double_lib, asr_model_file, wav_file) -> None:  # type: ignore[no-untyped-def]
    proc = run(double_lib, asr_model_file, wav_file, "", QASR_EXIT_GUARD="0")
    assert proc.returncode == -6 and "free(): invalid pointer" in proc.stderr  # what the guard prevents
