"""``qasr batch --cluster local`` against ``qasr transcribe`` of the same files in one process. Prints figures.

    QASR_CHATLLM_LIB=/opt/chatllm/bindings/libchatllm.so \\
    python benchmarks/bench_batch.py --model /tmp/synth/qwen3-asr-0.6b-q4_0.synthetic.bin \\
        [--files 40] [--seconds 30] [--max-tokens 111] [--layouts 1x2,2x1] [--jsonl out.jsonl]

Files: ``--files`` WAVs of ``--seconds`` each, real speech from ../shared/data/jfk.wav repeated with
short pauses when it is there (else tone bursts), each a little different so no two are the same
bytes. Both sides make one engine call per file (the files are no longer than ``--max-chunk``) with
the same ``--max-tokens`` cap (a synthetic model never stops by itself: 6 + 3.5 per audio second is
speech-like). ``transcribe`` runs with ``--threads`` = the cores; each batch layout ``AxT`` is A actors
of T threads. Wall time is the whole command (Ray's start-up, actor start and model loads included);
the ratio is batch wall / transcribe wall (the issue's target: at most 1.10). The load average before
and after each row is printed, since this machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

ROOT = Path(__file__).resolve().parents[1]
SPEECH = ROOT.parent / "shared" / "data" / "jfk.wav"


def make_files(folder: Path, n: int, seconds: float) -> list[Path]:
    """``n`` distinct files of ``seconds`` each: speech with pauses, or tone bursts."""
    rate = 16_000
    if SPEECH.exists():
        speech, src_rate = soundfile.read(str(SPEECH), dtype="float32")
        assert src_rate == rate, "jfk.wav is 16 kHz"
        unit = np.concatenate([speech, np.zeros(rate // 2, np.float32)])
    else:
        t = np.arange(rate) / rate
        unit = np.concatenate([(0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), np.zeros(rate // 2, np.float32)])
    length = int(seconds * rate)
    base = np.tile(unit, length // len(unit) + 1)[:length]
    paths = []
    for i in range(n):
        path = folder / f"f{i:03d}.wav"
        soundfile.write(str(path), base * (1.0 - 0.001 * i), rate)  # distinct bytes, same sound
        paths.append(path)
    return paths


def loadavg() -> float:
    return os.getloadavg()[0]


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    return time.perf_counter() - t0, done.returncode, done.stdout if done.returncode == 0 else done.stderr[-2000:]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--files", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--max-tokens", type=int, default=None, help="default: 6 + 3.5 per audio second")
    ap.add_argument("--layouts", default="1x2,2x1", help="actors x threads, comma-separated")
    ap.add_argument("--skip-transcribe", action="store_true", help="batch layouts only")
    ap.add_argument("--jsonl", type=Path, default=None)
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    tokens = args.max_tokens or int(6 + 3.5 * args.seconds)
    env = {**os.environ}
    qasr = [sys.executable, "-m", "qasr"]
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="qasr-bench-batch-") as tmp:
        files = make_files(Path(tmp), args.files, args.seconds)
        audio = args.files * args.seconds
        print(f"{args.files} files x {args.seconds:.0f} s = {audio / 60:.1f} min audio; model {Path(args.model).name}; "
              f"--max-tokens {tokens}; {cores} cores")  # fmt: skip
        runs: list[tuple[str, list[str]]] = []
        if not args.skip_transcribe:
            runs.append((f"transcribe 1x{cores}", [*qasr, "transcribe", *map(str, files), "-m", args.model, "--max-tokens", str(tokens),
                                                  "-t", str(cores), "-f", "json", "-o", str(Path(tmp) / "single")]))  # fmt: skip
        for layout in args.layouts.split(","):
            a, t = layout.lower().split("x")
            runs.append((f"batch {a}x{t}", [*qasr, "batch", *map(str, files), "-o", str(Path(tmp) / f"batch-{layout}"), "-m", args.model,
                                            "--max-tokens", str(tokens), "--actors", a, "--threads", t, "--cluster", "local", "--json"]))  # fmt: skip
        single = None
        print(f"{'run':<18} {'wall s':>8} {'ratio':>6} {'audio s/s':>10} {'load before':>12} {'load after':>11}")
        for name, cmd in runs:
            before = loadavg()
            wall, code, out = timed(cmd, env)
            after = loadavg()
            if code != 0:
                print(f"{name}: exit {code}: {out}", file=sys.stderr)
                continue
            single = wall if name.startswith("transcribe") else single
            ratio = wall / single if single else None
            row = {"run": name, "wall_seconds": round(wall, 2), "ratio": round(ratio, 3) if ratio else None,
                   "audio_per_second": round(audio / wall, 2), "load_before": round(before, 2), "load_after": round(after, 2),
                   "files": args.files, "seconds": args.seconds, "max_tokens": tokens, "model": Path(args.model).name}  # fmt: skip
            if name.startswith("batch"):
                summary = json.loads(out)
                row["batch_wall_seconds"] = summary["wall_seconds"]
            rows.append(row)
            print(f"{name:<18} {wall:>8.1f} {(f'{ratio:.3f}' if ratio else '-'):>6} {audio / wall:>10.2f} {before:>12.2f} {after:>11.2f}", flush=True)
    batches = [r for r in rows if str(r["run"]).startswith("batch")]
    if batches:
        best = min(batches, key=lambda r: float(r["wall_seconds"]))  # type: ignore[arg-type]
        print(f"best layout: {best['run']} ({best['wall_seconds']} s" + (f", ratio {best['ratio']})" if best["ratio"] else ")"))
    if args.jsonl:
        with args.jsonl.open("a") as fh:
            for r in rows:
                fh.write(json.dumps(r) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
