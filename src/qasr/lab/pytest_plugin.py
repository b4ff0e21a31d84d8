"""Leak regression tests for your CI: a pytest plugin (entry point ``pytest11``, name ``qasr_leak``).

Mark a test and ask for the ``leak_result`` fixture; the plugin runs the scenario in a child
process through the lab and fails the test, with the verdict and the report's path, when memory
grows faster than the limit::

    import pytest

    @pytest.mark.leak_limit(scenario="restart", per_iteration="64 KiB", iterations=100,
                           model="models/qwen3-asr-0.6b-q4_0.bin", audio="samples/en.wav")
    def test_restart_does_not_leak(leak_result):
        assert leak_result.summary["iterations_completed"] == 100

The limit is the threshold T of GUIDE §4 for RssAnon and the live heap: the test fails when either
slope's 95% lower bound exceeds it (LEAK), or when the run crashed. INCONCLUSIVE runs are extended
to 2N and 4N iterations first; if still inconclusive the test fails unless the marker says
``inconclusive="pass"``. Relative paths are taken from pytest's rootdir; ``model`` defaults to
``$QASR_MODEL``, ``audio`` to ``$QASR_LEAK_AUDIO``, the engine to ``$QASR_CHATLLM_LIB``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

MARKER = "leak_limit"
_FAILURE = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(scenario, per_iteration, iterations=100, model=None, model_b=None, aligner=None, audio=None, "
        "reference=None, allocator='glibc', inconclusive='fail'): run a qasr lab scenario for the leak_result "
        "fixture and fail when memory grows faster than per_iteration",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A marked test runs the scenario even if it does not ask for ``leak_result`` itself."""
    for item in items:
        if item.get_closest_marker(MARKER) is not None and "leak_result" not in getattr(item, "fixturenames", ["leak_result"]):
            item.fixturenames.append("leak_result")  # type: ignore[attr-defined]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):  # type: ignore[no-untyped-def]
    """Fail the test itself (not its setup) when its scenario broke the limit; else run its body."""
    why = item.stash.get(_FAILURE, None)
    if why:
        pytest.fail(why, pytrace=False)
    return (yield)


def _path(value: Any, root: Path) -> str | None:
    if value is None:
        return None
    p = Path(str(value)).expanduser()
    return str(p if p.is_absolute() else root / p)


def _failure(summary: dict[str, Any], limit: int) -> str | None:
    """Why the run breaks the limit, or None when it keeps to it."""
    from qasr.lab.units import format_rate

    report = Path(summary["run_dir"]) / "report.md"
    if summary["status"] != "completed":
        from qasr.lab.analysis import crash_text

        return f"lab run {summary['status']} ({crash_text(summary.get('crash') or {})}); report: {report}"
    verdicts = summary.get("verdicts") or {}
    parts = [
        f"{m} {v['verdict']} {format_rate(v['slope_bytes_per_iter'])} [{format_rate(v['ci_low'])}, {format_rate(v['ci_high'])}]"
        for m, v in verdicts.items()
        if m in ("rss_anon", "heap_live")
    ]
    detail = f"{'; '.join(parts)} vs limit {format_rate(limit)}; report: {report}"
    if summary.get("verdict") == "LEAK":
        return f"LEAK: {summary.get('verdict_reason')}: {detail}"
    if summary.get("verdict") == "INCONCLUSIVE":
        return f"INCONCLUSIVE after extension: {detail}"
    return None


@pytest.fixture()
def leak_result(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The `RunOutcome` of the scenario named by the test's ``leak_limit`` marker (fails on a leak)."""
    from qasr.errors import QasrError
    from qasr.lab.config import RunConfig, validate
    from qasr.lab.runner import run
    from qasr.lab.units import parse_size

    marker = request.node.get_closest_marker(MARKER)
    if marker is None:
        pytest.fail(f"leak_result needs @pytest.mark.{MARKER}(scenario=..., per_iteration=...)", pytrace=False)
    kw = dict(marker.kwargs)
    root = Path(str(request.config.rootpath))
    limit = parse_size(kw.pop("per_iteration"))
    audio = kw.pop("audio", None) or os.environ.get("QASR_LEAK_AUDIO")
    if not audio:
        pytest.fail("leak_limit needs audio=... (or $QASR_LEAK_AUDIO)", pytrace=False)
    inconclusive = kw.pop("inconclusive", "fail")
    try:
        cfg = validate(
            RunConfig(
                scenario=kw.pop("scenario"),
                model=_path(kw.pop("model", None) or os.environ.get("QASR_MODEL"), root),
                model_b=_path(kw.pop("model_b", None), root),
                aligner=_path(kw.pop("aligner", None), root),
                audio=[_path(a, root) for a in ([audio] if isinstance(audio, (str, os.PathLike)) else audio)],  # type: ignore[misc]
                references=[kw.pop("reference")] if kw.get("reference") else [],
                iterations=int(kw.pop("iterations", 100)),
                allocator=kw.pop("allocator", "glibc"),
                engine=kw.pop("engine", None),
                results_dir=str(kw.pop("results_dir", tmp_path / "qasr-lab")),
                threshold=limit,
                peaks=False,
            )
        )
    except QasrError as exc:
        pytest.fail(f"leak_limit: {exc}", pytrace=False)
    outcome = run(cfg, extend=True, show_progress=False)
    why = _failure(outcome.summary, limit)
    if why and not (inconclusive == "pass" and outcome.summary.get("verdict") == "INCONCLUSIVE"):
        request.node.stash[_FAILURE] = why  # pytest_runtest_call fails the test with it
    return outcome
