"""Other spoken forms of digits, turned into the plain ones before the rules read a sentence.

Inside a digit string (a phone number, an ID, a flight, a call sign) speakers use digits that are
also ordinary words elsewhere:

* 么: OpenCC's s2twp writes 幺 (the "one" of phone numbers) as 么;
* the radio digits 洞 (0) and 拐 (7), with 幺 (1) and 两 (2): 幺三洞拐两 is 13072;
* the financial digits 壹贰叁肆伍陆柒捌玖 (both scripts), which a speaker reading a printed
  number out may use for some of its digits.

Each of them is a word of its own outside digit strings (什么, 山洞, 拐弯, 两个, 大陆, 队伍), so
they are only read as digits inside a run that is a digit string anyway: one that has 幺 in it (幺
is said only when reading digits out), or, once variants at its two ends are left aside (拐 of
一二三拐弯, 陆 of 大陆), one of four characters or more most of which are plain digits. The plain
digits written here are then read by the rules like any other digit string.
"""

from __future__ import annotations

import re

_PLAIN = "零〇一二三四五六七八九幺"
#: What each variant stands for, as the plain digit the rules read.
VARIANTS = {
    "洞": "零", "拐": "七", "两": "二", "兩": "二",
    "壹": "一", "贰": "二", "貳": "二", "叁": "三", "參": "三", "叄": "三", "肆": "四",
    "伍": "五", "陆": "六", "陸": "六", "柒": "七", "捌": "八", "玖": "九",
}  # fmt: skip
_TABLE = str.maketrans(VARIANTS)
_VARIANT_CHARS = "".join(VARIANTS)
_HAS_VARIANT = re.compile(f"[{_VARIANT_CHARS}]")
_RUN = re.compile(f"[{_PLAIN}{_VARIANT_CHARS}]{{3,}}")
_MIN_RUN_WITHOUT_YAO = 4

# 么 for 1 next to other digits of a string of three or more (什么, 怎么 never are).
_YAO_NEXT = f"{_PLAIN}么洞拐"
_YAO_RE = re.compile(
    f"(?<![什怎那这這多要甚老])么(?=[{_YAO_NEXT}]{{2}})|(?<=[{_YAO_NEXT}])么(?=[{_YAO_NEXT}])"
    f"|(?<=[{_YAO_NEXT}]{{2}})么"
)


def _rewrite(m: re.Match[str]) -> str:
    run = m.group()
    if not _HAS_VARIANT.search(run):
        return run
    if "幺" in run:
        return run.translate(_TABLE)
    lo, hi = 0, len(run)
    while lo < hi and run[lo] in VARIANTS:
        lo += 1
    while hi > lo and run[hi - 1] in VARIANTS:
        hi -= 1
    core = run[lo:hi]
    plain = sum(c not in VARIANTS for c in core)
    if len(core) < _MIN_RUN_WITHOUT_YAO or 2 * plain <= len(core):
        return run
    return run[:lo] + core.translate(_TABLE) + run[hi:]


def plain_digits(text: str) -> str:
    """``text`` with 么, radio and financial digits inside digit strings written as plain digits.

    Text with none of them comes back at once (one scan in C).
    """
    if "么" in text:
        text = _YAO_RE.sub("幺", text)
    if not _HAS_VARIANT.search(text):
        return text
    return _RUN.sub(_rewrite, text)


__all__ = ["VARIANTS", "plain_digits"]
