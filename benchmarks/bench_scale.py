"""Speed and memory at the real sizes, on synthetic models (``qasr models synth``). Prints figures.

    QASR_CHATLLM_LIB=/opt/chatllm/bindings/libchatllm.so \\
    python benchmarks/bench_scale.py --models qwen3-asr-0.6b-q4_0 --audio ../shared/data/jfk.wav \\
        [--durations 5,30,120] [--tokens 64] [--threads 2] [--max-lengths 65536] \\
        [--memory-max-lengths 2048,8192,65536] [--main /opt/chatllm/build/bin/main] [--jsonl out.jsonl]

A synthetic model has the published shapes and random weights, so compute and memory are the real
model's while its transcripts are noise; it never emits a stop token, so every run decodes exactly
``--tokens`` tokens. Per model (a registry name, resolved to ``MODELS_DIR/NAME.synthetic.bin`` and
written there if missing, or a path): file size; then, per thread count, max length and audio
duration, one fresh child process that loads the model through qasr and transcribes once:

* load time (``chatllm_start``), VmRSS / VmSize / VmHWM after load, VmHWM after the transcription;
* TTFT: from the call to the first text chunk (ffmpeg shim, mel, audio encoder, prefill, one token);
* decode tokens/s: (chunks - 1) / (last chunk - first chunk); one chunk is one token for these models;
* RTF: the transcription's wall time / the audio's duration (with exactly ``--tokens`` decoded);
  ``rtf@speech`` is derived: TTFT plus ``--speech-tokens`` tokens per audio second at the measured
  decode rate, what a real transcript of that length would cost;
* a ForcedAligner model (``qwen3-aligner-0.6b-q4_0``) aligns the clip's transcript (``--transcript``,
  default the audio's ``.txt``; repeated and cut as the audio is) through ``qasr.align``: there is
  no TTFT or decode rate (one forward pass), the time is ``align_seconds`` and the RTF;
* the child's whole wall time against chatllm.cpp's own ``main`` doing the same work in the same run
  (``-m MODEL -p WAV -n THREADS --max_length L --max_new_tokens N``, the staged WAV served by qasr's
  ffmpeg shim for both): our overhead as a ratio (goal: at most 1.02 at real scale). main's peak RSS
  is its rusage maximum (it is exec'd from this small process).

``busy`` is the most runnable threads on the whole machine (all containers), averaged over a run,
ours included: about N for N engine threads means nothing else ran; ``--wait-quiet S`` waits up to S
seconds before each run for the machine to go idle. ``--memory-max-lengths`` adds load-only children that show what ``--max_length`` does to memory.
Each model file is read once before its rows, so neither side pays for a cold page cache.
Audio longer than the clip is the clip repeated. Everything runs on the machine as it is: say in
the figures what else was running.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

MIB = 1 << 20
ENGINE_EXIT_ABORT = -6  # upstream's main aborts in static destructors after its output (GUIDE §2)


# --- the child: one load and one transcription, figures on stdout ------------------------------

def child(args: argparse.Namespace) -> None:
    import numpy as np

    from qasr.audio.decode import as_audio
    from qasr.engine.model import Model
    from qasr.engine.modelfile import ModelKind, inspect_model_file
    from qasr.lab.memory import read_status

    audio = as_audio(args.audio)
    samples = clip(audio.samples, args.duration)
    out: dict[str, object] = {"audio_seconds": len(samples) / 16000}
    aligner = inspect_model_file(args.model).kind is ModelKind.ALIGNER
    before = read_status()
    if aligner:
        from qasr.pipeline.align import align, load_aligner

        m = load_aligner(args.model, args.language, threads=args.threads, max_length=args.max_length)
    else:
        m = Model(args.model, threads=args.threads, max_length=args.max_length)
    after = read_status()
    out.update(load_seconds=m.load_seconds, rss_before=before.get("rss"), rss_after_load=after.get("rss"),
               vm_size_after_load=after.get("vm_size"), hwm_after_load=after.get("vm_hwm"),
               engine_params=m.info.param_count if m.info else None)
    if args.duration > 0 and aligner:
        text = clip_transcript(Path(args.transcript).read_text(encoding="utf-8"), audio.seconds, args.duration)
        t0 = time.perf_counter()
        result = align(m, np.asarray(samples), text, language=args.language)
        total = time.perf_counter() - t0
        out.update(aligned_units=len(result.units), align_seconds=total, rtf=total / (len(samples) / 16000),
                   hwm_after_run=read_status().get("vm_hwm"))
    elif args.duration > 0:
        times = []
        t0 = time.perf_counter()
        for _ in m.transcribe_raw(np.asarray(samples), max_tokens=args.tokens):
            times.append(time.perf_counter())
        total = time.perf_counter() - t0
        n = len(times)
        out.update(chunks=n, ttft_seconds=times[0] - t0 if times else None, transcribe_seconds=total,
                   decode_tokens_per_second=(n - 1) / (times[-1] - times[0]) if n > 1 and times[-1] > times[0] else None,
                   rtf=total / (len(samples) / 16000), hwm_after_run=read_status().get("vm_hwm"))
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    os._exit(0)  # upstream aborts at interpreter exit once a model was loaded


def clip_transcript(text: str, clip_seconds: float, seconds: float) -> str:
    """The transcript of `clip` 's audio: the words repeated as the clip is, cut in proportion
    (speech is assumed even across the clip, which is close enough for a timing figure)."""
    words = text.split()
    want = max(1, round(len(words) * seconds / clip_seconds))
    return " ".join((words * (-(-want // len(words))))[:want])


def clip(samples, seconds: float):  # type: ignore[no-untyped-def]
    """The first ``seconds`` of the audio, repeating it as often as needed."""
    import numpy as np

    want = int(seconds * 16000)
    if want <= 0:
        return samples[:16000]
    reps = -(-want // len(samples))
    return np.tile(samples, reps)[:want]


# --- the parent --------------------------------------------------------------------------------

def runnable() -> int:
    """Threads running or runnable on the whole machine now (/proc/loadavg, not per container)."""
    with open("/proc/loadavg") as f:
        return int(f.read().split()[3].split("/")[0])


class Busy:
    """Samples the machine's runnable threads every 0.25 s while a run goes on (ours included)."""

    def __init__(self) -> None:
        import threading

        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.25):
            self.samples.append(runnable() - 1)  # minus this sampler

    def __enter__(self) -> "Busy":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mean(self) -> float | None:
        return statistics.mean(self.samples) if self.samples else None


