"""Alignment and subtitles against the real chatllm.cpp engine (QASR_CHATLLM_LIB) and ../shared's tiny models.

Each test runs the engine in child processes (the CLI, or ``python -c`` ending in os._exit):
upstream aborts at interpreter exit once a model was loaded. The tiny models are random-weight:
their transcripts are gibberish and the aligner's times fall far outside the audio, which is exactly
what the repair and fallback paths are for; the assertions are about validity, not accuracy.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import soundfile
import srt
from conftest import SHARED_DATA, SHARED_MODELS, engine_child, requires_real_engine, requires_shared_data, run_qasr

pytestmark = [pytest.mark.real_engine, requires_real_engine, requires_shared_data]

ASR = SHARED_MODELS / "tiny-asr-a-q4_0.bin"
ALIGNER = SHARED_MODELS / "tiny-aligner-q4_0.bin"
JFK = SHARED_DATA / "jfk.wav"
ZH = SHARED_DATA / "zh-phone.wav"


@pytest.fixture(autouse=True)
def _shared_files() -> None:
    for path in (ASR, ALIGNER, JFK, ZH, SHARED_DATA / "jfk.txt", SHARED_DATA / "zh-phone.txt"):
        if not path.exists():
            pytest.skip(f"{path} is absent")


child = engine_child


def check_cues(text: str, duration: float) -> list[srt.Subtitle]:
    cues = list(srt.parse(text))
    assert cues, "no cues"
    for a, b in zip(cues, cues[1:]):
        assert a.start <= a.end <= b.start, (a, b)
    assert all(timedelta(0) <= c.start <= c.end <= timedelta(seconds=duration) for c in cues)
    return cues


def long_input(tmp_path: Path, seconds: float) -> Path:
    """The shared clips joined with 1.5-4 s of silence until ``seconds`` long."""
    clips = [soundfile.read(str(p), dtype="float32")[0] for p in sorted(SHARED_DATA.glob("*.wav"))]
    rng = np.random.default_rng(0)
    pieces, total, k = [], 0, 0
    while total < seconds * 16_000:
        for piece in (np.zeros(int(rng.uniform(1.5, 4.0) * 16_000), np.float32), clips[k % len(clips)]):
            pieces.append(piece)
            total += len(piece)
        k += 1
    out = tmp_path / "long.wav"
    soundfile.write(str(out), np.concatenate(pieces)[: int(seconds * 16_000)], 16_000)
    return out


def test_subtitles_for_jfk(tmp_path: Path) -> None:
    out = tmp_path / "x.srt"
    r = run_qasr(["subtitles", str(JFK), "-o", str(out), "--model", str(ASR), "--aligner", str(ALIGNER)], {**os.environ})
    assert r.returncode == 0, r.stderr
    cues = check_cues(out.read_text(encoding="utf-8"), 11.0)
    assert " ".join(c.content for c in cues).split() == ["nev", "jaello", "nu"]  # tiny-asr-a's planted output
    assert "peak RSS" in r.stderr
    # the random aligner puts every word past the end: the chunk keeps evenly spread times, and says so
    assert "aligner output unreliable" in r.stderr


def test_align_a_known_transcript(tmp_path: Path) -> None:
    r = run_qasr(["align", str(JFK), str(SHARED_DATA / "jfk.txt"), "--aligner", str(ALIGNER), "-f", "json"], {**os.environ})
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    words = [w for s in data["segments"] for w in s["words"]]
    assert len(words) == 22 and words[1]["text"] == "so"  # punctuation is not part of a word
    assert all(0 <= w["start"] <= w["end"] <= 11.0 for w in words)
    assert data["clamped"] == 22 and "were repaired" in r.stderr  # random weights: 220 s for an 11 s clip
    r = run_qasr(["align", str(JFK), str(SHARED_DATA / "jfk.txt"), "--aligner", str(ALIGNER)], {**os.environ})
    assert r.returncode == 0
    assert [c.content for c in check_cues(r.stdout, 11.0)][-1] == "ask what you can do for your country."


@pytest.mark.parametrize("language", ["zh", "yue", "ja"])
def test_every_chinese_character_is_a_unit_in_every_language(language: str) -> None:
    """Upstream splits characters only for "Chinese"; our pre-split transcript makes it so for all."""
    r = run_qasr(["align", str(ZH), str(SHARED_DATA / "zh-phone.txt"), "-a", str(ALIGNER), "-l", language, "-f", "json"], {**os.environ})
    assert r.returncode == 0, r.stderr
    words = [w["text"] for s in json.loads(r.stdout)["segments"] for w in s["words"]]
    assert words == list("我的电话号码是一三八零零一三八零零零")


def test_known_issue_upstream_splits_characters_only_for_chinese() -> None:
    r = child(f"""
        import os, sys, json
        from qasr.engine.model import Model
        from qasr.engine.modelfile import ModelKind
        m = Model({str(ALIGNER)!r}, kind=ModelKind.ALIGNER, language="Cantonese", settings={{"format": "json"}})
        out = "".join(m.align_raw({str(ZH)!r}, "我的电话。号码"))
        print(json.dumps([e["text"] for e in json.loads(out)])); sys.stdout.flush(); os._exit(0)
    """)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == ["我的电话。号码"]  # one unit, punctuation kept: why qasr pre-splits


def test_unsupported_language_and_mismatched_text(tmp_path: Path) -> None:
    r = run_qasr(["align", str(JFK), "hello", "-a", str(ALIGNER), "-l", "Thai"], {**os.environ})
    assert r.returncode == 2 and "does not support 'Thai'" in r.stderr
    r = run_qasr(["align", str(JFK), "word " * 400, "-a", str(ALIGNER)], {**os.environ})
    assert r.returncode == 2 and "does not match the audio" in r.stderr
    out = tmp_path / "x.srt"
    r = run_qasr(["subtitles", str(JFK), "-o", str(out), "-m", str(ASR), "--aligner", str(ALIGNER), "-l", "Thai"], {**os.environ})
    assert r.returncode == 2 and "does not support 'Thai'" in r.stderr and not out.exists()


def test_context_reaches_the_prompt() -> None:
    r = child(f"""
        import os, sys, json
        from qasr.engine.model import Model
        m = Model({str(ASR)!r})
        lib, obj = m.engine.lib, m._handle()
        cursors = []
        for ctx in ("", "And so, my fellow Americans", ""):
            m.restart(system_prompt=ctx)
            text = "".join(m.transcribe_raw({str(JFK)!r}))
            cursors.append(lib.chatllm_get_cursor(obj))
        print(json.dumps({{"cursors": cursors, "text": text}})); sys.stdout.flush(); os._exit(0)
    """)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    plain, with_context, cleared = out["cursors"]
    assert with_context > plain and cleared == plain  # the context is in the prompt, and goes again


def test_long_input_runs_chunked_with_bounded_memory(tmp_path: Path) -> None:
    audio = long_input(tmp_path, 150.0)
    out = tmp_path / "long.srt"
    r = run_qasr(["subtitles", str(audio), "-o", str(out), "-m", str(ASR), "--aligner", str(ALIGNER), "--json"],
                 {**os.environ}, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["chunks"] >= 4 and summary["longest_chunk_seconds"] <= 30.0 and summary["complete"]
    for key in ("parent_peak_rss_bytes", "transcribe_peak_rss_bytes", "align_peak_rss_bytes"):
        assert 10e6 < summary[key] < 400e6, (key, summary[key])
    assert len(check_cues(out.read_text(encoding="utf-8"), 150.0)) == summary["cues"]


def test_ctrl_c_part_way_keeps_a_valid_partial_file(tmp_path: Path) -> None:
    audio = long_input(tmp_path, 240.0)
    out = tmp_path / "part.srt"
    proc = subprocess.Popen(
        [sys.executable, "-m", "qasr", "subtitles", str(audio), "-o", str(out), "-m", str(ASR), "--aligner", str(ALIGNER)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ}, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not out.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert out.exists() and proc.poll() is None, "the run ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    check_cues(out.read_text(encoding="utf-8"), 240.0)
    assert "interrupted: kept" in stderr and "Traceback" not in stderr
