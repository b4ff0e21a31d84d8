"""Recognisers behind one small interface, and a fallback chain over them.

``qwen3-chatllm`` (Qwen3-ASR through libchatllm) and ``faster-whisper`` (``pip install
'qasr[whisper]'``) both give `transcribe(audio) -> TranscriptionResult`, ``name`` and ``close()``;
`make_provider(spec, options)` loads one by name, or the first of an ``auto`` chain that starts
(saying on stderr, in one line, why it skipped one). Submodules are imported only when asked for, so
importing this package loads no engine and no faster-whisper.
"""

from __future__ import annotations

from qasr.providers.base import Provider, ProviderOptions, TextStream
from qasr.providers.chain import DEFAULT_ORDER, PROVIDER_NAMES, failure_reason, make_provider, parse_spec, providers_for

__all__ = ["DEFAULT_ORDER", "PROVIDER_NAMES", "Provider", "ProviderOptions", "TextStream", "failure_reason", "make_provider", "parse_spec", "providers_for"]
