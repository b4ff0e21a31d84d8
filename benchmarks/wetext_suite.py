"""WeTextProcessing's Chinese ITN test suite against qasr's rules: agreement and why they differ.

The suite (``itn/chinese/test/data/*.txt`` in a checkout of wenet-e2e/WeTextProcessing, lines of
``spoken => written``) is read from wherever the user points the benchmark; nothing of it is kept
in this repository. Each file is one category, named after the file. Files named
``<category>_enable_...``/``<category>_disable_...`` hold the suite's expectations for non-default
configurations of its own normalizer; they are reported apart, since its default configuration is
the one its main test class runs.

Every case where our output differs from theirs is classified by the rules below, which a reader
can check one by one (each is named in docs/itn.md, section "Conventions and the WeTextProcessing
suite"). A rule maps both outputs to a neutral spelling of one convention (their ``2008/08/08``
and our ``2008年8月8日`` both become the same thing), or repairs one specific error in theirs. If
the two outputs are equal once all rules have run, the difference is a **convention** (or
**theirs wrong**, when a repair was needed); if not, it is **ours wrong**. No expected output of
the suite is stored here: the rules are patterns, and the few keyed decisions are documented.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from qasr.text.itn import lexicon
from qasr.text.itn.numbers import DIGIT, parse_int

#: Where the data sits inside a checkout.
DATA_SUBDIR = Path("itn") / "chinese" / "test" / "data"
_VARIANT = re.compile(r"^(?P<base>[a-z0-9]+?)_(?P<config>(?:enable|disable)_[a-z0-9_]+)$")

CONVENTION, THEIRS_WRONG, OURS_WRONG, AGREE = "convention", "theirs wrong", "ours wrong", "agree"


@dataclass(frozen=True)
class Case:
    """One line of the suite."""

    category: str
    spoken: str
    written: str
    where: str  # file:line, for the reader who wants to look it up in their checkout


def find_data_dir(path: Path) -> Path:
    """The suite's data directory: ``path`` itself, or ``itn/chinese/test/data`` under it."""
    for cand in (path, path / DATA_SUBDIR):
        if cand.is_dir() and any(cand.glob("*.txt")):
            return cand
    raise FileNotFoundError(
        f"no WeTextProcessing ITN test data under {path} (expected {DATA_SUBDIR}/*.txt); "
        "clone wenet-e2e/WeTextProcessing and pass its path"
    )


def parse_file(path: Path, category: str) -> list[Case]:
    """``spoken => written`` lines, as their own test helper reads them (an empty output is allowed)."""
    out: list[Case] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if "=>" not in line:
            continue
        spoken, _, written = line.partition("=>")
        out.append(Case(category, spoken.strip(), written.strip(), f"{path.name}:{n}"))
    return out


def load_suite(path: Path) -> tuple[list[Case], dict[str, list[Case]]]:
    """Cases of the default configuration, and the cases of each other configuration by name.

    Categories come from the file names: ``date.txt`` is "date"; ``normalizer_disable_x.txt`` is
    the "normalizer" category under configuration ``disable_x``.
    """
    data = find_data_dir(path)
    default: list[Case] = []
    variants: dict[str, list[Case]] = {}
    for f in sorted(data.glob("*.txt")):
        m = _VARIANT.match(f.stem)
        if m:
            variants[f.stem] = parse_file(f, m.group("base"))
        else:
            default.extend(parse_file(f, f.stem))
    return default, variants


# ------------------------------------------------------------------------------------- rules
Apply = Callable[[str, str, str], tuple[str, str]]  # (ours, theirs, spoken) -> (ours, theirs)


@dataclass(frozen=True)
class Rule:
    """A convention both outputs are mapped through, or a repair of one error of theirs."""

    name: str  # the rule's name in docs/itn.md
    kind: str  # CONVENTION or THEIRS_WRONG
    why: str
    apply: Apply = field(repr=False)


