"""Cue cutting and the subtitle writers; outputs are read back with the srt and webvtt-py packages."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import srt
import webvtt
from hypothesis import given, settings
from hypothesis import strategies as st

from qasr.pipeline.align import AlignedUnit, Alignment, even_alignment, unit_spans
from qasr.pipeline.subtitles import Cue, CueRules, cut, fix_timing, layout, pieces, width
from qasr.pipeline.writers import FORMATS, get_writer, write_atomic

JFK = "And so, my fellow Americans, ask not what your country can do for you, ask what you can do for your country."


def aligned(text: str, times: list[tuple[float, float]] | None = None, seconds: float = 10.0) -> Alignment:
    """An alignment of ``text`` with the given unit times (default: evenly over ``seconds``)."""
    if times is None:
        return even_alignment(text, 0.0, seconds)
    spans = unit_spans(text)
    assert len(spans) == len(times)
    units = tuple(AlignedUnit(text[a:b], s, e, a, b) for (a, b), (s, e) in zip(spans, times))
    return Alignment(text, units, "English", seconds)


def test_width_counts_wide_characters_twice() -> None:
    assert width("hello") == 5 and width("我的电话") == 8 and width("ＡＢ") == 4 and width("é") == 1


def test_pieces_carry_punctuation_and_spacing_from_the_text() -> None:
    ps = pieces(aligned("“Hello,” she said -- quietly. 我的「电话」。"))
    assert [p.text for p in ps] == ["“Hello,”", "she", "said --", "quietly.", "我", "的", "「电", "话」。"]
    assert [p.space_before for p in ps] == [False, True, True, True, True, False, False, False]


def test_lines_never_exceed_the_width_and_cues_never_exceed_the_lines() -> None:
    rules = CueRules(max_line_width=20, max_lines=2, max_duration=100)
    cues = cut(aligned(" ".join([JFK] * 3), seconds=60), rules)
    assert len(cues) > 3
    for c in cues:
        assert 1 <= len(c.lines) <= 2
        assert all(width(line) <= 20 for line in c.lines)
    assert " ".join(c.plain for c in cues) == " ".join([JFK] * 3)  # nothing lost, nothing invented


def test_chinese_lines_hold_half_as_many_characters() -> None:
    text = "广州市房地产中介协会分析" * 4
    cues = cut(aligned(text, seconds=20), CueRules(max_line_width=16, max_duration=100))
    assert all(len(line) <= 8 for c in cues for line in c.lines)
    assert "".join(c.plain for c in cues) == text  # no spaces between Chinese characters


def test_a_cue_ends_at_a_sentence_end() -> None:
    cues = cut(aligned("Hello world. This is a short test."))
    assert [c.plain for c in cues] == ["Hello world.", "This is a short test."]


def test_a_long_sentence_breaks_after_a_comma() -> None:
    cues = cut(aligned(JFK, seconds=10.0))  # too wide for one cue
    assert [c.plain for c in cues] == [JFK[:70], JFK[71:]]
    assert cues[0].lines == ("And so, my fellow Americans, ask not", "what your country can do for you,")
    cues = cut(aligned(JFK, seconds=11.0))  # and now also too long for 7 s
    assert [c.plain for c in cues] == ["And so, my fellow Americans,", "ask not what your country can do for you,",
                                       "ask what you can do for your country."]  # fmt: skip


def test_max_duration_and_pauses_start_new_cues() -> None:
    times = [(0.0, 0.5), (0.5, 1.0), (4.0, 4.5), (4.5, 5.0)]  # a 3 s pause after the second word
    assert [c.plain for c in cut(aligned("one two three four", times))] == ["one two", "three four"]
    slow = [(i * 2.0, i * 2.0 + 1.9) for i in range(6)]
    cues = cut(aligned("a b c d e f", slow, seconds=12), CueRules(max_duration=5.0, max_pause=10))
    assert all(c.end - c.start <= 5.0 for c in cues) and len(cues) == 3


def test_line_layout_prefers_balanced_lines_broken_at_punctuation() -> None:
    ps = pieces(aligned("one two three, four five six seven"))
    lines = layout(ps, CueRules(max_line_width=24))
    assert lines == ["one two three,", "four five six seven"]
    assert layout(ps, CueRules(max_line_width=8, max_lines=2)) is None


def test_fix_timing_makes_cues_monotonic_separate_and_inside_the_audio() -> None:
    cues = [Cue(0.0, 0.1, ("a",)), Cue(0.1, 0.2, ("b",)), Cue(0.15, 5.0, ("c",)), Cue(4.9, 30.0, ("d",))]
    fixed = fix_timing(cues, 10.0, CueRules(min_duration=0.8, min_gap=0.08))
    for a, b in zip(fixed, fixed[1:]):
        assert a.start <= a.end <= b.start
    assert all(0 <= c.start <= c.end <= 10.0 for c in fixed)
    assert fixed[-1].end == 10.0


def test_short_cues_are_stretched_where_there_is_room_and_gaps_kept() -> None:
    cues = [Cue(1.0, 1.2, ("a",)), Cue(5.0, 5.1, ("b",)), Cue(5.15, 9.0, ("c",))]
    fixed = fix_timing(cues, 10.0, CueRules(min_duration=0.8, min_gap=0.1))
    assert fixed[0].end == pytest.approx(1.8)
    assert fixed[1].end == pytest.approx(5.05)  # ends min_gap before the next cue
    assert fixed[2].start - fixed[1].end >= 0.1 - 1e-9


units_strategy = st.lists(
    st.tuples(st.sampled_from(["hello", "world,", "a", "longerword.", "我", "的", "电话", "x?"]), st.floats(0, 30), st.floats(0, 3)),
    min_size=1, max_size=60,
)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(units_strategy, st.floats(1.0, 40.0))
def test_any_alignment_gives_valid_subtitles(items: list[tuple[str, float, float]], duration: float) -> None:
    """Whatever the times (garbage included), cues are valid SRT: ordered, not overlapping, inside the audio."""
    text = " ".join(w for w, _, _ in items)
    spans = unit_spans(text)
    from qasr.pipeline.align import repair_times

    raw = [(s, s + d) for _, s, d in items][: len(spans)]
    raw += [(0.0, 0.0)] * (len(spans) - len(raw))
    times, _, _ = repair_times(raw, duration)
    units = tuple(AlignedUnit(text[a:b], s, e, a, b) for (a, b), (s, e) in zip(spans, times))
    cues = fix_timing(cut(Alignment(text, units, "English", duration)), duration)
    parsed = list(srt.parse(get_writer("srt").render(cues, {})))
    assert len(parsed) == len(cues)
    for a, b in zip(parsed, parsed[1:]):
        assert a.start <= a.end <= b.start
    assert all(c.end <= timedelta(seconds=duration + 0.0005) for c in parsed)


# -- writers ----------------------------------------------------------------------------------


@pytest.fixture()
def cues() -> list[Cue]:
    return fix_timing(cut(aligned(JFK + " 我的电话是13800138000。", seconds=14.0)), 14.0)


def test_srt_numbered_from_one_and_parsed_by_srt(cues: list[Cue]) -> None:
    parsed = list(srt.parse(get_writer("srt").render(cues, {})))
    assert [p.index for p in parsed] == list(range(1, len(cues) + 1))
    assert [p.content for p in parsed] == [c.text for c in cues]
    assert parsed[0].start == timedelta(milliseconds=round(cues[0].start * 1000))


def test_vtt_parsed_by_webvtt(cues: list[Cue]) -> None:
    doc = get_writer("vtt").render(cues, {})
    assert doc.startswith("WEBVTT\n\n")
    captions = webvtt.from_string(doc).captions
    assert [c.text for c in captions] == [c.text for c in cues]
    assert captions[-1].end_in_seconds == pytest.approx(cues[-1].end, abs=0.001)


def test_json_has_segments_with_words(cues: list[Cue]) -> None:
    data = json.loads(get_writer("json").render(cues, {"source": "x.wav"}))
    assert data["source"] == "x.wav" and len(data["segments"]) == len(cues)
    seg = data["segments"][-1]
    assert seg["text"] == "我的电话是13800138000。" and seg["words"][-1]["text"] == "13800138000"
    assert all(w["start"] <= w["end"] for s in data["segments"] for w in s["words"])


def test_tsv_and_txt(cues: list[Cue]) -> None:
    rows = get_writer("tsv").render(cues, {}).splitlines()
    assert rows[0] == "start\tend\ttext" and len(rows) == len(cues) + 1
    start, end, text = rows[1].split("\t")
    assert int(start) <= int(end) and text == cues[0].plain
    assert get_writer("txt").render(cues, {}).splitlines() == [c.plain for c in cues]


def test_every_format_has_a_writer() -> None:
    assert set(FORMATS) == {"srt", "vtt", "json", "tsv", "txt"}
    with pytest.raises(ValueError, match="unknown subtitle format"):
        get_writer("ass")


def test_write_atomic_leaves_no_half_file(tmp_path: Path) -> None:
    out = tmp_path / "x.srt"
    write_atomic(out, "first\n")
    write_atomic(out, "second\n")
    assert out.read_text() == "second\n"
    assert [p.name for p in tmp_path.iterdir()] == ["x.srt"]
