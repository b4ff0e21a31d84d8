"""Rule-based inverse text normalization for Mandarin ASR output, Simplified and Traditional.

One pass does the work. Idioms and fixed words are first swapped for private-use placeholders so
no rule can see them (一五一十, 三七二十一, 十分感谢, 星期一); then a single regex finds every stretch
of numerals together with the words that give it a meaning (百分之, 分之, 点 + minutes, 比) and
one callback per match decides what to write, looking at the few characters around it. The rules
and their examples are written down in ``docs/itn.md``; ``tests/data/itn_cases.tsv`` holds them.

The design choice that matters most: a lone digit (一 to 九, 两) is only converted when something
says it is a quantity to write in figures — a measure or money unit (五公斤, 两块钱), a date or
clock position (三月, 一号, 下午三点), an ordinal (第一), a sign (负二), a Latin neighbour
(iPhone 四s), arithmetic (一加一) — and is otherwise left alone (一个, 三个人, 一些, 星期一).
Numbers with 十百千万亿 are always converted, digit strings of three or more digits always.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from qasr.text.itn import lexicon as lx
from qasr.text.itn.numbers import (
    digit_string,
    format_int,
    format_range,
    int_part,
    is_approx_pair,
    is_digit_string,
    parse_int,
)

# ---------------------------------------------------------------------------------------------
# Character classes
NUMERAL_CHARS = "零〇一二三四五六七八九两兩十百千万萬亿億幺"
_START = "零〇一二三四五六七八九两兩十幺"  # a number starts with a digit or with 十
_DSC = "零〇一二三四五六七八九幺"  # digits read one by one
_NUM = f"[{_START}][{NUMERAL_CHARS}]*"
_NUMBODY = f"{_NUM}(?:[点點][{_DSC}]+[万萬亿億]?)?"
_NUM_OR_DIGIT = frozenset(NUMERAL_CHARS + "0123456789")
_ASCII_DIGIT = frozenset("0123456789")
_ASCII_LETTER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_SPACES = frozenset(" \u3000")
_AFTER_SPACED_NAME = frozenset(" \u3000,.!?;:)]，。！？；：、）")  # iPhone 十五, / iPhone 四。
_VAGUE_NEXT = frozenset("几幾来來")
_VAGUE_PREV = frozenset("几幾数數")
_MORE = frozenset("多余餘")
_UNIT_CHARS = frozenset("十百千万萬亿億")
_BIG_UNITS = frozenset("万萬亿億")
_PAIR_CHARS = frozenset("零〇一二三四五六七八九幺两兩")
# 数 as a noun (倒数, 人数) does not make the next number vague the way 数十万 does
_NOUN_SHU = tuple(
    lx.both_scripts(
        ["倒数", "点数", "计数", "算数", "分数", "人数", "岁数", "次数", "总数", "系数", "位数",
         "个数", "少数", "多数", "指数", "参数", "函数", "无数", "页数", "字数", "件数", "台数"]
    )
)
_CLASSIFIERS = frozenset("个個位天年月周週次人名岁歲本件只隻条條张張下遍回")
_SPANS = frozenset("年月天日周週时時")
_ABBREV_DIGITS = frozenset("一二两兩三四五六七八九")
_BIG_OR_HUNDREDS = frozenset("百千万萬亿億")
_KILO_UNITS = frozenset("克米瓦卡帕赫焦伏")  # 千克, 千米, 千瓦...: 千 belongs to the unit
_WEEKDAY_START = ("星期", "礼拜", "禮拜", "周", "週")
_POINT = frozenset("点點")

#: Anything that could start a numeral; text without one of these is returned untouched at once.
HAS_NUMERAL = re.compile(f"[{NUMERAL_CHARS}]")

# ---------------------------------------------------------------------------------------------
# Protection of idioms and fixed words
_PUA = 0xF0000  # placeholders: supplementary private-use plane, never produced by the model
_PUA_WEEKDAY = 0xF8000  # weekdays get their own range: 周六七点 reads 七点 as a time
_IDIOM_RE = re.compile(
    f"(?<![{NUMERAL_CHARS}0-9])(?:{lx.alternation(lx.IDIOMS)})(?![{NUMERAL_CHARS}0-9日号號])"
    # 十分 is "very" (十分感谢) unless it is minutes (八点十分), a fraction (十分之一),
    # ten minutes (十分钟) or ten points (得了十分, 十分制); 变得十分 is still "very"
    f"|(?<![点點{NUMERAL_CHARS}打拿考扣加减減])(?<!得了)(?<!拿了)(?<!考了)(?<!打了)十分(?![之钟鐘制])"
    # weekdays keep their characters: 星期一, 周三, 礼拜天, 周一三五 (but 周六七点 is 周六 7点)
    "|(?:星期|礼拜|禮拜|周|週)[一二三四五六日天](?:[一二三四五六日天](?![点點]))*"
)

# Characters an idiom, 十分 or a weekday can start with (see _sub_at).
_IDIOM_FIRST = re.compile(
    "[" + re.escape("".join(sorted({w[0] for w in lx.IDIOMS} | set("十星礼禮周週")))) + "]"
)

# 么 for 1 inside a digit string of three or more (text that went through OpenCC's s2twp)
_YAO_RE = re.compile(
    f"(?<![什怎那这這多要甚老])么(?=[{_DSC}么]{{2}})|(?<=[{_DSC}么])么(?=[{_DSC}么])"
    f"|(?<=[{_DSC}么]{{2}})么"
)

# ---------------------------------------------------------------------------------------------
# The one pass
_HOUR = "(?:二十[一二三四]?|十[一二三四五六七八九]?|[零〇一二两兩三四五六七八九])"
_MIN = "(?:[二三四五]?十[一二三四五六七八九]?|零?[一二三四五六七八九])"
_MIN_TENS = "(?:[二三四五]?十[一二三四五六七八九]?)"
_NOT_MORE = f"(?![{NUMERAL_CHARS}分秒点點])"

_MASTER = re.compile(
    # percent, permille: 百分之六点三, 负的百分之二十, 百分百, 千分之五
    f"(?P<pct>(?P<pneg>[负負]的?)?百分(?:之?(?P<pn>{_NUMBODY})|之?(?P<p100>百)))"
    f"|(?P<pml>千分之(?P<mn>{_NUMBODY}))"
    # fractions: 三分之二, 三又二分之一
    f"|(?P<frac>(?P<fneg>[负負])?(?:(?P<whole>{_NUM})又)?(?P<den>{_NUM})分之(?P<nu>{_NUMBODY}))"
    # dotted digit strings: 幺二七点零点零点幺 (IP addresses, versions); 杠 in phone numbers
    f"|(?P<dots>[{_DSC}]+(?:[点點][{_DSC}]+){{2,}})"
    f"|(?P<dash>[{_DSC}]{{2,}}(?:[杠槓][{_DSC}]{{2,}})+)"
    # clock times: 九点二十一分, 十三点十分三十六秒, 八点三十, 八点零五, 八点半
    f"|(?P<time>(?P<h>{_HOUR})(?P<hp>[点點])(?:(?P<m>{_MIN})分(?:(?P<s>{_MIN})秒)?"
    f"|(?P<m2>{_MIN_TENS}){_NOT_MORE}|(?P<mz>零[一二三四五六七八九]){_NOT_MORE}"
    "|(?P<hw>半|[一二两兩三]刻|[钟鐘]|整)))"
    # degrees with a tenth: 三十七度五 (the tail only follows a head written as a figure)
    f"|(?P<deg>(?P<dh>{_NUM})度(?P<dt>[{_DSC}]{{1,2}})(?![{NUMERAL_CHARS}0-9]))"
    # scores and ratios: 十七比十六
    f"|(?P<score>(?P<sa>{_NUM})比(?P<sb>{_NUM}))"
    # everything else: digit strings, cardinals, ranges, decimals, signs
    f"|(?P<run>(?P<neg>正?[负負])?(?P<num>{_NUM})"
    f"(?:[点點](?P<dec>[{_DSC}]+)(?P<big>[万萬亿億])?)?)"
)

# Characters a _MASTER match can start with (see _sub_at).
_MASTER_FIRST = re.compile(f"[{_START}负負正百千]")

_MEASURE_RE = re.compile(lx.alternation(lx.MEASURE_UNITS))
_MEASURE_NOT_RE = re.compile(lx.alternation(lx.MEASURE_NOT))
# 块 is money only before 钱 or a further amount (三块五); 三块蛋糕 keeps its characters. 毛 and
# 角 likewise before a further amount (两毛五), so both parts of the amount are figures.
_MONEY_BLOCK_RE = re.compile(
    f"[块塊](?=[钱錢毛角{NUMERAL_CHARS}0-9])|[毛角](?=[{NUMERAL_CHARS}0-9])"
)
_TIME_AFTER_RE = re.compile(lx.alternation(lx.TIME_AFTER))
_TIME_AFTER_ONE_RE = re.compile(lx.alternation(lx.TIME_AFTER_ONE))
_TIME_AFTER_ZERO_RE = re.compile(lx.alternation(lx.TIME_AFTER_ZERO_MINUTES))
_TIME_BEFORE = tuple(lx.TIME_BEFORE)
_TIME_BEFORE_ONE = tuple(lx.TIME_BEFORE_ONE)
_TIME_BEFORE_NOT = tuple(lx.TIME_BEFORE_NOT)
_CODE_BEFORE = tuple(lx.CODE_BEFORE)
_SCORE_BEFORE_RE = re.compile(lx.alternation(lx.SCORE_BEFORE))
_SCORE_AFTER_RE = re.compile(lx.alternation(lx.SCORE_AFTER))
_OPS_RE = re.compile(f"(?:{lx.alternation(lx.ARITH_OPS)})(?=[负負]?(?:[{_START}0-9]|[百千]分))")
_OPS_BEFORE = tuple(lx.ARITH_OPS)
# a second number after 到/至/或 that carries a unit: 三到五公里 -> 3到5公里
_RANGE_TAIL_RE = re.compile(
    f"(?:到|至|或者?)[{_START}0-9][{NUMERAL_CHARS}0-9]*(?:[点點.][{_DSC}0-9]+)?(?![{NUMERAL_CHARS}0-9])"
)
_TEMPERATURE_BEFORE = tuple(
    lx.both_scripts(
        ["零下", "零上", "负", "气温", "温度", "体温", "高温", "低温", "降到", "升到", "降至", "升至",
         "气温是", "温度是", "气温为", "温度为", "体温是", "摄氏", "华氏"]
    )
)
_HOUR_SHI = frozenset("时時")
_MONTH_AFTER_RE = re.compile(f"[{_START}0-9][{NUMERAL_CHARS}0-9]{{0,2}}月")
_MATH_NEXT = frozenset("的是为為都和与與或乘加减減除等次开開平立，。、,.;；!！?？")
_MATH_RE = re.compile(
    lx.alternation(
        lx.both_scripts(
            ["绝对值", "平方根", "立方根", "的平方", "的立方", "次方", "开方", "根号", "倒数是", "方程",
             "的值是", "的和是", "的差是", "的积是", "的商是", "余数"]
        )
    )
)
_MINUTES_AFTER_RE = re.compile(f"(?:[{_START}][{NUMERAL_CHARS}]*|[0-9]+)分")
_SECONDS_AFTER_RE = re.compile(f"(?:[{_START}][{NUMERAL_CHARS}]*|[0-9]+)秒")
_RANGE_TO_PERCENT_RE = re.compile("(?:到|至|或者?)[负負]?[百千]分之?")
_RANGE_TAIL_UNITS = frozenset("月号號日点點")
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
# words after which a lone digit or a pair is written as a figure because it is a count of a
# year (八六年), a generation (九零后) or a month (三月)
_YEAR = frozenset("年")
_GENERATION = frozenset("后後")
_MONTH = frozenset("月")
_DISCOUNT = frozenset("折")
_YEAR_BEFORE = ("在", "于", "於", "是", "从", "從", "自", "到", "至", "早在", "直到")
_DAY = frozenset("日号號")
_ORDINAL = frozenset("第")
_CLASSIFIER_AFTER_LETTER = frozenset("个個年天次月位只件本条條张張台臺部岁歲")


def _measure_at(s: str, pos: int) -> bool:
    """A measure/money/time unit starts at ``pos`` (五公斤, 两块钱, 三岁, 五分钟, 一号)."""
    if _MEASURE_RE.match(s, pos):
        return not _MEASURE_NOT_RE.match(s, pos)
    return _MONEY_BLOCK_RE.match(s, pos) is not None


def _after_chain_unit(s: str, start: int, end: int) -> bool:
    """The run follows an amount and its unit: 十二块五, 一米八, 九秒八三 (not 两块一个)."""
    if start >= 2 and s[start - 1] in lx.CHAIN_UNITS and _amount_at(s, start - 2):
        return end >= len(s) or s[end] not in _CLASSIFIERS
    return False


def _amount_at(s: str, i: int) -> bool:
    """``s[i]`` ends a number: a numeral or a figure, but not the minutes of a clock time."""
    if i < 0 or s[i] not in _NUM_OR_DIGIT:
        return False
    while i >= 0 and s[i] in _ASCII_DIGIT:
        i -= 1
    return i < 0 or s[i] != ":"  # 02:08秒 closes a clock time, not an amount


def _time_before(s: str, start: int, strict: bool) -> bool:
    """A time-of-day word or a weekday ends right before ``start`` (下午三点, 到两点, 周六七点)."""
    if start > 0 and ord(s[start - 1]) >= _PUA_WEEKDAY:
        return True
    if not s.endswith(_TIME_BEFORE_ONE if strict else _TIME_BEFORE, 0, start):
        return False
    return not s.endswith(_TIME_BEFORE_NOT, 0, start)


def _letter_neighbour(s: str, start: int, end: int) -> bool:
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


def _arith_neighbour(s: str, start: int, end: int) -> bool:
    """Spoken arithmetic: 一加一等于二 (the operator words stay)."""
    if _OPS_RE.match(s, end):
        return True
    if s.endswith(_OPS_BEFORE, 0, start):
        for op in _OPS_BEFORE:
            if s.endswith(op, 0, start):
                return _amount_at(s, start - len(op) - 1)
    return False


def _range_with_unit(s: str, end: int) -> bool:
    """三到五公里, 一到三月: the first number of a range takes the unit of the second."""
    m = _RANGE_TAIL_RE.match(s, end)
    if m is None:
        return _RANGE_TO_PERCENT_RE.match(s, end) is not None  # 三到百分之五
    e = m.end()
    return _measure_at(s, e) or (e < len(s) and s[e] in _RANGE_TAIL_UNITS)


def _lone_digit(s: str, start: int, end: int, ch: str, neg: bool) -> str | None:
    """Figure for a single digit when its surroundings say it is a quantity, else None."""
    if neg:
        return str(parse_int(ch))
    n = len(s)
    nxt = s[end] if end < n else ""
    value = parse_int(ch)
    if value is None:  # 幺 on its own (幺妹)
        return None
    if (value == 0 and nxt == "下") or nxt == "刻":
        return None  # 零下 is "below zero"; 一刻, 三刻 are kept as words (see _clock)
    if start > 0 and s[start - 1] in _ORDINAL:
        return str(value)
    if _measure_at(s, end):
        return str(value)
    if nxt in _MONTH and value > 0 and ch not in "两兩":
        return str(value)
    if nxt in _DAY:
        if nxt != "日":  # 三号, 一号线
            return str(value)
        if start > 0 and s[start - 1] == "月" and start > 1 and s[start - 2] in _NUM_OR_DIGIT:
            return str(value)
    if nxt in _POINT and _hour_context(s, start, end, value == 1):
        return str(value)
    if nxt in _HOUR_SHI and (_time_before(s, start, False) or _MINUTES_AFTER_RE.match(s, end + 1)):
        return str(value)  # 八时三十分 (news style): 8时30分
    if nxt == "度" and s.endswith(_TEMPERATURE_BEFORE, 0, start):
        return str(value)  # 零下五度, 最高气温五度 (but 一度 "once" stays)
    if nxt == "分" and _SECONDS_AFTER_RE.match(s, end + 1):
        return str(value)  # 三分二十秒
    if _after_chain_unit(s, start, end):
        return str(value)
    if _letter_neighbour(s, start, end) or _arith_neighbour(s, start, end):
        return str(value)
    if _range_with_unit(s, end):
        return str(value)
    if (nxt == "" or nxt in _MATH_NEXT) and _MATH_RE.search(s):
        return str(value)  # a math statement: 负二的绝对值是二, 二的平方是四
    if value and s.endswith(_CODE_BEFORE, 0, start):
        return str(value)
    return None


def _hour_context(s: str, start: int, end: int, is_one: bool) -> bool:
    """``X点`` with nothing after 点 is o'clock here (下午三点, 三点之前), not 三点建议."""
    if _time_before(s, start, strict=is_one):
        return True
    pattern = _TIME_AFTER_ONE_RE if is_one else _TIME_AFTER_RE
    return pattern.match(s, end + 1) is not None