def _both(fn: Callable[[str], str]) -> Apply:
    """A neutral spelling applied to both outputs alike (so it can never hide a one-sided error)."""
    return lambda ours, theirs, spoken: (fn(ours), fn(theirs))


def _theirs(fn: Callable[[str, str], str]) -> Apply:
    """A repair of their output alone, given the spoken input."""
    return lambda ours, theirs, spoken: (ours, fn(theirs, spoken))


def _sub(pattern: str, repl: str | Callable[[re.Match[str]], str]) -> Callable[[str], str]:
    rx = re.compile(pattern)
    return lambda s: rx.sub(repl, s)


_CJK_NUM = "零〇一二三四五六七八九两兩十百千万萬亿億幺"
_DIGITS = "零〇一二三四五六七八九"


def _figures(word: str) -> str:
    """Single CJK digits of ``word`` as figures (十 as 10): how a converter would write them."""
    return "".join(str(DIGIT[c]) if c in DIGIT else ("10" if c == "十" else c) for c in word)


def _merged_numbers(theirs: str, spoken: str) -> str:
    """Undo 88 + 五 written as one figure 885: two numbers spoken back to back."""
    for m in re.finditer(f"[{_CJK_NUM}]{{3,}}", spoken):
        run = m.group()
        if parse_int(run) is not None or run[-1] not in _DIGITS or run[-2] not in _DIGITS:
            continue
        head = parse_int(run[:-1])
        if head is None:
            continue
        theirs = re.sub(f"(?<!\\d){head}{DIGIT[run[-1]]}(?!\\d)", f"{head}{run[-1]}", theirs)
    return theirs


# Fixed words whose numerals are not quantities, beyond the idioms ours protects (lexicon.IDIOMS).
_FIXED_EXTRA = {"落九天": "a line of 李白 (…银河落九天): 九天 is 'the ninth heaven', not 'nine days'"}


def _fixed_words(theirs: str, spoken: str) -> str:
    for word in (*lexicon.IDIOMS, *_FIXED_EXTRA):
        if word in spoken:
            theirs = theirs.replace(_figures(word), word)
    return theirs


# Unit symbols they write that are no unit: 万伏特 (ten thousand volts) written as W + v.
_BAD_SYMBOLS = {"Wv": "万伏特"}


def _bad_symbols(theirs: str, spoken: str) -> str:
    for bad, words in _BAD_SYMBOLS.items():
        if words in spoken:
            theirs = re.sub(f"(?<=\\d){bad}", words, theirs)
    return theirs


_EVENT = lexicon.alternation(lexicon.TIME_AFTER_ZERO_MINUTES)
_CLOCK_AS_SCORE = re.compile(f"(?<![\\d.])(\\d{{1,2}})\\.(\\d)分(?={_EVENT})")


def _clock_as_score(theirs: str, spoken: str) -> str:
    """七点五分起飞 written 7.5分 (a score): it is the clock time 07:05."""
    return _CLOCK_AS_SCORE.sub(lambda m: f"{int(m.group(1)):02d}:0{m.group(2)}", theirs)


_AMPM = re.compile(r"(?<=\d)\s?[ap]\.m\.")
_PERIOD_WORD = re.compile(r"(?:上午|下午|早上|早晨|晚上|凌晨|中午|傍晚|深夜|半夜)(?=\d{1,2}:\d\d)")


def _am_pm(ours: str, theirs: str, spoken: str) -> tuple[str, str]:
    """Their 4:20p.m. for 下午四点二十: compare the clock times without the period of the day."""
    if not _AMPM.search(theirs):
        return ours, theirs
    return _PERIOD_WORD.sub("", ours), _AMPM.sub("", theirs)


