"""Chinese ITN side by side: qasr's rules, wetext (WeTextProcessing) and cn2an.

Prints, for ``tests/data/itn_cases.tsv``, the exact-match accuracy of every installed backend per
category, then throughput in sentences per second on one core, then wetext's English ITN on a few
dozen English cases written here. It is a report, not a test: nothing fails on a low number.

    .venv/bin/python benchmarks/bench_itn.py [--rounds N] [--cases FILE] [--show-misses BACKEND]

wetext and cn2an are optional (``pip install wetext cn2an``); a missing one gets a column of
"-" and a note, not an error.

    .venv/bin/python benchmarks/bench_itn.py --suite wetext PATH [--itn-date iso] [--itn-time unpadded]

compares our rules with WeTextProcessing's Chinese ITN test suite instead, read from the checkout
at PATH (``git clone https://github.com/wenet-e2e/WeTextProcessing``; nothing of it is copied
here): agreement per category, every difference classified as ours wrong, theirs wrong or a
convention with the rule of docs/itn.md that decides it (see ``wetext_suite.py``), throughput.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from qasr.text.itn.backends import BACKEND_NAMES, BackendUnavailable, get_backend  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import wetext_suite  # noqa: E402

CASES = ROOT / "tests" / "data" / "itn_cases.tsv"

# English spoken-form cases for wetext's English ITN (the default for English output). The
# expectations are the written forms an English reader expects, not what any tool produces.
EN_CASES: list[tuple[str, str]] = [
    ("I have twenty three apples", "I have 23 apples"),
    ("it costs five dollars", "it costs $5"),
    ("it costs five dollars and fifty cents", "it costs $5.50"),
    ("the meeting is at three thirty p m", "the meeting is at 3:30 p.m."),
    ("call me at five five five one two three four", "call me at 5551234"),
    ("in twenty twenty four", "in 2024"),
    ("on january first twenty twenty four", "on january 1 2024"),
    ("about ten percent", "about 10%"),
    ("it is two point five kilometers", "it is 2.5 km"),
    ("one hundred and twenty people", "120 people"),
    ("two million dollars", "$2 million"),
    ("one of them", "one of them"),
    ("no one knows", "no one knows"),
    ("we have two cats", "we have two cats"),
    ("the twenty first century", "the 21st century"),
    ("he is thirty five years old", "he is 35 years old"),
    ("minus five degrees", "-5 degrees"),
    ("page forty two", "page 42"),
    ("zero point five", "0.5"),
    ("fifty one percent", "51%"),
    ("one hundred", "100"),
    ("nineteen eighty four", "1984"),
    ("july fourth", "july 4"),
    ("it took forty five minutes", "it took 45 min"),
    ("route sixty six", "route 66"),
    ("three thousand four hundred", "3400"),
    ("the first time", "the 1st time"),
    ("seventy five kilograms", "75 kg"),
    ("twelve point five percent", "12.5%"),
    ("I will be there at seven o'clock", "I will be there at 07:00"),
    ("it weighs six pounds", "it weighs 6 lb"),
    ("a quarter past nine", "a quarter past nine"),
    ("this is the fifth floor", "this is the 5th floor"),
    ("nine hundred ninety nine", "999"),
    ("one thousand and one nights", "1001 nights"),
    ("everyone loves someone", "everyone loves someone"),
    ("Hello, world.", "Hello, world."),
    ("I paid 20 dollars.", "I paid $20."),
]


def load_cases(path: Path) -> list[tuple[str, str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [(r[0], r[1], r[2]) for r in rows[1:]]


def load_backends() -> dict[str, Callable[[str], str] | None]:
    out: dict[str, Callable[[str], str] | None] = {}
    for name in BACKEND_NAMES:
        try:
            engine = get_backend(name)
        except BackendUnavailable as exc:
            print(f"note: {name} not installed ({exc})")
            out[name] = None
            continue
        out[name] = lambda text, e=engine: e.normalize(text, "zh")
    return out


def pin_one_core() -> str:
    """Run on one CPU so the throughput figure is per core (Linux only; else unchanged)."""
    try:
        cpu = sorted(os.sched_getaffinity(0))[0]
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    except (AttributeError, OSError):
        return "not pinned"


def accuracy(
    cases: list[tuple[str, str, str]], fns: dict[str, Callable[[str], str] | None]
) -> dict[str, dict[str, list[tuple[str, str, str]]]]:
    """Per backend, per category: the cases it got wrong (input, expected, got)."""
    misses: dict[str, dict[str, list[tuple[str, str, str]]]] = {}
    for name, fn in fns.items():
        if fn is None:
            continue
        per: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
        for text, expected, cat in cases:
            try:
                got = fn(text)
            except Exception as exc:  # a crash counts as a miss, with its reason
                got = f"<{type(exc).__name__}>"
            if got != expected:
                per[cat].append((text, expected, got))
        misses[name] = per
    return misses


def print_accuracy(
    cases: list[tuple[str, str, str]],
    fns: dict[str, Callable[[str], str] | None],
    misses: dict[str, dict[str, list[tuple[str, str, str]]]],
) -> None:
    totals: dict[str, int] = defaultdict(int)
    for _, _, cat in cases:
        totals[cat] += 1
    names = list(fns)
    header = f"{'category':<10} {'cases':>5} " + " ".join(f"{n:>14}" for n in names)
    print(header)
    print("-" * len(header))
    for cat in sorted(totals, key=lambda c: (-totals[c], c)):
        cells = []
        for n in names:
            if fns[n] is None:
                cells.append(f"{'-':>14}")
                continue
            ok = totals[cat] - len(misses[n].get(cat, []))
            cells.append(f"{ok:>4}/{totals[cat]:<3} {100 * ok / totals[cat]:5.1f}%")
        print(f"{cat:<10} {totals[cat]:>5} " + " ".join(cells))
    print("-" * len(header))
    cells = []
    total = len(cases)
    for n in names:
        if fns[n] is None:
            cells.append(f"{'-':>14}")
            continue
        ok = total - sum(len(v) for v in misses[n].values())
        cells.append(f"{ok:>4}/{total:<3} {100 * ok / total:5.1f}%")
    print(f"{'all':<10} {total:>5} " + " ".join(cells))
    scripts = _by_script(cases)
    for label, subset in scripts.items():
        cells = []
        for n in names:
            if fns[n] is None:
                cells.append(f"{'-':>14}")
                continue
            wrong = {(t, e) for per in misses[n].values() for t, e, _ in per}
            ok = sum((t, e) not in wrong for t, e, _ in subset)
            cells.append(f"{ok:>4}/{len(subset):<3} {100 * ok / max(1, len(subset)):5.1f}%")
        print(f"{label:<10} {len(subset):>5} " + " ".join(cells))


def _by_script(cases: list[tuple[str, str, str]]) -> dict[str, list[tuple[str, str, str]]]:
    try:
        import opencc

        t2s = opencc.OpenCC("t2s")
    except ImportError:
        return {}
    trad = [c for c in cases if t2s.convert(c[0]) != c[0]]
    simp = [c for c in cases if t2s.convert(c[0]) == c[0]]
    return {"(simpl.)": simp, "(trad.)": trad}


def throughput(fn: Callable[[str], str], texts: list[str], rounds: int) -> float:
    """Best of ``rounds`` passes over ``texts``, in sentences per second."""
    for t in texts[:50]:
        fn(t)  # warm caches
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        for t in texts:
            fn(t)
        best = max(best, len(texts) / (time.perf_counter() - start))
    return best


def english(rounds: int) -> None:
    print("\nEnglish ITN (wetext, the default for English output):")
    try:
        engine = get_backend("wetext")
    except BackendUnavailable as exc:
        print(f"  skipped: {exc}")
        return
    ok = 0
    misses = []
    for text, expected in EN_CASES:
        got = engine.normalize(text, "en")
        if got == expected:
            ok += 1
        else:
            misses.append((text, expected, got))
    texts = [t for t, _ in EN_CASES]
    rate = throughput(lambda t: engine.normalize(t, "en"), texts, max(1, rounds // 4))
    share = 100 * ok / len(EN_CASES)
    print(f"  exact match {ok}/{len(EN_CASES)} ({share:.1f}%), {rate:,.0f} sentences/s")
    for text, expected, got in misses:
        print(f"  miss: {text!r}: expected {expected!r}, got {got!r}")


def suite_wetext(path: Path, rounds: int, date: str, time_style: str) -> None:
    """The ``--suite wetext PATH`` report: agreement, classified differences, throughput."""
    from qasr.text.itn import itn as itn_default

    def itn(text: str) -> str:
        return itn_default(text, date=date, time=time_style)

    try:
        cases, variants = wetext_suite.load_suite(path)
    except FileNotFoundError as exc:
        raise SystemExit(f"error: {exc}") from None
    files = len({c.where.split(":")[0] for c in cases})
    print(f"WeTextProcessing Chinese ITN suite: {wetext_suite.find_data_dir(path)}")
    print(f"python {sys.version.split()[0]}, {pin_one_core()}")
    print(f"\n{len(cases)} cases in {files} files (their default configuration), ours"
          f" (date={date!r}, time={time_style!r}) vs theirs:")  # fmt: skip
    results = wetext_suite.compare(cases, itn)
    wetext_suite.print_table(results)
    wetext_suite.print_differences(results)
    wetext_suite.print_variants(variants, itn)
    corpus = [c[0] for c in load_cases(CASES)]
    print(f"\nThroughput of ours (one core, best of {rounds}):")
    for label, texts in (("suite", [c.spoken for c in cases]), ("corpus", corpus)):
        rate = throughput(itn, texts, rounds)
        print(f"  {label:<7} {len(texts):>5} sentences  {rate:>10,.0f} sentences/s"
              f"  ({1e6 / rate:8.1f} us/sentence)")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suite", nargs=2, metavar=("NAME", "PATH"),
                    help="compare with a peer's test suite instead: 'wetext PATH' (a checkout of"
                         " wenet-e2e/WeTextProcessing)")  # fmt: skip
    ap.add_argument("--itn-date", default="zh", help="our date style for --suite: zh (default) or iso")
    ap.add_argument("--itn-time", default="padded",
                    help="our clock style for --suite: padded (default) or unpadded")  # fmt: skip
    ap.add_argument("--cases", type=Path, default=CASES)
    ap.add_argument("--rounds", type=int, default=5, help="timing passes (best one is kept)")
    ap.add_argument("--show-misses", metavar="BACKEND", action="append", default=[],
                    help="list the cases BACKEND gets wrong (repeatable)")  # fmt: skip
    args = ap.parse_args()
    if args.suite:
        name, path = args.suite
        if name != "wetext":
            ap.error(f"unknown suite {name!r}; the one known is: wetext")
        suite_wetext(Path(path), args.rounds, args.itn_date, args.itn_time)
        return

    shown = args.cases.relative_to(ROOT) if args.cases.is_relative_to(ROOT) else args.cases
    print(f"qasr ITN benchmark: {shown}")
    print(f"python {sys.version.split()[0]}, {pin_one_core()}")
    cases = load_cases(args.cases)
    fns = load_backends()
    misses = accuracy(cases, fns)
    print(f"\nExact match on {len(cases)} cases, per category:")
    print_accuracy(cases, fns, misses)

    texts = [c[0] for c in cases]
    print(f"\nThroughput (one core, {len(texts)} corpus sentences, best of {args.rounds}):")
    for name, fn in fns.items():
        if fn is None:
            print(f"  {name:<7} -")
            continue
        rate = throughput(fn, texts, args.rounds if name == "ours" else max(1, args.rounds // 2))
        print(f"  {name:<7} {rate:>10,.0f} sentences/s  ({1e6 / rate:8.1f} us/sentence)")

    english(args.rounds)

    for name in args.show_misses:
        print(f"\nMisses of {name}:")
        for cat, items in sorted(misses.get(name, {}).items()):
            for text, expected, got in items:
                print(f"  [{cat}] {text}  expected {expected}  got {got}")


if __name__ == "__main__":
    main()
