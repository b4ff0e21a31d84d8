"""Benchmark qasr against chatllm.cpp's own ``main`` CLI on the same model and audio. Prints figures.

    QASR_CHATLLM_LIB=/opt/chatllm/bindings/libchatllm.so \\
    python benchmarks/bench_transcribe.py --model ../shared/models/tiny-asr-a-q4_0.bin \\
        --audio ../shared/data/jfk.wav [--main /opt/chatllm/build/bin/main] [--repeats 5]

(a) one file: ``qasr transcribe`` wall time minus the engine CLI's (target: at most 80 ms of overhead);
(b) ten files in one ``qasr transcribe`` against ten engine-CLI runs (target ratio at most 0.8: we load once);
(c) ``qasr --help`` start-up (target at most 0.3 s), and which heavy modules ``import qasr`` pulls in;
(d) where (a)'s wall time goes: the interpreter, the imports one transcription needs, the engine's model
    load and inference (the record's own figures), and the rest (argument parsing, audio decode and
    staging, engine start, exit);
(e) the library's clean exit (`qasr.engine.exit_guard`): a Python program that loads the model with
    ``qasr.Model``, transcribes ``--repeats`` times in its own process and returns, with the guard and
    without (``QASR_EXIT_GUARD=0``): its exit status, the median per-call time, and the program's wall
    time. The guard is an ``on_exit`` hook installed once, so the per-call figures should match.
Wall times are medians over ``--repeats`` runs; peak RSS comes from each child's rusage.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: What one ``qasr transcribe`` imports before the engine starts (numpy and soundfile come with them).
TRANSCRIBE_IMPORTS = "import qasr.cli.main, qasr.cli.transcribe, qasr.providers.qwen, qasr.pipeline.batch"
HEAVY_MODULES = ("numpy", "soundfile", "soxr", "av", "rich", "ctypes", "matplotlib", "jiwer")


def run_timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int, int]:
    """(wall seconds, peak RSS bytes, exit code) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    return wall, usage.ru_maxrss * 1024, os.waitstatus_to_exitcode(status)


# Upstream's main aborts in static destructors after printing its result (README, known issue 2).
ENGINE_EXIT_ABORT = -6


def median_run(cmd: list[str], repeats: int, env: dict[str, str] | None = None, ok: tuple[int, ...] = (0,)) -> tuple[float, int]:
    walls, peaks = [], []
    for _ in range(repeats):
        wall, peak, rc = run_timed(cmd, env)
        if rc not in ok:
            raise SystemExit(f"command failed with exit {rc}: {' '.join(cmd)}")
        walls.append(wall)
        peaks.append(peak)
    return statistics.median(walls), max(peaks)


def where_it_goes(cmd: list[str], wall: float, repeats: int) -> None:
    """(d): split one transcription's wall time into the parts qasr can and cannot change."""
    import json

    # Both leave through os._exit, as qasr does: the interpreter's own tear-down is not qasr's cost.
    bare, _ = median_run([sys.executable, "-c", "import os; os._exit(0)"], repeats)
    imports, _ = median_run([sys.executable, "-c", f"{TRANSCRIBE_IMPORTS}; import os; os._exit(0)"], repeats)
    loads, infers = [], []
    for _ in range(repeats):
        record = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
        loads.append(record["load_seconds"])
        infers.append(record["inference_seconds"])
    load, infer = statistics.median(loads), statistics.median(infers)
    rest = wall - imports - load - infer
    print("(d) where one transcription's wall time goes (medians)")
    for name, seconds in (("interpreter", bare), ("imports", imports - bare), ("model load", load),
                          ("inference", infer), ("the rest", rest)):
        print(f"    {name:15s} {seconds * 1000:7.1f} ms")
    print("    (the rest: argument parsing, audio decode and staging, engine start and exit)\n")


LIBRARY_PROGRAM = """
import json, statistics, sys, time, qasr
model = qasr.Model(sys.argv[1])
calls = []
for _ in range(int(sys.argv[3])):
    t0 = time.perf_counter(); qasr.transcribe(model, sys.argv[2]); calls.append(time.perf_counter() - t0)
print(json.dumps({"per_call": statistics.median(calls)}), flush=True)
"""