def _digit_pair(s: str, start: int, end: int, num: str, neg: bool) -> str | None:
    """Two digits without units: a year (八六年), a generation (九零后) or a code; else None."""
    nxt = s[end] if end < len(s) else ""
    approx = is_approx_pair(num[0], num[1])
    if not is_digit_string(num):  # 一两, 两三: only ever "one or two", "two or three"
        if approx and _measure_at(s, end):
            return f"{parse_int(num[0])}~{parse_int(num[1])}"
        return None
    if neg or "幺" in num:
        return digit_string(num)
    if nxt in _YEAR:
        # 三四年 / 七八年 is "three or four years" unless it reads as a year: 二 is not used
        # for counts (一二年, 二三年 are 2012, 2023), a month follows, or 在/于 comes before
        if not approx or "二" in num or s.endswith(_YEAR_BEFORE, 0, start):
            return digit_string(num)
        if _MONTH_AFTER_RE.match(s, end + 1):  # 七八年三月: a year
            return digit_string(num)
        return None
    if nxt in _GENERATION and not approx:
        return digit_string(num)
    if _after_chain_unit(s, start, end) or _letter_neighbour(s, start, end):
        return digit_string(num)
    if nxt in _DISCOUNT and not approx:
        return digit_string(num)  # 八五折 -> 85折
    if approx and _measure_at(s, end):
        return f"{parse_int(num[0])}~{parse_int(num[1])}"  # 五六公里 -> 5~6公里, as 五公里 -> 5公里
    if s.endswith(_CODE_BEFORE, 0, start):
        return digit_string(num)
    if num[0] in "零〇" and nxt not in _CLASSIFIERS and not (start and s[start - 1] in _SPANS):
        return digit_string(num)  # 零七: a code; but 一年零三个月 is a span of time
    return None


