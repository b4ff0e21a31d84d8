"""Chinese script conversion of ASR output with OpenCC (Simplified -> Taiwan Traditional, ...).

Qwen3-ASR writes Mandarin mostly in Simplified script. ``convert(text)`` turns it into Taiwan
Traditional with Taiwanese phrasing (s2twp: 软件 -> 軟體, 出租车 -> 計程車); ``s2t``, ``s2hk`` and
``t2s`` are there too, and ``none`` returns the text as it is. Latin letters, digits and
punctuation pass through untouched (OpenCC only maps CJK characters and phrases).

Order in the pipeline: ITN first, then OpenCC (`qasr.text.post.postprocess`). ITN's rules are keyed on
the characters the model writes, and OpenCC rewrites some of them: s2twp turns 幺 (the "one" of
phone numbers) into 么 and 厘米 into 釐米, and phrase tables may rewrite a word that a rule uses as
context. Figures, on the other hand, are left alone by OpenCC, so normalizing numbers first loses
nothing. ITN still reads Traditional input, so text that arrives converted is handled too.

OpenCC's converters load their dictionaries when built (a few milliseconds each), so each target's
converter is built on first use and then cached; the ``opencc`` module itself is only imported then.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

#: Conversion targets, the default first. Each maps to the OpenCC configuration of that name.
OPENCC_TARGETS: tuple[str, ...] = ("s2twp", "s2t", "s2hk", "t2s", "none")

#: What each target does, for help texts.
TARGET_HELP = {
    "s2twp": "Simplified -> Traditional, Taiwan standard and phrases (default for zh-TW)",
    "s2t": "Simplified -> Traditional (OpenCC standard)",
    "s2hk": "Simplified -> Traditional, Hong Kong standard",
    "t2s": "Traditional -> Simplified",
    "none": "no conversion",
}


class OpenCCUnavailable(ImportError):
    """The ``opencc`` package is needed for script conversion and is not installed."""


def check_target(target: str) -> str:
    """The target in canonical spelling; ValueError listing the valid ones for anything else."""
    key = target.strip().lower() if isinstance(target, str) else target
    if key not in OPENCC_TARGETS:
        raise ValueError(
            f"unknown OpenCC target {target!r}; valid targets: {', '.join(OPENCC_TARGETS)}"
        )
    return key


@lru_cache(maxsize=None)
def _converter(target: str) -> Any:
    """The OpenCC converter for ``target``, built once per process."""
    try:
        import opencc
    except ImportError as exc:  # pragma: no cover - opencc is a dependency of this feature
        raise OpenCCUnavailable(
            "Chinese script conversion needs the opencc package: pip install opencc"
        ) from exc
    return opencc.OpenCC(target)


def convert(text: str, target: str = "s2twp") -> str:
    """``text`` converted to ``target`` script (see :data:`OPENCC_TARGETS`); "none" returns it.

    Raises ValueError for an unknown target, listing the valid ones.
    """
    key = check_target(target)
    if key == "none" or not text:
        return text
    return _converter(key).convert(text)


__all__ = ["OPENCC_TARGETS", "TARGET_HELP", "OpenCCUnavailable", "check_target", "convert"]