def library_exit(model: str, audio: Path, repeats: int) -> None:
    """(e): the exit status and per-call time of a program using the library, with and without the guard."""
    import json

    print("(e) a Python program using qasr.Model: exit status and per-call cost of the exit guard")
    for label, guard in (("guard on ", "1"), ("guard off", "0")):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", LIBRARY_PROGRAM, model, str(audio), str(repeats)], capture_output=True,
                              text=True, env={**os.environ, "QASR_EXIT_GUARD": guard})  # fmt: skip
        wall = time.perf_counter() - t0
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        per_call = json.loads(lines[-1])["per_call"] * 1000 if lines else float("nan")
        print(f"    {label}       exit {proc.returncode:4d}   {per_call:7.1f} ms per call   {wall:6.3f} s wall")
    print("    (target: exit 0 with the guard; the same per-call time either way)\n")


def find_main(lib: Path, explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    for candidate in (lib.parent.parent / "build" / "bin" / "main", lib.parent / "main"):
        if candidate.is_file():
            return candidate
    raise SystemExit("chatllm.cpp's main CLI not found: build its 'main' target or pass --main PATH")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--audio", required=True)
    parser.add_argument("--main", help="chatllm.cpp's main binary (default: beside the library's build)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--files", type=int, default=10)
    args = parser.parse_args()

    lib_env = os.environ.get("QASR_CHATLLM_LIB")
    if not lib_env:
        raise SystemExit("set QASR_CHATLLM_LIB to a real libchatllm.so")
    lib = Path(lib_env)
    lib = lib / "libchatllm.so" if lib.is_dir() else lib
    engine_cli = find_main(lib, args.main)
    qasr = [sys.executable, "-m", "qasr"]

    with tempfile.TemporaryDirectory(prefix="qasr-bench-") as tmp:
        audio = Path(tmp) / "audio.wav"  # a plain name: the engine CLI puts it on a shell command line
        shutil.copy(args.audio, audio)
        files = []
        for i in range(args.files):
            f = Path(tmp) / f"audio{i}.wav"
            shutil.copy(args.audio, f)
            files.append(str(f))
        # For ASR models upstream's main takes the audio file as the prompt (run_asr_ocr in src/main.cpp).
        cli_cmd = [str(engine_cli), "-m", args.model, "-p", str(audio)]

        print(f"engine CLI : {engine_cli}")
        print(f"library    : {lib}")
        print(f"model      : {args.model}")
        print(f"audio      : {args.audio}")
        print(f"repeats    : {args.repeats} (medians)\n")

        cli_wall, cli_peak = median_run(cli_cmd, args.repeats, ok=(0, ENGINE_EXIT_ABORT))
        our_wall, our_peak = median_run([*qasr, "transcribe", str(audio), "-m", args.model], args.repeats)
        overhead_ms = (our_wall - cli_wall) * 1000
        print("(a) one file")
        print(f"    engine CLI      {cli_wall:7.3f} s wall   {cli_peak / 2**20:6.1f} MiB peak")
        print(f"    qasr transcribe {our_wall:7.3f} s wall   {our_peak / 2**20:6.1f} MiB peak")
        print(f"    overhead        {overhead_ms:7.1f} ms      target <= 80 ms   {'OK' if overhead_ms <= 80 else 'MISSED'}\n")
        where_it_goes([*qasr, "transcribe", str(audio), "-m", args.model, "-f", "json"], our_wall, args.repeats)

        reps = max(1, args.repeats // 2)
        ten_cli = []
        for _ in range(reps):
            t0 = time.perf_counter()
            for _ in range(args.files):
                run_timed(cli_cmd)
            ten_cli.append(time.perf_counter() - t0)
        ten_cli_wall = statistics.median(ten_cli)
        ten_ours, ten_peak = median_run([*qasr, "transcribe", *files, "-m", args.model], reps)
        ratio = ten_ours / ten_cli_wall
        print(f"(b) {args.files} files")
        print(f"    engine CLI x{args.files}   {ten_cli_wall:7.3f} s wall")
        print(f"    qasr, one call  {ten_ours:7.3f} s wall   {ten_peak / 2**20:6.1f} MiB peak")
        print(f"    ratio           {ratio:7.3f}          target <= 0.8     {'OK' if ratio <= 0.8 else 'MISSED'}\n")
        library_exit(args.model, audio, args.repeats)

    help_wall, _ = median_run([*qasr, "--help"], max(args.repeats, 5))
    probe = "import sys, qasr; print(','.join(m for m in %r if m in sys.modules))" % (HEAVY_MODULES,)
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    print("(c) start-up")
    print(f"    qasr --help     {help_wall:7.3f} s wall   target <= 0.3 s   {'OK' if help_wall <= 0.3 else 'MISSED'}")
    print(f"    import qasr loads heavy modules: {loaded or 'none'}")


if __name__ == "__main__":
    main()
