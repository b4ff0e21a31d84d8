"""What the words around a numeral say: is it a quantity to write in figures, a clock time...?

The predicates here look at the few characters before and after a stretch of numerals in the
sentence (with idioms already hidden behind placeholders, see :mod:`qasr.text.itn.zh`) and answer
one question each: a unit follows (五公斤), a time word comes before (下午三点), a Latin name is
next to it (gta五), spoken arithmetic is around it (一加一)... Kept apart from the rules that use
them so that each rule module stays readable; the word lists are in :mod:`qasr.text.itn.lexicon`.
"""

from __future__ import annotations

import re

from qasr.text.itn import lexicon as lx

# ---------------------------------------------------------------------------------------------
# Character classes
NUMERAL_CHARS = "零〇一二三四五六七八九两兩十百千万萬亿億幺"
START_CHARS = "零〇一二三四五六七八九两兩十幺"  # a number starts with a digit or with 十
DIGIT_CHARS = "零〇一二三四五六七八九幺"  # digits read one by one
NUM_PATTERN = f"[{START_CHARS}][{NUMERAL_CHARS}]*"
NUMBODY_PATTERN = f"{NUM_PATTERN}(?:[点點][{DIGIT_CHARS}]+[万萬亿億]?)?"
NUM_OR_DIGIT = frozenset(NUMERAL_CHARS + "0123456789")
ASCII_DIGIT = frozenset("0123456789")
_ASCII_LETTER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_SPACES = frozenset(" \u3000")
_AFTER_SPACED_NAME = frozenset(" \u3000,.!?;:)]，。！？；：、）")  # iPhone 十五, / iPhone 四。
VAGUE_NEXT = frozenset("几幾来來")
VAGUE_PREV = frozenset("几幾数數")
CLASSIFIERS = frozenset("个個位天年月周週次人名岁歲本件只隻条條张張下遍回")
POINT = frozenset("点點")

#: First code point of the placeholders zh.py puts in place of weekdays: a weekday before 七点
#: says it is a time (周六七点), so time_before must recognise them.
PUA_WEEKDAY = 0xF8000

_MEASURE_RE = re.compile(lx.alternation(lx.MEASURE_UNITS))
_MEASURE_NOT_RE = re.compile(lx.alternation(lx.MEASURE_NOT))
# 块 is money only before 钱 or a further amount (三块五); 三块蛋糕 keeps its characters. 毛 and
# 角 likewise before a further amount (两毛五), so both parts of the amount are figures.
_MONEY_BLOCK_RE = re.compile(
    f"[块塊](?=[钱錢毛角{NUMERAL_CHARS}0-9])|[毛角](?=[{NUMERAL_CHARS}0-9])"
)
_TIME_AFTER_RE = re.compile(lx.alternation(lx.TIME_AFTER))
_TIME_AFTER_ONE_RE = re.compile(lx.alternation(lx.TIME_AFTER_ONE))
_TIME_BEFORE = tuple(lx.TIME_BEFORE)
_TIME_BEFORE_ONE = tuple(lx.TIME_BEFORE_ONE)
_TIME_BEFORE_NOT = tuple(lx.TIME_BEFORE_NOT)
_OPS_RE = re.compile(f"(?:{lx.alternation(lx.ARITH_OPS)})(?=[负負]?(?:[{START_CHARS}0-9]|[百千]分))")
_OPS_BEFORE = tuple(lx.ARITH_OPS)
# a second number after 到/至/或 that carries a unit: 三到五公里 -> 3到5公里
_RANGE_TAIL_RE = re.compile(
    f"(?:到|至|或者?)[{START_CHARS}0-9][{NUMERAL_CHARS}0-9]*(?:[点點.][{DIGIT_CHARS}0-9]+)?(?![{NUMERAL_CHARS}0-9])"
)
TEMPERATURE_BEFORE = tuple(
    lx.both_scripts(
        ["零下", "零上", "负", "气温", "温度", "体温", "高温", "低温", "降到", "升到", "降至", "升至",
         "气温是", "温度是", "气温为", "温度为", "体温是", "摄氏", "华氏"]
    )
)
_RANGE_TO_PERCENT_RE = re.compile("(?:到|至|或者?)[负負]?[百千]分之?")
_RANGE_TAIL_UNITS = frozenset("月号號日点點")
_CLASSIFIER_AFTER_LETTER = frozenset("个個年天次月位只件本条條张張台臺部岁歲")


