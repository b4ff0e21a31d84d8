"""Choosing a provider by name, and ``auto``: try them in order, say in one line why one was skipped.

A provider spec is a name (``qwen3-chatllm``, ``crispasr``, ``faster-whisper``), ``auto`` (the order
in ``$QASR_PROVIDER_ORDER``, else `DEFAULT_ORDER`: Qwen3-ASR on chatllm.cpp first, then Qwen3-ASR on
CrispASR, faster-whisper as the fallback), or
``auto:NAME,NAME`` (that order). A named provider that cannot start raises its own error; ``auto``
moves on to the next and reports the reason through ``on_fallback`` (by default one
``qasr: warning:`` line on stderr), and raises `NoProviderAvailable` naming every reason if none
starts. Usage errors (a bad option value) are never a reason to fall back: they are raised at once,
since the next provider would be given the same wrong value.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from qasr.errors import EngineNotFound, ModelFileError, NoProviderAvailable, QasrError, UsageError, warn_on_stderr
from qasr.providers.base import Provider, ProviderOptions
from qasr.spec import CallOptions, EngineSpec

QWEN, CRISPASR, WHISPER = "qwen3-chatllm", "crispasr", "faster-whisper"
PROVIDER_NAMES = (QWEN, CRISPASR, WHISPER)
DEFAULT_ORDER = (QWEN, CRISPASR, WHISPER)
ORDER_ENV = "QASR_PROVIDER_ORDER"


def provider_class(name: str) -> Callable[..., Provider]:
    """The class behind a name, imported only when asked for (faster-whisper and crispasr are optional extras)."""
    if name == QWEN:
        from qasr.providers.qwen import QwenChatllmProvider

        return QwenChatllmProvider  # type: ignore[return-value]
    if name == CRISPASR:
        from qasr.providers.crispasr import CrispAsrProvider

        return CrispAsrProvider  # type: ignore[return-value]
    if name == WHISPER:
        from qasr.providers.whisper import FasterWhisperProvider

        return FasterWhisperProvider  # type: ignore[return-value]
    raise UsageError(f"unknown provider {name!r}; choose one of: {', '.join(PROVIDER_NAMES)}, auto")


def _names(text: str, where: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in PROVIDER_NAMES]
    if unknown or not names:
        raise UsageError(f"{where}: {', '.join(unknown) or 'no provider named'}; choose from: {', '.join(PROVIDER_NAMES)}")
    return names


def parse_spec(spec: str | None) -> tuple[list[str], bool]:
    """(the names to try in order, whether that is an ``auto`` chain)."""
    spec = (spec or QWEN).strip()
    if spec == "auto":
        order = os.environ.get(ORDER_ENV)
        return (_names(order, f"${ORDER_ENV}") if order else list(DEFAULT_ORDER)), True
    if spec.startswith("auto:"):
        return _names(spec[len("auto:") :], f"provider order in {spec!r}"), True
    if spec not in PROVIDER_NAMES:
        raise UsageError(f"unknown provider {spec!r}; choose one of: {', '.join(PROVIDER_NAMES)}, auto, auto:NAME,NAME")
    return [spec], False


def failure_reason(exc: BaseException) -> str:
    """The kind of failure in a few words: what a fallback line and the benchmark report say."""
    if isinstance(exc, EngineNotFound):
        return "engine not found"
    if isinstance(exc, ModelFileError):
        return "model file missing or corrupt"
    return "load failed"


def providers_for(spec: str | None, allowed: Sequence[str] | None = None, why: str = "") -> tuple[list[str], bool]:
    """`parse_spec`, then only the ``allowed`` providers (for a command that needs the engine itself).

    An ``auto`` chain skips the others silently; a name outside ``allowed`` is a `UsageError`
    ending in ``why``. Commands call this before any work to refuse early.
    """
    names, auto = parse_spec(spec)
    if allowed is None:
        return names, auto
    refused = [n for n in names if n not in allowed]
    names = [n for n in names if n in allowed]
    if (refused and not auto) or not names:
        raise UsageError(f"provider {', '.join(refused)} cannot serve this command, which needs {' or '.join(allowed)}" + (f": {why}" if why else ""))
    return names, auto


def make_provider(
    spec: EngineSpec | str | None,
    defaults: CallOptions | ProviderOptions | None = None,
    *,
    on_fallback: Callable[[str], None] | None = warn_on_stderr,
    allowed: Sequence[str] | None = None,
    why: str = "",
) -> Provider:
    """Load the provider ``spec.provider`` names (see the module doc), or the first of an ``auto``
    chain that starts; ``defaults`` are the `CallOptions` its calls get when they pass none.

    ``allowed`` and ``why``: see `providers_for`. The 0.1 form ``make_provider(NAME, ProviderOptions)``
    still works (ProviderOptions warns that it is deprecated).
    """
    if not isinstance(spec, EngineSpec):
        if not isinstance(defaults, ProviderOptions):
            raise TypeError("make_provider takes an EngineSpec (or the deprecated NAME, ProviderOptions)")
        spec, defaults = defaults.split(spec)
    calls = defaults if isinstance(defaults, CallOptions) else CallOptions()
    names, auto = providers_for(spec.provider, allowed, why)
    if not auto:
        return provider_class(names[0])(spec.replace(provider=names[0]), calls)
    failures: list[tuple[str, QasrError]] = []
    for i, name in enumerate(names):
        try:
            return provider_class(name)(spec.replace(provider=name), calls)
        except UsageError:
            raise
        except QasrError as exc:
            failures.append((name, exc))
            if i + 1 < len(names) and on_fallback is not None:
                on_fallback(f"{name} unavailable ({failure_reason(exc)}: {exc}); falling back to {names[i + 1]}")
    reasons = "; ".join(f"{name}: {failure_reason(exc)} ({exc})" for name, exc in failures)
    raise NoProviderAvailable(f"no provider could start: {reasons}", failures[0][1].exit_code)


def peak_rss_of(provider: object) -> int:
    """The peak resident set behind a provider: this process's, or its engine process's when it runs
    one (``crispasr``), whichever is larger. What a figure called peak RSS reports."""
    from qasr.processes import peak_rss_bytes

    own = peak_rss_bytes()
    engine_peak = getattr(provider, "peak_rss_bytes", None)
    return max(own, int(engine_peak())) if callable(engine_peak) else own
