"""Written forms a user can choose where two are both right: dates and clock times.

The defaults are the ones docs/itn.md documents (2008年8月8日 as spoken, zero-padded 08:05). The
alternatives are there because WeTextProcessing's suite, and the tools that follow it, expect them
(see "Conventions and the WeTextProcessing suite" in docs/itn.md):

* ``date="iso"``: a full spoken date with a four-digit year is written 2008-08-08, the GB/T 7408
  (ISO 8601) form that GB/T 15835 allows for dates; partial dates (2008年8月, 8月8日), two-digit
  years (八五年) and ROC years (民國113年) keep their words, since no dashed form carries them.
* ``time="unpadded"``: clock times without the leading zero, 8:05 rather than 08:05.

Both change only what ITN writes: figures the model already wrote are never touched.
"""

from __future__ import annotations

import datetime
import re

from qasr.text.itn.numbers import digit_string, is_digit_string, parse_int

#: Date styles: as spoken (default) or ISO 8601 for full dates.
DATE_STYLES = ("zh", "iso")
#: Clock styles: zero-padded hours (default) or not.
TIME_STYLES = ("padded", "unpadded")

_D = "零〇一二三四五六七八九"
_SPOKEN_DATE = re.compile(
    f"(?<![{_D}十百千万萬两兩0-9])"
    f"(?P<y>[{_D}]{{4}}|[一二两兩]千[{_D}十百]*)年"
    f"(?P<m>十[一二]?|[一二三四五六七八九])月"
    f"(?P<d>三十一?|二十[一二三四五六七八九]?|十[一二三四五六七八九]?|[一二三四五六七八九])[日号號]"
    f"(?![{_D}十百千万萬两兩0-9])"
)
_PADDED_HOUR = re.compile(r"^0(?=\d:)")


def check_styles(date: str, time: str) -> None:
    """Raise ValueError, naming the valid values, for a style that does not exist."""
    if date not in DATE_STYLES:
        raise ValueError(f"unknown ITN date style {date!r}; choose one of: {', '.join(DATE_STYLES)}")
    if time not in TIME_STYLES:
        raise ValueError(f"unknown ITN time style {time!r}; choose one of: {', '.join(TIME_STYLES)}")


def _year(spoken: str) -> int | None:
    if is_digit_string(spoken):
        return int(digit_string(spoken))
    return parse_int(spoken)


def _iso(m: re.Match[str]) -> str:
    y, mo, d = _year(m.group("y")), parse_int(m.group("m")), parse_int(m.group("d"))
    if y is None or mo is None or d is None or not 1000 <= y <= 9999:
        return m.group()
    try:
        return datetime.date(y, mo, d).isoformat()
    except ValueError:  # 二月三十日: not a date, left as spoken for the rules to write
        return m.group()


def iso_dates(text: str) -> str:
    """Full spoken dates in ``text`` as YYYY-MM-DD (二零二四年三月五号 -> 2024-03-05).

    Runs on the spoken text, before the rules, so only dates ITN converts change.
    """
    if "年" not in text:
        return text
    return _SPOKEN_DATE.sub(_iso, text)


def unpad_clock(written: str) -> str:
    """A clock time the rules wrote without its leading zero: 08:05 -> 8:05, 00:10 -> 0:10."""
    return _PADDED_HOUR.sub("", written)


__all__ = ["DATE_STYLES", "TIME_STYLES", "check_styles", "iso_dates", "unpad_clock"]
