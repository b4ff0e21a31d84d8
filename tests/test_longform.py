"""Long audio on the test double: chunks, two child processes, progressive output, errors, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
import srt
from conftest import SHARED_DATA, double_env, requires_shared_data, run_qasr, sigint_as_ctrl_c, sine

from qasr.audio.vad import Span, VadOptions
from qasr.channel import Sender, read_durable
from qasr.errors import AudioError, EngineError, ModelFileError, UsageError
from qasr.pipeline.chunk_child import main as chunk_child_main
from qasr.pipeline.longform import LongformOptions, run_longform
from qasr.spec import EngineSpec
from qasr.text.post import PostProcess
from qasr.pipeline.writers import get_writer

CHUNKS = [Span(0.5, 4.0), Span(5.0, 8.5), Span(9.0, 11.5)]
WORDS = "hello world from the test double".split()


def fixed_chunks(samples: np.ndarray, options: VadOptions) -> tuple[list[Span], list[Span]]:
    return list(CHUNKS), list(CHUNKS)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, float]] = []

    def start(self, phase: str, total: float, *, label: str | None = None, done: float = 0) -> None:
        self.events.append(("start", phase, total))

    def advance(self, phase: str, seconds: float) -> None:
        self.events.append(("advance", phase, seconds))


@pytest.fixture()
def setup(double_lib: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, asr_model_file: Path, aligner_model_file: Path):  # type: ignore[no-untyped-def]
    """The double as the children's engine, a 12 s input, and a private temp root to check clean-up."""
    for key in list(os.environ):
        if key.startswith("QASR_DOUBLE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("QASR_CHATLLM_LIB", str(double_lib))
    monkeypatch.setenv("QASR_DOUBLE_ABORT_AT_EXIT", "1")  # like upstream: the workers must end with os._exit
    temp_root = tmp_path / "tmp"
    temp_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp_root))
    audio = tmp_path / "in.wav"
    soundfile.write(str(audio), sine(12.0), 16_000)
    options = LongformOptions(EngineSpec(model=str(asr_model_file), aligner=str(aligner_model_file), engine=str(double_lib)))
    return audio, options, temp_root


