"""The text post-processing chain after parsing: ITN first, then OpenCC (docs/itn.md says why).

ITN's rules are keyed on the script the model wrote (s2twp would turn the phone-number 幺 into 么
and 厘米 into 釐米), while OpenCC passes digits through untouched, so the order is fixed.
"""

from __future__ import annotations

from qasr.text.convert import check_target, convert


def postprocess(text: str, *, itn: bool = False, opencc: str | None = None, language: str | None = None) -> str:
    """ITN (for ``language``: Chinese by default; English through wetext when installed), then OpenCC.

    ``opencc`` is a target of `qasr.text.convert.OPENCC_TARGETS`; None or "none" converts nothing.
    """
    if opencc:
        check_target(opencc)  # an unknown target fails before any work
    if itn and text:
        from qasr.text.itn import itn as run_itn

        text = run_itn(text, lang=language or "zh")
    if opencc and text:
        text = convert(text, opencc)
    return text


def itn_then_convert(text: str, target: str = "s2twp", lang: str = "zh") -> str:
    """The documented pipeline order on one text: inverse text normalization, then OpenCC."""
    return postprocess(text, itn=True, opencc=target, language=lang)