def _date_format(s: str) -> str:
    """Y/MM/DD, Y/MM, MM/DD (theirs), Y年M月D号 (ours) and YYYY-MM-DD (date="iso") -> Y年M月D日."""
    s = re.sub(r"(?<![\d-])(\d{4})-(\d\d)-(\d\d)(?![\d-])",
               lambda m: f"{m[1]}年{int(m[2])}月{int(m[3])}日", s)  # fmt: skip
    s = re.sub(r"(?<![\d/])(\d{2,4})/(\d\d)/(\d\d)(?![\d/])",
               lambda m: f"{m[1]}年{int(m[2])}月{int(m[3])}日", s)  # fmt: skip
    s = re.sub(r"(?<![\d/])(\d{4})/(\d\d)(?![\d/])", lambda m: f"{m[1]}年{int(m[2])}月", s)
    s = re.sub(r"(?<![\d/])(\d\d)/(\d\d)(?![\d/])", lambda m: f"{int(m[1])}月{int(m[2])}日", s)
    return re.sub(r"(?<=\d月)(\d{1,2})[号號]", r"\1日", s)


_HALF = {"半": "30", "一刻": "15", "三刻": "45"}


def _clock_half(s: str) -> str:
    """8点半 / 8点一刻 (ours) -> 8:30 / 8:15."""
    return re.sub(r"(\d{1,2})[点點](半|一刻|三刻)", lambda m: f"{m[1]}:{_HALF[m[2]]}", s)


def _range_dash(m: re.Match[str]) -> str:
    """23-4 -> 23~24, 650-60 -> 650~660, 25000-6000 -> 25000~26000: the abbreviated upper end."""
    a, b = m.group(1), m.group(2)
    if len(b) < len(a):
        full = a[: len(a) - len(b)] + b
        if int(full) > int(a):
            return f"{a}~{full}"
    return m.group()


_YUAN_AMOUNT = re.compile(r"(?<![\d.])(\d+)元(\d)[角毛](?:(\d)分)?")
_MONEY = {"A$": "澳元", "HKD": "港元", "CNY": "人民币", "TWD": "新台币", "RM": "马来西亚令吉",
          "¥": "元", "$": "美元", "£": "英镑", "€": "欧元", "₽": "卢布"}  # fmt: skip
_MONEY_RE = re.compile(
    "(" + "|".join(re.escape(k) for k in _MONEY) + r")(\d[\d.]*(?:~\d[\d.]*)?)"
)


def _money_symbol(s: str) -> str:
    """¥8.5 / $30~50 (theirs) and 8.5元 / 12元3角5分 (ours) -> 8.5元 / 12.35元."""
    s = _YUAN_AMOUNT.sub(lambda m: f"{m[1]}.{m[2]}{m[3] or ''}元", s)
    return _MONEY_RE.sub(lambda m: m[2] + _MONEY[m[1]], s)


_UNITS = {
    "千瓦时": "kWh", "平方米": "m²", "立方米": "m³", "摄氏度": "°C", "千克": "kg", "公斤": "kg",
    "千米": "km", "公里": "km", "厘米": "cm", "毫米": "mm", "毫秒": "ms", "毫升": "mL",
    "分钟": "min", "小时": "h", "千瓦": "kW", "伏特": "V", "赫兹": "Hz", "摩尔": "mol", "克": "g",
    "米": "m", "秒": "s", "度": "°", "kwh": "kWh",
}  # fmt: skip
_UNIT_RE = re.compile("(?<=[\\d~])(" + "|".join(sorted(_UNITS, key=len, reverse=True)) + ")")
_NUMX = r"\d[\d.]*(?:~\d[\d.]*)?"


def _unit_symbol(s: str) -> str:
    """Unit words after a figure as their symbols; 每小时80公里 and 80千米每小时 as 80km/h."""
    s = _UNIT_RE.sub(lambda m: _UNITS[m[1]], s)
    s = re.sub(f"每小时({_NUMX})km", r"\1km/h", s)
    return re.sub(f"({_NUMX})km每小时", r"\1km/h", s)


