"""``qasr text itn|convert``: the text chain on its own, for arguments or stdin (one line out per line in)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import List, Optional

import typer

app = typer.Typer(help="Text post-processing: Chinese ITN and OpenCC conversion.", no_args_is_help=True, rich_markup_mode=None)


def _lines(text: List[str]) -> Iterable[str]:
    if text:
        yield " ".join(text)
        return
    if sys.stdin.isatty():
        from qasr.errors import UsageError

        raise UsageError("give the text as an argument, or pipe lines to stdin")
    for line in sys.stdin:
        yield line.rstrip("\n")


def _each(text: List[str], fn: Callable[[str], str]) -> None:
    for line in _lines(text):
        sys.stdout.write(fn(line) + "\n")
        sys.stdout.flush()


@app.command("itn")
def itn_cmd(
    text: List[str] = typer.Argument(None, help="Text to normalise (default: lines from stdin)."),
    lang: str = typer.Option("zh", "--lang", help="zh (Simplified or Traditional) or en."),
    backend: Optional[str] = typer.Option(None, "--backend", help="ours (default for zh), wetext, cn2an."),
    itn_date: str = typer.Option("zh", "--itn-date", help="Dates: zh (2008年8月8日, as spoken) or iso (2008-08-08, full dates with a four-digit year only)."),
    itn_time: str = typer.Option("padded", "--itn-time", help="Clock times: padded (08:05) or unpadded (8:05)."),
) -> None:
    """Inverse text normalisation: spoken numbers to written form (一三八零零一三八零零零 -> 13800138000)."""
    from qasr.errors import UsageError
    from qasr.text.itn import BackendUnavailable, itn
    from qasr.text.itn.styles import check_styles

    try:
        check_styles(itn_date, itn_time)  # before reading stdin: a typo is an error at once
    except ValueError as exc:
        raise UsageError(str(exc)) from None

    def one(line: str) -> str:
        try:
            return itn(line, lang=lang, backend=backend, date=itn_date, time=itn_time)
        except BackendUnavailable as exc:
            raise UsageError(str(exc)) from None
        except ValueError as exc:
            raise UsageError(str(exc)) from None

    _each(text, one)


@app.command("convert")
def convert_cmd(
    text: List[str] = typer.Argument(None, help="Text to convert (default: lines from stdin)."),
    to: str = typer.Option("s2twp", "--to", help="s2twp (zh-TW with Taiwanese phrasing), s2t, s2hk, t2s, none."),
    itn: bool = typer.Option(False, "--itn", help="Run ITN first (the pipeline's order)."),
) -> None:
    """OpenCC conversion between Simplified and Traditional Chinese; Latin text is untouched."""
    from qasr.errors import UsageError
    from qasr.text.post import postprocess

    def one(line: str) -> str:
        try:
            return postprocess(line, itn=itn, opencc=to)
        except ValueError as exc:
            raise UsageError(str(exc)) from None

    _each(text, one)