def _after_figures(s: str, start: int) -> bool:
    """Figures (or figures and 万/亿) end right before ``start``: 10零, 5亿零, 7万亿〇."""
    i = start - 1
    while i >= 0 and s[i] in _BIG_UNITS:
        i -= 1
    return i >= 0 and s[i] in _ASCII_DIGIT


def _run(m: re.Match[str]) -> str:
    """Digit strings, cardinals, ranges, decimals and signed numbers."""
    s = m.string
    num = m.group("num")
    start = m.start("num")
    end = m.end()
    neg = m.group("neg")
    sign = "" if not neg else ("±" if neg[0] == "正" else "-")
    dec = m.group("dec")
    if dec is not None:
        ip = int_part(num)
        if ip is None:
            return m.group()
        return f"{sign}{ip}.{digit_string(dec)}{m.group('big') or ''}"
    n = len(s)
    nxt = s[end] if end < n else ""
    if (nxt in _ASCII_DIGIT or _after_figures(s, start)) and not (
        len(num) >= 3 and is_digit_string(num)
    ):
        # 10零, 5亿零: a stray word right after figures (or after 3万) stays a word, since
        # joining it to them would change the number
        return m.group()
    if (nxt in _VAGUE_NEXT and num[-1] in _UNIT_CHARS) or (
        start > 0 and s[start - 1] in _VAGUE_PREV and not s.endswith(_NOUN_SHU, 0, start)
    ):
        return m.group()  # 十几万, 几十万, 数十人: vague amounts stay words (倒数十秒 does not)
    if num == "十" and nxt in _MORE:
        return m.group()  # 十多, 十余
    if len(num) == 1:
        out = _lone_digit(s, start, end, num, bool(neg)) if num != "十" else "10"
        return m.group() if out is None else sign + out
    if is_digit_string(num) or (len(num) == 2 and num[0] in _PAIR_CHARS and num[1] in _PAIR_CHARS):
        if len(num) >= 3:
            return sign + digit_string(num)
        out = _digit_pair(s, start, end, num, bool(neg))
        return m.group() if out is None else sign + out
    if nxt in _CLASSIFIERS and num[-1] in _ABBREV_DIGITS and num[-2] in _BIG_OR_HUNDREDS:
        head = format_int(num[:-1])  # 一百一个 is 100 + 一个, not 110个
        if head is not None:
            return f"{sign}{head}{num[-1]}"
    if num[-1] == "千" and nxt in _KILO_UNITS and len(num) > 1:
        head = format_int(num[:-1])  # 一千克 is 1千克 (a kilogram), 五千米 is 5千米
        if head is not None and head.isdigit() and int(head) < 1000:
            return f"{sign}{head}千"
    out = format_range(num)
    if out is None:
        out = format_int(num)
    if out is None:
        out = _split_run(num)
    if out is None:
        return m.group()  # 八百一千: two numbers back to back, left as spoken
    return sign + out


