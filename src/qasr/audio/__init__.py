"""Audio in: decode, downmix, resample to 16 kHz, validate, and stage a private WAV for the engine."""

from qasr.audio.decode import (
    DEFAULT_MAX_CHUNK,
    MAX_SECONDS_PER_CALL,
    MIN_SECONDS,
    SAMPLE_RATE,
    Audio,
    as_audio,
    check_one_call,
    from_array,
    load_audio,
    validate,
)

__all__ = ["Audio", "as_audio", "check_one_call", "DEFAULT_MAX_CHUNK", "MAX_SECONDS_PER_CALL", "MIN_SECONDS", "SAMPLE_RATE", "from_array", "load_audio", "validate"]
