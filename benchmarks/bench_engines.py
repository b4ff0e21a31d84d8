"""Qwen3-ASR engines side by side on one machine: same audio, same threads, same decoded tokens. Prints figures.

    QASR_CHATLLM_LIB=/opt/chatllm/bindings/libchatllm.so \\
    python benchmarks/bench_engines.py --audio ../shared/data/jfk.wav --durations 5,30 --tokens 32 --threads 2 \\
        [--chatllm-model qwen3-asr-0.6b-q4_0] [--crispasr-model crispasr-qwen3-asr-0.6b-q4_k] \\
        [--hf-dir MODELS_DIR/qwen3-asr-0.6b-hf.synthetic] [--qwen-asr /opt/engines/qwen-asr/qwen_asr] \\
        [--main /opt/chatllm/build/bin/main] [--repeats 1] [--jsonl out.jsonl]

Engines (each run is one fresh process; a missing one is a row that says why):

* ``chatllm-qasr``: chatllm.cpp through qasr (`qasr.engine.model.Model`, ``transcribe_raw`` with
  ``max_tokens``); TTFT and decode rate from its token stream;
* ``chatllm-main``: chatllm.cpp's own ``main`` (``--max_new_tokens``), wall time and peak only;
* ``crispasr-qasr``: CrispASR through ``--provider crispasr`` (its library in its own process,
  ``max_new_tokens``). It does not stream tokens, so its TTFT is a one-token call's time and its
  decode rate is (N - 1) / (the N-token call - the one-token call): derived, and said so;
* ``crispasr-cli``: the ``crispasr`` wheel ships no command-line program (a row says so);
* ``qwen-asr``: antirez/qwen-asr, BF16 safetensors, memory-mapped; ``--debug`` prints its own
  mel, encoder, prefill and per-token times, from which TTFT and the decode rate come; its load
  time is from exec to its "Model loaded." line. It has no token cap: it decodes up to 2048 tokens,
  so a synthetic model (which never stops) needs the one-line local patch that reads
  ``QWEN_ASR_MAX_TOKENS`` (docs/engines.md); without it the row decodes 2048 tokens and says so.
* llama.cpp's mtmd: not run here (docs/engines.md says why).

Per row: load time, RSS after load, TTFT, decode tokens/s, RTF (the call's wall time over the audio
time, load excluded; main: its whole run, load included), peak RSS, and the ratio of the RTF and
peak to the median of ``chatllm-qasr``'s repeats. ``load avg`` is /proc/loadavg's 1-minute figure when the row started
and ``busy`` (in the JSON lines) the machine's runnable threads during it, ours included
(`bench_scale.Busy`); ``--wait-quiet S`` waits up to S seconds for an idle machine before each run.
This machine is shared: read every figure with them. Synthetic models decode exactly ``--tokens``
tokens on every engine that takes a cap. The audio is the clip repeated to each duration, with no
forced language (every engine gets the same prompt: the system turn empty).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import Busy, clip, find_main, resolve, run_main, wait_quiet, warm_page_cache  # noqa: E402

MIB = 1 << 20


def load_average() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


# --- children: one engine, one load, one transcription, figures on stdout ----------------------

def child_chatllm(args: argparse.Namespace) -> dict[str, object]:
    import numpy as np

    from qasr.audio.decode import as_audio
    from qasr.engine.model import Model
    from qasr.lab.memory import read_status

    samples = np.asarray(clip(as_audio(args.audio).samples, args.duration))
    m = Model(args.model, threads=args.threads)
    rss_load = read_status().get("rss")
    times: list[float] = []
    t0 = time.perf_counter()
    for _ in m.transcribe_raw(samples, max_tokens=args.tokens):
        times.append(time.perf_counter())
    total = time.perf_counter() - t0
    n = len(times)
    return {"load_seconds": m.load_seconds, "rss_after_load": rss_load, "tokens": n, "call_seconds": total,
            "ttft_seconds": times[0] - t0 if times else None, "ttft_how": "measured (first token)",
            "decode_tokens_per_second": (n - 1) / (times[-1] - times[0]) if n > 1 and times[-1] > times[0] else None,
            "peak_rss": read_status().get("vm_hwm")}


def child_crispasr(args: argparse.Namespace) -> dict[str, object]:
    import numpy as np

    from qasr.audio.decode import as_audio
    from qasr.providers import make_provider
    from qasr.spec import EngineSpec

    samples = np.asarray(clip(as_audio(args.audio).samples, args.duration), dtype=np.float32)
    p = make_provider(EngineSpec(provider="crispasr", model=args.model, threads=args.threads, max_tokens=args.tokens))
    try:
        full = p.call(samples)  # type: ignore[attr-defined]
        one = p.call(samples, max_tokens=1)  # type: ignore[attr-defined]
        rate = (full["tokens"] - 1) / (full["seconds"] - one["seconds"]) if full["seconds"] > one["seconds"] else None
        return {"load_seconds": p.load_seconds, "rss_after_load": p.opened["rss_bytes"], "tokens": full["tokens"],  # type: ignore[attr-defined]
                "call_seconds": full["seconds"], "ttft_seconds": one["seconds"], "ttft_how": "derived (a one-token call)",
                "decode_tokens_per_second": rate, "peak_rss": p.peak_rss_bytes(), "engine_version": p.describe()["engine"]}  # type: ignore[attr-defined]
    finally:
        p.close()


def run_child(kind: str, model: Path, audio: str, duration: float, threads: int, tokens: int) -> dict[str, object]:
    cmd = [sys.executable, __file__, "--child", kind, "--model", str(model), "--audio", audio, "--duration", str(duration),
           "--threads", str(threads), "--tokens", str(tokens)]
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    lines = proc.stdout.strip().splitlines()
    if not lines:
        return {"error": f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"}
    return json.loads(lines[-1])


# --- antirez/qwen-asr: an external program, read as it prints ----------------------------------

_TIMES = {"mel": r"Mel: \d+ frames \((\d+) ms\)", "encoder": r"Encoder: \d+ tokens \((\d+) ms\)",
          "prefill": r"Prefill: \d+ tokens \((\d+) ms\)", "decode": r"Decode: (\d+) tokens \((\d+) ms"}  # fmt: skip


def run_qwen_asr(program: Path, hf_dir: Path, audio: str, duration: float, threads: int, tokens: int) -> dict[str, object]:
    """One run of antirez's engine on the same samples (a WAV we write), timed line by line."""
    import tempfile

    import soundfile

    from qasr.audio.decode import as_audio

    with tempfile.TemporaryDirectory(prefix="qasr-bench-") as tmp:
        wav = Path(tmp) / "clip.wav"
        soundfile.write(str(wav), clip(as_audio(audio).samples, duration), 16000, subtype="PCM_16")
        env = {**os.environ, "QWEN_ASR_MAX_TOKENS": str(tokens)}
        t0 = time.perf_counter()
        proc = subprocess.Popen([str(program), "-d", str(hf_dir), "-i", str(wav), "-t", str(threads), "--debug"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)  # fmt: skip
        out: dict[str, object] = {}
        log = []
        assert proc.stderr is not None
        for line in proc.stderr:
            log.append(line)
            if "Model loaded." in line:
                out["load_seconds"] = time.perf_counter() - t0
                out["rss_after_load"] = _status(proc.pid, "VmRSS")
        _, status, usage = os.wait4(proc.pid, 0)
    text = "".join(log)
    found = {k: re.search(p, text) for k, p in _TIMES.items()}
    if os.waitstatus_to_exitcode(status) != 0 or not all(found.values()):
        return {"error": f"exit {os.waitstatus_to_exitcode(status)}: {text.strip()[-300:]}"}
    mel, enc, pre = (float(found[k].group(1)) / 1000 for k in ("mel", "encoder", "prefill"))  # type: ignore[union-attr]
    n, dec = int(found["decode"].group(1)), float(found["decode"].group(2)) / 1000  # type: ignore[union-attr]
    out.update(tokens=n, call_seconds=mel + enc + pre + dec, ttft_seconds=mel + enc + pre + dec / max(n, 1),
               ttft_how="derived (its own mel+encoder+prefill+one token times)", peak_rss=usage.ru_maxrss * 1024,
               decode_tokens_per_second=n / dec if dec > 0 else None, capped=n == tokens)
    return out


def _status(pid: int, field: str) -> int | None:
    from qasr.processes import status_bytes

    return status_bytes(field, pid)


# --- the parent --------------------------------------------------------------------------------

def rows_for(args: argparse.Namespace, duration: float) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []

    def add(engine: str, fmt: str, size: int | None, measure) -> None:  # type: ignore[no-untyped-def]
        for _ in range(args.repeats):
            waited = wait_quiet(args.wait_quiet)
            load = load_average()
            with Busy() as busy:
                figures = measure()
            rows.append({"engine": engine, "format": fmt, "file_bytes": size, "audio_seconds": duration, "threads": args.threads,
                         "tokens_asked": args.tokens, "load_average": load, "busy": busy.mean, "waited_seconds": waited,
                         **figures})  # fmt: skip

    chat = resolve(args.chatllm_model, 0)
    add("chatllm-qasr", "ggmm q4_0", chat.stat().st_size, lambda: run_child("chatllm", chat, args.audio, duration, args.threads, args.tokens))
    engine_main = find_main(args.main)
    if engine_main:
        def main_row() -> dict[str, object]:
            wall, peak = run_main(engine_main, chat, args.audio, duration, args.threads, 65536, args.tokens)
            return {"tokens": args.tokens, "call_seconds": wall, "peak_rss": peak, "note": "whole run, load included"}
        add("chatllm-main", "ggmm q4_0", chat.stat().st_size, main_row)
    crisp = resolve(args.crispasr_model, 0)
    add("crispasr-qasr", "gguf q4_k", crisp.stat().st_size, lambda: run_child("crispasr", crisp, args.audio, duration, args.threads, args.tokens))
    rows.append({"engine": "crispasr-cli", "audio_seconds": duration, "error": "the crispasr wheel ships no command-line program"})
    if args.qwen_asr and Path(args.qwen_asr).is_file() and args.hf_dir:
        hf = Path(args.hf_dir)
        size = sum(p.stat().st_size for p in hf.glob("*.safetensors"))
        add("qwen-asr", "safetensors bf16", size, lambda: run_qwen_asr(Path(args.qwen_asr), hf, args.audio, duration, args.threads, args.tokens))
    else:
        rows.append({"engine": "qwen-asr", "audio_seconds": duration, "error": "not built (--qwen-asr PROGRAM --hf-dir DIR)"})
    rows.append({"engine": "llama.cpp-mtmd", "audio_seconds": duration, "error": "not run here (docs/engines.md)"})
    for r in rows:
        if "call_seconds" in r:
            r["rtf"] = float(r["call_seconds"]) / duration  # type: ignore[arg-type]
    base = [r for r in rows if r["engine"] == "chatllm-qasr" and "rtf" in r]
    if base:  # against the median of chatllm.cpp-through-qasr's repeats
        rtf, peak = statistics.median(r["rtf"] for r in base), statistics.median(r.get("peak_rss") or 0 for r in base)  # type: ignore[misc]
        for r in rows:
            if "rtf" in r:
                r["rtf_ratio"] = r["rtf"] / rtf  # type: ignore[operator]
                r["peak_ratio"] = r["peak_rss"] / peak if r.get("peak_rss") and peak else None  # type: ignore[operator]
    return rows


def cell(v: object, fmt: str) -> str:
    return format(v, fmt) if isinstance(v, (int, float)) and not isinstance(v, bool) else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", choices=["chatllm", "crispasr"])
    parser.add_argument("--model")
    parser.add_argument("--audio", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "jfk.wav"))
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--durations", default="5,30")
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--chatllm-model", default="qwen3-asr-0.6b-q4_0")
    parser.add_argument("--crispasr-model", default="crispasr-qwen3-asr-0.6b-q4_k")
    parser.add_argument("--hf-dir")
    parser.add_argument("--qwen-asr", default="/opt/engines/qwen-asr/qwen_asr")
    parser.add_argument("--main")
    parser.add_argument("--jsonl")
    parser.add_argument("--wait-quiet", type=float, default=0.0, help="wait up to S seconds before each run for an idle machine")
    args = parser.parse_args()
    if args.child:
        record = (child_chatllm if args.child == "chatllm" else child_crispasr)(args)
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()
        os._exit(0)  # upstream chatllm.cpp aborts at interpreter exit once a model was loaded
    for model in (args.chatllm_model, args.crispasr_model):
        warm_page_cache(resolve(model, 0))
    print(f"# {args.tokens} tokens per call, {args.threads} threads, audio {args.audio} repeated; load average at each row "
          "(a shared machine: figures taken under load)")
    print(f"{'engine':15} {'audio_s':>7} {'load_s':>7} {'rss_load':>8} {'ttft_s':>7} {'dec_t/s':>7} {'rtf':>6} {'peak_MiB':>8} "
          f"{'rtf_x':>6} {'peak_x':>6} {'loadavg':>7} {'busy':>5}")
    out = open(args.jsonl, "a", encoding="utf-8") if args.jsonl else None
    for duration in (float(d) for d in args.durations.split(",")):
        for r in rows_for(args, duration):
            if out:
                out.write(json.dumps(r) + "\n")
                out.flush()
            if "error" in r:
                print(f"{r['engine']:15} {duration:7.0f}  {r['error']}")
                continue
            rss = r.get("rss_after_load")
            print(f"{r['engine']:15} {duration:7.0f} {cell(r.get('load_seconds'), '7.2f')} {cell(rss / MIB if rss else None, '8.1f')} "  # type: ignore[operator]
                  f"{cell(r.get('ttft_seconds'), '7.2f')} {cell(r.get('decode_tokens_per_second'), '7.2f')} {cell(r.get('rtf'), '6.2f')} "
                  f"{cell(r['peak_rss'] / MIB if r.get('peak_rss') else None, '8.1f')} {cell(r.get('rtf_ratio'), '6.2f')} "  # type: ignore[operator]
                  f"{cell(r.get('peak_ratio'), '6.2f')} {cell(r.get('load_average'), '7.2f')} {cell(r.get('busy'), '5.1f')}", flush=True)


if __name__ == "__main__":
    main()
