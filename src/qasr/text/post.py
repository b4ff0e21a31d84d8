"""The text post-processing after parsing, as one value: ITN first, then OpenCC (docs/itn.md says why).

`PostProcess(itn=True, opencc="s2twp")` means the same in every command, the server and the API:

* ITN (inverse text normalisation) rewrites spoken numbers for the transcript's language: Chinese
  and Cantonese through qasr's rules, English through wetext when installed, other languages not
  at all.
* OpenCC converts **Chinese text only**: a segment whose language is Chinese or Cantonese, or whose
  language is unknown (a plain text given to ``qasr text convert``). English passes through OpenCC
  unchanged anyway, but a Japanese transcript would not: s2twp rewrites its kanji into Traditional
  forms, so a detected non-Chinese language is left alone. ``--zh-tw`` is ``opencc="s2twp"``.

ITN's rules are keyed on the script the model wrote (s2twp would turn the phone-number 幺 into 么
and 厘米 into 釐米), while OpenCC passes digits through untouched, so the order is fixed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from qasr.text.convert import check_target, convert


@dataclass(frozen=True)
class PostProcess:
    """ITN on or off, and an OpenCC target (None: no conversion). Unknown targets raise ValueError."""

    itn: bool = False
    opencc: str | None = None

    def __post_init__(self) -> None:
        if self.opencc is not None:
            target = check_target(self.opencc)
            object.__setattr__(self, "opencc", None if target == "none" else target)

    @property
    def active(self) -> bool:
        return self.itn or self.opencc is not None

    def steps(self, language: str | None) -> list[Callable[[str], str]]:
        """The functions applied to a text in ``language``, in order (for callers that map each step
        over something else, such as word times)."""
        from qasr.text.languages import is_chinese

        steps: list[Callable[[str], str]] = []
        if self.itn:
            from qasr.text.itn import itn as run_itn

            lang = language or "zh"
            steps.append(lambda text: run_itn(text, lang=lang))
        if self.opencc is not None and (language is None or is_chinese(language)):
            target = self.opencc
            steps.append(lambda text: convert(text, target))
        return steps

    def apply(self, text: str, language: str | None = None) -> str:
        """``text`` after every step for ``language`` (None: unknown, so Chinese rules and conversion)."""
        if not text:
            return text
        for step in self.steps(language):
            text = step(text)
        return text


def postprocess(text: str, *, itn: bool = False, opencc: str | None = None, language: str | None = None) -> str:
    """`PostProcess(itn, opencc).apply(text, language)`, for one-off calls."""
    return PostProcess(itn, opencc).apply(text, language)


def itn_then_convert(text: str, target: str = "s2twp", lang: str = "zh") -> str:
    """The documented pipeline order on one text: inverse text normalization, then OpenCC."""
    return postprocess(text, itn=True, opencc=target, language=lang)
