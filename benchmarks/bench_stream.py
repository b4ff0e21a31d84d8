"""Live streaming figures on real speech: latency, real-time lag over a long session, CPU, engine calls.

    QASR_CHATLLM_LIB=/opt/chatllm/bindings/libchatllm.so \\
    python benchmarks/bench_stream.py --model ../shared/models/tiny-asr-a-q4_0.bin [--minutes 10] [--no-realtime]

The stream is the speech clips of ../shared/data, one after another with 1.5 s of silence between
them, repeated to ``--minutes`` of audio, played at real-time pace (so a 10-minute run takes 10
minutes) through `qasr.pipeline.stream` with Silero VAD in its own process. Printed:

* endpoint latency: end of speech (the utterance's end minus the pad) to its final event;
* partial latency: the engine call of each partial, and how long after its audio it arrived;
* lag behind real time, per minute of the stream (target: the last minute no slower than the first);
* CPU share while keeping up (this process and its children, over the wall time);
* engine calls per second of audio;
* where an engine call's time goes, for partials and finals apart: the audio it hears, the time to
  its first chunk (the audio encoder over the whole utterance and the prompt's prefill), the time
  after it (the generated tokens), and how many chunks;
* with ``--tokens-per-second R`` each engine call is capped at a speech-like ``6 + R x seconds`` of
  its audio: a synthetic full-size model (``qasr models synth``) never stops by itself, so without
  a cap its calls run to the engine's limit and the figures say nothing about speech;
* with the test double as the engine (QASR_DOUBLE_WORDS=audio is set for it), the word difference
  between the streamed finals and `qasr.transcribe` of the same audio (target: identical). With a
  real model the comparison is not made: the tiny models say the same words for any audio.

Figures depend on the machine being otherwise idle: ggml's threads share the 2 cores with anything else.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
DATA = ROOT.parent / "shared" / "data"
CLIPS = ("jfk.wav", "librispeech-1995-1837-0001.wav", "aishell-BAC009S0724W0121.wav", "hello.wav", "zh-phone.wav")


def build_stream(minutes: float, out: Path) -> float:
    import soundfile

    from qasr.audio import load_audio

    clips = [load_audio(DATA / c).samples for c in CLIPS if (DATA / c).exists()]
    if not clips:
        raise SystemExit(f"no speech clips in {DATA}")
    gap = np.zeros(int(1.5 * 16_000), np.float32)
    parts, total, i = [], 0, 0
    while total < minutes * 60 * 16_000:
        parts += [clips[i % len(clips)], gap]
        total += len(clips[i % len(clips)]) + len(gap)
        i += 1
    samples = np.concatenate(parts)
    soundfile.write(str(out), samples, 16_000)
    return len(samples) / 16_000


def cpu_seconds() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def time_calls(model: object, per_second: float | None) -> list[dict[str, float]]:
    """Wrap ``model.transcribe_raw`` to record each call (audio seconds, time to the first chunk, the
    rest, chunks) and, with ``per_second``, cap its tokens at ``6 + per_second x`` its audio seconds."""
    from qasr.audio import as_audio

    raw, calls = model.transcribe_raw, []  # type: ignore[attr-defined]

    def timed(audio: object, **kw: object):  # type: ignore[no-untyped-def]
        piece = as_audio(audio)
        if per_second is not None:
            kw["max_tokens"] = int(6 + per_second * piece.seconds)
        t0 = time.perf_counter()
        first, n = None, 0
        for chunk in raw(piece, **kw):
            first = time.perf_counter() if first is None else first
            n += 1
            yield chunk
        end = time.perf_counter()
        calls.append({"seconds": piece.seconds, "first": (first or end) - t0, "rest": end - (first or end), "chunks": n})

    model.transcribe_raw = timed  # type: ignore[attr-defined]
    return calls


def show_calls(calls: list[dict[str, float]], events: list[object]) -> None:
    """Medians of the engine calls behind the partials and behind the finals. Calls and events are
    matched in order by their time (a final with no text makes a call and no event)."""
    kinds, k = [], 0
    for event in events:
        took = getattr(event, "decode_seconds", 0.0)
        while took > 0 and k < len(calls) and abs(calls[k]["first"] + calls[k]["rest"] - took) > 0.01:
            kinds.append("unshown")
            k += 1
        if took > 0 and k < len(calls):
            kinds.append(event.type)  # type: ignore[attr-defined]
            k += 1
    for kind in ("partial", "final"):
        rows = [c for c, found in zip(calls, kinds) if found == kind]
        if rows:
            def med(key: str) -> float:
                return statistics.median(r[key] for r in rows)

            print(f"{kind + ' calls':<12}: {len(rows)}, median audio {med('seconds'):.1f} s, first chunk {med('first'):.3f} s "
                  f"(encoder + prefill), then {med('rest'):.3f} s for {med('chunks'):.0f} chunks; "
                  f"p95 whole call {pct([r['first'] + r['rest'] for r in rows], 95):.3f} s")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--step", type=float, default=1.0)
    parser.add_argument("--min-silence", type=int, default=200, help="ms of silence that close an utterance")
    parser.add_argument("--no-prefix", action="store_true", help="local agreement instead of forced prefixes")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--tokens-per-second", type=float, help="cap each call at 6 + this x its audio seconds (synthetic models)")
    parser.add_argument("--max-utterance", type=float, default=20.0, help="seconds an utterance may last before it is cut")
    args = parser.parse_args()

    from qasr.engine import library

    is_double = library.load_library().is_test_double
    if is_double:
        os.environ["QASR_DOUBLE_WORDS"] = "audio"  # read at each call: the double's words follow the audio
    from qasr import Model, transcribe
    from qasr.audio.sources import FileSource
    from qasr.pipeline.stream import StreamOptions, stream

    model = Model(args.model, language="English", threads=args.threads)
    calls = time_calls(model, args.tokens_per_second)
    with tempfile.TemporaryDirectory(prefix="qasr-bench-stream-") as tmp:
        path = Path(tmp) / "session.wav"
        seconds = build_stream(args.minutes, path)
        print(f"engine      : {library.load_library().path}{' (test double)' if is_double else ''}")
        print(f"model       : {args.model}")
        print(f"stream      : {seconds / 60:.1f} min of audio ({', '.join(CLIPS)} with 1.5 s gaps), "
              f"{'real-time pace' if args.realtime else 'as fast as it decodes'}, step {args.step} s, "
              f"{'local agreement' if args.no_prefix else 'forced prefixes'}, min silence {args.min_silence} ms, "
              f"max utterance {args.max_utterance:g} s, threads {model.threads or 'engine default'}, "
              f"cap {'none' if args.tokens_per_second is None else f'6 + {args.tokens_per_second:g} tokens per audio second'}\n")  # fmt: skip
        from qasr.audio.endpoint import EndpointOptions

        options = StreamOptions(step=args.step, prefix=not args.no_prefix, endpoint=EndpointOptions(min_silence=args.min_silence / 1000, max_utterance=args.max_utterance))
        wall0, cpu0 = time.monotonic(), cpu_seconds()
        events = list(stream(model, FileSource(str(path), realtime=args.realtime), options, live=args.realtime))
        wall, cpu = time.monotonic() - wall0, cpu_seconds() - cpu0
        finals = [e for e in events if e.type == "final"]
        partials = [e for e in events if e.type == "partial"]
        pad = options.endpoint.pad
        print(f"events      : {len(finals)} finals, {len(partials)} partials; "
              f"{len(events) / seconds:.2f} engine calls per second of audio")  # fmt: skip
        if args.realtime:
            endpoint = [e.audio_time + (e.lag or 0) - (e.end - pad) for e in finals]
            print(f"endpoint    : median {statistics.median(endpoint):.3f} s, p95 {pct(endpoint, 95):.3f} s "
                  f"(end of speech to final; includes the {options.endpoint.min_silence:.2f} s of silence that closes it)")
            late = [e.lag or 0.0 for e in partials]
            print(f"partials    : engine call median {statistics.median([e.decode_seconds for e in partials]):.3f} s, "
                  f"delivered {statistics.median(late):.3f} s (p95 {pct(late, 95):.3f} s) after their audio")  # fmt: skip
            per_minute: dict[int, list[float]] = {}
            for e in events:
                per_minute.setdefault(int(e.audio_time // 60), []).append(e.lag or 0.0)
            row = "  ".join(f"{m + 1}: {statistics.median(v):.3f}" for m, v in sorted(per_minute.items()))
            print(f"lag/minute  : median seconds behind real time per minute of the stream: {row}")
            first, last = per_minute[min(per_minute)], per_minute[max(per_minute)]
            verdict = "OK" if statistics.median(last) <= statistics.median(first) + 0.05 else "MISSED"
            print(f"              last minute {statistics.median(last):.3f} s vs first {statistics.median(first):.3f} s   {verdict}")
        else:
            print(f"speed       : {seconds / wall:.1f}x real time")
        show_calls(calls, events)
        print(f"cpu         : {cpu / wall:.0%} of one core over {wall:.0f} s wall (this process and the VAD)")
        if is_double:
            import jiwer

            from qasr.audio import load_audio

            samples = load_audio(path, max_seconds=None).samples
            streamed = " ".join(e.text for e in finals)
            spans = " ".join(transcribe(model, samples[int(e.start * 16_000) : int(e.end * 16_000)]).text for e in finals)
            error = jiwer.wer(spans, streamed) if spans else float("nan")
            print(f"vs offline  : word difference {error:.2%} against `transcribe` of the same utterances "
                  f"({len(streamed.split())} words)   {'OK' if error == 0 else 'MISSED'}")  # fmt: skip
            whole = transcribe(model, path, max_chunk=600.0).text
            print(f"              {jiwer.wer(whole, streamed):.2%} against `transcribe` of the whole file ({len(whole.split())} words): "
                  "the double's words are energy bursts, and a burst that runs through a pause the VAD cuts at is two words")  # fmt: skip
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