def wait_quiet(limit: float) -> float:
    """Wait up to ``limit`` seconds until nothing else runs (8 samples in a row over 2 s); the wait."""
    t0, calm = time.perf_counter(), 0
    while limit > 0 and time.perf_counter() - t0 < limit and calm < 8:
        calm = calm + 1 if runnable() <= 1 else 0
        time.sleep(0.25)
    return time.perf_counter() - t0


def run_child(model: Path, audio: str, duration: float, threads: int, max_length: int, tokens: int,
              transcript: str, language: str) -> tuple[dict, float]:
    cmd = [sys.executable, __file__, "--child", "--model", str(model), "--audio", audio, "--duration", str(duration),
           "--threads", str(threads), "--max-length", str(max_length), "--tokens", str(tokens),
           "--transcript", transcript, "--language", language]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"child failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall


def run_main(main: Path, model: Path, audio: str, duration: float, threads: int, max_length: int, tokens: int,
             align_text: str | None = None, language: str = "English", usage_out: dict | None = None) -> tuple[float, int]:
    """chatllm.cpp's main on the same staged WAV (qasr's shim first on PATH, as for our child).

    With ``align_text`` (a ForcedAligner), main gets the audio and that text in one prompt,
    ``{{audio:WAV}}TEXT`` with ``--multimedia_file_tags {{ }}``, and JSON output, as qasr asks for.
    ``usage_out`` receives main's CPU seconds (``cpu``: user + system)."""
    from qasr.audio.decode import as_audio
    from qasr.audio.staging import staged_wav
    from qasr.engine import ffmpeg_shim

    ffmpeg_shim.activate()  # PATH of this process (and so of main) starts with the shim
    samples = clip(as_audio(audio).samples, duration)
    with staged_wav(samples) as wav:
        cmd = [str(main), "-m", str(model), "-n", str(threads), "--max_length", str(max_length), "--hide_banner"]
        if align_text is None:
            cmd += ["-p", str(wav), "--max_new_tokens", str(tokens)]
        else:
            cmd += ["--multimedia_file_tags", "{{", "}}", "-p", f"{{{{audio:{wav}}}}}{align_text}",
                    "--set", "format", "json", "--set", "language", language]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    rc = os.waitstatus_to_exitcode(status)
    if usage_out is not None:
        usage_out["cpu"] = usage.ru_utime + usage.ru_stime
    if rc not in (0, ENGINE_EXIT_ABORT):
        raise SystemExit(f"main failed (exit {rc}): {err.strip()[-500:]}")
    return wall, usage.ru_maxrss * 1024


