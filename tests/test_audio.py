"""Audio decoding, resampling, validation, and the private WAV handed to the engine."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import SHARED_DATA, requires_shared_data, sine

from qasr.audio import SAMPLE_RATE, check_one_call, from_array, load_audio
from qasr.audio.staging import is_shell_safe, staged_wav
from qasr.errors import AudioError


def test_wav_16k_mono_passes_through(wav_file: Path) -> None:
    audio = load_audio(wav_file)
    assert audio.samples.dtype == np.float32
    assert audio.seconds == pytest.approx(1.0)
    assert audio.source_sample_rate == SAMPLE_RATE


def test_stereo_44k_is_downmixed_and_resampled(tmp_path: Path) -> None:
    path = tmp_path / "stereo.flac"
    soundfile.write(str(path), sine(2.0, rate=44_100, channels=2), 44_100)
    audio = load_audio(path)
    assert audio.source_channels == 2 and audio.source_sample_rate == 44_100
    assert audio.seconds == pytest.approx(2.0, abs=0.01)
    # a 440 Hz tone survives resampling: its spectrum peaks at 440 Hz
    spectrum = np.abs(np.fft.rfft(audio.samples))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE / len(audio.samples)
    assert peak_hz == pytest.approx(440, abs=2)


def test_pyav_fallback_reads_m4a(tmp_path: Path) -> None:
    import av

    path = tmp_path / "tone.m4a"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16_000)
        samples = sine(1.0)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = 16_000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    audio = load_audio(path)
    assert audio.seconds == pytest.approx(1.0, abs=0.1)


@requires_shared_data
def test_shared_mp3_decodes_like_the_wav() -> None:
    wav = load_audio(SHARED_DATA / "jfk.wav")
    mp3 = load_audio(SHARED_DATA / "jfk.mp3")
    assert mp3.seconds == pytest.approx(wav.seconds, abs=0.1)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "not found"),
        (lambda p: p.write_bytes(b""), "empty \\(0 bytes\\)"),
        (lambda p: p.write_bytes(b"this is not audio at all" * 10), "cannot decode"),
        (lambda p: soundfile.write(str(p), np.zeros(0, np.float32), 16_000), "empty|cannot decode"),
        (lambda p: soundfile.write(str(p), np.zeros(800, np.float32), 16_000), "too short \\(50 ms"),
    ],
)
def test_bad_audio_files(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError, match=message):
        load_audio(path)


def test_directory_and_unreadable(tmp_path: Path, wav_file: Path) -> None:
    with pytest.raises(AudioError, match="directory"):
        load_audio(tmp_path)
    if os.geteuid() != 0:  # root reads everything
        wav_file.chmod(0)
        with pytest.raises(AudioError, match="not readable"):
            load_audio(wav_file)


def test_non_finite_and_too_long() -> None:
    bad = sine(1.0)
    bad[100] = np.nan
    with pytest.raises(AudioError, match="NaN or infinite"):
        from_array(bad, 16_000)
    long = from_array(np.zeros(16_000 * 60 * 13, np.float32), 16_000)  # any length decodes: it is cut later
    assert long.seconds == 780
    with pytest.raises(AudioError, match="at most 8.0 min"):  # measured: upstream aborts from 504 s
        check_one_call(long)  # the one-call limit lives where one engine call is made
    with pytest.raises(AudioError, match="at most 8.0 min"):
        from_array(np.zeros(16_000 * 60 * 13, np.float32), 16_000, max_seconds=8 * 60)
    check_one_call(from_array(np.zeros(16_000 * 60 * 8, np.float32), 16_000))  # exactly 8 min fits


def test_integer_and_bad_arrays() -> None:
    ints = (sine(1.0) * 32767).astype(np.int16)
    audio = from_array(ints, 16_000)
    assert np.abs(audio.samples).max() == pytest.approx(0.3, abs=0.01)
    with pytest.raises(AudioError, match="1-D"):
        from_array(np.zeros((2, 2, 2)), 16_000)
    with pytest.raises(AudioError, match="sample rate"):
        from_array(sine(), 0)
    with pytest.raises(AudioError, match="must be numbers"):
        from_array(np.array(["a"] * 2000), 16_000)


def test_staged_wav_is_private_safe_and_removed() -> None:
    samples = sine(0.5)
    with staged_wav(samples, raw_only=False) as path:
        assert is_shell_safe(str(path))
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        back, rate = soundfile.read(str(path), dtype="float32")
        assert rate == SAMPLE_RATE and np.array_equal(back, samples)
        assert sorted(p.name for p in path.parent.iterdir()) == ["audio.wav"]  # written once
    assert not path.exists() and not path.parent.exists()


def test_staging_for_the_shim_writes_the_raw_samples_once() -> None:
    samples = sine(0.5)
    with staged_wav(samples, raw_only=True) as path:
        assert sorted(p.name for p in path.parent.iterdir()) == ["audio.f32"]  # no WAV: the shim serves the raw twin
        assert np.array_equal(np.fromfile(path.with_suffix(".f32"), dtype="<f4"), samples)
    assert not path.parent.exists()


@pytest.mark.parametrize("name", ['a"b.wav', "$(touch PWNED).wav", "`id`.wav", "a b.wav", "x;rm.wav", "ü.wav"])
def test_shell_unsafe_names_are_detected(name: str) -> None:
    assert not is_shell_safe(f"/tmp/{name}")


def test_unsafe_tmpdir_falls_back_to_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    weird = tmp_path / "$(touch PWNED)"
    weird.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(weird))
    with staged_wav(sine(0.2)) as path:
        assert str(path).startswith("/tmp/qasr-")
    assert not (weird / "PWNED").exists()
