"""Long-audio subtitles: wall time, chunks and peak RSS of ``qasr subtitles`` on a long input. Prints figures.

    QASR_CHATLLM_LIB=/opt/chatllm/bindings/libchatllm.so python benchmarks/bench_longform.py \\
        [--minutes 20] [--model ../shared/models/tiny-asr-a-q4_0.bin] \\
        [--aligner ../shared/models/tiny-aligner-q4_0.bin] [--max-chunk 30] [--context 0 200]

The input is built at run time from ``../shared/data/*.wav`` (speech clips) joined with 1.5-4 s of
silence until it is ``--minutes`` long; nothing is copied into the repository. Each ``--context``
value is one run (0 = no context), so passing ``0 200`` measures what the previous chunk's text as
context costs. Peak RSS is each process's own VmHWM, as ``qasr subtitles --json`` reports it, and
the output is checked with the ``srt`` package when it is installed.

``--probe-context CHARS`` measures the context question directly instead: in one child process it
transcribes each shared clip with no context and with the previous clip's transcript (its last
CHARS characters, padded from the clips' reference texts) as Qwen3-ASR's system prompt, repeated
``--repeats`` times, and prints the median time per call, the engine's token cursor (prompt plus
output tokens) and whether the text changed. Random-weight models cannot tell whether context helps
accuracy; with them this measures what it costs and that it reaches the prompt.
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
SHARED = ROOT.parent / "shared"
RATE = 16_000


def build_long_audio(minutes: float, out: Path, data_dir: Path = SHARED / "data", seed: int = 0) -> float:
    """Write shared clips joined with silence to ``out`` until ``minutes`` long; return its duration."""
    clips = []
    for wav in sorted(data_dir.glob("*.wav")):
        samples, rate = soundfile.read(str(wav), dtype="float32", always_2d=True)
        if rate == RATE:
            clips.append(samples.mean(axis=1))
    if not clips:
        raise SystemExit(f"no 16 kHz clips in {data_dir}")
    rng = np.random.default_rng(seed)
    target = int(minutes * 60 * RATE)
    with soundfile.SoundFile(str(out), "w", samplerate=RATE, channels=1, subtype="PCM_16") as fh:
        written, k = 0, 0
        while written < target:
            gap = np.zeros(int(rng.uniform(1.5, 4.0) * RATE), dtype=np.float32)
            for piece in (gap, clips[k % len(clips)]):
                piece = piece[: target - written]
                fh.write(piece)
                written += len(piece)
            k += 1
    return target / RATE


def check_srt(path: Path, duration: float) -> str:
    try:
        import srt
    except ImportError:
        return "not checked (srt not installed)"
    cues = list(srt.parse(path.read_text(encoding="utf-8")))
    ok = all(a.end <= b.start for a, b in zip(cues, cues[1:])) and all(c.start <= c.end for c in cues)
    inside = all(c.end.total_seconds() <= duration + 1e-3 for c in cues)
    return f"{len(cues)} cues, monotonic and non-overlapping: {ok}, inside the audio: {inside}"


def run(audio: Path, out: Path, args: argparse.Namespace, context: int) -> dict:
    cmd = [sys.executable, "-m", "qasr", "subtitles", str(audio), "-o", str(out), "--model", str(args.model),
           "--aligner", str(args.aligner), "--max-chunk", str(args.max_chunk), "--context-chars", str(context), "--json"]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"qasr subtitles failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    summary = json.loads(proc.stdout)
    summary["outer_wall_seconds"] = wall
    return summary


PROBE = r"""
import json, os, statistics, sys, time
import numpy as np, soundfile
from qasr.engine.model import Model
from qasr.text.parse import parse_asr_output
model_path, data_dir, chars, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
wavs = sorted(p for p in os.listdir(data_dir) if p.endswith(".wav"))
refs = " ".join(open(os.path.join(data_dir, w[:-4] + ".txt"), encoding="utf-8").read().strip()
                for w in wavs if os.path.exists(os.path.join(data_dir, w[:-4] + ".txt")))
