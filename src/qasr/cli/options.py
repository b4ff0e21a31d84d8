"""Option values shared by several commands, turned from what was typed into what the library takes."""

from __future__ import annotations

from pathlib import Path


def read_context(value: str | None) -> str | None:
    """``--context TEXT`` as given, or ``--context @FILE``: the file's text (UTF-8). ``@@x`` is the text ``@x``."""
    from qasr.errors import UsageError

    if value is None or not value.startswith("@"):
        return value
    if value.startswith("@@"):
        return value[1:]
    path = Path(value[1:])
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"--context file not found: {path}") from None
    except UnicodeDecodeError:
        raise UsageError(f"--context file is not UTF-8 text: {path}") from None
    except OSError as exc:
        raise UsageError(f"cannot read --context file {path}: {exc.strerror}") from None


def check_opencc_option(target: str | None, option: str = "--opencc") -> str | None:
    """The OpenCC target, checked before any model is loaded; the error names the option."""
    if not target:
        return target
    from qasr.errors import UsageError
    from qasr.text.convert import OPENCC_TARGETS, check_target

    try:
        return check_target(target)
    except ValueError:
        raise UsageError(f"unknown {option} target {target!r}; choose one of: {', '.join(OPENCC_TARGETS)}") from None
