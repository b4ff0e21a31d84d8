"""Every error qasr raises on purpose, in one place (memray's layout).

Each class carries the process exit code the CLI uses for it, so the mapping from failure to exit
status is decided here once instead of in every command. Messages are written for the person at the
terminal: one line that says what is wrong and, where we know it, what to do.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_ENGINE_MISSING = 3
EXIT_ENGINE_ERROR = 4
EXIT_RUN_CRASHED = 5  # a lab run's child process died (its report is still written)
EXIT_LEAK = 6  # a lab run found a LEAK and was asked to fail on it
EXIT_INTERRUPTED = 130


class QasrError(Exception):
    """Base class: an expected failure with a message fit for users."""

    exit_code: int = EXIT_FAILURE


class UsageError(QasrError):
    """The command line or an argument is wrong."""

    exit_code = EXIT_USAGE


class AudioError(QasrError):
    """Audio is missing, unreadable, empty, too short, too long or not finite."""

    exit_code = EXIT_USAGE


class ModelFileError(QasrError):
    """A model file is missing, truncated, corrupt, or not the kind of model that was asked for."""

    exit_code = EXIT_USAGE


class EngineNotFound(QasrError):
    """No loadable libchatllm was found; the message lists every place tried."""

    exit_code = EXIT_ENGINE_MISSING


class EngineError(QasrError):
    """The native engine reported an error (its own words are kept in ``engine_message``)."""

    exit_code = EXIT_ENGINE_ERROR

    def __init__(self, message: str, engine_message: str | None = None) -> None:
        super().__init__(message)
        self.engine_message = engine_message


class DownloadError(QasrError):
    """A download failed (network, HTTP status, size, disk, or a bad file); the message says why."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.fatal = fatal  # True: another source would not help (the local disk is the problem)


class Aborted(QasrError):
    """A call was stopped by its `qasr.cancel.Cancel` before it finished (its client went away, or the
    server is shutting down); what it had produced is not a result."""

    exit_code = EXIT_INTERRUPTED


class NoProviderAvailable(QasrError):
    """``--provider auto`` tried every provider and none could start; the message gives each reason.

    The exit code is the first provider's (3 when its engine was missing, 2 for a missing model...).
    """

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def warn_on_stderr(message: str) -> None:
    """One ``qasr: warning:`` line on stderr: something the user should know that is not an error."""
    import sys

    print(f"qasr: warning: {message}", file=sys.stderr, flush=True)


def to_record(exc: BaseException) -> dict[str, object]:
    """An error as a record a child process sends its parent (`qasr.channel`): class, message, exit code.

    Anything that is not a `QasrError` travels as an `EngineError` named after its Python class, the
    way a crash in native code would be reported, never as a traceback.
    """
    if isinstance(exc, QasrError):
        record: dict[str, object] = {"error_class": type(exc).__name__, "message": str(exc), "exit_code": exc.exit_code}
        if isinstance(exc, EngineError) and exc.engine_message is not None:
            record["engine_message"] = exc.engine_message
        return record
    return {"error_class": "EngineError", "message": f"{type(exc).__name__}: {exc}", "exit_code": EXIT_ENGINE_ERROR}


def from_record(record: dict[str, object]) -> QasrError:
    """The error a child sent (`to_record`), rebuilt as the same class with the same exit code.

    A class this version does not know becomes a `QasrError` that keeps the exit code it was sent with.
    """
    name = str(record.get("error_class") or "QasrError")
    message = str(record.get("message") or "no message")
    code = record.get("exit_code")
    cls = _ERROR_CLASSES.get(name)
    if cls is EngineError:
        return EngineError(message, record.get("engine_message"))  # type: ignore[arg-type]
    if cls is NoProviderAvailable:
        return NoProviderAvailable(message, int(code) if isinstance(code, int) else EXIT_FAILURE)
    if cls is DownloadError:
        return DownloadError(message)
    if cls is not None:
        return cls(message)
    error = QasrError(message)
    if isinstance(code, int):
        error.exit_code = code
    return error


_ERROR_CLASSES: dict[str, type[QasrError]] = {
    cls.__name__: cls
    for cls in (QasrError, UsageError, AudioError, ModelFileError, EngineNotFound, EngineError, DownloadError, Aborted,
                NoProviderAvailable)
}
