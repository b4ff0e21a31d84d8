"""Live audio sources: blocks of 16 kHz mono float32 samples from a microphone, raw PCM on a pipe, or a
file played at real-time pace.

Each source is an iterable of numpy blocks (about 0.1 s each; the last may be shorter) with a
``name``; iteration ends at the end of the input. What a source cannot deliver (no PortAudio, a
device that fails, a PCM stream cut in the middle of a sample, NaN samples) is an `AudioError` with
one clear sentence, raised after every complete block before it was yielded, so a consumer keeps
everything it already made of them. Time comes from a `Clock`, which tests replace with one that
jumps instead of sleeping.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol

import numpy as np

from qasr.audio.decode import SAMPLE_RATE
from qasr.errors import AudioError, UsageError

BLOCK_SECONDS = 0.1
PCM_FORMATS = {"s16le": np.dtype("<i2"), "f32le": np.dtype("<f4")}
MAX_RATE = 384_000


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class WallClock:
    """Real time: ``time.monotonic`` and ``time.sleep``."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class _Resampler:
    """Downmix and resample blocks to 16 kHz mono as they come (soxr's streaming resampler)."""

    def __init__(self, rate: int, channels: int) -> None:
        if not 1_000 <= rate <= MAX_RATE:
            raise UsageError(f"sample rate must be between 1000 and {MAX_RATE} Hz, got {rate}")
        if not 1 <= channels <= 32:
            raise UsageError(f"channels must be between 1 and 32, got {channels}")
        self.rate, self.channels = rate, channels
        self._stream = None
        if rate != SAMPLE_RATE:
            import soxr

            self._stream = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")

    def __call__(self, frames: np.ndarray, last: bool = False) -> np.ndarray:
        mono = frames.reshape(-1, self.channels).mean(axis=1, dtype=np.float32) if self.channels > 1 else frames.reshape(-1)
        mono = np.ascontiguousarray(mono, dtype=np.float32)
        if self._stream is None:
            return mono
        return self._stream.resample_chunk(mono, last=last)


def _checked(block: np.ndarray, name: str, at: float) -> np.ndarray:
    if not np.isfinite(block).all():
        raise AudioError(f"{name}: NaN or infinite samples at {at:.2f} s of the stream")
    return block


@dataclass
class PcmSource:
    """Raw PCM from a binary stream (stdin): ``s16le`` or ``f32le``, any rate, interleaved channels."""

    stream: BinaryIO
    pcm: str = "s16le"
    rate: int = SAMPLE_RATE
    channels: int = 1
    name: str = "stdin"
    block_seconds: float = BLOCK_SECONDS

    def __post_init__(self) -> None:
        if self.pcm not in PCM_FORMATS:
            raise UsageError(f"unknown PCM format {self.pcm!r}; choose one of: {', '.join(PCM_FORMATS)}")
        self._resample = _Resampler(self.rate, self.channels)

    def __iter__(self) -> Iterator[np.ndarray]:
        dtype = PCM_FORMATS[self.pcm]
        frame_bytes = dtype.itemsize * self.channels
        want = max(1, int(self.rate * self.block_seconds)) * frame_bytes  # whole frames
        pending, heard = b"", 0.0
        while True:
            data = _read_some(self.stream, want - len(pending))
            if data:
                pending += data
                if len(pending) < want:
                    continue
            whole = len(pending) - len(pending) % frame_bytes
            block = self._resample(_as_float(np.frombuffer(pending[:whole], dtype=dtype)), last=not data)
            pending = pending[whole:]
            if len(block):
                yield _checked(block, self.name, heard)
                heard += len(block) / SAMPLE_RATE
            if not data:
                break
        if pending:
            raise AudioError(
                f"{self.name}: the PCM stream ended inside a sample frame ({len(pending)} stray bytes; "
                f"{self.pcm} with {self.channels} channel(s) is {frame_bytes} bytes a frame): truncated, or not {self.pcm}?"
            )