def align_text(transcript: str, audio: str, duration: float) -> str:
    """The text main is given for the aligner: what qasr's `align` sends for the same clip."""
    from qasr.audio.decode import as_audio
    from qasr.pipeline.align import engine_text

    text = Path(transcript).read_text(encoding="utf-8")
    return engine_text(clip_transcript(text, as_audio(audio).seconds, duration))


def warm_page_cache(path: Path) -> float:
    """Read the model file once, so the first timed run of a row (ours) does not pay for a cold
    page cache that main, run next, would not: seen as first pairs at 1.03-1.10 against 1.01."""
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while f.read(16 << 20):
            pass
    return time.perf_counter() - t0


def resolve(name_or_path: str, seed: int) -> Path:
    """A path as given; a registry name as its synthetic file, written first if missing."""
    given = Path(name_or_path)
    if given.exists():
        return given
    from qasr.engine.synth import catalog

    model, _, _ = catalog.resolve(name_or_path)
    path = catalog.default_path(model)
    if not path.exists():
        r = catalog.write(model.name, path, seed=seed)
        print(f"# wrote {path} ({r.file_bytes:,} B) in {r.seconds:.1f} s", flush=True)
    return path


def find_main(explicit: str | None) -> Path | None:
    if explicit:
        return Path(explicit)
    lib = Path(os.environ.get("QASR_CHATLLM_LIB", ""))
    for candidate in (lib.parent.parent / "build" / "bin" / "main", lib.parent / "main"):
        if candidate.is_file():
            return candidate
    return None


def speech_rtf(med: dict, duration: float, tokens_per_second: float) -> float | None:
    """The RTF a real transcript would have: TTFT plus decoding ``tokens_per_second`` tokens per
    second of audio at the measured rate (derived, not measured)."""
    ttft, rate = med.get("ttft_seconds"), med.get("decode_tokens_per_second")
    if not ttft or not rate or duration <= 0:
        return None
    return (ttft + max(0.0, tokens_per_second * duration - 1) / rate) / duration


def mib(v: object) -> str:
    return f"{v / MIB:8.1f}" if isinstance(v, (int, float)) else f"{'-':>8}"