def _split_run(num: str) -> str | None:
    """三百九十九三盒 -> 399三盒: a cardinal followed by one stray digit, which stays a word."""
    head, last = num[:-1], num[-1]
    if last in _UNIT_CHARS or len(head) < 2:
        return None
    out = format_int(head)
    return None if out is None else out + last


def _percent(m: re.Match[str]) -> str:
    """百分之六点三 -> 6.3%, 负的百分之二十 -> -20%, 百分之三四十 -> 30%~40%, 百分之二十多 -> 20%多."""
    neg = "-" if m.group("pneg") else ""
    if m.group("p100"):
        return f"{neg}100%"
    s = m.string
    end = m.end()
    if end < len(s) and s[end] in _VAGUE_NEXT:
        return m.group()  # 百分之十几
    out = _number_body(m.group("pn"), "%")
    return m.group() if out is None else neg + out


def _permille(m: re.Match[str]) -> str:
    """千分之五 -> 5‰."""
    out = _number_body(m.group("mn"), "‰")
    return m.group() if out is None else out


def _number_body(body: str, suffix: str) -> str | None:
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


def _fraction(m: re.Match[str]) -> str:
    """三分之二 -> 2/3, 三又二分之一 -> 3又1/2, 负三分之一 -> -1/3."""
    den = parse_int(m.group("den"))
    nu = _number_body(m.group("nu"), "")
    if den is None or nu is None:
        return m.group()
    s = m.string
    if m.end() < len(s) and s[m.end()] in _VAGUE_NEXT:
        return m.group()
    sign = "-" if m.group("fneg") else ""
    whole = m.group("whole")
    if whole is not None:
        w = parse_int(whole)
        if w is None:
            return m.group()
        return f"{sign}{w}又{nu}/{den}"
    return f"{sign}{nu}/{den}"


