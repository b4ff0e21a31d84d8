"""Hint text (context) for Qwen3-ASR: clean it before it reaches the prompt, spot output that echoes it.

Qwen3-ASR reads a context (names, terms, the previous sentence) from its system turn:
``<|im_start|>system\\n{context}<|im_end|>``. Two things can go wrong, and both are handled here:

* **Injection.** Text with ChatML markers (``<|im_end|>``), ``<asr_text>`` or chatllm's multimedia
  tag delimiters (``{{`` ``}}``, which make the engine read ``{{audio:PATH}}`` as a file to run
  ffmpeg on) would change the prompt's structure. `clean_context` removes them, as vLLM's
  ``_sanitize_transcription_user_text`` does for its ``prompt`` field.
* **Echo.** The model sometimes answers with the context instead of the speech (QwenLM/Qwen3-ASR
  #106: hot words in, the same hot words out). `is_context_echo` says when a transcript *merely*
  repeats the context: at least 90% of the transcript is one run of the context, and that run is at
  least half of the context. A transcript that is one of the hint words ("積液" spoken, with ten
  terms as context) covers a small part of the context and is kept. A context shorter than
  `MIN_ECHO_CHARS` letters is never called echoed: "Hello" as context and "Hello" as speech cannot be
  told apart, and dropping real speech is the worse mistake.
"""

from __future__ import annotations

import re
import unicodedata
from difflib import SequenceMatcher

#: Characters of context kept; Qwen3-ASR's own limit is about 10,000 tokens, far above useful hints.
MAX_CONTEXT_CHARS = 2000

_MARKUP = re.compile(r"<\|[^|<>]*\|>|</?asr_text>|\{\{|\}\}")

#: Share of the transcript that one run of the context must cover for an echo ...
ECHO_TRANSCRIPT_SHARE = 0.9
#: ... and share of the context that run must be.
ECHO_CONTEXT_SHARE = 0.5
#: Letters and digits a context needs before an echo of it can be recognised.
MIN_ECHO_CHARS = 6


def clean_context(text: str | None) -> str | None:
    """The context as the prompt may carry it, or None when nothing is left.

    Markup is removed (see the module doc), control characters become spaces, runs of white space
    one space; more than `MAX_CONTEXT_CHARS` characters are cut at the end.
    """
    if text is None:
        return None
    text = _MARKUP.sub(" ", text)
    text = "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in text)
    text = " ".join(text.split())[:MAX_CONTEXT_CHARS].strip()
    return text or None


def _comparable(text: str) -> str:
    """Letters and digits only, case-folded and NFKC-folded: punctuation and spacing do not count."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in folded if ch.isalnum())


def is_context_echo(transcript: str, context: str | None) -> bool:
    """True when ``transcript`` only repeats ``context`` (see the module doc for the rule)."""
    if not context:
        return False
    t, c = _comparable(transcript), _comparable(context)
    if not t or len(c) < MIN_ECHO_CHARS:
        return False
    match = SequenceMatcher(None, t, c, autojunk=False).find_longest_match(0, len(t), 0, len(c))
    return match.size >= ECHO_TRANSCRIPT_SHARE * len(t) and match.size >= ECHO_CONTEXT_SHARE * len(c)
