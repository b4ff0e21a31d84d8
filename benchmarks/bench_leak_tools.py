"""qasr's leak_limit marker against pytest-memray's limit_leaks, on the same cases. Prints a table.

    python benchmarks/bench_leak_tools.py [--iterations 100] [--repeat 3]

The cases are tests/native/leak_cases.py (a C library compiled here from tests/native/leak_cases.c,
loaded with ctypes: a per-call malloc leak, a per-call mmap leak, a bounded cache; and in Python a
list that grows, an lru_cache that fills and stops, a clean call). Each case is the body of one
test, marked once for each tool with the same limit (64 KiB per iteration for qasr, 64 KiB per
allocation site for pytest-memray), and each test runs in its own ``pytest`` process. Outcome per
case: **caught** (a leaking case fails), **missed** (a leaking case passes), **ok** (a bounded
case passes), **false alarm** (a bounded case fails). Time: median wall time of the whole pytest
process over ``--repeat`` runs, and the same for an unmarked test (pytest's own start-up), so the
tool's own cost is the difference. Needs a C compiler and the dev extra (memray, pytest-memray).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))

from native.build import build_leak_cases  # noqa: E402

TOOLS = {"qasr": ("leak_limit", []), "memray": ("limit_leaks", ["--memray"])}


def _pytest(folder: Path, test: str, extra: list[str], env: dict[str, str]) -> tuple[int, float]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra, test],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=900)  # fmt: skip
    return proc.returncode, time.perf_counter() - t0


def _outcome(returncode: int, leaks: bool) -> str:
    if returncode not in (0, 1):
        return f"error (exit {returncode})"
    failed = returncode == 1
    return ("caught" if failed else "missed") if leaks else ("false alarm" if failed else "ok")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=100, help="leak_limit iterations (default 100)")
    parser.add_argument("--repeat", type=int, default=3, help="pytest runs per case and tool; the median time is shown")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="qasr-leak-tools-") as tmp:
        folder = Path(tmp)
        env = {**os.environ, "QASR_LEAK_CASES_LIB": str(build_leak_cases(folder / "lib"))}
        env.pop("QASR_CHATLLM_LIB", None)
        shutil.copy(TESTS / "native" / "leak_cases.py", folder / "leak_cases.py")
        sys.path.insert(0, str(folder))
        os.environ["QASR_LEAK_CASES_LIB"] = env["QASR_LEAK_CASES_LIB"]
        import leak_cases

        for tool in TOOLS:
            (folder / f"test_{tool}.py").write_text(leak_cases.make_tests(tool, args.iterations))
        (folder / "test_plain.py").write_text("import leak_cases\n\n\ndef test_plain():\n    leak_cases.clean()\n")

        base = {tool: statistics.median(_pytest(folder, "test_plain.py", extra, env)[1] for _ in range(args.repeat))
                for tool, (_, extra) in TOOLS.items()}  # fmt: skip
        rows = []
        for case, leaks in leak_cases.LEAKS.items():
            cells = []
            for tool, (_, extra) in TOOLS.items():
                runs = [_pytest(folder, f"test_{tool}.py::test_{case}", extra, env) for _ in range(args.repeat)]
                outcomes = {_outcome(code, leaks) for code, _ in runs}
                cells.append((" / ".join(sorted(outcomes)), statistics.median(t for _, t in runs)))
            rows.append((case, leaks, cells))

    print(f"leak_limit: per_iteration={leak_cases.LIMIT_QASR!r}, iterations={args.iterations}; "
          f"limit_leaks({leak_cases.LIMIT_MEMRAY!r}); median of {args.repeat} pytest runs per cell, "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}")  # fmt: skip
    print()
    print("| case | keeps growing | qasr `leak_limit` | s | pytest-memray `limit_leaks` | s |")
    print("|---|---|---|---|---|---|")
    for case, leaks, ((ours, t_ours), (theirs, t_theirs)) in rows:
        print(f"| `{case}` | {'yes' if leaks else 'no'} | {ours} | {t_ours:.2f} | {theirs} | {t_theirs:.2f} |")
    print(f"| (unmarked test: pytest start-up) | | | {base['qasr']:.2f} | | {base['memray']:.2f} |")


if __name__ == "__main__":
    main()