def num(v: object, fmt: str = "7.2f") -> str:
    return format(v, fmt) if isinstance(v, (int, float)) else "-".rjust(int(fmt.split(".")[0]))


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="qwen3-asr-0.6b-q4_0", help="comma-separated registry names or paths")
    parser.add_argument("--audio", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "jfk.wav"))
    parser.add_argument("--transcript", help="the audio's transcript, for a ForcedAligner model (default: AUDIO with .txt)")
    parser.add_argument("--language", default="English", help="the aligner's language (ForcedAligner models)")
    parser.add_argument("--durations", default="5,30,120", help="seconds of audio per run")
    parser.add_argument("--tokens", type=int, default=64, help="tokens decoded per run (exact for synthetic models)")
    parser.add_argument("--threads", default="2", help="comma-separated engine thread counts")
    parser.add_argument("--max-lengths", default="65536", help="comma-separated --max_length for the timed runs")
    parser.add_argument("--memory-max-lengths", default="", help="comma-separated --max_length for load-only runs")
    parser.add_argument("--main", help="chatllm.cpp's main (default: beside QASR_CHATLLM_LIB's build)")
    parser.add_argument("--no-main", action="store_true", help="skip the engine CLI comparison")
    parser.add_argument("--repeats", type=int, default=1, help="runs per row; medians are printed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speech-tokens", type=float, default=3.5,
                        help="tokens per second of speech for the derived rtf@speech column (English: about 3.5)")
    parser.add_argument("--jsonl", help="also append every record to this JSON-lines file")
    parser.add_argument("--wait-quiet", type=float, default=0.0,
                        help="before each run, wait up to this many seconds for the machine to have nothing else running")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--duration", type=float, default=5.0, help=argparse.SUPPRESS)
    parser.add_argument("--max-length", type=int, default=65536, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.threads = int(args.threads)
        child(args)
        return
    transcript = args.transcript or str(Path(args.audio).with_suffix(".txt"))
    from qasr.engine.modelfile import ModelKind, inspect_model_file

    if not os.environ.get("QASR_CHATLLM_LIB"):
        raise SystemExit("set QASR_CHATLLM_LIB to a real libchatllm.so")
    engine_main = None if args.no_main else find_main(args.main)
    if not args.no_main and engine_main is None:
        raise SystemExit("chatllm.cpp's main not found: pass --main PATH or --no-main")
    sink = open(args.jsonl, "a", encoding="utf-8") if args.jsonl else None

    def emit(record: dict) -> None:
        if sink:
            sink.write(json.dumps(record) + "\n")
            sink.flush()

    print(f"# {time.strftime('%Y-%m-%d %H:%M:%S %Z')}  cpus={os.cpu_count()}  load average {os.getloadavg()}  "
          f"tokens={args.tokens}  repeats={args.repeats}  engine main: {engine_main or 'skipped'}", flush=True)
    for name in args.models.split(","):
        path = resolve(name.strip(), args.seed)
        print(f"\n## {name}: {path.name}  {path.stat().st_size:,} B", flush=True)
        print(f"# page cache warmed in {warm_page_cache(path):.1f} s", flush=True)
        emit({"model": name, "path": str(path), "file_bytes": path.stat().st_size})
        aligner = inspect_model_file(path).kind is ModelKind.ALIGNER
        if aligner and not Path(transcript).is_file():
            raise SystemExit(f"{path.name} is a ForcedAligner: it needs the audio's transcript (--transcript); "
                             f"{transcript} does not exist")
        print("thr  max_len  audio_s  load_s  rss_load  vm_load   ttft_s  dec_tok/s    rtf  peak_MiB  ours_s  main_s  ratio"
              "  main_MiB  rtf@speech", flush=True)
        for threads in ints(args.threads):
            for max_length in ints(args.max_lengths):
                for duration in [float(d) for d in args.durations.split(",") if d.strip()]:
                    rows, walls, mains, main_peaks, busy, waited = [], [], [], [], [], 0.0
                    main_text = align_text(transcript, args.audio, duration) if aligner and engine_main else None
                    for _ in range(args.repeats):
                        waited += wait_quiet(args.wait_quiet)
                        with Busy() as b:
                            row, wall = run_child(path, args.audio, duration, threads, max_length, args.tokens,
                                                  transcript, args.language)
                        rows.append(row)
                        walls.append(wall)
                        busy.append(b.mean)
                        if engine_main:
                            waited += wait_quiet(args.wait_quiet)
                            with Busy() as b:
                                w, peak = run_main(engine_main, path, args.audio, duration, threads, max_length,
                                                   args.tokens, main_text, args.language)
                            mains.append(w)
                            main_peaks.append(peak)
                            busy.append(b.mean)
                    med = {k: statistics.median([r[k] for r in rows if isinstance(r.get(k), (int, float))])
                           for k in rows[0] if all(isinstance(r.get(k), (int, float)) for r in rows)}
                    ours = statistics.median(walls)
                    theirs = statistics.median(mains) if mains else None
                    record = {"model": name, "threads": threads, "max_length": max_length, "duration": duration,
                              **med, "ours_wall": ours, "main_wall": theirs,
                              "ratio": ours / theirs if theirs else None,
                              "main_peak_rss": max(main_peaks) if main_peaks else None,
                              "rtf_at_speech_rate": speech_rtf(med, duration, args.speech_tokens),
                              "runs": rows, "ours_walls": walls, "main_walls": mains,
                              "busy_threads": busy, "waited_seconds": waited}
                    emit(record)
                    print(f"{threads:3d}  {max_length:7d}  {med.get('audio_seconds', 0):7.1f}  {num(med.get('load_seconds'), '6.2f')}"
                          f"  {mib(med.get('rss_after_load'))}  {mib(med.get('vm_size_after_load'))}"
                          f"  {num(med.get('ttft_seconds'))}  {num(med.get('decode_tokens_per_second'), '9.2f')}"
                          f"  {num(med.get('rtf'), '5.2f')}  {mib(med.get('hwm_after_run'))}  {ours:6.1f}"
                          f"  {num(theirs, '6.1f')}  {num(record['ratio'], '5.3f')}  {mib(record['main_peak_rss'])}"
                          f"  {num(record['rtf_at_speech_rate'], '9.2f')}   "
                          f"{'units=' + str(med.get('aligned_units')) if aligner else 'chunks=' + str(med.get('chunks'))}"
                          f" busy={max((x for x in busy if x is not None), default=0):.1f}", flush=True)
        for max_length in ints(args.memory_max_lengths):
            row, _ = run_child(path, args.audio, 0, ints(args.threads)[0], max_length, args.tokens,
                               transcript, args.language)
            emit({"model": name, "memory_only": True, "max_length": max_length, **row})
            print(f"load only, --max_length {max_length:6d}: RSS {mib(row['rss_after_load'])} MiB,"
                  f" VmSize {mib(row['vm_size_after_load'])} MiB, VmHWM {mib(row['hwm_after_load'])} MiB,"
                  f" load {row['load_seconds']:.2f} s", flush=True)
    if sink:
        sink.close()


if __name__ == "__main__":
    main()
