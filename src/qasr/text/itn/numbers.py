"""Chinese numerals to Arabic figures: digit strings, cardinals, ranges, decimals.

Only values and formatting live here; which stretch of text is a number, and whether it should be
converted at all, is decided by :mod:`qasr.text.itn.zh`. Both scripts are accepted (万/萬, 亿/億,
两/兩), and 〇 counts as 零. Everything is table lookups and integer arithmetic: these functions
run once per numeral in every sentence, so they allocate nothing big.
"""

from __future__ import annotations

import re

#: Value of each digit character. 幺 is how 1 is read inside digit strings (phone numbers, codes).
DIGIT = {
    "零": 0, "〇": 0, "一": 1, "幺": 1, "二": 2, "两": 2, "兩": 2, "三": 3, "四": 4,
    "五": 5, "六": 6, "七": 7, "八": 8, "九": 9,
}  # fmt: skip
#: Small units, within a group of four digits.
UNIT = {"十": 10, "百": 100, "千": 1000}
#: Large units that close a group: 万 (10^4) and 亿 (10^8).
BIG = {"万": 10**4, "萬": 10**4, "亿": 10**8, "億": 10**8}

#: Characters read digit by digit (phone numbers, codes, years). 两 is never used that way.
DIGIT_STRING_CHARS = "零〇一二三四五六七八九幺"
_DS_TABLE = str.maketrans({c: str(v) for c, v in DIGIT.items() if c in DIGIT_STRING_CHARS})
_DS_SET = frozenset(DIGIT_STRING_CHARS)