def _big_units(s: str) -> str:
    """3万, 2亿500, 300万25 (a figure and 万/亿 groups) -> the plain integer."""

    def yi(m: re.Match[str]) -> str:
        return str(int(m[1]) * 10**8 + int(m[2] or 0) * 10**4 + int(m[3] or 0))

    def wan(m: re.Match[str]) -> str:
        return str(int(m[1]) * 10**4 + int(m[2] or 0))

    s = re.sub(r"(?<![\d.~-])(\d+)[亿億](?:(\d+)[万萬])?(\d+)?(?![\d.])", yi, s)
    return re.sub(r"(?<![\d.~-])(\d+)[万萬](\d+)?(?![\d.])", wan, s)


def _per_item(s: str) -> str:
    """Our 200一人 (200 per person) read as their abbreviation 两百一 = 210."""

    def fix(m: re.Match[str]) -> str:
        n = int(m[1])
        zeros = len(m[1]) - len(m[1].rstrip("0"))
        return str(n + 10 ** (zeros - 1)) if zeros >= 2 else m.group()

    return re.sub(r"(?<![\d.])([1-9]\d*)一(?=[个個人位只件])", fix, s)


_TRAIN = {"G": "高", "D": "动", "T": "特", "K": "快"}


def _train_prefix(s: str) -> str:
    """G56 (theirs) and 高五六 (ours) -> 高56: the spoken prefix of a train number."""
    s = re.sub(r"(?<![A-Za-z])([GDTK])(\d+)", lambda m: _TRAIN[m[1]] + m[2], s)
    return re.sub(f"([高动特快])([{_DIGITS}幺]{{2,}})(?![{_CJK_NUM}])",
                  lambda m: m[1] + _figures(m[2].replace("幺", "一")), s)  # fmt: skip


_CLASSIFIER = "个個人位天年月周週次本件只隻条條张張帧幀盒名岁歲下遍回"
_LONE = re.compile(
    f"(?<![{_CJK_NUM}\\d.])([{_DIGITS}两兩])(?![{_CJK_NUM}\\d点點])"
    f"(?=[{_CLASSIFIER}]|[,，.。、;；!！?？]|$)"
)


def _lone_digit(s: str) -> str:
    """A lone digit before a counting word or standing alone: 一年前 / 1年前, ，五， / ，5，."""
    return _LONE.sub(lambda m: str(DIGIT[m[1]]), s)


