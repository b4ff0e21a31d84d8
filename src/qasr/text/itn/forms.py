"""Numbers glued to the words that give them their form: percentages, fractions, clock times...

One function per named alternative of the master pattern in :mod:`qasr.text.itn.zh` (百分之六点三,
三分之二, 幺二七点零点零点幺, 零二一杠…, 九点二十一分, 三十七度五, 十七比十六); each gets the match and
returns what to write, or the match unchanged when the words around it say it is something else
(豆瓣评分八点五分 is a rating, not 08:05). The group names they read are those of that pattern.
"""

from __future__ import annotations

import re

from qasr.text.itn import lexicon as lx
from qasr.text.itn.context import TEMPERATURE_BEFORE, VAGUE_NEXT, VAGUE_PREV, time_before
from qasr.text.itn.numbers import digit_string, format_range, int_part, is_digit_string, parse_int

_TIME_AFTER_ZERO_RE = re.compile(lx.alternation(lx.TIME_AFTER_ZERO_MINUTES))
_SCORE_BEFORE_RE = re.compile(lx.alternation(lx.SCORE_BEFORE))
_SCORE_AFTER_RE = re.compile(lx.alternation(lx.SCORE_AFTER))
_RATING_BEFORE_RE = re.compile(
    lx.alternation(
        lx.both_scripts(
            ["评分", "得分", "打分", "分数", "考了", "得了", "拿了", "打了", "平均", "雅思", "托福",
             "豆瓣", "评价", "满分", "成绩", "绩点", "总分", "给了", "评为", "打出", "获得", "拿到"]
        )
    )
)
_RATING_AFTER_RE = re.compile(
    lx.alternation(lx.both_scripts(["的好评", "的评分", "的高分", "的成绩", "高分", "好评", "的分数"]))
)
_RATING_WINDOW = 8


def percent(m: re.Match[str]) -> str:
    """百分之六点三 -> 6.3%, 负的百分之二十 -> -20%, 百分之三四十 -> 30%~40%, 百分之二十多 -> 20%多."""
    neg = "-" if m.group("pneg") else ""
    if m.group("p100"):
        return f"{neg}100%"
    s = m.string
    end = m.end()
    if end < len(s) and s[end] in VAGUE_NEXT:
        return m.group()  # 百分之十几
    out = number_body(m.group("pn"), "%")
    return m.group() if out is None else neg + out


def permille(m: re.Match[str]) -> str:
    """千分之五 -> 5‰."""
    out = number_body(m.group("mn"), "‰")
    return m.group() if out is None else out


def number_body(body: str, suffix: str) -> str | None:
    """The number after 百分之/千分之, with ``suffix`` after it (or after both ends of a range)."""
    for p in "点點":
        if p in body:
            ip_s, _, frac = body.partition(p)
            big = ""
            if frac and frac[-1] in "万萬亿億":
                frac, big = frac[:-1], frac[-1]
            ip = int_part(ip_s)
            if ip is None or not frac:
                return None
            return f"{ip}.{digit_string(frac)}{big}{suffix}"
    rng = format_range(body, suffix)
    if rng is not None:
        return rng
    v = parse_int(body)
    if v is None:
        if len(body) >= 2 and is_digit_string(body) and body[0] not in "零〇":
            return digit_string(body) + suffix
        return None
    return f"{v}{suffix}"


def fraction(m: re.Match[str]) -> str:
    """三分之二 -> 2/3, 三又二分之一 -> 3又1/2, 负三分之一 -> -1/3."""
    den = parse_int(m.group("den"))
    nu = number_body(m.group("nu"), "")
    if den is None or nu is None:
        return m.group()
    s = m.string
    if m.end() < len(s) and s[m.end()] in VAGUE_NEXT:
        return m.group()
    sign = "-" if m.group("fneg") else ""
    whole = m.group("whole")
    if whole is not None:
        w = parse_int(whole)
        if w is None:
            return m.group()
        return f"{sign}{w}又{nu}/{den}"
    return f"{sign}{nu}/{den}"


def dots(m: re.Match[str]) -> str:
    """幺二七点零点零点幺 -> 127.0.0.1 (IP addresses, version numbers)."""
    return digit_string(m.group().replace("點", ".").replace("点", "."))


def dash(m: re.Match[str]) -> str:
    """零二一杠六二三四五六七八 -> 021-62345678 (杠 is how a dash is read out)."""
    return digit_string(m.group().replace("杠", "-").replace("槓", "-"))


def clock(m: re.Match[str]) -> str:
    """09:21, 13:10:36; 8点半 and 8点一刻 keep their words (see docs/itn.md)."""
    h = parse_int(m.group("h"))
    assert h is not None  # the pattern only admits 0..24
    hw = m.group("hw")
    if hw is not None:
        return f"{h}{m.group('hp')}{hw}"
    s = m.string
    start = m.start()
    mz = m.group("mz")
    if mz is not None:
        # 八点零五: a time only with a time word around it; otherwise the decimal 8.05
        if not (time_before(s, start, strict=False) or _TIME_AFTER_ZERO_RE.match(s, m.end())):
            return f"{h}.{digit_string(mz)}"
        return f"{h:02d}:{parse_int(mz[1]):02d}"
    mins_s = m.group("m") or m.group("m2")
    mins = parse_int(mins_s.lstrip("零〇") or "零")
    if mins is None or mins > 59:
        return m.group()
    secs_s = m.group("s")
    if m.group("m") and secs_s is None and len(mins_s) == 1:
        # 八点五分 in a rating (豆瓣评分八点五分) is 8.5 points, not 08:05
        if _RATING_BEFORE_RE.search(s, max(0, start - _RATING_WINDOW), start) or (
            _RATING_AFTER_RE.match(s, m.end())
        ):
            return f"{h}.{digit_string(mins_s)}分"
    if secs_s is not None:
        secs = parse_int(secs_s.lstrip("零〇") or "零")
        if secs is None or secs > 59:
            return m.group()
        return f"{h:02d}:{mins:02d}:{secs:02d}"
    return f"{h:02d}:{mins:02d}"


def degrees(m: re.Match[str]) -> str:
    """三十七度五 -> 37度5; a lone digit before 度 is only a temperature in context (一度 = once)."""
    head = m.group("dh")
    s = m.string
    start = m.start()
    if (len(head) == 1 and head != "十" and not s.endswith(TEMPERATURE_BEFORE, 0, start)) or (
        start > 0 and s[start - 1] in VAGUE_PREV
    ):
        return m.group()
    value = parse_int(head)
    if value is None:
        return m.group()
    return f"{value}度{digit_string(m.group('dt'))}"


def score(m: re.Match[str]) -> str:
    """十七比十六 -> 17:16 in a match or ratio context, else 17比16 (the word stays)."""
    a = score_side(m.group("sa"))
    b = score_side(m.group("sb"))
    if a is None or b is None:
        return m.group()
    s = m.string
    start, end = m.start(), m.end()
    if end < len(s) and s[end] in VAGUE_NEXT:
        return m.group()
    if _SCORE_BEFORE_RE.search(s, max(0, start - 8), start) or _SCORE_AFTER_RE.match(s, end):
        return f"{a}:{b}"
    return f"{a}比{b}"


def score_side(num: str) -> str | None:
    """One side of 比: a cardinal (十七) or a digit string; None if it is neither."""
    v = parse_int(num)
    if v is not None:
        return str(v)
    if is_digit_string(num):
        return digit_string(num)
    return None
