"""Turn Qwen3-ASR's raw output into language and text, and repair repetition loops.

The model writes ``language English<asr_text>the words``; with a forced language (``--set language``)
the prompt already ends in ``language X`` and the output starts at ``<asr_text>``. ``language None``
means the model heard no speech. The engine strips nothing, so we do it here.

4-bit quantized audio encoders are reported to fall into loops ("的的的的..."): a character or a
short pattern repeated 20 or more times in a row is collapsed to one occurrence and flagged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ASR_TEXT_TAG = "<asr_text>"
_LANGUAGE_PREFIX = re.compile(r"^\s*language\s+([^<\n]*?)\s*$", re.IGNORECASE)
NO_SPEECH_LANGUAGES = frozenset({"none", ""})

LOOP_MIN_REPEATS = 20
LOOP_MAX_PATTERN = 20
# A pattern of 1..20 characters followed by at least 19 more copies of itself; lazy, so the
# shortest period wins ("ababab..." collapses to "ab", not "abab").
_LOOP = re.compile(r"(.{1,%d}?)\1{%d,}" % (LOOP_MAX_PATTERN, LOOP_MIN_REPEATS - 1), re.DOTALL)


@dataclass(frozen=True)
class ParsedTranscript:
    """Language and text of one ASR output, with what repair did to it."""

    language: str | None
    text: str
    raw: str
    no_speech: bool
    loops_repaired: int

    @property
    def repaired(self) -> bool:
        return self.loops_repaired > 0


def repair_loops(text: str) -> tuple[str, int]:
    """Collapse every run of a 1..20-character pattern repeated 20+ times to a single copy."""
    count = 0

    def one(m: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return m.group(1)

    return _LOOP.sub(one, text), count


def split_language(raw: str) -> tuple[str | None, str, bool]:
    """Split raw output into (language named by the model or None, text after the tag, tag seen)."""
    head, tag, tail = raw.partition(ASR_TEXT_TAG)
    if not tag:
        m = _LANGUAGE_PREFIX.match(raw)
        if m:  # "language None" with nothing after it: no speech, no tag
            return m.group(1), "", False
        return None, raw, False
    m = _LANGUAGE_PREFIX.match(head)
    return (m.group(1) if m else None), tail, True


def parse_asr_output(raw: str, forced_language: str | None = None) -> ParsedTranscript:
    """Parse a complete raw ASR output. ``forced_language`` is what ``--set language`` was given."""
    named, text, _ = split_language(raw)
    silent = named is not None and named.strip().lower() in NO_SPEECH_LANGUAGES
    text, loops = ("", 0) if silent else repair_loops(text.strip())
    return ParsedTranscript(
        language=None if silent else (named or forced_language),
        text=text,
        raw=raw,
        no_speech=silent or not text,
        loops_repaired=loops,
    )


class StreamingTextView:
    """Feed raw chunks; get back only the transcript text, as soon as it is known to be text.

    Everything before ``<asr_text>`` is the language header and is held back; if the output never
    contains the tag (a forced language makes the model start directly with text on some builds),
    held text is released once it can no longer be the start of a header.
    """

    def __init__(self) -> None:
        self._buffer = ""
        self._in_text = False
        self._emitted = False

    def _emit(self, text: str) -> str:
        if not self._emitted:  # the transcript's leading space is the tokenizer's, not the speaker's
            text = text.lstrip()
            self._emitted = bool(text)
        return text

    def feed(self, chunk: str) -> str:
        if self._in_text:
            return self._emit(chunk)
        self._buffer += chunk
        _, tag, tail = self._buffer.partition(ASR_TEXT_TAG)
        if tag:
            self._in_text = True
            self._buffer = ""
            return self._emit(tail)
        probe = self._buffer.lstrip().lower()
        if probe and not ("language".startswith(probe[:8]) or probe.startswith("language")):
            self._in_text = True
            out, self._buffer = self._buffer, ""
            return self._emit(out)
        return ""

    def finish(self) -> str:
        """Whatever is still held when the output ends (text without any header)."""
        if self._in_text or _LANGUAGE_PREFIX.match(self._buffer):
            return ""
        out, self._buffer = self._buffer, ""
        return self._emit(out)