def _dots(m: re.Match[str]) -> str:
    """幺二七点零点零点幺 -> 127.0.0.1 (IP addresses, version numbers)."""
    return digit_string(m.group().replace("點", ".").replace("点", "."))


def _dash(m: re.Match[str]) -> str:
    """零二一杠六二三四五六七八 -> 021-62345678 (杠 is how a dash is read out)."""
    return digit_string(m.group().replace("杠", "-").replace("槓", "-"))


def _clock(m: re.Match[str]) -> str:
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
        if not (_time_before(s, start, strict=False) or _TIME_AFTER_ZERO_RE.match(s, m.end())):
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


def _degrees(m: re.Match[str]) -> str:
    """三十七度五 -> 37度5; a lone digit before 度 is only a temperature in context (一度 = once)."""
    head = m.group("dh")
    s = m.string
    start = m.start()
    if (len(head) == 1 and head != "十" and not s.endswith(_TEMPERATURE_BEFORE, 0, start)) or (
        start > 0 and s[start - 1] in _VAGUE_PREV
    ):
        return m.group()
    value = parse_int(head)
    if value is None:
        return m.group()
    return f"{value}度{digit_string(m.group('dt'))}"


def _score(m: re.Match[str]) -> str:
    """十七比十六 -> 17:16 in a match or ratio context, else 17比16 (the word stays)."""
    a = _score_side(m.group("sa"))
    b = _score_side(m.group("sb"))
    if a is None or b is None:
        return m.group()
    s = m.string
    start, end = m.start(), m.end()
    if end < len(s) and s[end] in _VAGUE_NEXT:
        return m.group()
    if _SCORE_BEFORE_RE.search(s, max(0, start - 8), start) or _SCORE_AFTER_RE.match(s, end):
        return f"{a}:{b}"
    return f"{a}比{b}"


