"""The leak_limit pytest plugin, run as a user would: pytester runs a test file against the double."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile
from conftest import sine
from modelfiles import write_model

pytest_plugins = ["pytester"]

MIB = 1024 * 1024

TEST_FILE = """
import pytest

@pytest.mark.leak_limit(scenario="restart", per_iteration="{limit}", iterations=40, model="asr.bin", audio="clip.wav")
def test_restart(leak_result):
    assert leak_result.summary["iterations_completed"] >= 40
"""


@pytest.fixture()
def project(pytester: pytest.Pytester, double_lib: Path, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    soundfile.write(str(pytester.path / "clip.wav"), sine(0.5), 16_000)
    write_model(pytester.path / "asr.bin")
    monkeypatch.setenv("QASR_CHATLLM_LIB", str(double_lib))
    for key in ("QASR_DOUBLE_LEAK_INFERENCE",):
        monkeypatch.delenv(key, raising=False)
    return pytester


def test_a_clean_engine_passes(project: pytest.Pytester) -> None:
    project.makepyfile(TEST_FILE.format(limit="256 KiB"))
    result = project.runpytest_subprocess()  # the plugin loads through its pytest11 entry point
    result.assert_outcomes(passed=1)


def test_a_leak_fails_with_the_verdict_and_the_report(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QASR_DOUBLE_LEAK_INFERENCE", str(MIB))
    project.makepyfile(TEST_FILE.format(limit="256 KiB"))
    result = project.runpytest_subprocess()  # the plugin loads through its pytest11 entry point
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*LEAK: *heap_live LEAK +1 MiB/iter*limit +256 KiB/iter; report: *report.md*"])


def test_a_crash_fails(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QASR_DOUBLE_ABORT_AT_CALL", "5")
    project.makepyfile(TEST_FILE.format(limit="256 KiB"))
    result = project.runpytest_subprocess()  # the plugin loads through its pytest11 entry point
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*lab run crashed (SIGABRT in iteration 5, phase infer)*"])