#: Applied in this order (repairs of their raw output first, then the spellings of conventions).
RULES: tuple[Rule, ...] = (
    Rule("merged-numbers", THEIRS_WRONG,
         "two numbers spoken back to back (八十八 + 五箱) written as one figure (885): a number"
         " nobody said", _theirs(_merged_numbers)),
    Rule("fixed-words", THEIRS_WRONG,
         "numerals of an idiom or a line of verse written as figures (九天, 'the heavens', as"
         " 9天): the words are not quantities", _theirs(_fixed_words)),
    Rule("bad-symbol", THEIRS_WRONG,
         "a unit symbol that is no unit (万伏特 -> Wv)", _theirs(_bad_symbols)),
    Rule("clock-as-score", THEIRS_WRONG,
         "a clock time before an event (七点五分起飞) written as a score (7.5分)",
         _theirs(_clock_as_score)),
    Rule("fillers", CONVENTION,
         "they delete fillers (呃, 啊); ITN here changes numbers only", _both(_sub("[呃嗯啊]", ""))),
    Rule("date-format", CONVENTION,
         "dates as 2008/08/08 (theirs) or as spoken, 2008年8月8日 (ours; 2008-08-08 with"
         " date='iso')", _both(_date_format)),
    Rule("clock-format", CONVENTION,
         "clock hours zero-padded (08:05, ours) or not (8:05)",
         _both(_sub(r"(?<![\d:.])0(\d):(?=\d\d)", r"\1:"))),
    Rule("clock-half", CONVENTION,
         "半 and 一刻 after the hour kept as words (7点半, ours) or as minutes (7:30)",
         _both(_clock_half)),
    Rule("am-pm", THEIRS_WRONG,
         "上午/下午/晚上 replaced by English a.m./p.m. (and 晚上一点, 1 at night, as p.m.)", _am_pm),
    Rule("range-format", CONVENTION,
         "an approximate pair as 23~24 (ours) or with the upper end abbreviated, 23-4",
         _both(_sub(r"(?<![\d.:/-])(\d+)-(\d+)(?![\d.:/-])", _range_dash))),
    Rule("range-words", CONVENTION,
         "到/至 between two numbers kept as spoken (30到45, ours) or written ~",
         _both(_sub(r"(\d%?)(?:到|至)(?=-?\d)", r"\1~"))),
    Rule("range-unit", CONVENTION,
         "% written after both ends of a range (30%~40%, ours) or once (30~40%)",
         _both(_sub(r"(\d)%~(\d[\d.]*)%", r"\1~\2%"))),
    Rule("money-symbol", CONVENTION,
         "currency words kept (8.5元, 12元3角5分; ours) or written as symbols (¥8.5, ¥12.35)",
         _both(_money_symbol)),
    Rule("unit-words", CONVENTION,
         "measure words kept (60千克, ours) or written as symbols (60kg)", _both(_unit_symbol)),
    Rule("math-words", CONVENTION,
         "operator words kept (3加4等于7, ours) or written as symbols (3+4=7)",
         _both(lambda s: re.sub(r"(?<=\d)(加|减|等于)(?=-?\d)",
                                lambda m: {"加": "+", "减": "-", "等于": "="}[m[1]], s))),
    Rule("zhao", CONVENTION,
         "兆 is left as spoken by ours (10^6 or 10^12, depending on the writer)",
         _both(_sub(f"[\\d{_CJK_NUM}]*兆[\\d{_CJK_NUM}]*", "⟨兆⟩"))),
    Rule("big-units", CONVENTION,
         "万/亿 kept only for round numbers (3万, 200000500; ours) or always (30000, 2亿500)",
         _both(_big_units)),
    Rule("per-item", CONVENTION,
         "两百一 + 个/人 read as 200 apiece (200一人, ours) or as the abbreviation 210",
         _both(_per_item)),
    Rule("lone-digit", CONVENTION,
         "a lone digit before a counting word or on its own kept in characters (一年前, ours)",
         _both(_lone_digit)),
    Rule("train-prefix", CONVENTION,
         "a train number's spoken prefix kept (动789; ours leaves 高五六 alone) or as G/D/T/K",
         _both(_train_prefix)),
)  # fmt: skip


def neutral(ours: str, theirs: str, spoken: str, rules: tuple[Rule, ...] = RULES) -> tuple[str, str]:
    """Both outputs after every rule, in order."""
    for rule in rules:
        ours, theirs = rule.apply(ours, theirs, spoken)
    return ours, theirs


@dataclass(frozen=True)
class Verdict:
    """How one case compares: AGREE, CONVENTION, THEIRS_WRONG or OURS_WRONG, and the rules why."""

    kind: str
    rules: tuple[str, ...] = ()
    residue: tuple[str, str] = ("", "")  # what still differs, for OURS_WRONG


def classify(case: Case, ours: str, rules: tuple[Rule, ...] = RULES) -> Verdict:
    """Classify our output for ``case`` against theirs.

    Equal after all rules: THEIRS_WRONG when a repair of theirs changed something, else
    CONVENTION, naming the conventions without which the outputs would still differ. Not equal:
    OURS_WRONG, with the neutral forms that still differ.
    """
    theirs = case.written
    if ours == theirs:
        return Verdict(AGREE)
    o, t = neutral(ours, theirs, case.spoken, rules)
    if o != t:
        return Verdict(OURS_WRONG, residue=(o, t))
    repairs = []
    o, t = ours, theirs
    for rule in rules:
        o2, t2 = rule.apply(o, t, case.spoken)
        if rule.kind == THEIRS_WRONG and (o2, t2) != (o, t):
            repairs.append(rule.name)
        o, t = o2, t2
    needed = []
    for r in rules:
        if r.kind == CONVENTION:
            o, t = neutral(ours, theirs, case.spoken, tuple(x for x in rules if x is not r))
            if o != t:
                needed.append(r.name)
    if repairs:
        return Verdict(THEIRS_WRONG, tuple(repairs + needed))
    return Verdict(CONVENTION, tuple(needed))


