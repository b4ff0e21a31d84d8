"""One pytest test's body as a lab scenario, inside the lab's child (the ``leak_limit`` marker's body form).

The parent pytest session (`qasr.lab.pytest_plugin`) starts an ordinary lab run whose target is
``pytest:/abs/test_file.py::test_name``. In the child, `run_test` runs pytest on that one test with
a plugin that takes over its call: pytest collects the test and sets up its fixtures as it always
does, once; instead of calling the function once, the plugin hands it, with those fixture values, to
the lab (`Session.user`), which calls it N times between memory samples, and the fixtures are torn
down after the last iteration. Every fixture scope works, because the child's pytest session holds
this one test: function, class, module, package and session fixtures are each created once, in the
child, and shared by every iteration (a session fixture is therefore a new instance there, not the
one the parent's other tests share). A fixture that must be fresh for each call cannot be: build
what the body needs per call inside the body.
"""

from __future__ import annotations

import inspect
import os
from typing import TYPE_CHECKING, Any, Protocol

import pytest

from qasr.errors import QasrError, UsageError

if TYPE_CHECKING:
    from qasr.lab.config import RunConfig
    from qasr.lab.scenarios import Probe


class Session(Protocol):
    """What this module needs of the lab child's session (`qasr.lab.child.Session`)."""

    cfg: RunConfig
    probe: Probe

    def user(self, target: Any) -> int: ...

    def error(self, exc: BaseException, *, traceback_text: str | None = None) -> int: ...

#: Set in the lab child, so the qasr_leak plugin there leaves the marker to this module.
CHILD_ENV = "QASR_LEAK_CHILD"
#: How pytest runs in the child: quiet, output not captured (it goes to the run's stderr.log), no cache;
#: qasr is imported before pytest starts there, so pytest's note that it cannot rewrite it is noise.
PYTEST_OPTIONS = ["-q", "-s", "--no-header", "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning"]


class BodyNotRun(QasrError):
    """The test never reached its body in the child: a fixture failed, it was skipped, or not found."""


class _TestBody:
    """The test function with the values pytest resolved for its arguments: one call per iteration."""

    def __init__(self, item: pytest.Function) -> None:
        self.fn = item.obj
        if inspect.iscoroutinefunction(self.fn):
            raise UsageError(f"{item.nodeid}: leak_limit runs plain test functions, not coroutines")
        # The names pytest itself passes to the function (parametrized arguments included).
        names = getattr(getattr(item, "_fixtureinfo", None), "argnames", None)
        if names is None:
            names = [n for n in inspect.signature(self.fn).parameters if n in item.funcargs]
        self.kwargs: dict[str, Any] = {name: item.funcargs[name] for name in names}

    def __call__(self) -> None:
        self.fn(**self.kwargs)  # what it returns is dropped at once


class _Driver:
    """The child's pytest plugin: runs the lab in place of the test's call, and notes why it did not run."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.code: int | None = None
        self.problem: tuple[str, str | None] | None = None

    @pytest.hookimpl(tryfirst=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> bool:
        try:
            body = _TestBody(pyfuncitem)
        except QasrError as exc:
            self.code = self.session.error(exc)
            return True
        self.code = self.session.user(body)
        return True

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed and self.problem is None:
            self.problem = ("the test module failed to import in the lab's child", report.longreprtext)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.code is not None or self.problem is not None:
            return
        if report.when == "setup" and report.failed:
            self.problem = ("a fixture of the test failed in the lab's child", report.longreprtext)
        elif report.skipped:
            self.problem = (f"the test was skipped in the lab's child: {report.longreprtext.strip()}", None)


def child_args(session: Session) -> list[str]:
    """pytest's command line in the child: the caller's rootdir, ini file and plugins, then the one test."""
    target = session.cfg.target or ""
    return [*session.cfg.pytest_args, *PYTEST_OPTIONS, target.removeprefix("pytest:")]


def run_test(session: Session) -> int:
    """Run the target test's body under the lab; the child's exit code."""
    os.environ[CHILD_ENV] = "1"
    driver = _Driver(session)
    session.probe.enter("fixtures")
    pytest.main(child_args(session), plugins=[driver])
    if driver.code is not None:
        return driver.code
    message, details = driver.problem or (f"no test matched {session.cfg.target}", None)
    return session.error(BodyNotRun(message), traceback_text=details)
