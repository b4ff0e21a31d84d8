"""Decode any audio file or array to validated 16 kHz mono float32.

soundfile (libsndfile) reads WAV/FLAC/OGG/MP3 fast; PyAV (FFmpeg's libraries, bundled in its wheel)
takes what libsndfile cannot (m4a, mp4, opus in webm, ...). soxr resamples. Validation happens here,
in Python, so the engine only ever sees audio we have checked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qasr.errors import AudioError

SAMPLE_RATE = 16_000
MIN_SECONDS = 0.1
# The longest audio one engine call takes, 8 minutes. Measured with upstream chatllm.cpp 4a4310e and
# tiny-asr-a (the real audio tower's config: max_source_positions 1500, conv_chunksize 500): 500 s
# transcribes, 504 s and longer abort the process (ggml.c:2558 GGML_ASSERT(a->ne[d] == b->ne[d])).
# The 10,000 audio-embedding slots (about 12.8 min at 13 per second) are not the binding limit.
MAX_SECONDS_PER_CALL = 8 * 60
#: The longest engine call by default, in seconds (``CallOptions.max_chunk`` None): longer audio is cut
#: at pauses (`qasr.audio.vad`). The field's window (Whisper's 30 s); an engine call's time per audio
#: second and its memory (~20 MiB per second) grow with its length (docs/performance.md, "Long audio",
#: has the sweep behind it). Here, not in the VAD's module, so a short file's path never imports the VAD.
DEFAULT_MAX_CHUNK = 30.0


@dataclass(frozen=True)
class Audio:
    """Validated audio, ready for the engine: 16 kHz mono float32 in [-1, 1] (not clipped)."""

    samples: np.ndarray
    source: str
    source_sample_rate: int
    source_channels: int

    @property
    def seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def _read_soundfile(path: Path) -> tuple[np.ndarray, int] | None:
    import soundfile

    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError):
        return None
    return data, int(rate)


def _read_pyav(path: Path) -> tuple[np.ndarray, int] | None:
    try:
        import av
    except ImportError:  # pragma: no cover - av is a dependency, but stay graceful
        return None
    try:
        with av.open(str(path)) as container:
            streams = [s for s in container.streams if s.type == "audio"]
            if not streams:
                return None
            stream = streams[0]
            rate = int(stream.rate or stream.codec_context.sample_rate or 0)
            resampler = av.AudioResampler(format="fltp", layout=stream.layout.name if stream.layout else None, rate=rate)
            pieces: list[np.ndarray] = []
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    pieces.append(out.to_ndarray())
            for out in resampler.resample(None):
                pieces.append(out.to_ndarray())
    except (av.error.FFmpegError, ValueError, OSError):  # type: ignore[attr-defined]
        return None
    if rate <= 0:
        return None
    if not pieces:
        return np.zeros((0, 1), dtype=np.float32), rate
    planar = np.concatenate(pieces, axis=1)  # (channels, n)
    return np.ascontiguousarray(planar.T, dtype=np.float32), rate


def _downmix(data: np.ndarray) -> np.ndarray:
    if data.ndim == 1:
        return data
    return data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]


def _resample(mono: np.ndarray, rate: int) -> np.ndarray:
    if rate == SAMPLE_RATE:
        return mono
    import soxr

    return soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ").astype(np.float32, copy=False)


def validate(samples: np.ndarray, source: str, max_seconds: float | None = None) -> None:
    """Raise `AudioError` for audio nothing can take (empty, too short, not finite); and, with
    ``max_seconds``, for audio longer than that (the one-call limit is checked where one engine call
    is made, `check_one_call`, so audio of any length can be decoded and then cut)."""
    if samples.size == 0:
        raise AudioError(f"audio is empty (no samples): {source}")
    seconds = samples.size / SAMPLE_RATE
    if seconds < MIN_SECONDS:
        raise AudioError(f"audio is too short ({seconds * 1000:.0f} ms; at least {MIN_SECONDS * 1000:.0f} ms needed): {source}")
    if not np.isfinite(samples).all():
        raise AudioError(f"audio contains NaN or infinite samples: {source}")
    if max_seconds is not None and seconds > max_seconds:
        raise AudioError(
            f"audio is {seconds / 60:.1f} min long; one engine call takes at most {max_seconds / 60:.1f} min. "
            f"Longer audio needs VAD chunking, which qasr.transcribe, qasr transcribe and qasr subtitles do: {source}"
        )


def check_one_call(audio: Audio) -> None:
    """Raise `AudioError` when ``audio`` is longer than one engine call takes (`MAX_SECONDS_PER_CALL`)."""
    validate(audio.samples, audio.source, MAX_SECONDS_PER_CALL)


def from_array(samples: np.ndarray, sample_rate: int, source: str = "<array>", max_seconds: float | None = None) -> Audio:
    """Validate samples already in memory (frames x channels, or 1-D mono) and bring them to 16 kHz mono."""
    data = np.asarray(samples)
    if data.ndim not in (1, 2):
        raise AudioError(f"audio array must be 1-D (mono) or 2-D (frames x channels), got shape {data.shape}: {source}")
    if not np.issubdtype(data.dtype, np.floating):
        if np.issubdtype(data.dtype, np.integer):
            scale = float(np.iinfo(data.dtype).max) + 1.0
            data = data.astype(np.float32) / scale
        else:
            raise AudioError(f"audio samples must be numbers, got dtype {data.dtype}: {source}")
    if sample_rate <= 0:
        raise AudioError(f"sample rate must be positive, got {sample_rate}: {source}")
    data = data.astype(np.float32, copy=False)
    channels = 1 if data.ndim == 1 else int(data.shape[1])
    if data.size and not np.isfinite(data).all():
        raise AudioError(f"audio contains NaN or infinite samples: {source}")
    mono = _resample(np.ascontiguousarray(_downmix(data)), sample_rate) if data.size else data.reshape(-1)
    validate(mono, source, max_seconds)
    return Audio(samples=mono, source=source, source_sample_rate=sample_rate, source_channels=channels)


def load_audio(path: str | os.PathLike[str], max_seconds: float | None = None) -> Audio:
    """Decode a file (soundfile, then PyAV), downmix, resample to 16 kHz and validate."""
    p = Path(path)
    if not p.exists():
        raise AudioError(f"audio file not found: {p}")
    if p.is_dir():
        raise AudioError(f"audio path is a directory: {p}")
    if not os.access(p, os.R_OK):
        raise AudioError(f"audio file is not readable (permission denied): {p}")
    if p.stat().st_size == 0:
        raise AudioError(f"audio file is empty (0 bytes): {p}")
    decoded = _read_soundfile(p) or _read_pyav(p)
    if decoded is None:
        raise AudioError(f"cannot decode audio (not a supported audio format, or corrupt): {p}")
    data, rate = decoded
    return from_array(data, rate, source=str(p), max_seconds=max_seconds)


def as_audio(audio: object) -> Audio:
    """Accept a path, an `Audio`, or 16 kHz mono samples; decode and validate as needed (any length).

    This is the edge where audio becomes one `Audio`: decoded once, then passed on as it is."""
    if isinstance(audio, Audio):
        return audio
    if isinstance(audio, np.ndarray):
        return from_array(audio, SAMPLE_RATE)
    if isinstance(audio, (str, os.PathLike)):
        return load_audio(audio)
    raise TypeError(f"audio must be a path, a qasr.audio.Audio or a numpy array, not {type(audio).__name__}")
