"""The ``qasr`` command: a typer app whose subcommands are thin modules over the library.

`run()` is the console-script entry point. It owns the exit path: every expected error becomes one
line on stderr and its exit code (see `qasr.errors`), and the process ends with ``os._exit`` after
flushing, because upstream chatllm.cpp aborts (exit 134) in static destructors once a model was
loaded. Heavy modules are imported inside commands so ``qasr --help`` stays fast.
"""

from __future__ import annotations

import os
import sys

import typer

from qasr.cli import align as align_cmd
from qasr.cli import benchmark as benchmark_cmd
from qasr.cli import doctor as doctor_cmd
from qasr.cli import experiment as experiment_cmd
from qasr.cli import lab as lab_cmd
from qasr.cli import models as models_cmd
from qasr.cli import text as text_cmd
from qasr.cli import serve as serve_cmd
from qasr.cli import stream as stream_cmd
from qasr.cli import subtitles as subtitles_cmd
from qasr.cli import transcribe as transcribe_cmd
from qasr.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, QasrError

app = typer.Typer(
    name="qasr",
    help="Qwen3-ASR on CPU through chatllm.cpp: transcription, and a memory-leak lab for the engine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("transcribe", no_args_is_help=True)(transcribe_cmd.transcribe)
app.command("stream")(stream_cmd.stream)
app.command("serve")(serve_cmd.serve)
app.command("subtitles", no_args_is_help=True)(subtitles_cmd.subtitles)
app.command("align", no_args_is_help=True)(align_cmd.align)
app.command("benchmark", no_args_is_help=True)(benchmark_cmd.benchmark)
app.add_typer(lab_cmd.app, name="lab")
app.add_typer(experiment_cmd.app, name="experiment")
app.add_typer(text_cmd.app, name="text")
app.add_typer(models_cmd.app, name="models")
app.command("doctor")(doctor_cmd.doctor)


def _version_callback(value: bool) -> None:
    if value:
        from qasr import __version__

        print(f"qasr {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", callback=_version_callback, is_eager=True),
) -> None:
    """Qwen3-ASR on CPU through chatllm.cpp."""


def error_line(message: str) -> None:
    """Print one error line to stderr (never a traceback)."""
    print(f"qasr: error: {message}", file=sys.stderr, flush=True)


def _finish(code: int) -> None:
    """Flush and leave without running static destructors (they abort upstream; exit 134)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    """Run the app and return the exit code (for tests and embedding)."""
    try:
        app(args=argv, prog_name="qasr")  # standalone: usage errors print and raise SystemExit(2)
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
    """Console-script entry point."""
    _finish(main())
