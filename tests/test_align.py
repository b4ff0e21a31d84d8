"""Forced alignment: units of a text, the engine's output, repairs, languages; the double as the engine."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import double_env, run_qasr, sine

from qasr.engine import library
from qasr.errors import EXIT_USAGE, EngineError, UsageError
from qasr.pipeline.align import (
    ALIGNER_LANGUAGES,
    AlignedUnit,
    align,
    aligner_language,
    build_alignment,
    check_plausible,
    comparable,
    engine_text,
    even_alignment,
    guess_language,
    load_aligner,
    parse_aligner_output,
    repair_times,
    unit_spans,
)


def words(text: str) -> list[str]:
    return [text[a:b] for a, b in unit_spans(text)]


# -- units ------------------------------------------------------------------------------------


def test_words_split_on_spaces_and_lose_outer_punctuation() -> None:
    assert words("And so, my fellow Americans, ask not...") == ["And", "so", "my", "fellow", "Americans", "ask", "not"]
    assert words("“U.S.” don't -- 3.5% (really?)") == ["U.S", "don't", "3.5", "really"]
    assert words(" -- … !! ") == []


def test_every_cjk_character_is_a_unit_kana_too() -> None:
    assert words("我的电话。一三八") == ["我", "的", "电", "话", "一", "三", "八"]
    assert words("iPhone手机很好") == ["iPhone", "手", "机", "很", "好"]
    assert words("カーナビ・テスト") == ["カ", "ー", "ナ", "ビ", "テ", "ス", "ト"]  # the middle dot is punctuation
    assert words("안녕하세요 세계") == ["안녕하세요", "세계"]  # Korean keeps its spaces


def test_unit_spans_point_into_the_text() -> None:
    text = "Hello, 世界! again"
    for a, b in unit_spans(text):
        assert text[a:b].strip() == text[a:b] and text[a:b]
    assert comparable("Don't!") == "don't" and comparable("U.S") == "us"



def test_the_engine_is_given_our_units_joined_by_single_spaces() -> None:
    assert engine_text("And so, my fellow -- Americans.") == "And so my fellow Americans"
    assert engine_text("你好, world!") == "你 好 world"
    text = "one two three"
    assert engine_text(text, unit_spans(text)[1:]) == "two three"

# -- the engine's output ----------------------------------------------------------------------


def test_json_output_is_milliseconds() -> None:
    raw = '[\n {"start":80,"end":400,"text":"And"},\n {"start":400,"end":1.23457e+06,"text":"so,"}\n]\n'
    assert parse_aligner_output(raw) == [("And", 0.08, 0.4), ("so,", 0.4, 1234.57)]


def test_srt_output_numbered_from_zero_is_read() -> None:
    raw = "0\n00:00:00,080 --> 00:00:00,400\nAnd\n\n1\n00:00:00,400 --> 00:01:02,500\nso,\n\n"
    assert parse_aligner_output(raw) == [("And", 0.08, 0.4), ("so,", 0.4, 62.5)]


@pytest.mark.parametrize("raw", ["", "   ", "[{bad json", "hello world"])
def test_unreadable_output_is_an_engine_error(raw: str) -> None:
    with pytest.raises(EngineError):
        parse_aligner_output(raw)


# -- repair -----------------------------------------------------------------------------------


def test_plausible_times_are_left_alone() -> None:
    times = [(0.08, 0.4), (0.4, 0.72), (0.8, 1.2)]
    fixed, changed, clamped = repair_times(times, 2.0)
    assert fixed == times and changed == 0 and clamped == 0


def test_times_past_the_end_are_clamped_then_spread_back_from_the_end() -> None:
    # the tiny random aligner's output on an 11 s clip
    fixed, changed, clamped = repair_times([(220.48, 220.48)] * 3 + [(349.04, 349.04)], 11.0)
    assert clamped == 4 and changed == 4
    assert all(0 <= s <= e <= 11.0 for s, e in fixed)
    assert [s for s, _ in fixed] == sorted(s for s, _ in fixed)
    assert fixed[-1][1] == pytest.approx(11.0) and fixed[0][0] == pytest.approx(11.0 - 4 * 0.08)


def test_an_out_of_order_time_is_interpolated_between_its_neighbours() -> None:
    fixed, changed, _ = repair_times([(0.1, 0.3), (0.3, 0.5), (0.0, 0.0), (0.7, 0.9), (0.9, 1.1)], 2.0)
    assert changed == 1
    assert fixed[1][1] <= fixed[2][0] <= fixed[2][1] <= fixed[3][0]
    flat = [t for pair in fixed for t in pair]
    assert flat == sorted(flat)


def test_stacked_zero_length_words_get_slots_inside_the_room_they_have() -> None:
    fixed, changed, _ = repair_times([(0.1, 0.3), (0.3, 0.3), (0.3, 0.3), (0.4, 0.6)], 2.0)
    assert changed == 0  # spreading is not a repair of wrong times
    assert fixed[1][0] == pytest.approx(0.3) and fixed[2][1] <= 0.4 + 1e-9
    assert fixed[1][1] > fixed[1][0] and fixed[2][1] > fixed[2][0]


# -- languages --------------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "name"), [("en", "English"), ("ZH", "Chinese"), ("zh-TW", "Chinese"), ("yue", "Cantonese"),
                                             ("japanese", "Japanese"), ("pt_BR", "Portuguese"), ("Spanish", "Spanish")])  # fmt: skip
def test_the_eleven_languages_by_code_or_name(given: str, name: str) -> None:
    assert aligner_language(given) == name


@pytest.mark.parametrize("given", ["th", "Thai", "Arabic", "", "klingon"])
def test_other_languages_are_refused_with_the_list(given: str) -> None:
    with pytest.raises(UsageError) as err:
        aligner_language(given)
    assert "does not support" in str(err.value) and "yue (Cantonese)" in str(err.value)
    assert err.value.exit_code == EXIT_USAGE
    assert len(ALIGNER_LANGUAGES) == 11


def test_guess_language_from_the_script() -> None:
    assert guess_language("And so, my fellow Americans") == "English"
    assert guess_language("我的 iPhone 电话") == "Chinese"
    assert guess_language("カーナビです") == "Japanese"
    assert guess_language("안녕하세요") == "Korean"
    assert guess_language("Привет мир") == "Russian"


# -- matching output to units -----------------------------------------------------------------


def test_alignment_keeps_spans_in_the_original_text() -> None:
    text = "Hello, world!"
    spans = unit_spans(text)
    raw = json.dumps([{"start": 0, "end": 400, "text": "hello"}, {"start": 480, "end": 800, "text": "world"}])
    a = build_alignment(text, spans, raw, "English", 1.0)
    assert [(u.text, u.start, u.end) for u in a.units] == [("Hello", 0.0, 0.4), ("world", 0.48, 0.8)]
    assert text[a.units[1].char_start : a.units[1].char_end] == "world" and not a.unreliable


def test_output_that_does_not_match_the_transcript_is_an_engine_error() -> None:
    spans = unit_spans("one two")
    with pytest.raises(EngineError, match="returned 1 units for the 2 words"):
        build_alignment("one two", spans, '[{"start":0,"end":80,"text":"one"}]', "English", 1.0)
    with pytest.raises(EngineError, match="does not match"):
        build_alignment("one two", spans, '[{"start":0,"end":80,"text":"one"},{"start":80,"end":90,"text":"six"}]', "English", 1.0)


def test_a_transcript_that_cannot_belong_to_the_audio_is_refused() -> None:
    with pytest.raises(UsageError, match="no words"):
        check_plausible([], 3.0, "!!!")
    with pytest.raises(UsageError, match="does not match the audio: 500 words for 2.0 s"):
        check_plausible([(i, i + 1) for i in range(500)], 2.0, "x")
    check_plausible([(i, i + 1) for i in range(30)], 2.0, "x")  # fast speech is fine


def test_even_alignment_skips_pauses_and_is_marked_unaligned() -> None:
    a = even_alignment("one two three four", 0.0, 10.0, speech=[(1.0, 3.0), (7.0, 9.0)])
    assert not a.aligned
    assert a.units[0].start == pytest.approx(1.0) and a.units[-1].end == pytest.approx(9.0)
    for u in a.units:
        assert not (3.0 < u.start < 7.0)  # nothing starts inside the pause
    assert [u.start for u in a.units] == sorted(u.start for u in a.units)


def test_shifted_moves_every_time() -> None:
    u = AlignedUnit("x", 1.0, 2.0, 0, 1).shifted(30.0)
    assert (u.start, u.end) == (31.0, 32.0)


# -- on the test double -----------------------------------------------------------------------


@pytest.fixture()
def engine(double_lib: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in list(os.environ):
        if key.startswith("QASR_DOUBLE_"):
            monkeypatch.delenv(key)
    library.load_library(double_lib)
    return double_lib


def test_align_through_the_binding(engine: Path, aligner_model_file: Path) -> None:
    model = load_aligner(aligner_model_file, "en")
    result = align(model, sine(2.0), "“Hello,” said the man -- to 世界.")
    assert [u.text for u in result.units] == ["Hello", "said", "the", "man", "to", "世", "界"]
    # the double spreads the 7 units over 2 s in 80 ms bins: monotonic, inside the audio
    assert all(0 <= u.start <= u.end <= 2.0 for u in result.units)
    assert [u.start for u in result.units] == sorted(u.start for u in result.units)
    assert result.language == "English" and result.aligned and result.repaired == 0


def test_align_refuses_an_unsupported_language_before_the_engine(engine: Path, aligner_model_file: Path) -> None:
    with pytest.raises(UsageError, match="does not support 'th'"):
        load_aligner(aligner_model_file, "th")


# -- the CLI ----------------------------------------------------------------------------------


@pytest.fixture()
def tone(tmp_path: Path) -> Path:
    path = tmp_path / "tone.wav"
    soundfile.write(str(path), sine(3.0), 16_000)
    return path


def test_cli_align_srt_from_a_text_file(double_lib: Path, tone: Path, tmp_path: Path, aligner_model_file: Path) -> None:
    import srt

    text = tmp_path / "t.txt"
    text.write_text("Hello world. This is a short test.\n", encoding="utf-8")
    r = run_qasr(["align", str(tone), str(text), "--aligner", str(aligner_model_file)], double_env(double_lib, abort_at_exit="1"))
    assert r.returncode == 0, r.stderr
    cues = list(srt.parse(r.stdout))
    assert [c.content for c in cues] == ["Hello world.", "This is a short test."]
    assert cues[0].index == 1 and cues[0].end <= cues[1].start and cues[-1].end.total_seconds() <= 3.0


def test_cli_align_json_words_from_a_string(double_lib: Path, tone: Path, aligner_model_file: Path) -> None:
    r = run_qasr(["align", str(tone), "我的电话号码", "-a", str(aligner_model_file), "-f", "json"], double_env(double_lib))
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["language"] == "Chinese"
    words_out = [w["text"] for s in data["segments"] for w in s["words"]]
    assert words_out == list("我的电话号码")
    assert data["segments"][0]["text"] == "我的电话号码"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-l", "th"], "does not support 'th'"),
        (["-l", "Arabic"], "does not support 'Arabic'"),
    ],
)
def test_cli_align_bad_language(double_lib: Path, tone: Path, aligner_model_file: Path, args: list[str], message: str) -> None:
    r = run_qasr(["align", str(tone), "hello", "-a", str(aligner_model_file), *args], double_env(double_lib))
    assert r.returncode == 2 and message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_cli_align_mismatched_and_empty_text(double_lib: Path, tone: Path, aligner_model_file: Path, asr_model_file: Path) -> None:
    env = double_env(double_lib)
    r = run_qasr(["align", str(tone), " ".join(["word"] * 200), "-a", str(aligner_model_file)], env)
    assert r.returncode == 2 and "does not match the audio: 200 words for 3.0 s" in r.stderr
    r = run_qasr(["align", str(tone), "?!", "-a", str(aligner_model_file)], env)
    assert r.returncode == 2 and "no words to align" in r.stderr
    r = run_qasr(["align", str(tone), "hello", "-a", str(asr_model_file)], env)
    assert r.returncode == 2 and "ForcedAligner" in r.stderr


def test_cli_align_writes_a_file(double_lib: Path, tone: Path, tmp_path: Path, aligner_model_file: Path) -> None:
    import webvtt

    out = tmp_path / "out.vtt"
    r = run_qasr(["align", str(tone), "a <b> & c", "-a", str(aligner_model_file), "-o", str(out)], double_env(double_lib))
    assert r.returncode == 0, r.stderr
    import html

    captions = webvtt.from_string(out.read_text(encoding="utf-8")).captions
    assert [c.text for c in captions] == ["a &lt;b&gt; &amp; c"]  # WebVTT requires &, < and > escaped
    assert html.unescape(captions[0].text) == "a <b> & c"
    assert r.stdout == "" and "wrote" in r.stderr


def test_cli_align_refuses_audio_longer_than_one_engine_call(double_lib: Path, tmp_path: Path, aligner_model_file: Path) -> None:
    path = tmp_path / "long.wav"
    soundfile.write(str(path), np.zeros(16_000 * 60 * 13, np.int16), 16_000)
    r = run_qasr(["align", str(path), "hello", "-a", str(aligner_model_file)], double_env(double_lib))
    assert r.returncode == 2 and "VAD chunking" in r.stderr
