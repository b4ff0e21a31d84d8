"""Every option several commands share, declared once with its environment variable, and the two
values they build: the `EngineSpec` (what to load) and the `CallOptions` (what each call asks for).

A command lists these objects as its parameters' defaults (``model: Optional[str] = MODEL``), so
``--model`` reads ``$QASR_MODEL`` in every command, ``-a`` is the aligner everywhere, and a help
text is written once. ``--provider`` and ``--whisper-model`` live in `qasr.cli.provider_options`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from qasr.spec import CallOptions, EngineSpec

MODEL = typer.Option(
    None, "--model", "-m", envvar="QASR_MODEL", show_default=False,
    help="Qwen3-ASR model: a file (chatllm.cpp format; GGUF for --provider crispasr) or a registry name (qasr models list).",
)  # fmt: skip
ALIGNER = typer.Option(
    None, "--aligner", "-a", envvar="QASR_ALIGNER", show_default=False,
    help="Qwen3-ForcedAligner model (a file or a registry name; GGUF for --provider crispasr): word times.",
)  # fmt: skip
ENGINE = typer.Option(
    None, "--engine", envvar="QASR_CHATLLM_LIB", show_default=False,
    help="libchatllm.so or its directory (default: $QASR_CHATLLM_LIB, then ./chatllm.cpp).",
)  # fmt: skip
LANGUAGE = typer.Option(
    None, "--language", "-l",
    help="Force a language: a name (English, Chinese, ...) or a code (en, zh, ...); default: detect.",
)  # fmt: skip
CONTEXT = typer.Option(None, "--context", "-c", help="Hint text for the model (names, terms), or @FILE to read it from a file.")
THREADS = typer.Option(None, "--threads", "-t", min=1, help="CPU threads for the engine (default: physical cores).")
MAX_LENGTH = typer.Option(None, "--max-length", min=256, help="Context length; smaller uses less memory (model default 65536).")
MAX_TOKENS = typer.Option(None, "--max-tokens", min=1, help="Stop each engine call after N tokens (a synthetic model never stops by itself).")
ITN = typer.Option(False, "--itn/--no-itn", help="Inverse text normalisation (一三八 -> 138): Chinese rules, English via wetext if installed.")
ZH_TW = typer.Option(False, "--zh-tw", help="Chinese text in Traditional script with Taiwanese phrasing (OpenCC s2twp); other languages untouched.")
OPENCC = typer.Option(None, "--opencc", help="OpenCC conversion of Chinese text: s2twp, s2t, s2hk, t2s or none (overrides --zh-tw).")


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


def call_options(
    *, language: str | None = None, context: str | None = None, itn: bool = False, zh_tw: bool = False,
    opencc: str | None = None, max_chunk: float | None = None,
) -> CallOptions:  # fmt: skip
    """The per-call options a command line gives: ``--context @FILE`` read, ``--zh-tw`` as s2twp,
    the OpenCC target checked (the error names ``--opencc``)."""
    from qasr.spec import CallOptions

    target = check_opencc_option(opencc) or ("s2twp" if zh_tw else None)
    return CallOptions(language=language, context=read_context(context), itn=itn, opencc=target, max_chunk=max_chunk)


def engine_spec(
    *, provider: str | None = None, model: str | None = None, aligner: str | None = None,
    engine: Path | str | None = None, threads: int | None = None, max_length: int | None = None,
    max_tokens: int | None = None, language: str | None = None, whisper_model: str | None = None, **provider_fields: object,
) -> EngineSpec:  # fmt: skip
    """The engine spec a command line gives (paths as text, so it travels as JSON)."""
    from qasr.spec import DEFAULT_PROVIDER, EngineSpec

    return EngineSpec(
        provider=provider or DEFAULT_PROVIDER, model=model, aligner=aligner, engine=str(engine) if engine else None,
        threads=threads, max_length=max_length, max_tokens=max_tokens, language=language, whisper_model=whisper_model,
        **provider_fields,  # type: ignore[arg-type]
    )  # fmt: skip
