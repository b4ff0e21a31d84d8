"""The leak_limit marker on ordinary test functions (the body form), run as a user runs pytest.

pytester runs a test file in a pytest subprocess (the plugin loads through its pytest11 entry point);
the native cases come from tests/native/leak_cases.c, compiled at test time. Leaks are 1 MiB per
call against a 64 KiB limit; the clean and bounded cases keep nothing per call after warm-up.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

NATIVE = Path(__file__).resolve().parent / "native"


@pytest.fixture()
def project(pytester: pytest.Pytester, leak_cases_lib: Path, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    shutil.copy(NATIVE / "leak_cases.py", pytester.path / "leak_cases.py")
    monkeypatch.setenv("QASR_LEAK_CASES_LIB", str(leak_cases_lib))
    monkeypatch.delenv("QASR_CHATLLM_LIB", raising=False)
    return pytester


def test_the_marker_fails_the_leaking_extension_and_passes_the_clean_one(project: pytest.Pytester) -> None:
    project.makepyfile(test_cases="""
        import pytest
        import leak_cases

        @pytest.mark.leak_limit(per_iteration="64 KiB", iterations=100)
        def test_leaky():
            leak_cases.c_malloc_leak()

        @pytest.mark.leak_limit(per_iteration="64 KiB", iterations=100)
        def test_clean():
            leak_cases.clean()
    """)
    result = project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*test_leaky*",
        "LEAK: the live heap grows faster than its threshold: rss_anon LEAK +1 MiB/iter [[]+1 MiB/iter, +1 MiB/iter[]]; "
        "heap_live LEAK +1 MiB/iter [[]+1 MiB/iter, +1 MiB/iter[]] vs limit +64 KiB/iter; report: */test_leaky/*/report.md",
    ])  # fmt: skip
    assert _failed(result) == {"leaky"}


def _failed(result: pytest.RunResult) -> set[str]:
    """The tests the short summary lists as failed (pytest-memray says MEMORY PROBLEMS), without ``test_``."""
    return set(re.findall(r"^(?:FAILED|MEMORY PROBLEMS) \S+::test_(\w+)", result.stdout.str(), re.MULTILINE))


def test_fixtures_are_set_up_once_in_the_child_and_never_in_the_caller(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    project.makeconftest("""
        import os
        import pytest

        def note(what):
            with open(os.environ["FIXTURE_LOG"], "a") as f:
                f.write(f"{what} {os.getpid()}\\n")

        @pytest.fixture(scope="session")
        def engine():
            note("session")
            yield {"calls": 0}
            note("session-teardown")
    """)
    project.makepyfile(test_scopes="""
        import os
        import pytest

        @pytest.fixture(scope="module")
        def table(engine):
            from conftest import note
            note("module")
            return [0] * 1000

        @pytest.fixture
        def request_buffer(tmp_path):
            from conftest import note
            note("function")
            return tmp_path / "buf"

        @pytest.mark.leak_limit(per_iteration="64 KiB", iterations=30)
        @pytest.mark.parametrize("size", [10, 20])
        def test_body(engine, table, request_buffer, size):
            engine["calls"] += 1
            request_buffer.write_bytes(b"x" * size)
            with open(os.environ["FIXTURE_LOG"], "a") as f:
                f.write(f"call {engine['calls']} {size}\\n")
    """)
    log = project.path / "fixtures.log"
    monkeypatch.setenv("FIXTURE_LOG", str(log))
    result = project.runpytest_subprocess("-p", "no:cacheprovider", f"--basetemp={project.path / 'tmp'}")
    result.assert_outcomes(passed=2)
    lines = log.read_text().splitlines()
    setups = [line for line in lines if not line.startswith("call")]
    # Per parametrized test: one child, each fixture once in it, torn down after the last call.
    assert [line.split()[0] for line in setups] == ["session", "module", "function", "session-teardown"] * 2
    children = {line.split()[1] for line in setups}
    assert len(children) == 2
    calls = [line for line in lines if line.startswith("call")]
    assert calls[0] == "call 1 10" and calls[29] == "call 30 10" and calls[30] == "call 1 20" and len(calls) == 60


def test_an_error_in_the_body_fails_with_its_traceback(project: pytest.Pytester) -> None:
    project.makepyfile(test_breaks="""
        import pytest

        calls = []

        @pytest.mark.leak_limit(per_iteration="64 KiB", iterations=50)
        def test_breaks():
            calls.append(1)
            assert len(calls) < 12, "the handler broke"

        @pytest.fixture
        def broken():
            raise RuntimeError("no database")

        @pytest.mark.leak_limit(per_iteration="64 KiB")
        def test_needs_a_broken_fixture(broken):
            pass
    """)
    result = project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines([
        "lab run error (exit 1 in iteration 12, phase iteration); report: *report.md",
        "Traceback (most recent call last):",
        '*test_breaks.py", line *, in test_breaks',
        "AssertionError: the handler broke*",
    ])  # fmt: skip
    result.stdout.fnmatch_lines([
        "lab run error (exit 1 in iteration 0, phase fixtures); report: *report.md",
        "BodyNotRun: a fixture of the test failed in the lab's child",
        "*RuntimeError: no database",
    ])  # fmt: skip


def test_the_two_tools_on_the_same_cases(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison of docs/lab.md: our marker catches the three leaks and passes the two bounded
    caches and the clean call; pytest-memray's limit_leaks, which judges one call, fails the caches too."""
    pytest.importorskip("pytest_memray")
    monkeypatch.syspath_prepend(str(NATIVE))
    import leak_cases  # the case list; its library loads from QASR_LEAK_CASES_LIB

    project.makepyfile(test_qasr=leak_cases.make_tests("qasr", iterations=60), test_memray=leak_cases.make_tests("memray"))
    ours = project.runpytest_subprocess("-p", "no:cacheprovider", "test_qasr.py")
    memray = project.runpytest_subprocess("-p", "no:cacheprovider", "--memray", "test_memray.py")
    leaking = {case for case, leaks in leak_cases.LEAKS.items() if leaks}
    assert leaking == {"c_malloc_leak", "c_mmap_leak", "py_growing_list"}
    assert _failed(ours) == leaking, ours.stdout.str()[-3000:]
    assert _failed(memray) == leaking | {"c_bounded_cache", "py_lru_cache"}, memray.stdout.str()[-3000:]
