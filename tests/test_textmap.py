"""Word times survive ITN and OpenCC: the documented raw -> final character mapping."""

from __future__ import annotations

import pytest

from qasr.pipeline.align import AlignedUnit, Alignment, unit_spans
from qasr.pipeline.textmap import apply, char_map, remap

PHONE = "我的电话号码是一三八零零一三八零零零"


def per_char(text: str, step: float = 1.0) -> Alignment:
    """Unit k of ``text`` at [k*step, (k+1)*step): every time is easy to predict."""
    units = tuple(AlignedUnit(text[a:b], k * step, (k + 1) * step, a, b) for k, (a, b) in enumerate(unit_spans(text)))
    return Alignment(text, units, "Chinese", len(units) * step)


def test_char_map_equal_same_length_other_length_and_insert() -> None:
    assert char_map("abc", "abc") == [(0, 1), (1, 2), (2, 3)]
    assert char_map("电话", "電話") == [(0, 1), (1, 2)]  # same length: position by position
    assert char_map("一百二十三", "123") == [(0, 2), (1, 4), (3, 5)]  # proportional
    assert char_map("ab", "aXb") == [(0, 1), (1, 1), (1, 2)]  # an insertion maps to an empty span


def test_itn_digits_take_the_times_of_the_spoken_digits() -> None:
    out = remap(per_char(PHONE), "我的电话号码是13800138000")
    assert [u.text for u in out.units] == list("我的电话号码是") + ["13800138000"]
    assert [(u.start, u.end) for u in out.units[:7]] == [(k, k + 1) for k in range(7)]
    assert (out.units[-1].start, out.units[-1].end) == (7.0, 18.0)  # from 一's start to the last 零's end


def test_a_shorter_number_spans_all_the_words_it_replaced() -> None:
    out = remap(per_char("一百二十三个人"), "123个人")
    assert [(u.text, u.start, u.end) for u in out.units] == [("123", 0.0, 5.0), ("个", 5.0, 6.0), ("人", 6.0, 7.0)]


def test_real_itn_then_opencc_compose() -> None:
    from qasr.text.convert import convert
    from qasr.text.itn import itn

    out = apply(apply(per_char(PHONE), lambda t: itn(t, lang="zh")), convert)
    assert out.text == "我的電話號碼是13800138000"
    assert [(u.text, u.start, u.end) for u in out.units[2:4]] == [("電", 2.0, 3.0), ("話", 3.0, 4.0)]
    assert (out.units[-1].start, out.units[-1].end) == (7.0, 18.0)


def test_opencc_phrase_of_another_length_keeps_the_neighbours_exact() -> None:
    from qasr.text.convert import convert

    out = apply(per_char("U盘和软件"), convert)  # U盘 -> 隨身碟 (3 characters for 2)
    assert out.text == "隨身碟和軟體"
    by_text = {u.text: (u.start, u.end) for u in out.units}
    assert by_text["和"] == (2.0, 3.0) and by_text["軟"] == (3.0, 4.0) and by_text["體"] == (4.0, 5.0)
    for ch in "隨身碟":
        assert 0.0 <= by_text[ch][0] <= by_text[ch][1] <= 2.0


def test_english_words_and_an_inserted_word() -> None:
    text = "I have twenty three apples"
    out = remap(per_char(text), "I have 23 apples")
    assert [(u.text, u.start, u.end) for u in out.units] == [("I", 0, 1), ("have", 1, 2), ("23", 2.0, 4.0), ("apples", 4, 5)]
    out = remap(per_char("one two"), "one extra two")
    extra = out.units[1]
    assert extra.text == "extra" and extra.start == extra.end == 1.0  # the instant where it was inserted


@pytest.mark.parametrize("new", ["我的電話號碼是13800138000", "我的电话 138 00138000", "完全不同的文字", "x"])
def test_times_stay_ordered_and_inside_the_original_span(new: str) -> None:
    src = per_char(PHONE)
    out = remap(src, new)
    starts = [u.start for u in out.units]
    assert starts == sorted(starts)
    assert all(0.0 <= u.start <= u.end <= 18.0 for u in out.units)
    assert all(new[u.char_start : u.char_end] == u.text for u in out.units)


def test_unchanged_text_is_the_same_alignment() -> None:
    src = per_char(PHONE)
    assert remap(src, PHONE) is src
