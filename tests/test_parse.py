"""Parsing Qwen3-ASR output and repairing repetition loops."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qasr.text.parse import StreamingTextView, parse_asr_output, repair_loops


@pytest.mark.parametrize(
    ("raw", "forced", "language", "text", "no_speech"),
    [
        ("language English<asr_text> nev jaello nu", None, "English", "nev jaello nu", False),
        ("language Chinese<asr_text>广州市房地产", None, "Chinese", "广州市房地产", False),
        ("<asr_text>hello there", "English", "English", "hello there", False),
        ("language None<asr_text>", None, None, "", True),
        ("language None", None, None, "", True),
        ("", None, None, "", True),
        ("plain text without header", None, None, "plain text without header", False),
    ],
)
def test_parse(raw: str, forced: str | None, language: str | None, text: str, no_speech: bool) -> None:
    parsed = parse_asr_output(raw, forced)
    assert (parsed.language, parsed.text, parsed.no_speech) == (language, text, no_speech)
    assert parsed.raw == raw


def test_loops_of_one_character_and_of_patterns() -> None:
    text, n = repair_loops("好" + "的" * 25 + "吧")
    assert (text, n) == ("好的吧", 1)
    text, n = repair_loops("x" + "ab" * 30 + "y" + "谢谢你" * 20)
    assert (text, n) == ("xaby谢谢你", 2)


def test_nineteen_repeats_are_left_alone() -> None:
    s = "的" * 19
    assert repair_loops(s) == (s, 0)
    s = "abc" * 19
    assert repair_loops(s) == (s, 0)


def test_pattern_longer_than_twenty_is_left_alone() -> None:
    s = ("abcdefghijklmnopqrstu" * 21)  # 21-character pattern
    assert repair_loops(s) == (s, 0)


def test_repair_is_flagged_in_parse() -> None:
    parsed = parse_asr_output("language English<asr_text>" + "no " * 40)
    assert parsed.repaired and parsed.loops_repaired == 1
    assert parsed.text == "no no"  # 39 copies of "no " collapse to one; the final "no" stays


@given(st.text(max_size=200))
def test_repair_never_lengthens_and_is_idempotent(s: str) -> None:
    once, _ = repair_loops(s)
    assert len(once) <= len(s)
    assert repair_loops(once)[0] == once or len(repair_loops(once)[0]) < len(once)


def _view(chunks: list[str]) -> str:
    v = StreamingTextView()
    return "".join(v.feed(c) for c in chunks) + v.finish()


@pytest.mark.parametrize(
    ("chunks", "shown"),
    [
        (["language", " English", "<asr_text>", " nev", " ja", "ello", " nu"], "nev jaello nu"),
        (["<asr_text>", "hi", " there"], "hi there"),
        (["lan", "guage", " None"], ""),
        (["Hel", "lo"], "Hello"),
        (["la", "b report"], "lab report"),
    ],
)
def test_streaming_view_hides_the_header(chunks: list[str], shown: str) -> None:
    assert _view(chunks) == shown


def test_streaming_view_releases_text_as_soon_as_possible() -> None:
    v = StreamingTextView()
    assert v.feed("language") == ""
    assert v.feed(" English<asr_text> a") == "a"
    assert v.feed(" b") == " b"
