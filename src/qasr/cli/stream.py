"""``qasr stream [SOURCE]``: live transcription from the microphone, stdin PCM or a file, as events.

A thin layer over `qasr.pipeline.stream`: it picks the source, renders the events (a live line on a
terminal, finals on their own lines, or JSON lines), writes finals to ``-o`` as they arrive, and
turns Ctrl-C into the end of the input, so the open utterance still gets its final before exit 130.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Optional

import typer

from qasr.cli.options import CONTEXT, ENGINE, ITN, LANGUAGE, MAX_LENGTH, MAX_TOKENS, MODEL, OPENCC, THREADS, ZH_TW
from qasr.cli.provider_options import PROVIDER

FORMATS = ("text", "jsonl")
STREAM_PROVIDERS = ("qwen3-chatllm",)
#: Why `qasr stream` takes only the engine: what ``--provider faster-whisper`` is told.
ENGINE_ONLY = ("it re-decodes the open utterance every --step with its stable text forced as the start of the answer "
               "(chatllm_set_ai_prefix), which the faster-whisper provider does not offer; use qasr transcribe --provider faster-whisper for files")  # fmt: skip


class _Interruptible:
    """A source that ends, instead of raising, once Ctrl-C was pressed (the decode in flight finishes)."""

    def __init__(self, source: Iterable[Any]) -> None:
        self.source, self.interrupted = source, False
        self.realtime = getattr(source, "realtime", True)
        self.clock = getattr(source, "clock", None)

    def _on_sigint(self, *_: object) -> None:
        if self.interrupted:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.interrupted = True

    def __iter__(self) -> Iterator[Any]:
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            for block in self.source:
                if self.interrupted:
                    return
                yield block
        finally:
            signal.signal(signal.SIGINT, previous)


def _source(source: Optional[str], device: Optional[str], pcm: str, rate: int, channels: int, realtime: bool):  # type: ignore[no-untyped-def]
    from qasr.audio.sources import FileSource, MicrophoneSource, PcmSource
    from qasr.errors import AudioError

    if source == "-":
        return PcmSource(sys.stdin.buffer, pcm=pcm, rate=rate, channels=channels)
    if source is None:
        return MicrophoneSource(int(device) if device and device.isdigit() else device)
    if not Path(source).exists():
        raise AudioError(f"audio file not found: {source}")
    return FileSource(source, realtime=realtime)


class _FinalsFile:
    """``-o FILE``: every final so far, rewritten atomically after each (valid after Ctrl-C or a crash)."""

    def __init__(self, path: Path) -> None:
        from qasr.errors import UsageError

        self.path, self.kind = path, path.suffix.lower().lstrip(".")
        if self.kind not in ("srt", "vtt", "jsonl"):
            raise UsageError(f"-o takes a .srt, .vtt or .jsonl file, not {path.name!r}")
        if not path.parent.is_dir():
            raise UsageError(f"output directory does not exist: {path.parent}")
        self.finals: list[dict[str, Any]] = []

    def add(self, event: Any) -> None:
        from qasr.fileio import write_atomic
        from qasr.pipeline.writers import render_timed_text

        self.finals.append(event.to_dict())
        if self.kind == "jsonl":
            text = "".join(json.dumps(f, ensure_ascii=False) + "\n" for f in self.finals)
        else:
            items = [(f["text"], f["start"], f["end"], f["language"] or "") for f in self.finals]
            text = render_timed_text(items, self.kind, max(f["end"] for f in self.finals))
        write_atomic(self.path, text)


class _Screen:
    """Text on a terminal: the open utterance on a live line (stable, then the unstable tail dimmed),
    finals printed above it. Elsewhere only the finals, one per line."""

    def __init__(self) -> None:
        self.live = None
        if sys.stdout.isatty():
            from rich.console import Console
            from rich.live import Live

            self.console = Console()
            self.live = Live(console=self.console, transient=True, auto_refresh=False)
            self.live.start()

    def show(self, event: Any) -> None:
        if event.type == "final":
            if self.live is not None:
                self.live.update("", refresh=True)
                self.live.console.print(event.text, markup=False, highlight=False)
            elif event.text:
                print(event.text, flush=True)
            return
        if self.live is not None:
            from rich.text import Text

            line = Text(event.stable)
            line.append(event.unstable, style="dim")
            self.live.update(line, refresh=True)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()


def stream(
    source: Optional[str] = typer.Argument(None, help="An audio file, '-' for raw PCM on stdin, or nothing for the microphone."),
    model: Optional[str] = MODEL,
    language: Optional[str] = LANGUAGE,
    context: Optional[str] = CONTEXT,
    device: Optional[str] = typer.Option(None, "--device", help="Input device (index or name; see --list-devices)."),
    list_devices: bool = typer.Option(False, "--list-devices", help="List the input devices and exit."),
    pcm: str = typer.Option("s16le", "--pcm", help="stdin sample format: s16le or f32le."),
    rate: int = typer.Option(16000, "--rate", help="stdin sample rate in Hz (resampled to 16 kHz)."),
    channels: int = typer.Option(1, "--channels", help="stdin channels (interleaved; downmixed)."),
    realtime: bool = typer.Option(True, "--realtime/--no-realtime", help="Play a file at real-time pace, or as fast as it decodes."),
    step: float = typer.Option(1.0, "--step", help="Seconds of audio between partial results."),
    min_silence: int = typer.Option(200, "--min-silence", help="Milliseconds of silence that end an utterance."),
    max_utterance: float = typer.Option(20.0, "--max-utterance", help="Longest utterance in seconds; longer ones are cut at the quietest point."),
    prefix: bool = typer.Option(True, "--prefix/--no-prefix", help="Force the stable text as the start of each re-decode (Qwen3-ASR's recipe)."),
    fmt: str = typer.Option("text", "--format", "-f", help="text (a live line on a terminal) or jsonl (one event per line)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write finals to FILE.srt, .vtt or .jsonl as they arrive."),
    itn: bool = ITN,
    zh_tw: bool = ZH_TW,
    opencc: Optional[str] = OPENCC,
    threads: Optional[int] = THREADS,
    max_length: Optional[int] = MAX_LENGTH,
    max_tokens: Optional[int] = MAX_TOKENS,
    engine: Optional[Path] = ENGINE,
    provider: str = PROVIDER,
) -> None:
    """Transcribe live audio: partial results while someone speaks, a final one per utterance.

    Exit codes: 0 end of input, 2 usage or bad input, 3 engine missing, 4 engine error,
    130 Ctrl-C (after the open utterance's final).
    """
    from qasr.cli.options import call_options, engine_spec
    from qasr.errors import UsageError

    if list_devices:
        from qasr.audio.sources import list_input_devices

        for d in list_input_devices():
            print(f"{d['index']:3d}  {d['name']}  ({d['channels']} ch, {d['rate']:.0f} Hz)")
        return
    if fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    from qasr.providers import make_provider, providers_for

    providers_for(provider, STREAM_PROVIDERS, ENGINE_ONLY)  # refuse faster-whisper before anything opens
    if not model:
        raise UsageError("give a model: --model FILE (or QASR_MODEL)")
    from qasr.audio.endpoint import EndpointOptions
    from qasr.pipeline.stream import StreamOptions

    calls = call_options(context=context, itn=itn, zh_tw=zh_tw, opencc=opencc)
    try:
        options = StreamOptions(
            step=step, prefix=prefix, itn=calls.itn, opencc=calls.opencc, context=calls.context, max_tokens=max_tokens,
            endpoint=EndpointOptions(min_silence=min_silence / 1000, max_utterance=max_utterance),
        )  # fmt: skip
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    finals = _FinalsFile(output) if output is not None else None
    src = _Interruptible(_source(source, device, pcm, rate, channels, realtime))

    from qasr.pipeline.stream import stream as run_stream

    spec = engine_spec(provider=provider, model=model, language=language, threads=threads, max_length=max_length,
                       engine=engine, max_tokens=max_tokens)  # fmt: skip
    asr = make_provider(spec, calls, allowed=STREAM_PROVIDERS, why=ENGINE_ONLY)
    if not asr.live_prefix:  # an auto chain may hold another provider one day: say it, never unwrap it
        raise UsageError(f"provider {asr.name} cannot stream live: {ENGINE_ONLY}")
    screen = _Screen() if fmt == "text" else None
    try:
        for event in run_stream(asr, src, options):
            if screen is not None:
                screen.show(event)
            else:
                print(json.dumps(event.to_dict(), ensure_ascii=False), flush=True)
            if finals is not None and event.type == "final":
                finals.add(event)
    finally:
        if screen is not None:
            screen.close()
    if src.interrupted:
        raise typer.Exit(130)
