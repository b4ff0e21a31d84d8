"""Leak regression tests for your CI: a pytest plugin (entry point ``pytest11``, name ``qasr_leak``).

**On any test** (the body form): mark an ordinary test function and its body runs N times in a
child process under the lab, which fails the test with the verdict, the slopes with their bounds and
the report's path when memory grows faster than the limit::

    import pytest

    @pytest.mark.leak_limit(per_iteration="64 KiB", iterations=100)
    def test_handler_does_not_leak(handler):
        handler.handle(b"request")

Fixtures are resolved once, in the child, and reused by every iteration (any scope; see
`qasr.lab.pytest_child`); the body does not run in the calling pytest process, whose fixtures for
the test are not set up at all. ``python_heap=True`` adds the Python heap (tracemalloc) to the
verdict and names the source lines that grow.

**A built-in scenario** (the scenario form): name it, and ask for the ``leak_result`` fixture (the
lab's `RunOutcome`)::

    @pytest.mark.leak_limit(scenario="restart", per_iteration="64 KiB", iterations=100,
                           model="models/qwen3-asr-0.6b-q4_0.bin", audio="samples/en.wav")
    def test_restart_does_not_leak(leak_result):
        assert leak_result.summary["iterations_completed"] == 100

The limit is the threshold T of GUIDE §4 for every metric: the test fails when RssAnon's or the
live heap's slope has its 95% lower bound above it (LEAK), or when the run crashed or the body
raised (with its traceback). INCONCLUSIVE runs are extended to 2N and 4N iterations first; if still
inconclusive the test fails unless the marker says ``inconclusive="pass"``. Relative paths are
taken from pytest's rootdir; ``model`` defaults to ``$QASR_MODEL``, ``audio`` to
``$QASR_LEAK_AUDIO``, the engine to ``$QASR_CHATLLM_LIB``.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import pytest

MARKER = "leak_limit"
_FAILURE = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(per_iteration, iterations=100, scenario=None, allocator='glibc', inconclusive='fail', "
        "python_heap=False, model=None, model_b=None, aligner=None, audio=None, reference=None): without scenario, "
        "run the test body N times in a qasr lab child process; with one, run that scenario for the leak_result "
        "fixture; fail when memory grows faster than per_iteration",
    )


def _in_child() -> bool:
    from qasr.lab.pytest_child import CHILD_ENV

    return bool(os.environ.get(CHILD_ENV))


def _body_form(item: pytest.Item) -> bool:
    marker = item.get_closest_marker(MARKER)
    return marker is not None and not marker.kwargs.get("scenario") and isinstance(item, pytest.Function)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Scenario form: the test runs the scenario even if it does not ask for ``leak_result``.
    Body form: none of the test's fixtures are set up here (the child sets them up), only
    ``tmp_path_factory`` for the run's directory."""
    if _in_child():
        return
    for item in items:
        if item.get_closest_marker(MARKER) is None or not hasattr(item, "fixturenames"):
            continue
        if _body_form(item):
            item.fixturenames = ["tmp_path_factory"]  # type: ignore[attr-defined]
        elif "leak_result" not in item.fixturenames:  # type: ignore[attr-defined]
            item.fixturenames = [*item.fixturenames, "leak_result"]  # type: ignore[attr-defined]


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

        crash = summary.get("crash") or {}
        error = crash.get("error") or {}
        trace = (error.get("traceback") or "").rstrip()
        # A Python traceback ends with the error's own line; a fixture's failure (pytest's report) does not.
        said = f"\n{error['kind']}: {error['message']}" if error.get("message") and error["message"] not in trace[-500:] else ""
        said += f"\n{trace}" if trace else ""
        return f"lab run {summary['status']} ({crash_text(crash)}); report: {report}{said}"
    verdicts = summary.get("verdicts") or {}
    parts = [
        f"{m} {v['verdict']} {format_rate(v['slope_bytes_per_iter'])} [{format_rate(v['ci_low'])}, {format_rate(v['ci_high'])}]"
        for m, v in verdicts.items()
        if m in ("rss_anon", "heap_live", "py_heap")
    ]
    detail = f"{'; '.join(parts)} vs limit {format_rate(limit)}; report: {report}"
    if summary.get("verdict") == "LEAK":
        return f"LEAK: {summary.get('verdict_reason')}: {detail}"
    if summary.get("verdict") == "INCONCLUSIVE":
        return f"INCONCLUSIVE after extension: {detail}"
    return None