def measure_at(s: str, pos: int) -> bool:
    """A measure/money/time unit starts at ``pos`` (五公斤, 两块钱, 三岁, 五分钟, 一号)."""
    if _MEASURE_RE.match(s, pos):
        return not _MEASURE_NOT_RE.match(s, pos)
    return _MONEY_BLOCK_RE.match(s, pos) is not None


def after_chain_unit(s: str, start: int, end: int) -> bool:
    """The run follows an amount and its unit: 十二块五, 一米八, 九秒八三 (not 两块一个)."""
    if start >= 2 and s[start - 1] in lx.CHAIN_UNITS and amount_at(s, start - 2):
        return end >= len(s) or s[end] not in CLASSIFIERS
    return False


def amount_at(s: str, i: int) -> bool:
    """``s[i]`` ends a number: a numeral or a figure, but not the minutes of a clock time."""
    if i < 0 or s[i] not in NUM_OR_DIGIT:
        return False
    while i >= 0 and s[i] in ASCII_DIGIT:
        i -= 1
    return i < 0 or s[i] != ":"  # 02:08秒 closes a clock time, not an amount


def time_before(s: str, start: int, strict: bool) -> bool:
    """A time-of-day word or a weekday ends right before ``start`` (下午三点, 到两点, 周六七点)."""
    if start > 0 and ord(s[start - 1]) >= PUA_WEEKDAY:
        return True
    if not s.endswith(_TIME_BEFORE_ONE if strict else _TIME_BEFORE, 0, start):
        return False
    return not s.endswith(_TIME_BEFORE_NOT, 0, start)


def letter_neighbour(s: str, start: int, end: int) -> bool:
    """Numerals that belong to a Latin-letter name: gta五, iPhone 四s, A四纸, 五G, 三D."""
    n = len(s)
    nxt = s[end] if end < n else ""
    if nxt in _ASCII_LETTER:
        return True
    if start > 0:
        prev = s[start - 1]
        if prev in _ASCII_LETTER:
            if start < 2 or s[start - 2] not in _ASCII_LETTER:
                return True  # a one-letter code: G一次列车, B二, A四
            return nxt not in _CLASSIFIER_AFTER_LETTER  # iPhone一年 is "one year"
        if prev in _SPACES and start > 1 and s[start - 2] in _ASCII_LETTER:
            return nxt == "" or nxt in _AFTER_SPACED_NAME
    return False


def arith_neighbour(s: str, start: int, end: int) -> bool:
    """Spoken arithmetic: 一加一等于二 (the operator words stay)."""
    if _OPS_RE.match(s, end):
        return True
    if s.endswith(_OPS_BEFORE, 0, start):
        for op in _OPS_BEFORE:
            if s.endswith(op, 0, start):
                return amount_at(s, start - len(op) - 1)
    return False


def range_with_unit(s: str, end: int) -> bool:
    """三到五公里, 一到三月: the first number of a range takes the unit of the second."""
    m = _RANGE_TAIL_RE.match(s, end)
    if m is None:
        return _RANGE_TO_PERCENT_RE.match(s, end) is not None  # 三到百分之五
    e = m.end()
    return measure_at(s, e) or (e < len(s) and s[e] in _RANGE_TAIL_UNITS)


def hour_context(s: str, start: int, end: int, is_one: bool) -> bool:
    """``X点`` with nothing after 点 is o'clock here (下午三点, 三点之前), not 三点建议."""
    if time_before(s, start, strict=is_one):
        return True
    pattern = _TIME_AFTER_ONE_RE if is_one else _TIME_AFTER_RE
    return pattern.match(s, end + 1) is not None