_PAIR_VALUE = {"一": 1, "二": 2, "两": 2, "兩": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8}
_PAIR_HIGH = {"二": 2, "两": 2, "兩": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
# An approximate range is two neighbouring digits (三四, 七八), or 三五 ("three to five").
_RANGE = re.compile(
    r"(?P<pre>.*?[十百千万萬亿億])??(?P<a>[一二两兩三四五六七八])(?P<b>[二两兩三四五六七八九])"
    r"(?P<u>[十百千])?(?P<big>[万萬亿億])?"
)


def digit_string(s: str) -> str:
    """Read ``s`` digit by digit: every digit kept, leading zeros kept, 幺 as 1, no spaces."""
    return s.translate(_DS_TABLE)


def is_digit_string(s: str) -> bool:
    """True when ``s`` has only digit characters (no 十百千万亿, no 两)."""
    return all(c in _DS_SET for c in s)


def is_approx_pair(a: str, b: str) -> bool:
    """三四, 七八, 一两, 两三, 三五: two digits that speakers use for "about a or b"."""
    va = _PAIR_VALUE.get(a)
    vb = _PAIR_HIGH.get(b)
    if va is None or vb is None:
        return False
    return vb == va + 1 or (va == 3 and vb == 5)


def parse_int(s: str) -> int | None:
    """Value of a cardinal such as 一千零五, 两万三 or 十七; None when ``s`` is not one.

    Accepts the spoken abbreviations where a final digit stands for the next lower unit
    (一百二 = 120, 一千六 = 1600, 两万三 = 23000), 零 gaps (一千零五), and a leading 十 (十五).
    Rejects runs of two numbers spoken back to back (八百一千, 九十九三) so callers can keep them,
    and 两 as the last digit after a unit: nobody says 二十两 for 22 or 一百两 for 120 (they say
    二十二, 一百二), so 二十两 is 二十 and the weight 两 (20两), 一百两个 is 一百 and 两个.
    """
    if not s:
        return None
    if len(s) == 1:
        v = DIGIT.get(s)
        if v is not None:
            return v
        return 10 if s == "十" else None
    if is_digit_string(s):
        return None  # 一二三 is a digit string, not a cardinal
    total = 0  # closed 亿 groups
    wan = 0  # closed 万 group inside the current 亿 group
    section = 0  # value below 万 so far
    digit: int | None = None
    digit_is_liang = False  # the pending digit is 两/兩
    last_unit = 0  # smallest unit used so far in this section (0: none yet)
    after_zero = False  # a 零 gap was spoken since the last unit
    last_big = 0  # value of the big unit right before (for 两万三)
    prev_big = False  # previous character was a big unit
    digit_after_big = False  # the pending digit came right after 万/亿 (两万三)
    for ch in s:
        v = DIGIT.get(ch)
        if v is not None:
            if ch == "幺":
                return None
            if digit is not None and not (digit == 0 and v != 0):
                return None  # two digits in a row, other than 零 + digit
            if v == 0:
                if section == 0 and wan == 0 and total == 0:
                    return None  # leading zero: a digit string, not a cardinal
                after_zero = True
            digit = v
            digit_is_liang = ch in "两兩"
            digit_after_big = prev_big
            prev_big = False
            continue
        u = UNIT.get(ch)
        if u is not None:
            if last_unit and u >= last_unit:
                return None  # 十百, 百百
            if digit is None or (digit == 0 and after_zero):
                if ch != "十":
                    return None  # 百/千 need a digit before them
                digit = 1  # 十五, 一百零十, 一百十
            section += digit * u
            digit = None
            last_unit = u
            after_zero = False
            prev_big = False
            continue
        b = BIG.get(ch)
        if b is None:
            return None
        if digit is not None:
            section += digit
            digit = None
        if b == 10**4:
            if section == 0 or wan:
                return None  # 万 needs a value before it, once per 亿 group
            wan = section * b
        else:  # 亿; in 万亿 the 万 group is multiplied too
            group = wan + section
            if group == 0 or total:
                return None
            total = group * b
            wan = 0
        section = 0
        last_unit = 0
        after_zero = False
        last_big = b
        prev_big = True
    if digit is not None:
        if digit == 0:
            return None if (section or wan or total) else 0
        if digit_is_liang and not after_zero:
            return None  # 二十两, 两万两: the number, then the word 两
        if after_zero:
            section += digit
        elif last_unit:
            section += digit * (last_unit // 10)  # 一百二 = 120, 一千六 = 1600
        elif digit_after_big:
            section += digit * (last_big // 10)  # 两万三 = 23000
        else:
            section += digit
    return total + wan + section


def _unit_char(s: str, chars: str) -> str:
    """The script of the big unit as spoken (万 or 萬), so output keeps the user's script."""
    for c in s:
        if c in chars:
            return c
    return chars[0]


def format_int(s: str) -> str | None:
    """Arabic form of the cardinal ``s``, keeping 万/亿 where Chinese writers keep them.

    A round number of 万 or 亿 keeps the unit (三百亿 -> 300亿, 五千万 -> 5000万, 一亿五千万 ->
    1亿5000万); anything with a remainder below 万 is written out in full (一万零三百 -> 10300,
    一亿零两千三百 -> 100002300).
    """
    v = parse_int(s)
    if v is None:
        return None
    has_yi = "亿" in s or "億" in s
    has_wan = "万" in s or "萬" in s
    if has_yi:
        yi = _unit_char(s, "亿億")
        if s.endswith(("万亿", "萬億")) and v % 10**12 == 0:
            return f"{v // 10**12}{s[-2]}{yi}"
        a, rest = divmod(v, 10**8)
        if rest == 0:
            return f"{a}{yi}"
        b, c = divmod(rest, 10**4)
        if c == 0 and has_wan:
            return f"{a}{yi}{b}{_unit_char(s, '万萬')}"
        return str(v)
    if has_wan:
        b, c = divmod(v, 10**4)
        if c == 0:
            return f"{b}{_unit_char(s, '万萬')}"
    return str(v)


def format_range(s: str, suffix: str = "") -> str | None:
    """三四十 -> 30~40, 七八百 -> 700~800, 十七八万 -> 17~18万, 一千六七 -> 1600~1700.

    ``suffix`` (such as ``%``) is written after both ends. Returns None when ``s`` is not a range.
    """
    m = _RANGE.fullmatch(s)
    if m is None:
        return None
    pre, a, b, u, big = m.group("pre", "a", "b", "u", "big")
    va, vb = _PAIR_VALUE[a], _PAIR_HIGH[b]
    if not (vb == va + 1 or (va == 3 and vb == 5)):
        return None
    if pre:
        p = parse_int(pre)
        if p is None:
            return None
        last = pre[-1]
        step = UNIT[last] // 10 if last in UNIT else BIG[last] // 10
        if step == 0:
            step = 1
        if u and UNIT[u] != step:
            return None
        if big and last in BIG:
            return None
        lo, hi = p + va * step, p + vb * step
    else:
        if not u and not big:
            return None  # 三四 alone is "three or four": left as words
        step = UNIT[u] if u else 1
        lo, hi = va * step, vb * step
    tail = big or ""
    if suffix:
        return f"{lo}{tail}{suffix}~{hi}{tail}{suffix}"
    return f"{lo}~{hi}{tail}"


def int_part(s: str) -> str | None:
    """Integer part before 点: a cardinal (十三) or a digit string (零, 一二三)."""
    if is_digit_string(s):
        if len(s) > 1 and s[0] in "零〇":
            return None
        return digit_string(s)
    v = parse_int(s)
    return None if v is None else str(v)
