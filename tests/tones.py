"""Tone-burst audio for the test double's audio-dependent words (``QASR_DOUBLE_WORDS=audio``), and
a VAD that hears tones: each burst is one word named by its pitch, so a test knows what was said."""

from __future__ import annotations

import numpy as np

RATE = 16_000


class EnergyDetector:
    """A VAD for tones: a frame is speech when its RMS is above 0.01 (Silero does not hear tones).
    ``frames_seen`` counts the frames asked about (how far ahead a chunker has looked)."""

    def __init__(self) -> None:
        self.frames_seen = 0
        self.closed = False

    def probabilities(self, frames: np.ndarray) -> np.ndarray:
        self.frames_seen += len(frames)
        return (np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1)) > 0.01).astype(np.float32)

    def reset(self) -> None: ...

    def close(self) -> None:
        self.closed = True


def tone(hz: float, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def burst_track(utterances: list[int], word: float = 0.4, gap: float = 0.15, pause: float = 0.9) -> tuple[np.ndarray, list[str]]:
    """Utterances of distinct tone words (300 Hz, 325 Hz, ...) and the words the double says for them."""
    parts, words, k = [np.zeros(int(0.5 * RATE), np.float32)], [], 0
    for n in utterances:
        for i in range(n):
            hz = 300 + 25 * k
            parts.append(tone(hz, word))
            words.append(f"w{round(hz / 25)}")
            parts.append(np.zeros(int((gap if i < n - 1 else pause) * RATE), np.float32))
            k += 1
    return np.concatenate(parts), words