def _read_some(stream: BinaryIO, n: int) -> bytes:
    """Up to ``n`` bytes, returning early with what a pipe has (``read1``) so blocks are not held back."""
    reader = getattr(stream, "read1", None)
    return reader(n) if reader is not None else stream.read(n)


def _as_float(samples: np.ndarray) -> np.ndarray:
    if samples.dtype.kind == "i":
        return samples.astype(np.float32) / 32768.0
    return samples.astype(np.float32)


@dataclass
class FileSource:
    """A file decoded whole, then played block by block: at real-time pace (``realtime``) or at once."""

    path: str
    realtime: bool = True
    clock: Clock | None = None
    block_seconds: float = BLOCK_SECONDS

    @property
    def name(self) -> str:
        return str(self.path)

    def __iter__(self) -> Iterator[np.ndarray]:
        from qasr.audio.decode import load_audio

        samples = load_audio(self.path, max_seconds=None).samples
        clock = self.clock or WallClock()
        step = max(1, int(SAMPLE_RATE * self.block_seconds))
        t0 = clock.now()
        for offset in range(0, len(samples), step):
            block = samples[offset : offset + step]
            if self.realtime:  # a block is there once its last sample has been "spoken"
                clock.sleep(t0 + (offset + len(block)) / SAMPLE_RATE - clock.now())
            yield block


class MicrophoneSource:
    """The default input device (or ``device``) through sounddevice / PortAudio."""

    def __init__(self, device: int | str | None = None, block_seconds: float = BLOCK_SECONDS) -> None:
        sd = _sounddevice()
        try:
            info = sd.query_devices(device, "input")
        except (ValueError, sd.PortAudioError) as exc:
            raise AudioError(f"no usable input device {device if device is not None else '(default)'}: {exc}") from None
        self.device, self.block_seconds = device, block_seconds
        self.name = f"microphone {info['name']}"
        self.rate = int(info["default_samplerate"])
        self._resample = _Resampler(self.rate, 1)

    def __iter__(self) -> Iterator[np.ndarray]:
        sd = _sounddevice()
        blocks: queue.Queue[np.ndarray | None] = queue.Queue()
        failures: list[str] = []

        def callback(indata, _frames, _time, status) -> None:  # type: ignore[no-untyped-def]
            if status.input_overflow:
                failures.append("input overflow: samples were lost (the machine is too slow to keep up)")
            blocks.put(indata[:, 0].copy())

        try:
            stream = sd.InputStream(device=self.device, channels=1, samplerate=self.rate, dtype="float32",
                                    blocksize=int(self.rate * self.block_seconds), callback=callback)  # fmt: skip
            stream.start()
        except sd.PortAudioError as exc:
            raise AudioError(f"cannot open {self.name}: {exc}") from None
        try:
            while True:
                try:
                    block = blocks.get(timeout=2.0)
                except queue.Empty:
                    raise AudioError(f"{self.name} stopped delivering audio (no samples for 2 s)") from None
                if failures:
                    raise AudioError(f"{self.name}: {failures[0]}")
                yield self._resample(block)
        finally:
            stream.abort()
            stream.close()


def _sounddevice():  # type: ignore[no-untyped-def]
    try:
        import sounddevice
    except ImportError:
        raise AudioError("microphone input needs sounddevice: pip install 'qasr[mic]'") from None
    except OSError as exc:  # the package is there, PortAudio is not
        raise AudioError(f"microphone input needs PortAudio (Debian: apt-get install libportaudio2): {exc}") from None
    return sounddevice


def list_input_devices() -> list[dict[str, object]]:
    """The input devices PortAudio sees: index, name, channels, default rate."""
    sd = _sounddevice()
    return [
        {"index": i, "name": d["name"], "channels": d["max_input_channels"], "rate": d["default_samplerate"]}
        for i, d in enumerate(sd.query_devices())
        if d["max_input_channels"] > 0
    ]