def _score_side(num: str) -> str | None:
    """One side of 比: a cardinal (十七) or a digit string; None if it is neither."""
    v = parse_int(num)
    if v is not None:
        return str(v)
    if is_digit_string(num):
        return digit_string(num)
    return None


# One handler per named alternative of _MASTER.
_HANDLERS = {
    "pct": _percent,
    "pml": _permille,
    "frac": _fraction,
    "dots": _dots,
    "dash": _dash,
    "time": _clock,
    "deg": _degrees,
    "score": _score,
    "run": _run,
}
_GLUED_KINDS = frozenset(("pct", "pml", "frac", "dots", "dash", "time", "deg", "score"))


def _dispatch(m: re.Match[str]) -> str:
    kind = m.lastgroup
    start = m.start()
    if kind in _GLUED_KINDS and _after_figures(m.string, start):
        return m.group()  # glued to figures already written: reading it would change them
    return _HANDLERS[kind](m)  # type: ignore[index]


def itn_zh(text: str) -> str:
    """Chinese numerals in ``text`` written as figures; everything else exactly as it was."""
    if not HAS_NUMERAL.search(text):
        return text
    saved: dict[int, str] = {}

    def protect(m: re.Match[str]) -> str:
        word = m.group()
        code = (_PUA_WEEKDAY if word.startswith(_WEEKDAY_START) else _PUA) + len(saved)
        saved[code] = word
        return chr(code)

    if "么" in text:  # OpenCC's s2twp writes 幺 as 么; 什么/怎么 are never next to digits
        text = _YAO_RE.sub("幺", text)
    t = _sub_at(_IDIOM_FIRST, _IDIOM_RE, protect, text)
    t = _sub_at(_MASTER_FIRST, _MASTER, _dispatch, t)
    if saved:
        t = t.translate(saved)
    return t


def _sub_at(
    first: re.Pattern[str], pattern: re.Pattern[str], repl: Callable[[re.Match[str]], str], s: str
) -> str:
    """``pattern.sub(repl, s)``, trying ``pattern`` only where ``first`` finds a starting char.

    The same result as ``re.sub``, several times faster: these patterns open with lookbehinds and
    groups, which keep ``re`` from skipping ahead to plausible positions by itself, so it would try
    every alternative at every character. ``first`` is a plain character class, which it scans in C.
    """
    out: list[str] = []
    pos = 0
    for cand in first.finditer(s):
        p = cand.start()
        if p < pos:
            continue
        m = pattern.match(s, p)
        if m is None:
            continue
        out.append(s[pos:p])
        out.append(repl(m))
        pos = m.end()
    if not out:
        return s
    out.append(s[pos:])
    return "".join(out)


__all__ = ["HAS_NUMERAL", "NUMERAL_CHARS", "itn_zh"]