# ------------------------------------------------------------------------------------ report
Result = tuple[Case, str, Verdict]
_KINDS = (OURS_WRONG, THEIRS_WRONG, CONVENTION)


def compare(cases: list[Case], fn: Callable[[str], str]) -> list[Result]:
    """Our output and its verdict for every case."""
    out = []
    for case in cases:
        ours = fn(case.spoken)
        out.append((case, ours, classify(case, ours)))
    return out


def _clip(text: str, other: str, width: int = 36) -> str:
    """``text`` cut to a window around its first difference from ``other`` (long sentences)."""
    if len(text) <= width:
        return text
    i = next((k for k, (a, b) in enumerate(zip(text, other)) if a != b), min(len(text), len(other)))
    lo = max(0, min(i - width // 3, len(text) - width))
    return ("…" if lo else "") + text[lo : lo + width] + ("…" if lo + width < len(text) else "")


def print_table(results: list[Result]) -> None:
    """Agreement and the three kinds of difference, per category (file) and in all."""
    cats: dict[str, list[Result]] = {}
    for r in results:
        cats.setdefault(r[0].category, []).append(r)
    head = f"{'category':<14} {'cases':>5} {'agree':>13} {'ours wrong':>11} {'theirs wrong':>13} {'convention':>11}"
    print(head)
    print("-" * len(head))
    for name, rows in [*sorted(cats.items()), ("all", results)]:
        if name == "all":
            print("-" * len(head))
        n = len(rows)
        agree = sum(v.kind == AGREE for _, _, v in rows)
        counts = [sum(v.kind == k for _, _, v in rows) for k in _KINDS]
        print(f"{name:<14} {n:>5} {agree:>5} {100 * agree / n:5.1f}% "
              f"{counts[0]:>11} {counts[1]:>13} {counts[2]:>11}")  # fmt: skip


def print_differences(results: list[Result]) -> None:
    """Every difference with its class and the rules that decide it."""
    for kind in _KINDS:
        rows = [r for r in results if r[2].kind == kind]
        print(f"\n{kind} ({len(rows)}):")
        for case, ours, v in rows:
            line = (f"  [{case.category}] {_clip(case.spoken, case.spoken)}  ours {_clip(ours, case.written)}"
                    f"  theirs {_clip(case.written, ours)}")  # fmt: skip
            if kind == OURS_WRONG:
                o, t = v.residue
                line += f"  (still differs: {_clip(o, t)} / {_clip(t, o)})"
            else:
                line += "  rules: " + ", ".join(v.rules)
            print(line)
    used = {name for _, _, v in results for name in v.rules}
    print("\nRules (each is explained in docs/itn.md, 'Conventions and the WeTextProcessing suite'):")
    for rule in RULES:
        n = sum(rule.name in v.rules for _, _, v in results)
        if rule.name in used:
            print(f"  {rule.name:<15} {rule.kind:<12} {n:>3} cases  {rule.why}")


def print_variants(variants: dict[str, list[Case]], fn: Callable[[str], str]) -> None:
    """Agreement with the files for the suite's other configurations (not classified)."""
    if not variants:
        return
    print("\nOther configurations of their normalizer (agreement only):")
    for name, cases in variants.items():
        ok = sum(fn(c.spoken) == c.written for c in cases)
        print(f"  {name:<58} {ok:>3}/{len(cases):<3}")