model = Model(model_path)
lib, obj = model.engine.lib, model._handle()
rows = []
for k, wav in enumerate(wavs):
    samples, _ = soundfile.read(os.path.join(data_dir, wav), dtype="float32")
    context = (refs * 3)[k * 37 : k * 37 + chars]
    out = {}
    for label, ctx in (("none", ""), ("context", context)):
        times = []
        for _ in range(repeats):
            model.restart(ctx)  # the context is Qwen3-ASR's system prompt
            t0 = time.perf_counter()
            raw = "".join(model.transcribe_raw(samples))
            times.append(time.perf_counter() - t0)
        out[label] = {"seconds": statistics.median(times), "cursor": lib.chatllm_get_cursor(obj),
                      "text": parse_asr_output(raw).text}
    rows.append({"clip": wav, "audio_seconds": len(samples) / 16000, **out})
print(json.dumps(rows)); sys.stdout.flush(); os._exit(0)
"""


def probe_context(model: Path, chars: int, repeats: int) -> None:
    proc = subprocess.run([sys.executable, "-c", PROBE, str(model), str(SHARED / "data"), str(chars), str(repeats)],
                          capture_output=True, text=True, env=os.environ.copy())  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"probe failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    rows = json.loads(proc.stdout)
    print(f"context probe: {model.name}, {chars} characters of context, median of {repeats} calls")
    print(f"{'clip':<36} {'audio s':>7} {'no ctx s':>9} {'ctx s':>7} {'+%':>6} {'tokens':>7} {'+tokens':>8}  text changed")
    extra = []
    for r in rows:
        a, b = r["none"], r["context"]
        extra.append(b["seconds"] / a["seconds"] - 1)
        print(f"{r['clip']:<36} {r['audio_seconds']:>7.1f} {a['seconds']:>9.3f} {b['seconds']:>7.3f} "
              f"{100 * extra[-1]:>+6.1f} {a['cursor']:>7d} {b['cursor'] - a['cursor']:>+8d}  {a['text'] != b['text']}")  # fmt: skip
    print(f"median extra time per call with context: {100 * sorted(extra)[len(extra) // 2]:+.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--model", type=Path, default=SHARED / "models" / "tiny-asr-a-q4_0.bin")
    parser.add_argument("--aligner", type=Path, default=SHARED / "models" / "tiny-aligner-q4_0.bin")
    parser.add_argument("--max-chunk", type=float, default=30.0)
    parser.add_argument("--context", type=int, nargs="+", default=[0])
    parser.add_argument("--probe-context", type=int, metavar="CHARS", help="measure context cost per call instead (see above)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.probe_context:
        probe_context(args.model, args.probe_context, args.repeats)
        return
    if not os.environ.get("QASR_CHATLLM_LIB"):
        print("note: QASR_CHATLLM_LIB is not set; qasr looks for ./chatllm.cpp", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="qasr-bench-") as tmp:
        audio = Path(tmp) / "long.wav"
        duration = build_long_audio(args.minutes, audio)
        print(f"input: {duration / 60:.1f} min ({audio.stat().st_size / 1e6:.0f} MB WAV) from {SHARED / 'data'}")
        for context in args.context:
            out = Path(tmp) / f"long-{context}.srt"
            s = run(audio, out, args, context)
            print(f"\n--context {context}")
            print(f"  wall {s['outer_wall_seconds']:.1f} s (decode {s['decode_seconds']:.1f}, VAD {s['vad_seconds']:.1f}, "
                  f"ASR {s['transcribe_seconds']:.1f}, aligner {s['align_seconds']:.1f}); RTF {s['outer_wall_seconds'] / duration:.3f}")  # fmt: skip
            print(f"  chunks {s['chunks']} (longest {s['longest_chunk_seconds']:.1f} s), speech {s['speech_seconds']:.0f} s, "
                  f"cues {s['cues']}, aligned chunks {s['aligned_chunks']}")  # fmt: skip
            print(f"  peak RSS: parent {s['parent_peak_rss_bytes'] / 1e6:.0f} MB, ASR child {s['transcribe_peak_rss_bytes'] / 1e6:.0f} MB, "
                  f"aligner child {s['align_peak_rss_bytes'] / 1e6:.0f} MB")  # fmt: skip
            print(f"  output: {check_srt(out, duration)}")


if __name__ == "__main__":
    main()