def test_chunks_are_transcribed_aligned_and_merged(setup, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    audio, options, temp_root = setup
    out = tmp_path / "out.json"
    progress = Recorder()
    result = run_longform(audio, out, get_writer("json"), options, progress, chunker=fixed_chunks)
    assert result.complete and result.chunks == 3 and result.aligned_chunks == 3 and not result.unaligned
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["complete"] is True and [s["text"] for s in data["segments"]] == [" ".join(WORDS)] * 3
    for seg, chunk in zip(data["segments"], CHUNKS):
        assert seg["aligned"] is True
        assert [w["text"] for w in seg["words"]] == WORDS
        # the double's times are chunk-relative; shifted, they fall inside their chunk
        assert all(chunk.start - 1e-3 <= w["start"] <= w["end"] <= chunk.end + 1e-3 for w in seg["words"])
    assert result.parent_peak_rss_bytes > 10e6 and result.transcribe_peak_rss_bytes > 10e6 and result.align_peak_rss_bytes > 10e6
    assert result.peak_rss_bytes == max(result.parent_peak_rss_bytes, result.transcribe_peak_rss_bytes, result.align_peak_rss_bytes)
    phases = [(e, p) for e, p, _ in progress.events if e == "start"]
    assert phases == [("start", "vad"), ("start", "transcribe"), ("start", "align")]
    assert sum(s for e, p, s in progress.events if (e, p) == ("advance", "align")) == pytest.approx(sum(c.seconds for c in CHUNKS))
    assert list(temp_root.iterdir()) == []  # the work directory is gone


def test_itn_and_zh_tw_keep_the_word_times(setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    audio, options, _ = setup
    monkeypatch.setenv("QASR_DOUBLE_TEXT", "我的电话号码是一三八零零一三八零零零")
    monkeypatch.setenv("QASR_DOUBLE_LANGUAGE", "Chinese")
    out = tmp_path / "out.json"
    from dataclasses import replace

    run_longform(audio, out, get_writer("json"), replace(options, post=PostProcess(itn=True, opencc="s2twp")), chunker=fixed_chunks)
    seg = json.loads(out.read_text(encoding="utf-8"))["segments"][0]
    assert seg["text"] == "我的電話號碼是13800138000"
    words = {w["text"]: w for w in seg["words"]}
    number, shi = words["13800138000"], words["是"]
    assert shi["end"] <= number["start"] < number["end"] <= CHUNKS[0].end + 1e-3
    # 11 of the 18 spoken characters: the number spans about 11/18 of the chunk (80 ms bins)
    assert number["end"] - number["start"] == pytest.approx(CHUNKS[0].seconds * 11 / 18, abs=0.25)


def test_a_language_the_aligner_does_not_support_keeps_even_times(setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    audio, options, _ = setup
    monkeypatch.setenv("QASR_DOUBLE_LANGUAGE", "Thai")
    out = tmp_path / "out.json"
    result = run_longform(audio, out, get_writer("json"), options, chunker=fixed_chunks)
    assert result.complete and result.aligned_chunks == 0 and len(result.unaligned) == 3
    assert "does not support 'Thai'" in result.unaligned[0]["reason"]
    data = json.loads(out.read_text(encoding="utf-8"))
    assert [s["aligned"] for s in data["segments"]] == [False] * 3
    assert all(CHUNKS[i].start <= s["start"] <= s["end"] <= CHUNKS[i].end + 1e-3 for i, s in enumerate(data["segments"]))


def test_a_crashing_worker_leaves_a_valid_partial_file(setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    audio, options, temp_root = setup
    monkeypatch.setenv("QASR_DOUBLE_ABORT_AT_CALL", "2")  # the second transcription aborts the child
    out = tmp_path / "out.srt"
    with pytest.raises(EngineError, match="the transcribe process died"):
        run_longform(audio, out, get_writer("srt"), options, chunker=fixed_chunks)
    cues = list(srt.parse(out.read_text(encoding="utf-8")))
    assert [c.content for c in cues] == [" ".join(WORDS)]  # chunk 1, transcribed before the crash
    assert list(temp_root.iterdir()) == []


def test_an_engine_error_is_reported_with_its_words(setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    audio, options, _ = setup
    monkeypatch.setenv("QASR_DOUBLE_ERROR_AT", "inference")
    with pytest.raises(EngineError, match="injected error at inference") as err:
        run_longform(audio, tmp_path / "out.srt", get_writer("srt"), options, chunker=fixed_chunks)
    assert err.value.exit_code == 4


def test_no_words_heard_is_a_clear_error(setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    audio, options, _ = setup
    monkeypatch.setenv("QASR_DOUBLE_TEXT", "")
    with pytest.raises(AudioError, match="no speech recognised"):
        run_longform(audio, tmp_path / "out.srt", get_writer("srt"), options, chunker=fixed_chunks)
    assert not (tmp_path / "out.srt").exists()


def test_bad_arguments_fail_before_any_work(setup, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    audio, options, _ = setup
    from dataclasses import replace

    with pytest.raises(UsageError, match="does not support 'th'"):
        run_longform(audio, tmp_path / "o.srt", get_writer("srt"), replace(options, spec=options.spec.replace(language="th")), chunker=fixed_chunks)
    with pytest.raises(UsageError, match="output directory does not exist"):
        run_longform(audio, tmp_path / "nope" / "o.srt", get_writer("srt"), options, chunker=fixed_chunks)
    with pytest.raises(ModelFileError, match="ForcedAligner"):
        run_longform(audio, tmp_path / "o.srt", get_writer("srt"), replace(options, spec=options.spec.replace(aligner=options.spec.model)),
                     chunker=fixed_chunks)  # fmt: skip


def test_context_reaches_the_worker(setup, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    audio, options, _ = setup
    from dataclasses import replace

    result = run_longform(audio, tmp_path / "o.srt", get_writer("srt"), replace(options, context_chars=50), chunker=fixed_chunks)
    assert result.context_chars == 50 and result.aligned_chunks == 3


def test_durable_copy_keeps_only_complete_records(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    assert read_durable(path) == []
    sender = Sender(None, durable=path)
    sender.send("chunk", index=0)
    sender.send("done", chunks=1)
    sender.close()
    with open(path, "a") as fh:
        fh.write('{"kind": "chunk", "ind')  # a crash in the middle of a line
    assert [dict(m) for m in read_durable(path)] == [{"kind": "chunk", "index": 0}, {"kind": "done", "chunks": 1}]
    assert [m["index"] for m in read_durable(path, "chunk")] == [0]


def test_chunk_child_usage() -> None:
    assert chunk_child_main(["bogus"]) == 2


# -- the CLI, with real speech from ../shared/data for the VAD ----------------------------------


def speech_input(tmp_path: Path, repeats: int, gap: float = 4.0) -> Path:
    """jfk.wav ``repeats`` times with ``gap`` s of silence between: one chunk per repeat."""
    path = SHARED_DATA / "jfk.wav"
    if not path.exists():
        pytest.skip("../shared/data/jfk.wav is absent")
    samples, rate = soundfile.read(str(path), dtype="float32")
    silence = np.zeros(int(gap * rate), np.float32)
    out = tmp_path / "speech.wav"
    soundfile.write(str(out), np.concatenate([silence] + [np.concatenate([samples, silence]) for _ in range(repeats)]), rate)
    return out


@requires_shared_data
def test_cli_subtitles_vtt_and_summary(double_lib: Path, tmp_path: Path, asr_model_file: Path, aligner_model_file: Path) -> None:
    import webvtt

    audio = speech_input(tmp_path, 2)
    out = tmp_path / "out.vtt"
    r = run_qasr(["subtitles", str(audio), "-o", str(out), "-m", str(asr_model_file), "--aligner", str(aligner_model_file), "--json"],
                 double_env(double_lib, abort_at_exit="1"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["chunks"] == 2 and summary["aligned_chunks"] == 2 and summary["complete"] and summary["peak_rss_bytes"] > 0
    captions = webvtt.from_string(out.read_text(encoding="utf-8")).captions
    assert " ".join(c.text for c in captions).split() == WORDS * 2  # the double's 6 words over 11 s: > 7 s, so 2 cues each
    assert all(c.end_in_seconds - c.start_in_seconds <= 7.0 for c in captions)
    assert captions[0].start_in_seconds >= 4.0 - 0.3 and captions[-1].start_in_seconds >= 4.0 + 11.0 + 4.0 - 0.3


@requires_shared_data
def test_cli_subtitles_interrupted_keeps_a_valid_partial_file(double_lib: Path, tmp_path: Path, asr_model_file: Path,
                                                              aligner_model_file: Path) -> None:  # fmt: skip
    audio = speech_input(tmp_path, 6)
    out = tmp_path / "out.srt"
    temp_root = tmp_path / "tmp"
    temp_root.mkdir()
    env = {**double_env(double_lib, abort_at_exit="1", token_delay_ms="250"), "TMPDIR": str(temp_root)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "qasr", "subtitles", str(audio), "-o", str(out), "-m", str(asr_model_file), "--aligner", str(aligner_model_file)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True, preexec_fn=sigint_as_ctrl_c,
    )  # fmt: skip
    deadline = time.monotonic() + 90
    while not out.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert out.exists(), "no output appeared"
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground process group
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    cues = list(srt.parse(out.read_text(encoding="utf-8")))
    assert 1 <= len(cues) < 6
    assert "interrupted: kept" in stderr and "Traceback" not in stderr
    assert list(temp_root.iterdir()) == []  # the work directory is removed, the child is gone


@requires_shared_data
def test_cli_subtitles_bad_inputs(double_lib: Path, tmp_path: Path, asr_model_file: Path, aligner_model_file: Path) -> None:
    env = double_env(double_lib)
    silent = tmp_path / "silence.wav"
    soundfile.write(str(silent), np.zeros(16_000 * 3, np.float32), 16_000)
    base = ["-m", str(asr_model_file), "--aligner", str(aligner_model_file)]
    cases = [
        ([str(silent), "-o", str(tmp_path / "a.srt"), *base], "no speech found"),
        ([str(silent), "-o", str(tmp_path / "a.srt"), *base, "--language", "th"], "does not support 'th'"),
        ([str(silent), "-o", str(tmp_path / "a.srt"), *base, "--max-chunk", "1"], "max chunk must be between"),
        ([str(silent), "-o", str(tmp_path / "a.ass"), *base, "--format", "ass"], "unknown format 'ass'"),
        ([str(tmp_path / "missing.wav"), "-o", str(tmp_path / "a.srt"), *base], "not found"),
    ]
    for args, message in cases:
        r = run_qasr(["subtitles", *args], env)
        assert r.returncode == 2, (args, r.stderr)
        assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "a.srt").exists()
