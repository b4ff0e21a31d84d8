"""The ``qasr`` command: a typer app whose subcommands are thin modules over the library.

`run()` is the console-script entry point. It owns the exit path: every expected error becomes one
line on stderr and its exit code (see `qasr.errors`), and the process ends with ``os._exit`` after
flushing, because upstream chatllm.cpp aborts (exit 134) in static destructors once a model was
loaded. Heavy modules are imported inside commands, and only the command being run is built
(`build_app`), so start-up stays short.
"""

from __future__ import annotations

import os
import sys

# numpy's OpenBLAS starts one thread per core when numpy is imported: ~20-40 ms of every command's
# start-up here (measured, benchmarks/bench_transcribe.py (d)), and threads that compete with the
# engine's. qasr's numpy work is small vectors, so one thread; a user's own setting wins.
if not any(k in os.environ for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "GOTO_NUM_THREADS")):
    os.environ["OPENBLAS_NUM_THREADS"] = "1"

import typer  # noqa: E402

from qasr.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, QasrError  # noqa: E402

#: The commands, in registration order: (name, module under qasr.cli, function, or None for a Typer group
#: ``module.app``, no_args_is_help).
COMMANDS: tuple[tuple[str, str, str | None, bool], ...] = (
    ("transcribe", "transcribe", "transcribe", True),
    ("batch", "batch", "batch", True),
    ("stream", "stream", "stream", False),
    ("serve", "serve", "serve", False),
    ("subtitles", "subtitles", "subtitles", True),
    ("align", "align", "align", True),
    ("benchmark", "benchmark", "benchmark", True),
    ("lab", "lab", None, False),
    ("experiment", "experiment", None, False),
    ("text", "text", None, False),
    ("models", "models", None, False),
    ("doctor", "doctor", "doctor", False),
)


def build_app(only: str | None = None) -> typer.Typer:
    """The ``qasr`` app with every command, or with just the command ``only``.

    `main` builds only the command being run: importing the other command modules and turning
    their options into click parameters cost ~15 ms of every start-up (benchmarks/bench_transcribe.py).
    """
    import importlib

    app = typer.Typer(
        name="qasr",
        help="Qwen3-ASR on CPU through chatllm.cpp: transcription, and a memory-leak lab for the engine.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_root)
    for name, module_name, function, no_args in COMMANDS:
        if only is not None and name != only:
            continue
        module = importlib.import_module(f"qasr.cli.{module_name}")
        if function is None:
            app.add_typer(module.app, name=name)
        else:
            app.command(name, no_args_is_help=no_args)(getattr(module, function))
    return app


def __getattr__(name: str) -> typer.Typer:
    """``qasr.cli.main.app``: the whole app, built on first use (for docs and embedding)."""
    if name == "app":
        return build_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _version_callback(value: bool) -> None:
    if value:
        from qasr import __version__

        print(f"qasr {__version__}")
        raise typer.Exit()


def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", callback=_version_callback, is_eager=True),
) -> None:
    """Qwen3-ASR on CPU through chatllm.cpp."""


def error_line(message: str) -> None:
    """Print one error line to stderr (never a traceback)."""
    print(f"qasr: error: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the app and return the exit code (for tests and embedding)."""
    args = sys.argv[1:] if argv is None else list(argv)
    names = {entry[0] for entry in COMMANDS}
    only = args[0] if args and args[0] in names else None
    try:
        build_app(only)(args=args, prog_name="qasr")  # standalone: usage errors print and raise SystemExit(2)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (EXIT_OK if code is None else EXIT_FAILURE)
    except QasrError as exc:
        error_line(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        error_line("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    return EXIT_OK


def run() -> None:
    """Console-script entry point: flush and leave without static destructors (they abort upstream; exit 134)."""
    from qasr.channel import exit_now

    exit_now(main())