def _config(kw: dict[str, Any], root: Path, results: Path, **target: Any) -> tuple[Any, int, str]:
    """The checked `RunConfig` a marker asks for, its limit and what to do when inconclusive.

    ``target``: ``scenario=NAME, target="pytest:...", pytest_args=[...]`` for the body form; else the
    marker's ``scenario`` (a built-in one, which needs audio, or ``PATH.py:NAME``). Calls `pytest.fail`
    with the reason on bad marker arguments."""
    from qasr.errors import QasrError
    from qasr.lab.config import RunConfig, validate
    from qasr.lab.units import parse_size
    from qasr.lab.usercode import is_target

    kw = dict(kw)
    scenario = target.pop("scenario", None) or kw.pop("scenario", None)
    kw.pop("scenario", None)
    try:
        limit = parse_size(kw.pop("per_iteration"))
    except KeyError:
        pytest.fail(f"@pytest.mark.{MARKER} needs per_iteration=... (bytes per iteration, e.g. '64 KiB')", pytrace=False)
    except ValueError as exc:
        pytest.fail(f"leak_limit per_iteration: {exc}", pytrace=False)
    audio = kw.pop("audio", None) or os.environ.get("QASR_LEAK_AUDIO")
    if not audio and not target and not is_target(str(scenario)):
        pytest.fail("leak_limit needs audio=... (or $QASR_LEAK_AUDIO)", pytrace=False)
    audio_list = [] if not audio else [audio] if isinstance(audio, (str, os.PathLike)) else list(audio)
    try:
        cfg = validate(
            RunConfig(
                scenario=str(scenario),
                model=_path(kw.pop("model", None) or (None if target else os.environ.get("QASR_MODEL")), root),
                model_b=_path(kw.pop("model_b", None), root),
                aligner=_path(kw.pop("aligner", None), root),
                audio=[str(_path(a, root)) for a in audio_list],
                references=[kw.pop("reference")] if kw.get("reference") else [],
                iterations=int(kw.pop("iterations", 100)),
                allocator=kw.pop("allocator", "glibc"),
                engine=kw.pop("engine", None),
                results_dir=str(kw.pop("results_dir", None) or results),
                threshold=limit,
                peaks=False,
                python_heap=bool(kw.pop("python_heap", False)),
                **target,
            )
        )
    except QasrError as exc:
        pytest.fail(f"leak_limit: {exc}", pytrace=False)
    return cfg, limit, str(kw.pop("inconclusive", "fail"))


def _verdict_failure(summary: dict[str, Any], limit: int, inconclusive: str) -> str | None:
    why = _failure(summary, limit)
    if why and inconclusive == "pass" and summary.get("verdict") == "INCONCLUSIVE":
        return None
    return why


def _caller_args(config: pytest.Config) -> list[str]:
    """What the child's pytest needs from this session: the rootdir, the ini file, ``-p``/``-o`` options."""
    args = ["--rootdir", str(config.rootpath)]
    if config.inipath:
        args += ["-c", str(config.inipath)]
    given = list(config.invocation_params.args)
    for k, arg in enumerate(given):
        if arg in ("-p", "-o", "--override-ini") and k + 1 < len(given):
            args += [arg, given[k + 1]]
        elif (arg.startswith("-p") or arg.startswith("-o")) and len(arg) > 2 and not arg.startswith("--"):
            args.append(arg)
        elif arg.startswith("--override-ini="):
            args.append(arg)
    return args


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Body form: run the test's body N times in a lab child instead of calling it here."""
    if _in_child() or not _body_form(pyfuncitem):
        return None
    from qasr.lab.runner import run

    if "leak_result" in inspect.signature(pyfuncitem.obj).parameters:
        pytest.fail("leak_result is for a marker that names a scenario=...; a marked test body runs in the lab itself",
                    pytrace=False)  # fmt: skip
    marker = pyfuncitem.get_closest_marker(MARKER)
    assert marker is not None
    results = pyfuncitem.funcargs["tmp_path_factory"].mktemp("qasr-lab")  # type: ignore[attr-defined]
    _, _, rest = pyfuncitem.nodeid.partition("::")
    cfg, limit, inconclusive = _config(
        dict(marker.kwargs), Path(str(pyfuncitem.config.rootpath)), results, scenario=pyfuncitem.name,
        target=f"pytest:{pyfuncitem.path}::{rest}", pytest_args=_caller_args(pyfuncitem.config),
    )  # fmt: skip
    outcome = run(cfg, extend=True, show_progress=False)
    why = _verdict_failure(outcome.summary, limit, inconclusive)
    if why:
        pytest.fail(why, pytrace=False)
    return True


@pytest.fixture()
def leak_result(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The `RunOutcome` of the scenario named by the test's ``leak_limit`` marker (fails on a leak)."""
    from qasr.lab.runner import run

    marker = request.node.get_closest_marker(MARKER)
    if marker is None or not marker.kwargs.get("scenario"):
        pytest.fail(f"leak_result needs @pytest.mark.{MARKER}(scenario=..., per_iteration=...)", pytrace=False)
    cfg, limit, inconclusive = _config(dict(marker.kwargs), Path(str(request.config.rootpath)), tmp_path / "qasr-lab")
    outcome = run(cfg, extend=True, show_progress=False)
    why = _verdict_failure(outcome.summary, limit, inconclusive)
    if why:
        request.node.stash[_FAILURE] = why  # pytest_runtest_call fails the test with it
    return outcome
